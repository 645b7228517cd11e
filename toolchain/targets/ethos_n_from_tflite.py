"""A .tflite model's main subgraph as the Ethos-N network both estimates read (``ethos_n_network``).

Every operator of subgraph 0 becomes a layer, in order, named by its first output tensor (as
compile.json's layers are). What the support library has an operation for is mapped to it, the
way Arm NN's Ethos-N backend maps TFLite: weights to HWIO (HWIM for depthwise), shapes to NHWC
(``[N, C]`` -> ``[N, 1, 1, C]``), fused activations to a ReLU after the operation, SAME padding
to explicit padding, a fully connected layer's input flattened by a reshape. An int8 operator
without such an operation is kept as "unmapped" with the reason, so Arm's estimator still sees
the network whole and the report names it. Operators on tensors the library cannot describe
(float, int16, more than four dimensions) run on the CPU and are left out; int8 tensors they
produce enter the network as inputs, as do non-weight constants (a constant addend).
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from ..tflite.graph import BuiltinOp, TensorType, buffer_bytes, op_code, op_name, tensor_name, tensor_values
from .ethos_n_network import DataType, EthosNOpKind, Layer, Network, NpuOp, Shape4, TensorDesc, Weights

_ACT = schema.ActivationFunctionType
_DTYPES = {TensorType.INT8: (DataType.INT8, -128, 127), TensorType.UINT8: (DataType.UINT8, 0, 255)}
_SIMPLE = {BuiltinOp.LOGISTIC: EthosNOpKind.SIGMOID, BuiltinOp.TANH: EthosNOpKind.TANH}
_RESHAPES = (BuiltinOp.RESHAPE, BuiltinOp.SQUEEZE, BuiltinOp.EXPAND_DIMS)
_RELUS = {BuiltinOp.RELU: (0.0, None), BuiltinOp.RELU6: (0.0, 6.0), BuiltinOp.RELU_N1_TO_1: (-1.0, 1.0),
          BuiltinOp.RELU_0_TO_1: (0.0, 1.0)}
_FUSED_BOUNDS = {_ACT.RELU: (0.0, None), _ACT.RELU6: (0.0, 6.0), _ACT.RELU_N1_TO_1: (-1.0, 1.0)}


def _shape4(shape: list[int]) -> Shape4 | None:
    dims = [max(int(d), 1) for d in shape]
    if len(dims) > 4:
        return None
    if len(dims) == 4:
        return dims[0], dims[1], dims[2], dims[3]
    if len(dims) == 3:
        return dims[0], 1, dims[1], dims[2]
    if len(dims) == 2:
        return dims[0], 1, 1, dims[1]
    return 1, 1, 1, dims[0] if dims else 1


def _axis4(axis: int, rank: int) -> int:
    """A TFLite axis of a tensor of ``rank`` dimensions as the NHWC axis ``_shape4`` puts it on."""
    dims = {4: [0, 1, 2, 3], 3: [0, 2, 3], 2: [0, 3]}.get(rank, [3])
    axis = axis + rank if axis < 0 else axis
    return dims[max(0, min(axis, len(dims) - 1))]


def _desc(t: schema.TensorT) -> TensorDesc | None:
    """The tensor as the library can hold it: int8/uint8, per-tensor quantized, at most 4-D; else None."""
    kind = _DTYPES.get(int(t.type))
    q = t.quantization
    if kind is None or q is None or q.scale is None or len(q.scale) != 1:
        return None
    shape = _shape4(list(t.shape) if t.shape is not None else [])
    if shape is None:
        return None
    zp = int(q.zeroPoint[0]) if q.zeroPoint is not None and len(q.zeroPoint) else 0
    return TensorDesc(shape, zp, float(q.scale[0]), kind[0])


def _same_padding(size: int, out: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def _padding(opts, x: TensorDesc, out: TensorDesc, kh: int, kw: int) -> tuple[int, int, int, int]:
    if _o(opts, "padding", schema.Padding.VALID) != schema.Padding.SAME:
        return 0, 0, 0, 0
    top, bottom = _same_padding(x.shape[1], out.shape[1], kh, _o(opts, "strideH", 1))
    left, right = _same_padding(x.shape[2], out.shape[2], kw, _o(opts, "strideW", 1))
    return top, bottom, left, right


def _relu_bounds(out: TensorDesc, lower: float, upper: float | None) -> tuple[int, int]:
    lo_q, hi_q = (-128, 127) if out.dtype is DataType.INT8 else (0, 255)
    lo = max(lo_q, out.zero_point + round(lower / out.scale))
    hi = hi_q if upper is None else min(hi_q, out.zero_point + round(upper / out.scale))
    return int(lo), int(hi)


def _o(opts, name: str, default):
    """An option of the operator; its default when the options are missing or of another operator's type."""
    value = getattr(opts, name, None) if opts is not None else None
    return default if value is None else value


def _weights(model: schema.ModelT, sg: schema.SubGraphT, inputs: list[int], layout: str,
             x: TensorDesc) -> Weights | str:
    """The operator's weights in the library's layout, or why they cannot be."""
    if len(inputs) < 2 or inputs[1] < 0:
        return "no weights"
    w_t = sg.tensors[inputs[1]]
    if int(w_t.type) != TensorType.INT8 or buffer_bytes(model, w_t) is None or w_t.quantization is None:
        return "weights are not constant int8"
    raw = tensor_values(model, w_t)
    h, w, c = x.shape[1:]
    if layout == "conv" and raw.ndim == 4 and raw.shape[3] == c:  # TFLite OHWI -> HWIO
        values = raw.transpose(1, 2, 3, 0)
    elif layout == "fc" and raw.ndim == 2 and raw.shape[1] == h * w * c:  # [O, I] -> [1, 1, I, O]
        values = raw.T.reshape(1, 1, raw.shape[1], raw.shape[0])
    elif layout == "dw" and raw.ndim == 4 and raw.shape[0] == 1 and raw.shape[3] % c == 0:  # [1,H,W,C*M] -> HWIM
        values = raw.reshape(raw.shape[1], raw.shape[2], c, raw.shape[3] // c)
    else:
        return f"weights of shape {tuple(raw.shape)} do not fit the input {x.shape}"
    if values.size == 0:
        return "empty weights"
    q = w_t.quantization
    scales = tuple(float(s) for s in (q.scale if q.scale is not None and len(q.scale) else [1.0]))
    zp = int(q.zeroPoint[0]) if q.zeroPoint is not None and len(q.zeroPoint) else 0
    out_channels = values.shape[2] * values.shape[3] if layout == "dw" else values.shape[3]
    bias = np.zeros(out_channels, np.int32)
    if len(inputs) > 2 and inputs[2] >= 0 and buffer_bytes(model, sg.tensors[inputs[2]]) is not None:
        b = tensor_values(model, sg.tensors[inputs[2]]).ravel()
        if b.size == out_channels:
            bias = b.astype(np.int32)
    return Weights(values=np.ascontiguousarray(values), scales=scales, zero_point=zp, bias=bias)


def _constant(model: schema.ModelT, sg: schema.SubGraphT, inputs: list[int], pos: int) -> np.ndarray | None:
    """A constant integer parameter tensor (MEAN's axes, PAD's paddings), or None."""
    if pos >= len(inputs) or inputs[pos] < 0 or buffer_bytes(model, sg.tensors[inputs[pos]]) is None:
        return None
    values = tensor_values(model, sg.tensors[inputs[pos]])
    return values.astype(np.int64).ravel() if values.dtype.kind in "iu" else None


class _Mapper:
    def __init__(self, model: schema.ModelT):
        self.model = model
        self.sg = model.subgraphs[0]
        self.next_id = len(self.sg.tensors or [])

    def fresh(self) -> int:
        self.next_id += 1
        return self.next_id - 1

    def activation(self, ops: list[NpuOp], fused: int, out_id: int, out: TensorDesc) -> list[NpuOp]:
        """Give the last operation a fresh output and put the fused ReLU behind it, writing ``out_id``."""
        bounds = _FUSED_BOUNDS.get(fused)
        if bounds is None:
            return ops
        mid = self.fresh()
        last = ops[-1]
        ops[-1] = replace(last, output=mid)
        return ops + [NpuOp(EthosNOpKind.RELU, (mid,), out_id, out, relu_bounds=_relu_bounds(out, *bounds))]

    def map(self, code: int, op: schema.OperatorT, ins: list[int], acts: list[int], out_id: int,
            out: TensorDesc, descs: dict[int, TensorDesc]) -> list[NpuOp] | str:
        """The operations for one operator, or the reason there are none."""
        opts = op.builtinOptions
        x = descs[acts[0]]
        fused = _o(opts, "fusedActivationFunction", _ACT.NONE)
        stride = (int(_o(opts, "strideH", 1)), int(_o(opts, "strideW", 1)))
        if code in (BuiltinOp.CONV_2D, BuiltinOp.DEPTHWISE_CONV_2D):
            if (_o(opts, "dilationHFactor", 1), _o(opts, "dilationWFactor", 1)) != (1, 1):
                return "dilated convolution: the toolchain does not map it"
            depthwise = code == BuiltinOp.DEPTHWISE_CONV_2D
            w = _weights(self.model, self.sg, ins, "dw" if depthwise else "conv", x)
            if isinstance(w, str):
                return w
            kh, kw = w.values.shape[:2]
            kind = EthosNOpKind.DEPTHWISE if depthwise else EthosNOpKind.CONV
            first = NpuOp(kind, (acts[0],), out_id, out, w, (kh, kw), stride, _padding(opts, x, out, kh, kw))
            return self.activation([first], fused, out_id, out)
        if code == BuiltinOp.FULLY_CONNECTED:
            w = _weights(self.model, self.sg, ins, "fc", x)
            if isinstance(w, str):
                return w
            src, ops = acts[0], []
            flat = (1, 1, 1, w.values.shape[2])
            if x.shape != flat:
                src = self.fresh()
                ops.append(NpuOp(EthosNOpKind.RESHAPE, (acts[0],), src, TensorDesc(flat, x.zero_point, x.scale, x.dtype)))
            ops.append(NpuOp(EthosNOpKind.FULLY_CONNECTED, (src,), out_id, out, w))
            return self.activation(ops, fused, out_id, out)
        if code in (BuiltinOp.MAX_POOL_2D, BuiltinOp.AVERAGE_POOL_2D):
            kh, kw = int(_o(opts, "filterHeight", 1)), int(_o(opts, "filterWidth", 1))
            first = NpuOp(EthosNOpKind.POOL, (acts[0],), out_id, out, None, (kh, kw), stride,
                          _padding(opts, x, out, kh, kw), pool_max=code == BuiltinOp.MAX_POOL_2D)
            return self.activation([first], fused, out_id, out)
        if code in (BuiltinOp.ADD, BuiltinOp.MUL) and len(acts) == 2:
            kind = EthosNOpKind.ADD if code == BuiltinOp.ADD else EthosNOpKind.MUL
            return self.activation([NpuOp(kind, tuple(acts), out_id, out)], fused, out_id, out)
        if code in _RELUS:
            return [NpuOp(EthosNOpKind.RELU, (acts[0],), out_id, out, relu_bounds=_relu_bounds(out, *_RELUS[code]))]
        if code == BuiltinOp.LEAKY_RELU:
            return [NpuOp(EthosNOpKind.LEAKY_RELU, (acts[0],), out_id, out, alpha=float(_o(opts, "alpha", 0.2)))]
        if code in _SIMPLE:
            return [NpuOp(_SIMPLE[code], (acts[0],), out_id, out)]
        if code in _RESHAPES:
            return [NpuOp(EthosNOpKind.RESHAPE, (acts[0],), out_id, out)]
        if code == BuiltinOp.QUANTIZE:
            return [NpuOp(EthosNOpKind.REQUANTIZE, (acts[0],), out_id, out)]
        if code == BuiltinOp.CONCATENATION:
            rank = len(self.sg.tensors[out_id].shape if self.sg.tensors[out_id].shape is not None else [])
            first = NpuOp(EthosNOpKind.CONCAT, tuple(acts), out_id, out, axis=_axis4(int(_o(opts, "axis", 0)), rank))
            return self.activation([first], fused, out_id, out)
        if code == BuiltinOp.MEAN:
            axes = _constant(self.model, self.sg, ins, 1)
            if axes is not None and sorted(int(a) % 4 for a in axes) == [1, 2] and out.shape == (1, 1, 1, x.shape[3]):
                if x.shape[1:3] not in ((7, 7), (8, 8)):  # Arm's SupportQueries::IsMeanXySupported, its words
                    return "MeanXy is supported for 7x7 and 8x8 as HeightxWidth only"
                return [NpuOp(EthosNOpKind.MEAN_XY, (acts[0],), out_id, out)]
            return "MEAN over other axes than height and width"
        if code == BuiltinOp.PAD:
            flat = _constant(self.model, self.sg, ins, 1)
            if flat is None or flat.size != 8:
                return "PAD without constant 4-D paddings"
            pads = flat.reshape(4, 2)
            if not pads[0].any() and not pads[3].any() and (pads >= 0).all():
                padding = (int(pads[1][0]), int(pads[1][1]), int(pads[2][0]), int(pads[2][1]))
                return [NpuOp(EthosNOpKind.PAD, (acts[0],), out_id, out, padding=padding)]
            return "PAD of the batch or channel dimension"
        if code in (BuiltinOp.RESIZE_BILINEAR, BuiltinOp.RESIZE_NEAREST_NEIGHBOR):
            return [NpuOp(EthosNOpKind.RESIZE, (acts[0],), out_id, out, resize_bilinear=code == BuiltinOp.RESIZE_BILINEAR)]
        return f"{op_name(self.model, op)} has no Ethos-N support library operation the toolchain maps it to"


def _cpu_reason(tensors: list, acts: list[int], outs: list[int], act_descs: dict, out_desc) -> str:
    """Why an operator is not given to the library: which of its tensors the library cannot hold."""
    if len(outs) != 1 or not acts:
        return "not one output and at least one input tensor: the toolchain maps no such operator"
    bad = next((i for i in acts if act_descs[i] is None), outs[0])
    t = tensors[bad]
    kind = TensorType(int(t.type)).name if int(t.type) in TensorType._value2member_map_ else str(t.type)
    dims = len(t.shape) if t.shape is not None else 0
    return (f"tensor '{tensor_name(t)}' is {kind}, {dims}-D: the support library holds per-tensor quantized int8 "
            "or uint8 tensors of up to 4 dimensions only")


def network_from_tflite(model: schema.ModelT) -> tuple[Network, dict[int, str]]:
    """Subgraph 0 as a Network, and the CPU layers (index -> why they are not given to the library)."""
    m = _Mapper(model)
    sg = m.sg
    tensors = sg.tensors or []
    descs: dict[int, TensorDesc] = {}
    inputs: dict[int, TensorDesc] = {}
    produced: set[int] = set()
    consumed_by_cpu: set[int] = set()
    layers: list[Layer] = []
    cpu: dict[int, str] = {}
    for index, op in enumerate(sg.operators or []):
        code = op_code(model, op)
        ins = [int(i) for i in (op.inputs if op.inputs is not None else [])]
        outs = [int(i) for i in (op.outputs if op.outputs is not None else []) if int(i) >= 0]
        name = tensor_name(tensors[outs[0]]) if outs else ""
        weight_pos = {1, 2} if code in (BuiltinOp.CONV_2D, BuiltinOp.DEPTHWISE_CONV_2D,
                                        BuiltinOp.FULLY_CONNECTED) else set()
        param_pos = {1} if code in (BuiltinOp.MEAN, BuiltinOp.PAD, BuiltinOp.RESHAPE, BuiltinOp.RESIZE_BILINEAR,
                                    BuiltinOp.RESIZE_NEAREST_NEIGHBOR, BuiltinOp.EXPAND_DIMS) else set()
        acts = [i for p, i in enumerate(ins) if i >= 0 and p not in weight_pos | param_pos]
        out_desc = _desc(tensors[outs[0]]) if len(outs) == 1 else None
        act_descs = {i: _desc(tensors[i]) for i in acts}
        if out_desc is None or not acts or any(d is None for d in act_descs.values()):
            cpu[index] = _cpu_reason(tensors, acts, outs, act_descs, out_desc)
            consumed_by_cpu.update(i for i in acts if i in produced)
            continue
        for i, d in act_descs.items():
            descs[i] = d  # type: ignore[assignment]
            if i not in produced and i not in inputs:
                inputs[i] = d  # type: ignore[assignment]  # a model input, a CPU layer's output or a constant
        mapped = m.map(code, op, ins, acts, outs[0], out_desc, descs)
        if isinstance(mapped, str):
            mapped = [NpuOp(EthosNOpKind.UNMAPPED, tuple(acts), outs[0], out_desc, reason=mapped)]
        descs[outs[0]] = out_desc
        produced.add(outs[0])
        layers.append(Layer(index, name, op_name(model, op), tuple(mapped)))
    graph_outputs = {int(i) for i in (sg.outputs if sg.outputs is not None else [])}
    outputs = tuple(sorted(i for i in produced if i in graph_outputs or i in consumed_by_cpu))
    if not outputs and layers:
        outputs = (layers[-1].ops[-1].output,)
    return Network(tuple(sorted(inputs.items())), tuple(layers), outputs), cpu
