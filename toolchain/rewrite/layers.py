"""The layers the output-aware fit can model: what a weight tensor's operator computes, and its calibration rows.

CONV_2D (im2col patches with the op's stride, dilation and padding; padding reads the input
zero point), DEPTHWISE_CONV_2D (per output channel c, the KHxKW taps of input channel
c // multiplier) and FULLY_CONNECTED (one row per sample). Anything else (TRANSPOSE_CONV,
grouped or 3-D convolutions, weights shared by several operators) stays on the weight-space fit: its
output is not a plain product of the weights with input rows, and it is rare on Ethos-U.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from enum import Enum

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from ..algorithms.channels import channels_first
from ..algorithms.im2col import (
    ConvGeometry,
    conv_patches,
    depthwise_patches,
    sample_positions,
)
from ..tflite.editor import ModelEditor
from ..tflite.graph import (
    BIAS_INPUT,
    WEIGHT_INPUT,
    BuiltinOp,
    Granularity,
    WeightTensor,
    op_code,
    tensor_name,
    tensor_values,
)

MAX_ROW_ELEMENTS = 1 << 23  # floats of calibration rows handed to the statistics at once
ROWS_PER_INPUT = 32  # calibration rows per weight of a channel: enough for a well-conditioned Hessian
MIN_ROWS = 8192


class LayerKind(Enum):
    CONV = "CONV_2D"
    DEPTHWISE = "DEPTHWISE_CONV_2D"
    FULLY_CONNECTED = "FULLY_CONNECTED"


@dataclass(frozen=True)
class FitLayer:
    """One weight tensor as the output-aware fit sees it (indices into subgraph 0)."""

    weight: WeightTensor
    kind: LayerKind
    op_index: int
    input_index: int
    input_zero_point: int
    input_scale: float
    geometry: ConvGeometry | None
    multiplier: int  # depthwise: output channels per input channel
    bias_index: int | None
    bias_shared: bool  # another operator reads the same bias tensor: the rewrite gives this one its own copy

    @property
    def free_bias(self) -> bool:
        """The bias can be refitted (the layer has one)."""
        return self.bias_index is not None

    @property
    def per_channel_hessian(self) -> bool:
        return self.kind is LayerKind.DEPTHWISE

    @property
    def channels(self) -> int:
        return self.weight.shape[self.weight.channel_axis]

    @property
    def inputs_per_channel(self) -> int:
        return self.weight.size // self.channels


def _bias_used_elsewhere(model: schema.ModelT, op_index: int, bias: int) -> bool:
    sg = model.subgraphs[0]
    for o, op in enumerate(sg.operators):
        code = op_code(model, op)
        pos = BIAS_INPUT.get(code)
        if o != op_index and pos is not None and pos < len(op.inputs) and int(op.inputs[pos]) == bias:
            return True
    return False


def describe_layer(model: schema.ModelT, w: WeightTensor) -> FitLayer | str:
    """The layer, or why the output-aware fit cannot model it (it then gets the weight-space fit)."""
    if w.subgraph != 0:
        return "not in the main subgraph"
    if len(w.consumers) != 1:
        return "weights shared by several operators"
    sg = model.subgraphs[0]
    op = sg.operators[w.consumers[0]]
    code = op_code(model, op)
    kinds = {BuiltinOp.CONV_2D: LayerKind.CONV, BuiltinOp.DEPTHWISE_CONV_2D: LayerKind.DEPTHWISE,
             BuiltinOp.FULLY_CONNECTED: LayerKind.FULLY_CONNECTED}
    if code not in kinds or int(op.inputs[1]) != w.tensor_index:
        return f"{w.op} is fitted on its weights"
    kind = kinds[BuiltinOp(code)]
    x = sg.tensors[int(op.inputs[0])]
    q = x.quantization
    if q is None or q.scale is None or len(q.scale) != 1 or x.buffer > 0 and model.buffers[x.buffer].data is not None:
        return "input is not a per-tensor quantized activation"
    zp = int(q.zeroPoint[0]) if q.zeroPoint is not None and len(q.zeroPoint) else 0
    shape = tuple(int(d) for d in x.shape)
    geometry, multiplier = None, 1
    if kind is not LayerKind.FULLY_CONNECTED:
        opt = op.builtinOptions
        if len(shape) != 4 or len(w.shape) != 4:
            return "not a 2-D convolution"
        geometry = ConvGeometry(w.shape[1], w.shape[2], opt.strideH, opt.strideW, max(opt.dilationHFactor, 1),
                                max(opt.dilationWFactor, 1), opt.padding == schema.Padding.SAME)
        if kind is LayerKind.CONV and w.shape[3] != shape[3]:
            return "grouped convolution"
        if kind is LayerKind.DEPTHWISE:
            multiplier = w.shape[3] // shape[3]
            if multiplier * shape[3] != w.shape[3]:
                return "depthwise channels do not match its input"
    elif len(w.shape) != 2 or int(np.prod(shape)) % w.shape[1] != 0:
        return "fully connected input does not match its weights"
    if w.quantization.granularity is Granularity.PER_CHANNEL and w.channel_axis != (3 if kind is LayerKind.DEPTHWISE
                                                                                    else 0):
        return "weights quantized along an input axis"
    bias = w.bias_tensor_index
    shared = bias is not None and _bias_used_elsewhere(model, w.consumers[0], bias)
    return FitLayer(w, kind, w.consumers[0], int(op.inputs[0]), zp, float(q.scale[0]), geometry, multiplier, bias,
                    shared)


def model_macs(model: schema.ModelT) -> int:
    """Multiply-accumulates of one sample through the weight operators of the main subgraph."""
    sg = model.subgraphs[0]
    total = 0
    for op in sg.operators:
        code = op_code(model, op)
        pos = WEIGHT_INPUT.get(code)
        if pos is None or pos >= len(op.inputs) or op.inputs[pos] < 0 or not len(op.outputs):
            continue
        w = sg.tensors[int(op.inputs[pos])]
        out = sg.tensors[int(op.outputs[0])]
        w_shape = [int(d) for d in (w.shape if w.shape is not None else [])]
        out_shape = [max(int(d), 1) for d in (out.shape if out.shape is not None else [])]
        if not w_shape or not out_shape:
            continue
        per_output = int(np.prod(w_shape)) // max(w_shape[3] if code == BuiltinOp.DEPTHWISE_CONV_2D else w_shape[0], 1)
        total += int(np.prod(out_shape)) * per_output
    return total


def nearest_fitted_upstream(model: schema.ModelT, op_index: int, fitted: set[int]) -> set[int]:
    """The fitted operators (indices in ``fitted``) first met on each path back from ``op_index``'s inputs."""
    sg = model.subgraphs[0]
    producer = {int(t): o for o, op in enumerate(sg.operators) for t in (op.outputs if op.outputs is not None else [])}
    found: set[int] = set()
    seen: set[int] = set()
    stack = [int(t) for t in sg.operators[op_index].inputs if t >= 0]
    while stack:
        o = producer.get(stack.pop())
        if o is None or o in seen:
            continue
        seen.add(o)
        if o in fitted:
            found.add(o)
        else:
            stack.extend(int(t) for t in sg.operators[o].inputs if t >= 0)
    return found


def own_bias_tensor(editor: ModelEditor, layer: FitLayer) -> int:
    """The index of a bias tensor only this layer reads: a copy (same buffer until written) when shared."""
    if not layer.bias_shared:
        return layer.bias_index
    sg = editor.model.subgraphs[0]
    clone = copy.deepcopy(sg.tensors[layer.bias_index])
    clone.name = f"{tensor_name(clone)}/{layer.op_index}"
    sg.tensors.append(clone)
    editor.refs[clone.buffer] = editor.refs.get(clone.buffer, 0) + 1
    index = len(sg.tensors) - 1
    op = sg.operators[layer.op_index]
    inputs = [int(i) for i in op.inputs]
    inputs[BIAS_INPUT[BuiltinOp(op_code(editor.model, op))]] = index
    op.inputs = inputs
    return index


def layer_weights(model: schema.ModelT, layer: FitLayer) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(codes (C, D), scales (C,), int bias (C,)): channels first, a per-tensor scale repeated."""
    sg = model.subgraphs[0]
    w = layer.weight
    q = tensor_values(model, sg.tensors[w.tensor_index])
    codes = channels_first(q, w.channel_axis)
    scales = np.broadcast_to(w.quantization.scales.astype(np.float64), (codes.shape[0],)).copy()
    bias = np.zeros(codes.shape[0])
    if layer.bias_index is not None:
        bias = tensor_values(model, sg.tensors[layer.bias_index]).astype(np.float64).reshape(-1)
    return codes, scales, bias


def layer_rows(layer: FitLayer, x_new: np.ndarray, x_orig: np.ndarray | None, per_sample: int,
               rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """Chunks of (rows of x_new, the same rows of x_orig or None), float32 minus the zero point: (R, D),
    or (C, R, D) for depthwise. Inputs are a batch of the layer's input activations; at most
    ``per_sample`` rows per sample (positions drawn with ``rng``)."""
    zp = layer.input_zero_point
    if layer.kind is LayerKind.FULLY_CONNECTED:
        d = layer.inputs_per_channel
        n = x_new.reshape(-1, d)
        o = None if x_orig is None else x_orig.reshape(-1, d)
        keep = per_sample * x_new.shape[0]
        if n.shape[0] > keep:
            idx = np.sort(rng.choice(n.shape[0], keep, replace=False))
            n, o = n[idx], None if o is None else o[idx]
        return [(n.astype(np.float32) - zp, None if o is None else o.astype(np.float32) - zp)]
    g = layer.geometry
    out_h, out_w = g.output_hw(x_new.shape[1], x_new.shape[2])
    idx = sample_positions(x_new.shape[0], out_h, out_w, per_sample, rng)
    taps = g.kernel_h * g.kernel_w
    if layer.kind is LayerKind.DEPTHWISE:
        source = np.arange(layer.channels) // layer.multiplier
        step = max(1, MAX_ROW_ELEMENTS // (taps * layer.channels))

        def rows(x, part):
            return depthwise_patches(x, zp, g, *part, source)
    else:
        step = max(1, MAX_ROW_ELEMENTS // (taps * x_new.shape[3]))

        def rows(x, part):
            p = conv_patches(x, zp, g, *part)
            return p.reshape(p.shape[0], -1)
    pairs = []
    for lo in range(0, idx[0].size, step):
        part = tuple(a[lo:lo + step] for a in idx)
        pairs.append((rows(x_new, part), None if x_orig is None else rows(x_orig, part)))
    return pairs


def rows_per_layer(layer: FitLayer, cap: int) -> int:
    """Calibration rows a layer's statistics use: ROWS_PER_INPUT per input of a channel, MIN_ROWS at least,
    ``cap`` at most (the Hessian's cost grows with rows x inputs^2)."""
    return int(min(cap, max(MIN_ROWS, ROWS_PER_INPUT * (layer.inputs_per_channel + 1))))
