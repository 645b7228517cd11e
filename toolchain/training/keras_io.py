"""Keras model files: loading with a clear error, checking a classifier's shape, byte-identical saving, accuracy."""
from __future__ import annotations

import io
import json
import os
import tempfile
import warnings
import zipfile
from pathlib import Path

import numpy as np

from ..core.errors import DataError, InputError, ModelFormatError
from ..core.fileio import atomic_write_bytes, read_input_bytes
from .keras_config import refuse_model_code
from .tf_env import first_line, import_keras, import_tfmot

KERAS_SUFFIXES = (".keras", ".h5")

_ZIP_MAGIC = b"PK\x03\x04"

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"

_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def load_keras_model(path: str | os.PathLike[str], trust_model_code: bool = False):
    """A compiled-free tf_keras model from a .keras or .h5 file (clustering/QAT wrappers allowed).

    Unless ``trust_model_code``, the stored config is read first and a model holding Lambda layers,
    TensorFlow ops of its own choosing or custom objects is refused before Keras builds anything
    (toolchain.training.keras_config); .keras files also keep Keras' safe mode.
    """
    p = Path(path)
    if p.suffix.lower() not in KERAS_SUFFIXES:
        raise ModelFormatError(f"{p}: expected a Keras model file ending in .keras or .h5")
    head = read_input_bytes(p, "Keras model")[:8]
    magic = _ZIP_MAGIC if p.suffix.lower() == ".keras" else _HDF5_MAGIC
    if not head.startswith(magic):
        kind = "zip archive (.keras)" if p.suffix.lower() == ".keras" else "HDF5 file (.h5)"
        raise ModelFormatError(f"{p} is not a Keras model: not a {kind}")
    keras = import_keras()
    scopes = _scopes()
    if not trust_model_code:
        refuse_model_code(p, _builtin_names(keras, scopes).__contains__)
    try:
        with scopes[0], scopes[1]:
            model = keras.models.load_model(p, compile=False, safe_mode=not trust_model_code)
    except Exception as exc:  # noqa: BLE001  Keras raises many types (ValueError, KeyError, OSError, TypeError...)
        raise ModelFormatError(f"cannot load Keras model {p}: {first_line(exc)}") from None
    if not isinstance(model, keras.Model):
        raise ModelFormatError(f"{p} did not load as a Keras model")
    return model


def _scopes() -> tuple:
    """tfmot's custom-object scopes: a model saved with clustering or QAT wrappers loads; we strip them later."""
    tfmot = import_tfmot()
    return tfmot.clustering.keras.cluster_scope(), tfmot.quantization.keras.quantize_scope()


def check_model_code(path: str | os.PathLike[str]) -> None:
    """Refuse a Keras model file whose config holds code (Lambda layers, custom objects) before any work starts."""
    refuse_model_code(path, _builtin_names(import_keras(), _scopes()).__contains__)


def _builtin_names(keras, scopes) -> frozenset[str]:
    """Class names Keras resolves to its own objects, and tfmot's wrappers and quantizers (from its scopes)."""
    names: set[str] = set()
    for ns in (keras.layers, keras.initializers, keras.regularizers, keras.constraints, keras.activations,
               keras.mixed_precision):
        names.update(n for n in dir(ns) if not n.startswith("_"))
    for scope in scopes:
        for objects in getattr(scope, "custom_objects", ()):
            names.update(objects)
    return frozenset(names)


def check_classifier(model, what: str = "model") -> tuple[tuple[int | None, ...], int]:
    """(sample shape without batch, number of classes) of a single-input, single-output classifier."""
    keras = import_keras()
    if not getattr(model, "_is_graph_network", False) and not isinstance(model, keras.Sequential):
        raise ModelFormatError(f"{what} is a subclassed Keras model: save a Functional or Sequential model")
    if not model.inputs or not model.outputs:
        raise ModelFormatError(f"{what} has no defined input shape (an unbuilt Sequential model?)")
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ModelFormatError(
            f"{what} has {len(model.inputs)} inputs and {len(model.outputs)} outputs; a classifier with one "
            "input and one output is expected"
        )
    in_shape = tuple(model.inputs[0].shape)[1:]
    out_shape = tuple(model.outputs[0].shape)
    if len(out_shape) != 2 or out_shape[1] is None or out_shape[1] < 2:
        raise ModelFormatError(f"{what} output has shape {out_shape}; expected (batch, classes) with classes >= 2")
    if any(d is None for d in in_shape):
        raise ModelFormatError(f"{what} input has unknown dimensions {in_shape}: fix the input shape first")
    return tuple(int(d) for d in in_shape), int(out_shape[1])


def outputs_probabilities(model) -> bool:
    """True when the last layer applies softmax (loss without from_logits), False for logits."""
    keras = import_keras()
    last = model.layers[-1]
    if isinstance(last, keras.layers.Softmax):
        return True
    act = getattr(last, "activation", None)
    return act is keras.activations.softmax or getattr(act, "__name__", "") == "softmax"


def keras_accuracy(model, x: np.ndarray, y: np.ndarray, batch_size: int = 256) -> float:
    """Top-1 accuracy (0..1) of a Keras classifier in inference mode."""
    if len(x) == 0:
        raise DataError("cannot measure accuracy on zero samples")
    logits = model.predict(x, batch_size=batch_size, verbose=0)
    return float(np.mean(np.argmax(logits, axis=1) == np.asarray(y).reshape(-1)))


def _normalise_keras_zip(data: bytes) -> bytes:
    """Rewrite a .keras archive without its save date and with fixed entry times."""
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as dst:
        for name in sorted(src.namelist()):
            content = src.read(name)
            if name == "metadata.json":
                meta = json.loads(content)
                meta.pop("date_saved", None)
                content = json.dumps(meta, sort_keys=True).encode()
            info = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            dst.writestr(info, content)
    return out.getvalue()


def keras_model_bytes(model, suffix: str = ".keras") -> bytes:
    """The bytes of ``model`` saved as .keras (normalised, no timestamps) or .h5."""
    suffix = suffix.lower()
    if suffix not in KERAS_SUFFIXES:
        raise InputError(f"output must end in .keras or .h5, got '{suffix}'")
    if getattr(model, "optimizer", None) is not None:
        # Optimizer state would double the file and means nothing downstream: save a clean copy.
        keras = import_keras()
        clean = keras.models.clone_model(model)
        clean.set_weights(model.get_weights())
        model = clean
    with tempfile.TemporaryDirectory(prefix="toolchain-keras-") as tmp:
        path = Path(tmp) / f"model{suffix}"
        with warnings.catch_warnings():
            # .h5 is what the user asked for: Keras' "legacy format" advice is noise here.
            warnings.filterwarnings("ignore", message="You are saving your model as an HDF5 file")
            model.save(path)
        data = path.read_bytes()
    return _normalise_keras_zip(data) if suffix == ".keras" else data


def save_keras_model(model, path: str | os.PathLike[str]) -> bytes:
    """Save atomically; returns the bytes written."""
    data = keras_model_bytes(model, Path(path).suffix)
    atomic_write_bytes(path, data)
    return data
