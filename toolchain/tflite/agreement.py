"""How closely a rewritten model's outputs follow the original's on the same inputs, per output.

A check is only as good as its inputs: when an output of the original model does not move
on them (random inputs often saturate a classifier into one answer), a zero difference says
nothing, so every output also records whether it varied at all (``informative``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .interpreter import TensorSpec

# An output "does not vary" when no element moves by more than this across the inputs: one step is
# also what LiteRT's optimised and reference int8 kernels may differ by.
NEARLY_CONSTANT_STEPS = 1.0
_FLOAT_NEARLY_CONSTANT = 1e-6  # float outputs: relative to the largest magnitude


@dataclass(frozen=True)
class OutputAgreement:
    """One output of the model."""

    name: str
    top1_agreement: float | None  # same argmax over the last axis (a class axis: more than one entry)
    max_abs_diff_steps: float  # in output quantisation steps (float outputs: in output units)
    mean_abs_diff_steps: float
    sqnr_db: float | None  # reference power over difference power, real values; None: identical
    reference_range_steps: float  # the largest spread of an element of the reference across the inputs
    informative: bool  # the reference output varied across the inputs


@dataclass(frozen=True)
class Agreement:
    """How closely a rewritten model's outputs follow the original's on the same inputs."""

    samples: int
    top1_agreement: float | None  # the lowest over outputs with a class axis
    max_abs_diff_steps: float  # largest output difference in output quantisation steps
    mean_abs_diff_steps: float
    per_output_max_abs_diff_steps: tuple[float, ...] = field(default=())
    outputs: tuple[OutputAgreement, ...] = field(default=())
    sqnr_db: float | None = None  # the lowest over outputs; None: every output identical
    informative: bool = True  # every output of the reference varied across the inputs

    @property
    def constant_outputs(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.outputs if not o.informative)


def _real(x: np.ndarray, s: TensorSpec) -> np.ndarray:
    if np.issubdtype(s.dtype, np.integer) and s.scale > 0:
        return (x - s.zero_point) * s.scale
    return x


def _sqnr_db(ref: np.ndarray, new: np.ndarray, s: TensorSpec) -> float | None:
    signal = float(np.sum(_real(ref, s) ** 2))
    noise = float(np.sum((_real(ref, s) - _real(new, s)) ** 2))
    if noise == 0.0 or signal == 0.0:
        return None  # identical, or a zero reference (then not informative anyway)
    return round(10.0 * math.log10(signal / noise), 3)


def _compare_one(a: np.ndarray, b: np.ndarray, s: TensorSpec) -> OutputAgreement:
    d = np.abs(a - b)
    spread = (a.max(axis=0) - a.min(axis=0)) if a.shape[0] else np.zeros(1)
    if not np.issubdtype(s.dtype, np.integer):
        if s.scale > 0:
            d, spread = d / s.scale, spread / s.scale
            varies = bool(spread.size and spread.max() > NEARLY_CONSTANT_STEPS)
        else:
            varies = bool(spread.size and spread.max() > _FLOAT_NEARLY_CONSTANT * max(1.0, float(np.abs(a).max())))
    else:
        varies = bool(spread.size and spread.max() > NEARLY_CONSTANT_STEPS)
    top1 = None
    if a.ndim >= 2 and a.shape[-1] > 1 and a.shape[0]:
        top1 = float(np.mean(np.argmax(a, axis=-1) == np.argmax(b, axis=-1)))
    return OutputAgreement(
        name=s.name,
        top1_agreement=top1,
        max_abs_diff_steps=float(d.max()) if d.size else 0.0,
        mean_abs_diff_steps=float(d.mean()) if d.size else 0.0,
        sqnr_db=_sqnr_db(a, b, s),
        reference_range_steps=float(spread.max()) if spread.size else 0.0,
        informative=varies,
    )


def compare_outputs(ref: list[list[np.ndarray]], new: list[list[np.ndarray]], specs: tuple[TensorSpec, ...]) -> Agreement:
    """Per output and overall; ``ref`` and ``new`` hold one list of output arrays per input (or invocation)."""
    outputs = []
    for j, s in enumerate(specs):
        a = np.stack([r[j] for r in ref]).astype(np.float64) if ref else np.zeros((0, 1))
        b = np.stack([r[j] for r in new]).astype(np.float64) if new else np.zeros((0, 1))
        outputs.append(_compare_one(a, b, s))
    top1s = [o.top1_agreement for o in outputs if o.top1_agreement is not None]
    sqnrs = [o.sqnr_db for o in outputs if o.sqnr_db is not None]
    return Agreement(
        samples=len(ref),
        top1_agreement=min(top1s) if top1s else None,
        max_abs_diff_steps=max((o.max_abs_diff_steps for o in outputs), default=0.0),
        mean_abs_diff_steps=float(np.mean([o.mean_abs_diff_steps for o in outputs])) if outputs else 0.0,
        per_output_max_abs_diff_steps=tuple(o.max_abs_diff_steps for o in outputs),
        outputs=tuple(outputs),
        sqnr_db=min(sqnrs) if sqnrs else None,
        informative=bool(outputs) and len(ref) > 1 and all(o.informative for o in outputs),
    )
