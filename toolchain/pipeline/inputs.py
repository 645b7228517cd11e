"""What ``deploy`` was given: which entry (example, Keras, int8 or float .tflite), which targets, which data."""
from __future__ import annotations

import os
import stat
from enum import Enum
from pathlib import Path
from typing import Any

from ..core.errors import ConfigError, InputError, ModelFormatError
from ..core.escape import file_name_component
from ..training.keras_io import KERAS_SUFFIXES
from .config import PipelineConfig

DEFAULT_TARGET = "ethos-u55"


class Entry(Enum):
    EXAMPLE = "example"  # no MODEL: the bundled example, trained (or reused) first
    KERAS = "keras"  # a float Keras model: the whole pipeline
    TFLITE = "tflite"  # an int8 .tflite: starts at recluster
    FLOAT_TFLITE = "float-tflite"  # a float .tflite: quantized (ai-edge-quantizer, --calibration), then as TFLITE


# ----------------------------------------------------------------------------- inputs


def tflite_entry(path: Path, calibration: Path | None, synthetic: bool) -> Entry:
    """An int8 .tflite (checked as every NPU input is) or a float one, which needs calibration data."""
    from ..core.fileio import read_input_bytes
    from ..tflite.graph import is_float_model
    from ..tflite.model_io import read_model

    try:
        model = read_model(read_input_bytes(path, "model"))
    except ModelFormatError as exc:
        raise ModelFormatError(f"{path.name}: {exc}") from None
    if is_float_model(model):
        if calibration is None and not synthetic:
            from ..ptq.quantize import NO_CALIBRATION

            raise InputError(f"MODEL {path.name} is a float model: {NO_CALIBRATION}")
        return Entry.FLOAT_TFLITE
    from ..targets.npu_model import load_npu_model

    load_npu_model(path)  # int8, not Vela-compiled, not TFLM: refused before any work
    return Entry.TFLITE


def model_name(path: Path) -> str:
    """build/<name>/: the file name's stem as one safe, bounded path component."""
    return file_name_component(path.stem)


def classify_model(path: Path | None) -> Entry:
    if path is None:
        return Entry.EXAMPLE
    suffix = path.suffix.lower()
    if suffix == ".tflite":
        kind = Entry.TFLITE
    elif suffix in KERAS_SUFFIXES:
        kind = Entry.KERAS
    else:
        raise InputError(f"MODEL {path} must be a Keras model (.keras, .h5) or an int8 .tflite")
    if not path.exists():
        raise InputError(f"MODEL not found: {path}")
    if path.is_dir():
        raise InputError(f"MODEL is a directory, expected a file: {path}")
    return kind


_KERAS_MAGIC = {".keras": (b"PK\x03\x04", "a zip archive (.keras)"), ".h5": (b"\x89HDF\r\n\x1a\n", "an HDF5 file (.h5)")}


def check_keras_file(path: Path) -> None:
    """Refuse a file that cannot be a Keras model from its first bytes, before TensorFlow is loaded."""
    magic, kind = _KERAS_MAGIC[path.suffix.lower()]
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO would block the read below
            raise InputError(f"MODEL {path} is not a regular file")
        with open(path, "rb") as fh:
            head = fh.read(len(magic))
    except OSError as exc:
        raise InputError(f"cannot read MODEL {path}: {exc.strerror or exc}") from None
    if head != magic:
        raise ModelFormatError(f"MODEL {path} is not a Keras model: not {kind}")


def resolve_targets(names: tuple[str, ...], profile_file: Path | None, replace_builtin: bool = False):
    """Hardware profiles for TARGET names (built-in names, aliases or profile files) and PROFILE."""
    from ..targets.profiles import load_profile

    custom = load_profile(Path(profile_file), replace_builtin) if profile_file is not None else None
    wanted = list(names) or ([] if custom is not None else [DEFAULT_TARGET])
    # a TARGET naming the custom profile means that profile, not a built-in one
    profiles = [custom if custom is not None and n == custom.name else load_profile(n, replace_builtin) for n in wanted]
    if custom is not None and custom not in profiles:
        profiles.append(custom)
    seen: dict[str, Any] = {}
    for p in profiles:
        if p.name in seen and seen[p.name] != p:
            raise ConfigError(f"two different profiles are named '{p.name}': rename the custom profile")
        seen.setdefault(p.name, p)
    return list(seen.values())


def load_data(spec: str, config: PipelineConfig):
    """The dataset, cut to the config's subset (seeded, sorted indices: the same subset every run)."""
    import numpy as np

    from ..training.datasets import Dataset, load_dataset

    data = load_dataset(spec)
    s = config.data
    if s.train_samples is None and s.test_samples is None:
        return data
    rng = np.random.default_rng(s.seed)

    def pick(n: int, k: int | None) -> np.ndarray:
        if k is None or k >= n:
            return np.arange(n)
        return np.sort(rng.choice(n, size=k, replace=False))

    tr, te = pick(len(data.x_train), s.train_samples), pick(len(data.x_test), s.test_samples)
    return Dataset(data.name, data.x_train[tr], data.y_train[tr], data.x_test[te], data.y_test[te])


def data_label(data) -> str:
    """The dataset's name for reports: a bundled name, or an .npz file's name without its directory."""
    return Path(data.name).name if data.name.lower().endswith(".npz") else data.name
