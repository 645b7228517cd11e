"""Consistency checks on a parsed model, before any stage or runtime relies on it.

``model_io.read_model`` guarantees a well-formed flatbuffer with indices in range;
this pass refuses what is well-formed but meaningless. Each rule answers a case that
fuzzing (tests/test_fuzz_models.py) drove into a stage as an untyped error, or into
LiteRT as a crash: unknown tensor types, negative or over-2-GiB shapes, constant data
that does not fill its shape, non-finite, negative or huge quantization scales, zero
points outside their type, operators without their weights or outputs, a required
input marked absent (-1), an operator writing a model input, a constant or a tensor
another operator writes, an operator reading a tensor nothing provides (stripped
weights) or one that a later operator writes (out of order, a cycle: LiteRT then reads
uninitialised memory), control-flow operators naming a subgraph that does not exist (or
their own), names that are not UTF-8. And the quantization rules LiteRT's kernels enforce
when they prepare (refused here before any stage rescales a weight): a weight channel with
scale 0, a scale count that is neither 1 nor the channel count (3 bias scales for 64
channels), per-channel scales on an activation or input, per-channel weights along an axis
the operator does not take (FULLY_CONNECTED on axis 1), more than MAX_RANK dimensions.

Every rule holds for models made by the TFLite converter (int8, 16x8, float,
dynamic range), by Vela and by TFLM's compression (tests check each kind).
"""
from __future__ import annotations

import math

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from ..core.errors import ModelFormatError
from .graph import (
    NUMPY_DTYPES,
    WEIGHT_INPUT,
    BuiltinOp,
    TensorType,
    op_code,
    op_name,
    tensor_name,
)

# LiteRT counts tensor bytes in size_t but dimensions and flatbuffer offsets in int32:
# a tensor over 2 GiB cannot be stored, and activations that large mean a corrupt shape.
MAX_TENSOR_BYTES = 2**31 - 1
# Converter scales are around 1e-6..1e3; anything near float32's range overflows when a
# stage rescales it (the refit multiplies scales by up to 127).
MAX_SCALE = 1e30
# No TFLite kernel takes more than 6 dimensions (8 for reshape-like operators); numpy stops at 64.
MAX_RANK = 8
# Per-channel weights: the axis LiteRT's kernels require (their prepare step fails on any other).
WEIGHT_CHANNEL_AXIS = {BuiltinOp.CONV_2D: 0, BuiltinOp.DEPTHWISE_CONV_2D: 3, BuiltinOp.FULLY_CONNECTED: 0}
_KNOWN_TYPES = frozenset(int(t) for t in TensorType)
# Input positions LiteRT's kernels accept as absent (-1). Elsewhere a kernel dereferences
# the missing tensor: a RESHAPE whose shape input is -1 crashes LiteRT (SIGSEGV).
OPTIONAL_INPUTS: dict[int, frozenset[int]] = {
    BuiltinOp.CONV_2D: frozenset({2}),
    BuiltinOp.DEPTHWISE_CONV_2D: frozenset({2}),
    BuiltinOp.FULLY_CONNECTED: frozenset({2}),
    BuiltinOp.TRANSPOSE_CONV: frozenset({3}),
    BuiltinOp.CONV_3D: frozenset({2}),
    BuiltinOp.CONV_3D_TRANSPOSE: frozenset({3}),
    BuiltinOp.SVDF: frozenset({3}),
}
# Recurrent operators with many optional inputs (peepholes, projections, layer norm): not checked.
ANY_OPTIONAL_INPUT = frozenset({
    BuiltinOp.LSTM, BuiltinOp.UNIDIRECTIONAL_SEQUENCE_LSTM, BuiltinOp.BIDIRECTIONAL_SEQUENCE_LSTM,
    BuiltinOp.BIDIRECTIONAL_SEQUENCE_RNN, BuiltinOp.UNIDIRECTIONAL_SEQUENCE_RNN, BuiltinOp.RNN,
})


def validate_model(model: schema.ModelT) -> None:
    """Raise ModelFormatError naming the first inconsistency found."""
    calls: dict[int, set[int]] = {}
    for s, sg in enumerate(model.subgraphs or []):
        for t, tensor in enumerate(sg.tensors or []):
            _check_tensor(model, tensor, f"tensor {t} of subgraph {s}")
        for o, op in enumerate(sg.operators or []):
            _check_operator(model, sg, op, f"operator {o} of subgraph {s}")
            calls.setdefault(s, set()).update(_called_subgraphs(model, op, f"operator {o} of subgraph {s}"))
        _check_dataflow(model, sg, s)
    _check_no_recursion(calls)


def _called_subgraphs(model: schema.ModelT, op: schema.OperatorT, where: str) -> list[int]:
    """The subgraphs a control-flow operator runs (IF, WHILE, CALL_ONCE, StableHLO bodies), each checked in range:
    LiteRT refuses an index out of range only when it prepares the operator, Vela not at all."""
    called = []
    for options in (op.builtinOptions, op.builtinOptions2):
        if options is None:
            continue
        for field, value in vars(options).items():
            if not (field.endswith(("SubgraphIndex", "SubgraphIndices")) or field == "subgraph"):
                continue
            for index in ([] if value is None else [value] if isinstance(value, (int, np.integer)) else list(value)):
                if not 0 <= int(index) < len(model.subgraphs):
                    raise _malformed(f"{where} ({op_name(model, op)})", f"names subgraph {int(index)} as its {field}; "
                                     f"the model has {len(model.subgraphs)} subgraph(s)")
                called.append(int(index))
    return called


def _check_no_recursion(calls: dict[int, set[int]]) -> None:
    """No subgraph may run itself through control flow (IF in subgraph 1 calling subgraph 1, or 0 -> 1 -> 0)."""
    state: dict[int, int] = {}  # 1 on the current path, 2 done
    for root in sorted(calls):
        if state.get(root):
            continue
        stack = [(root, iter(sorted(calls.get(root, ()))))]
        state[root] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[node] = 2
                stack.pop()
            elif state.get(child) == 1:
                raise ModelFormatError(f"malformed .tflite: subgraph {node} runs subgraph {child} through control "
                                       "flow, which runs it again (recursion)")
            elif not state.get(child):
                state[child] = 1
                stack.append((child, iter(sorted(calls.get(child, ())))))


def _malformed(what: str, problem: str) -> ModelFormatError:
    return ModelFormatError(f"malformed .tflite: {what} {problem}")


def _check_tensor(model: schema.ModelT, tensor: schema.TensorT, where: str) -> None:
    name = tensor.name
    if isinstance(name, bytes):
        try:
            name.decode("utf-8")
        except UnicodeDecodeError:
            raise _malformed(where, "has a name that is not UTF-8") from None
    what = f"{where} ('{tensor_name(tensor)[:60]}')"
    if int(tensor.type) not in _KNOWN_TYPES:
        raise _malformed(what, f"has unknown type {int(tensor.type)}")
    shape = [int(d) for d in (tensor.shape if tensor.shape is not None else [])]
    if len(shape) > MAX_RANK:
        raise _malformed(what, f"has {len(shape)} dimensions; at most {MAX_RANK} are supported")
    if any(d < 0 for d in shape):
        raise _malformed(what, f"has a negative dimension in shape {shape}")
    dtype = NUMPY_DTYPES.get(int(tensor.type))
    elements = math.prod(shape)
    if dtype is not None and elements * dtype.itemsize > MAX_TENSOR_BYTES:
        raise _malformed(what, f"shape {shape} needs {elements * dtype.itemsize:,} bytes, over the 2 GiB limit")
    data = model.buffers[tensor.buffer].data if 0 <= tensor.buffer < len(model.buffers or []) else None
    if (dtype is not None and tensor.sparsity is None and data is not None and len(data) > 0
            and len(data) != elements * dtype.itemsize):
        raise _malformed(
            what, f"shape {shape} of {TensorType(tensor.type).name} needs {elements * dtype.itemsize} bytes, "
            f"its buffer holds {len(data)}"
        )
    _check_quantization(tensor, shape, what)


def _check_quantization(tensor: schema.TensorT, shape: list[int], what: str) -> None:
    q = tensor.quantization
    if q is None or q.scale is None or len(q.scale) == 0:
        return
    scales = np.asarray(q.scale, dtype=np.float64)
    if not np.all(np.isfinite(scales)) or np.any(scales < 0) or np.any(scales > MAX_SCALE):
        bad = float(scales[~(np.isfinite(scales) & (scales >= 0) & (scales <= MAX_SCALE))][0])
        raise _malformed(what, f"has quantization scale {bad:g} (must be finite, >= 0 and <= {MAX_SCALE:g})")
    zero_points = np.asarray(q.zeroPoint if q.zeroPoint is not None else [], dtype=np.int64)
    if len(zero_points) not in (0, len(scales)):
        raise _malformed(what, f"has {len(scales)} quantization scales but {len(zero_points)} zero points")
    dtype = NUMPY_DTYPES.get(int(tensor.type))
    if dtype is not None and dtype.kind in "iu" and dtype.itemsize <= 2 and len(zero_points):
        info = np.iinfo(dtype)
        if zero_points.min() < info.min or zero_points.max() > info.max:
            raise _malformed(what, f"has a zero point outside the range of {dtype.name}")
    if len(scales) > 1 and not 0 <= int(q.quantizedDimension) < max(len(shape), 1):
        raise _malformed(what, f"is quantized along dimension {int(q.quantizedDimension)} of shape {shape}")


def _check_scale_count(tensor: schema.TensorT, what: str) -> None:
    """LiteRT: "num_scales must be 1 for per-layer quantization, or <channels> for per-axis quantization"."""
    q = tensor.quantization
    n = 0 if q is None or q.scale is None else len(q.scale)
    shape = [int(d) for d in (tensor.shape if tensor.shape is not None else [])]
    if n > 1 and shape and n != shape[int(q.quantizedDimension)]:
        raise _malformed(what, f"has {n} quantization scales for the {shape[int(q.quantizedDimension)]} channels of "
                         f"dimension {int(q.quantizedDimension)} of shape {shape}")


def _check_dataflow(model: schema.ModelT, sg: schema.SubGraphT, s: int) -> None:
    """Each tensor has at most one producer, no operator writes a model input or a constant, every
    input of a builtin operator is a constant, a model input, a variable or written by an operator,
    and an operator's inputs are written by operators before it (file order is execution order).

    LiteRT crashes (SIGSEGV) running a graph whose operator writes into the subgraph's input.
    """
    inputs = {int(i) for i in (sg.inputs if sg.inputs is not None else [])}
    producer: dict[int, int] = {}
    for o, op in enumerate(sg.operators or []):
        for t in (int(i) for i in (op.outputs if op.outputs is not None else [])):
            if t < 0:
                continue
            where = f"operator {o} of subgraph {s} ({op_name(model, op)})"
            if t in producer:
                raise _malformed(where, f"writes tensor {t}, already written by operator {producer[t]}")
            if t in inputs:
                raise _malformed(where, f"writes tensor {t}, an input of the subgraph")
            data = model.buffers[sg.tensors[t].buffer].data
            if data is not None and len(data) > 0:
                raise _malformed(where, f"writes tensor {t}, a constant")
            producer[t] = o
    # Activations: per-channel quantization is for weights and biases only (TFLM's DECODE writes decoded weights).
    written = {t for t, o in producer.items() if op_code(model, sg.operators[o]) != BuiltinOp.CUSTOM}
    for t in sorted(inputs | written):
        q = sg.tensors[t].quantization
        if q is not None and q.scale is not None and len(q.scale) > 1:
            raise _malformed(f"tensor {t} of subgraph {s} ('{tensor_name(sg.tensors[t])[:60]}')",
                             f"is an activation (or input) with {len(q.scale)} quantization scales; only constant "
                             "weights and biases may be quantized per channel")
    for o, op in enumerate(sg.operators or []):
        custom = op_code(model, op) == BuiltinOp.CUSTOM
        for t in (int(i) for i in (op.inputs if op.inputs is not None else [])):
            if t < 0 or t in inputs:
                continue
            if t in producer:
                # operators run in file order: reading a tensor written later (or by itself: a cycle) reads
                # uninitialised memory in LiteRT, different on every run
                if producer[t] >= o:
                    later = "itself" if producer[t] == o else f"operator {producer[t]}, which runs later"
                    raise _malformed(f"operator {o} of subgraph {s} ({op_name(model, op)})",
                                     f"reads tensor {t} ('{tensor_name(sg.tensors[t])[:60]}') before it is "
                                     f"written: it is written by {later} (operators out of order, or a cycle)")
                continue
            if custom:
                continue  # custom operators (Vela's ethos-u) take scratch tensors nobody writes
            tensor = sg.tensors[t]
            data = model.buffers[tensor.buffer].data
            if not tensor.isVariable and (data is None or len(data) == 0):
                raise _malformed(
                    f"operator {o} of subgraph {s} ({op_name(model, op)})",
                    f"reads tensor {t} ('{tensor_name(tensor)[:60]}'), which holds no data and which no operator "
                    "writes (are the weights missing?)",
                )


def _check_operator(model: schema.ModelT, sg: schema.SubGraphT, op: schema.OperatorT, where: str) -> None:
    code = op_code(model, op)
    inputs = [int(i) for i in (op.inputs if op.inputs is not None else [])]
    outputs = [int(i) for i in (op.outputs if op.outputs is not None else [])]
    if any(i < 0 for i in outputs):
        raise _malformed(where, f"({op_name(model, op)}) has a missing output (outputs {outputs})")
    if code != BuiltinOp.CUSTOM:  # custom operators (TFLM's DECODE) read packed data under the original scales
        for t in (i for i in inputs + outputs if i >= 0):
            q = sg.tensors[t].quantization
            if q is not None and q.scale is not None and len(q.scale) > 1:  # (the message costs: only then)
                _check_scale_count(sg.tensors[t], f"tensor {t} ('{tensor_name(sg.tensors[t])[:60]}') of {where}")
    if code not in ANY_OPTIONAL_INPUT and code != BuiltinOp.CUSTOM:
        allowed = OPTIONAL_INPUTS.get(code, frozenset())
        for pos, i in enumerate(inputs):
            if i < 0 and pos not in allowed:
                raise _malformed(where, f"({op_name(model, op)}) has no tensor for its required input {pos}")
    weight_input = WEIGHT_INPUT.get(code)
    if weight_input is None:
        return
    if len(inputs) <= weight_input or inputs[weight_input] < 0:
        raise _malformed(where, f"({op_name(model, op)}) has no weights operand (inputs {inputs})")
    if not outputs:
        raise _malformed(where, f"({op_name(model, op)}) has no output")
    _check_weight_quantization(sg.tensors[inputs[weight_input]], code, f"{where} ({op_name(model, op)})")


def _check_weight_quantization(tensor: schema.TensorT, code: int, where: str) -> None:
    """Weights LiteRT refuses, or that turn every rescaling into NaN: a zero scale (bias scale = input x weight
    scale), a per-channel axis the kernel does not take (FULLY_CONNECTED on axis 1)."""
    q = tensor.quantization
    if q is None or q.scale is None or len(q.scale) == 0:
        return
    scales = np.asarray(q.scale, dtype=np.float64)
    if np.any(scales == 0):
        channel = int(np.flatnonzero(scales == 0)[0])
        raise _malformed(where, f"weights '{tensor_name(tensor)[:60]}' have quantization scale 0 in channel {channel}")
    axis = WEIGHT_CHANNEL_AXIS.get(code)
    if len(scales) > 1 and axis is not None and int(q.quantizedDimension) != axis:
        raise _malformed(where, f"weights '{tensor_name(tensor)[:60]}' are quantized per channel along dimension "
                         f"{int(q.quantizedDimension)}; this operator takes them along dimension {axis}")

