"""Queries on a ``ModelT``: operator kinds, constant weight tensors, their quantization."""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum, IntEnum

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from ..core.errors import ModelFormatError

# The schema's enums as real Python enums (built once from the generated constants).
BuiltinOp = IntEnum("BuiltinOp", {k: v for k, v in vars(schema.BuiltinOperator).items() if k.isupper()})
TensorType = IntEnum("TensorType", {k: v for k, v in vars(schema.TensorType).items() if k.isupper()})

NUMPY_DTYPES: dict[int, np.dtype] = {
    TensorType.FLOAT32: np.dtype(np.float32),
    TensorType.FLOAT16: np.dtype(np.float16),
    TensorType.FLOAT64: np.dtype(np.float64),
    TensorType.INT8: np.dtype(np.int8),
    TensorType.UINT8: np.dtype(np.uint8),
    TensorType.INT16: np.dtype(np.int16),
    TensorType.INT32: np.dtype(np.int32),
    TensorType.INT64: np.dtype(np.int64),
    TensorType.BOOL: np.dtype(np.bool_),
}

# Which operator input holds the weights, and which the bias (int32, scale = in x weight).
WEIGHT_INPUT = {
    BuiltinOp.CONV_2D: 1,
    BuiltinOp.DEPTHWISE_CONV_2D: 1,
    BuiltinOp.FULLY_CONNECTED: 1,
    BuiltinOp.TRANSPOSE_CONV: 1,
    BuiltinOp.CONV_3D: 1,
    BuiltinOp.CONV_3D_TRANSPOSE: 1,
    BuiltinOp.BATCH_MATMUL: 1,
}
BIAS_INPUT = {
    BuiltinOp.CONV_2D: 2,
    BuiltinOp.DEPTHWISE_CONV_2D: 2,
    BuiltinOp.FULLY_CONNECTED: 2,
    BuiltinOp.TRANSPOSE_CONV: 3,
    BuiltinOp.CONV_3D: 2,
}
# Output-channel axis of the weights when the tensor is quantized per tensor.
OUTPUT_CHANNEL_AXIS = {BuiltinOp.DEPTHWISE_CONV_2D: 3, BuiltinOp.CONV_3D: 4, BuiltinOp.CONV_3D_TRANSPOSE: 3}


class Granularity(Enum):
    PER_TENSOR = "per-tensor"
    PER_CHANNEL = "per-channel"
    NONE = "none"  # not quantized


def op_code(model: schema.ModelT, op: schema.OperatorT) -> int:
    oc = model.operatorCodes[op.opcodeIndex]
    # Since schema v3a the real code may live in either field: take the larger.
    return max(int(oc.builtinCode), int(oc.deprecatedBuiltinCode))


def op_name(model: schema.ModelT, op: schema.OperatorT) -> str:
    code = op_code(model, op)
    if code == BuiltinOp.CUSTOM:
        custom = model.operatorCodes[op.opcodeIndex].customCode
        return f"CUSTOM:{custom.decode(errors='replace') if isinstance(custom, bytes) else custom}"
    try:
        return BuiltinOp(code).name
    except ValueError:
        return f"BUILTIN_{code}"


def custom_operator_names(model: schema.ModelT) -> tuple[str, ...]:
    """The custom operator codes the model's operators use, in order of first use, each once."""
    seen: dict[str, None] = {}
    for sg in model.subgraphs or []:
        for op in sg.operators or []:
            name = op_name(model, op)
            if name.startswith("CUSTOM:"):
                seen.setdefault(name[len("CUSTOM:"):], None)
    return tuple(seen)


def tensor_name(tensor: schema.TensorT) -> str:
    n = tensor.name
    return n.decode("utf-8", errors="replace") if isinstance(n, bytes) else (n or "")


def buffer_bytes(model: schema.ModelT, tensor: schema.TensorT) -> np.ndarray | None:
    """The raw bytes of a constant tensor, or None for activations."""
    if tensor.buffer <= 0 or tensor.buffer >= len(model.buffers):
        return None
    data = model.buffers[tensor.buffer].data
    if data is None or len(data) == 0:
        return None
    return np.asarray(data, dtype=np.uint8)


@dataclass(frozen=True)
class Quantization:
    granularity: Granularity
    scales: np.ndarray = field(compare=False, repr=False)  # float32, one per channel (or one)
    zero_points: np.ndarray = field(compare=False, repr=False)  # int64
    axis: int  # quantized dimension (per-channel) or output-channel axis (per-tensor)


@dataclass(frozen=True)
class WeightTensor:
    """A constant int8 tensor that some operator consumes as weights."""

    subgraph: int
    tensor_index: int
    name: str
    op: str  # first consumer's operator name, e.g. "CONV_2D"
    op_code: int
    consumers: tuple[int, ...]  # operator indices in the subgraph
    bias_tensor_index: int | None  # bias of the first consumer (-1/None when absent)
    shape: tuple[int, ...]
    dtype: np.dtype
    quantization: Quantization

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1

    @property
    def channel_axis(self) -> int:
        return self.quantization.axis

    @property
    def channels(self) -> int:
        return self.shape[self.channel_axis] if self.shape else 1


def quantization_of(tensor: schema.TensorT, default_axis: int = 0) -> Quantization:
    q = tensor.quantization
    scales = np.asarray(q.scale if q is not None and q.scale is not None else [], dtype=np.float32)
    zps = np.asarray(q.zeroPoint if q is not None and q.zeroPoint is not None else [], dtype=np.int64)
    if scales.size == 0:
        return Quantization(Granularity.NONE, scales, zps, default_axis)
    if scales.size == 1:
        return Quantization(Granularity.PER_TENSOR, scales, zps if zps.size else np.zeros(1, np.int64), default_axis)
    axis = int(q.quantizedDimension)
    return Quantization(Granularity.PER_CHANNEL, scales, zps if zps.size else np.zeros(scales.size, np.int64), axis)


def tensor_values(model: schema.ModelT, tensor: schema.TensorT) -> np.ndarray:
    """A constant tensor's values with its shape; ModelFormatError if the buffer does not match."""
    raw = buffer_bytes(model, tensor)
    if raw is None:
        raise ModelFormatError(f"tensor '{tensor_name(tensor)}' has no constant data")
    dtype = NUMPY_DTYPES.get(int(tensor.type))
    if dtype is None:
        raise ModelFormatError(f"tensor '{tensor_name(tensor)}' has unsupported type {tensor.type}")
    shape = tuple(int(d) for d in (tensor.shape if tensor.shape is not None else []))
    if any(d < 0 for d in shape):
        raise ModelFormatError(f"constant tensor '{tensor_name(tensor)}' has a negative dimension {shape}")
    count = int(np.prod(shape, dtype=np.float64)) if shape else 1
    if count * dtype.itemsize != raw.size:
        raise ModelFormatError(
            f"tensor '{tensor_name(tensor)}' shape {shape} needs {count * dtype.itemsize} bytes, buffer holds {raw.size}"
        )
    return raw.view(dtype).reshape(shape)


def find_weight_tensors(model: schema.ModelT) -> list[WeightTensor]:
    """Every constant int8 tensor consumed as weights, in (subgraph, tensor) order."""
    found: dict[tuple[int, int], WeightTensor] = {}
    for s, sg in enumerate(model.subgraphs or []):
        tensors = sg.tensors or []
        for o, op in enumerate(sg.operators or []):
            code = op_code(model, op)
            inputs = [int(i) for i in (op.inputs if op.inputs is not None else [])]
            if code in WEIGHT_INPUT:
                candidates = [WEIGHT_INPUT[BuiltinOp(code)]]
            else:
                # Any other operator with a constant int8 operand of at least a vector.
                candidates = list(range(len(inputs)))
            for pos in candidates:
                if pos >= len(inputs) or inputs[pos] < 0:
                    continue
                t_idx = inputs[pos]
                tensor = tensors[t_idx]
                if int(tensor.type) != TensorType.INT8 or buffer_bytes(model, tensor) is None:
                    continue
                if code not in WEIGHT_INPUT and len(tensor.shape if tensor.shape is not None else []) < 2:
                    continue
                key = (s, t_idx)
                if key in found:
                    prev = found[key]
                    found[key] = _replace_consumers(prev, prev.consumers + (o,))
                    continue
                bias = None
                if code in BIAS_INPUT and BIAS_INPUT[BuiltinOp(code)] < len(inputs):
                    b = inputs[BIAS_INPUT[BuiltinOp(code)]]
                    bias = b if b >= 0 else None
                shape = tuple(int(d) for d in (tensor.shape if tensor.shape is not None else []))
                default_axis = OUTPUT_CHANNEL_AXIS.get(code, 0) if shape else 0
                quant = quantization_of(tensor, default_axis=min(default_axis, max(len(shape) - 1, 0)))
                if quant.granularity is Granularity.PER_CHANNEL and (
                        not 0 <= quant.axis < len(shape) or shape[quant.axis] != quant.scales.size):
                    raise ModelFormatError(
                        f"tensor '{tensor_name(tensor)}': {quant.scales.size} scales do not match "
                        f"dimension {quant.axis} of shape {shape}"
                    )
                found[key] = WeightTensor(
                    subgraph=s,
                    tensor_index=t_idx,
                    name=tensor_name(tensor),
                    op=op_name(model, op),
                    op_code=code,
                    consumers=(o,),
                    bias_tensor_index=bias,
                    shape=shape,
                    dtype=np.dtype(np.int8),
                    quantization=quant,
                )
    return [found[k] for k in sorted(found)]


def _replace_consumers(w: WeightTensor, consumers: tuple[int, ...]) -> WeightTensor:
    from dataclasses import replace

    return replace(w, consumers=consumers)


RESOURCE_VARIABLE_OPS = (BuiltinOp.VAR_HANDLE, BuiltinOp.READ_VARIABLE, BuiltinOp.ASSIGN_VARIABLE)


def has_resource_variables(model: schema.ModelT) -> bool:
    """True when the model keeps state between invocations (resource variables)."""
    return any(op_code(model, op) in RESOURCE_VARIABLE_OPS for sg in model.subgraphs or [] for op in sg.operators or [])


def is_quantized_int_model(model: schema.ModelT) -> bool:
    """True when some operator consumes int8 weights or activations (a converted int8 model)."""
    for sg in model.subgraphs or []:
        for t in sg.tensors or []:
            if int(t.type) in (TensorType.INT8, TensorType.INT16) and t.quantization is not None and t.quantization.scale is not None:
                return True
    return False


def int4_tensor(model: schema.ModelT) -> str | None:
    """The name of the first INT4 tensor (int4 weights), or None."""
    int4 = getattr(TensorType, "INT4", None)
    for sg in model.subgraphs or []:
        for t in sg.tensors or []:
            if int4 is not None and int(t.type) == int4:
                return tensor_name(t)
    return None


def is_float_model(model: schema.ModelT) -> bool:
    """A float model a quantizer can take: operators, no int8/int16 quantized tensor, no int4 tensor."""
    return (any(sg.operators for sg in model.subgraphs or []) and not is_quantized_int_model(model)
            and int4_tensor(model) is None)


def require_int8_model(model: schema.ModelT, path_hint: str = "model") -> None:
    """Refuse float-only, int4 and operator-less models with a message that says what to do."""
    if not any(sg.operators for sg in model.subgraphs or []):
        raise ModelFormatError(f"{path_hint} has no operators")
    int4 = int4_tensor(model)
    if int4 is not None:
        raise ModelFormatError(f"{path_hint}: int4 weights are not supported (tensor '{int4[:60]}'); Ethos-U takes "
                               "int8 weights: quantize the float model to int8 instead")
    if not is_quantized_int_model(model):
        raise ModelFormatError(
            f"{path_hint} is a float model (no int8 tensors): quantize it to full int8 first "
            "('toolchain quantize MODEL.tflite --calibration X.npz -o OUT.tflite', or deploy it with --calibration)"
        )
    for sg in model.subgraphs or []:
        for op in sg.operators or []:
            code = op_code(model, op)
            pos = WEIGHT_INPUT.get(code)
            inputs = list(op.inputs) if op.inputs is not None else []
            if pos is None or pos >= len(inputs) or inputs[pos] < 0:
                continue
            t = sg.tensors[inputs[pos]]
            if buffer_bytes(model, t) is not None and int(t.type) not in (TensorType.INT8, TensorType.FLOAT32,
                                                                          TensorType.FLOAT16):
                kind = TensorType(int(t.type)).name if int(t.type) in TensorType._value2member_map_ else str(t.type)
                raise ModelFormatError(
                    f"{path_hint}: {op_name(model, op)} weights '{tensor_name(t)}' are {kind}; only int8 weights "
                    "are supported"
                )
