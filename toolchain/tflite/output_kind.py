"""What a model output holds, guessed from its shape and name: which agreement measure fits it.

Every output gets SQNR and absolute errors in its own units; on top of that a kind's own measure:

| kind | guessed when | measure |
|---|---|---|
| ``class_scores`` | one axis of more than one entry after the batch, name not a box/landmark word | top-1 agreement |
| ``detection_scores`` | ``[1, anchors, classes]`` whose name says scores/classes/confidence | agreement of the top-k anchors |
| ``mask`` | ``[1, H, W, C]`` with H, W > 1, or a name saying mask/segment | per-pixel agreement of the mask |
| ``values`` | anything else (boxes, landmarks, regressors, features, scalars) | SQNR and errors only |

The guess reads names because shapes alone cannot tell a detector's scores from its boxes; where
it is wrong, ``[verify] output_kinds`` (``--output-kind NAME=KIND``) says what an output is.
"""
from __future__ import annotations

import re
from enum import Enum

from ..core.errors import ConfigError


class OutputKind(Enum):
    CLASS_SCORES = "class_scores"
    DETECTION_SCORES = "detection_scores"
    MASK = "mask"
    VALUES = "values"


# Whole words or word starts in an output's name (split at anything not a letter).
_SCORE_WORDS = ("score", "class", "logit", "prob", "conf", "softmax")
_VALUE_WORDS = ("box", "regress", "landmark", "coord", "offset", "anchor", "keypoint", "pose", "embed", "feature",
                "ld", "world")
_MASK_WORDS = ("mask", "segment", "seg", "matting", "alpha")
TOP_K = 10  # detection scores: agreement of the reference's TOP_K highest-scoring anchors


def _words(name: str) -> list[str]:
    return [w for w in re.split(r"[^a-z]+", name.lower()) if w]


def _says(name: str, stems: tuple[str, ...]) -> bool:
    return any(w.startswith(s) for w in _words(name) for s in stems)


def guess_output_kind(name: str, shape: tuple[int, ...]) -> OutputKind:
    """The kind an output most likely is (see the module doc); pure: shape and name only."""
    dims = tuple(int(d) for d in shape[1:]) if len(shape) > 1 else tuple(int(d) for d in shape)
    big = [d for d in dims if d > 1]
    if _says(name, _MASK_WORDS) and len(dims) >= 2:
        return OutputKind.MASK
    if _says(name, _VALUE_WORDS) and not _says(name, _SCORE_WORDS):
        return OutputKind.VALUES
    if len(big) == 1 and dims and dims[-1] > 1:
        return OutputKind.CLASS_SCORES
    if len(dims) == 2 and dims[0] > 1 and _says(name, _SCORE_WORDS):
        return OutputKind.DETECTION_SCORES
    if len(dims) == 3 and dims[0] > 1 and dims[1] > 1:
        return OutputKind.MASK
    return OutputKind.VALUES


def parse_output_kind(text: str) -> tuple[str, OutputKind]:
    """``NAME=KIND`` (the --output-kind flag) as (name, kind); ConfigError naming the kinds."""
    name, sep, kind = text.rpartition("=")
    if not sep or not name:
        raise ConfigError(f"--output-kind expects NAME=KIND, got '{text}'")
    return name, output_kind(kind, name)


def output_kind(value: str, name: str) -> OutputKind:
    try:
        return OutputKind(value)
    except ValueError:
        kinds = ", ".join(k.value for k in OutputKind)
        raise ConfigError(f"unknown output kind '{value}' for output '{name}' (expected one of {kinds})") from None
