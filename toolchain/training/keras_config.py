"""Keras model files are data: what a model's config may name, checked before Keras builds anything.

Loading a Keras model rebuilds it from the config stored in the file, and some layers carry
Python: a ``Lambda`` layer holds marshalled bytecode that runs while the model is rebuilt
(``.keras`` files refuse it in Keras' safe mode; ``.h5`` files have no safe mode at all),
``TFOpLambda`` calls whichever TensorFlow function it names (``io.write_file`` as well as
``math.add``), ``TensorFlowOpLayer`` runs any TensorFlow op, and a custom object is code from
wherever it was registered. So the config is read first (``model_config`` of an .h5 with
h5py, ``config.json`` of a .keras zip), without building anything, and a model naming any of
these is refused unless the user says they trust the file (``--trust-model-code``).
Built-in layers, initialisers, regularisers, constraints and tfmot's clustering and
quantization wrappers pass; a ``TFOpLambda`` passes when its function is a pure array
operation (``math.*``, ``nn.*``, operators, reshapes...).
"""
from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..core.errors import ModelFormatError

TRUST_FLAG = "--trust-model-code"
MAX_CONFIG_BYTES = 64 << 20  # a Keras config is KBs to a few MB (MobileNetV2: ~100 KB)
MODEL_CLASSES = frozenset({"Functional", "Sequential", "Model"})
# Layers that hold Python or name arbitrary TensorFlow functions or ops.
CODE_LAYERS = frozenset({"Lambda", "TensorFlowOpLayer", "ClassMethod", "InstanceMethod", "InstanceProperty"})
# Layers that call the TensorFlow function named in their config: allowed for pure array operations.
TF_FUNCTION_LAYERS = frozenset({"TFOpLambda", "SlicingOpLambda"})
SAFE_TF_NAMESPACES = ("math.", "nn.", "__operators__.", "linalg.", "bitwise.", "image.resize", "signal.")
SAFE_TF_FUNCTIONS = frozenset({
    "reshape", "concat", "stack", "unstack", "transpose", "expand_dims", "squeeze", "cast", "clip_by_value", "pad",
    "split", "gather", "tile", "identity", "where", "shape", "size", "rank", "ones_like", "zeros_like", "fill",
    "range", "broadcast_to", "slice", "strided_slice", "reverse", "one_hot", "argmax", "argmin", "maximum", "minimum",
    "add", "subtract", "multiply", "divide", "abs", "sqrt", "exp", "matmul", "einsum", "reduce_sum", "reduce_mean",
    "reduce_max", "reduce_min", "__operators__.getitem", "compat.v1.transpose", "image.resize",
})
# Keras object modules (new-style configs name the module of each object).
KERAS_MODULES = ("keras", "tf_keras", "tensorflow", "tensorflow_model_optimization")


def read_model_config(path: str | os.PathLike[str]) -> Any:
    """The model config stored in a .keras (``config.json``) or .h5 file (``model_config``), parsed, nothing built."""
    p = Path(path)
    what = f"Keras model {p}"
    try:
        if p.suffix.lower() == ".keras":
            with zipfile.ZipFile(p) as zf:
                info = zf.getinfo("config.json")
                if info.file_size > MAX_CONFIG_BYTES:
                    raise ModelFormatError(f"{what}: its config.json declares {info.file_size:,} bytes, over the "
                                           f"{MAX_CONFIG_BYTES >> 20} MiB a model config may take")
                with zf.open(info) as fh:
                    text: Any = fh.read(MAX_CONFIG_BYTES + 1)
        else:
            import h5py  # ships with tf_keras (the train extra)

            with h5py.File(p, "r") as f:
                text = f.attrs.get("model_config")
    except ModelFormatError:
        raise
    except KeyError:
        text = None
    except Exception as exc:  # noqa: BLE001  zipfile and h5py raise many types on a damaged file
        raise ModelFormatError(f"cannot load {what}: {type(exc).__name__}: {str(exc)[:200]}") from None
    if text is None:
        raise ModelFormatError(f"{what} holds no model config (weights only?): save the whole model")
    if isinstance(text, bytes):
        text = text[:MAX_CONFIG_BYTES + 1]
    if len(text) > MAX_CONFIG_BYTES:
        raise ModelFormatError(f"{what}: its model config is over the {MAX_CONFIG_BYTES >> 20} MiB a config may take")
    try:
        return json.loads(text)
    except RecursionError:
        raise ModelFormatError(f"{what}: its model config nests too deeply") from None
    except (ValueError, TypeError) as exc:  # bad JSON or UTF-8, an integer past Python's digit limit
        raise ModelFormatError(f"{what}: its model config is not valid JSON ({str(exc)[:120]})") from None


def _objects(config: Any) -> Iterator[dict[str, Any]]:
    """Every JSON object of the config (walked without recursion)."""
    stack = [config]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            yield value
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)


def _layer_name(obj: dict[str, Any]) -> str:
    cfg = obj.get("config")
    name = obj.get("name", cfg.get("name") if isinstance(cfg, dict) else None)
    return name if isinstance(name, str) else "?"


def model_code(config: Any, builtin: Callable[[str], bool]) -> str | None:
    """What in ``config`` would run code when Keras rebuilds it (a phrase for an error), or None.

    ``builtin(class_name)`` says whether a class name is one of Keras' (or tfmot's) own objects.
    """
    for obj in _objects(config):
        if obj.get("function_type") == "lambda":
            return "a Python lambda (marshalled bytecode)"
        cls = obj.get("class_name")
        if not isinstance(cls, str):
            continue
        label = f"{cls} layer '{_layer_name(obj)[:60]}'"
        if cls in CODE_LAYERS:
            return f"a {label} ({'Python code' if cls == 'Lambda' else 'a TensorFlow function or op of its choosing'})"
        if cls in TF_FUNCTION_LAYERS:
            cfg = obj.get("config")
            fn = cfg.get("function") if isinstance(cfg, dict) else None
            if not isinstance(fn, str) or not (fn in SAFE_TF_FUNCTIONS or fn.startswith(SAFE_TF_NAMESPACES)):
                return f"a {label} calling TensorFlow's {str(fn)[:60]!r}"
            continue
        module, registered = obj.get("module"), obj.get("registered_name")
        if isinstance(module, str) and module.split(".")[0] not in KERAS_MODULES:
            return f"a custom object '{cls[:60]}' from module '{module[:60]}'"
        if registered is not None and registered != cls:
            return f"a custom object '{str(registered)[:60]}'"
        if cls not in MODEL_CLASSES and not builtin(cls):
            return f"a custom object '{cls[:60]}'"
    return None


def refuse_model_code(path: str | os.PathLike[str], builtin: Callable[[str], bool]) -> None:
    """ModelFormatError naming what would run and the flag that allows it, when the model at ``path`` holds code."""
    found = model_code(read_model_config(path), builtin)
    if found is not None:
        raise ModelFormatError(f"Keras model {Path(path)} holds {found}: loading it would run code from the file. "
                               f"Refused; pass {TRUST_FLAG} if you trust where it came from")
