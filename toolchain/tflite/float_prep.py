"""What a float .tflite needs before a quantizer can read it, as flatbuffer edits that change no output.

Models shipped for mobile runtimes keep float16 weights behind DEQUANTIZE, sparse weights behind
DENSIFY, often no SignatureDef, and (older converters) the operator code only in the schema's
deprecated field. ai-edge-quantizer calibrates by signature, takes a DEQUANTIZE'd float16 bias for an
activation and reads only the new code field (an old model's CONV_2D reads as ADD: weights quantized
as activations, which LiteRT then refuses). So: a DENSIFY of a constant becomes the dense constant, a
DEQUANTIZE of a float16 constant becomes the float32 constant (float16 -> float32 is exact), the
operators and what only they used are dropped, both code fields carry the code, and a signature is
added when there is none.
LiteRT gives bit-identical outputs before and after (tests/test_float_prep.py).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from ..core.errors import ModelFormatError
from .editor import ModelEditor, add_default_signature, prune_unreferenced, remove_operators
from .graph import BuiltinOp, TensorType, buffer_bytes, op_code, tensor_name, tensor_values
from .model_io import read_model, write_model
from .sparsity import densify


@dataclass(frozen=True)
class FloatPrep:
    """What ``prepare_float_model`` changed."""

    densified: int  # DENSIFY operators of constants folded
    float16_folded: int  # DEQUANTIZE operators of float16 constants folded
    signature_added: bool
    codes_completed: int = 0  # operator codes whose builtin_code field was filled from the deprecated one

    @property
    def changed(self) -> bool:
        return bool(self.densified or self.float16_folded or self.signature_added or self.codes_completed)

    def to_json(self) -> dict:
        return {"densified": self.densified, "float16_folded": self.float16_folded,
                "signature_added": self.signature_added, "codes_completed": self.codes_completed}


def _constant(model: schema.ModelT, tensor: schema.TensorT) -> bool:
    return buffer_bytes(model, tensor) is not None


def _fold(model: schema.ModelT, code: BuiltinOp, fold_one) -> int:
    """Replace each ``code`` operator whose only input is a constant by its output as a constant.
    Folds in operator order, so a DEQUANTIZE of a folded DENSIFY's output folds in the next pass."""
    editor = ModelEditor(model)
    folded = 0
    for sg in model.subgraphs or []:
        done: set[int] = set()
        outputs = {int(i) for i in (sg.outputs if sg.outputs is not None else [])}
        for o, op in enumerate(sg.operators or []):
            ins = [int(i) for i in (op.inputs if op.inputs is not None else [])]
            outs = [int(i) for i in (op.outputs if op.outputs is not None else [])]
            if op_code(model, op) != code or len(ins) != 1 or len(outs) != 1 or ins[0] < 0:
                continue
            src, dst = sg.tensors[ins[0]], sg.tensors[outs[0]]
            if not _constant(model, src) or outs[0] in outputs:
                continue
            values = fold_one(model, src, dst)
            if values is None:
                continue
            editor.set_data(dst, values)
            done.add(o)
            folded += 1
        remove_operators(sg, done)
    return folded


def _densify_one(model: schema.ModelT, src: schema.TensorT, dst: schema.TensorT):
    if src.sparsity is None:
        return None
    raw = buffer_bytes(model, src)
    dtype = {TensorType.FLOAT32: np.float32, TensorType.FLOAT16: np.float16, TensorType.INT8: np.int8}.get(
        TensorType(int(src.type)))
    if dtype is None or raw is None or raw.size % np.dtype(dtype).itemsize:
        return None
    shape = tuple(int(d) for d in (dst.shape if dst.shape is not None else []))
    if int(dst.type) != int(src.type):
        raise ModelFormatError(f"DENSIFY of '{tensor_name(src)}' changes its type")
    return densify(raw.view(dtype), shape, src.sparsity, tensor_name(src))


def _float16_one(model: schema.ModelT, src: schema.TensorT, dst: schema.TensorT):
    if int(src.type) != TensorType.FLOAT16 or int(dst.type) != TensorType.FLOAT32 or src.sparsity is not None:
        return None
    return tensor_values(model, src).astype(np.float32)


def _complete_codes(model: schema.ModelT) -> int:
    """Schema 3a keeps codes below 127 in both fields; old files fill only ``deprecated_builtin_code``."""
    n = 0
    for oc in model.operatorCodes or []:
        code = max(int(oc.builtinCode), int(oc.deprecatedBuiltinCode))
        if int(oc.builtinCode) != code:
            oc.builtinCode = code
            n += 1
    return n


def prepare_float_model(data: bytes) -> tuple[bytes, FloatPrep]:
    """The model with constant DENSIFY and float16 DEQUANTIZE folded and a signature; the same bytes back
    when nothing needed changing."""
    model = read_model(data)
    densified = _fold(model, BuiltinOp.DENSIFY, _densify_one)
    folded = _fold(model, BuiltinOp.DEQUANTIZE, _float16_one)
    if densified or folded:
        prune_unreferenced(model)
    signature = add_default_signature(model)
    prep = FloatPrep(densified, folded, signature, _complete_codes(model))
    if not prep.changed:
        return bytes(data), prep
    out = write_model(model)
    read_model(out)  # the edit must leave a model that passes every check
    return out, prep
