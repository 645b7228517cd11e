"""Facts about an input model that compile reports next to Vela's figures.

Per weight tensor: size, distinct int8 values (what the 32-entry palette limit is
about) and the size it would take palettised. Per operator: MACs, activation bytes
in and out, constant bytes. Pure reading of the ModelT: no TensorFlow, no Vela.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from ..tflite.graph import (
    NUMPY_DTYPES,
    BuiltinOp,
    TensorType,
    buffer_bytes,
    find_weight_tensors,
    op_code,
    op_name,
    tensor_name,
    tensor_values,
)

FLOAT_TYPES = (TensorType.FLOAT32, TensorType.FLOAT16, TensorType.FLOAT64)
POOL_OPS = (BuiltinOp.AVERAGE_POOL_2D, BuiltinOp.MAX_POOL_2D, BuiltinOp.L2_POOL_2D)


@dataclass(frozen=True)
class WeightFacts:
    subgraph: int
    tensor_index: int
    name: str
    op: str
    operators: tuple[int, ...]  # consumers in the subgraph
    weights: int
    bytes: int
    distinct_values: int

    def within_palette(self, palette_limit: int) -> bool:
        return self.distinct_values <= palette_limit

    def palettised_bytes(self, palette_limit: int) -> int:
        """Indices of ceil(log2(distinct)) bits plus one byte per palette entry; raw int8 beyond the limit."""
        if not self.within_palette(palette_limit):
            return self.bytes
        bits = max(1, math.ceil(math.log2(max(self.distinct_values, 1))))
        return math.ceil(self.weights * bits / 8) + self.distinct_values


@dataclass(frozen=True)
class OperatorFacts:
    subgraph: int
    index: int
    op: str
    name: str  # first output tensor's name (Vela names its operations the same way)
    macs: int
    vector_elements: int  # element work of operators without MACs (pooling windows, element-wise)
    activation_in_bytes: int
    activation_out_bytes: int
    constant_bytes: int  # biases and other constants that are not palettisable weights
    weight_tensors: tuple[int, ...]  # tensor indices of its weights (see ModelFacts.weights)
    float_activations: bool


@dataclass(frozen=True)
class ModelFacts:
    weights: tuple[WeightFacts, ...]
    operators: tuple[OperatorFacts, ...]

    def weights_of(self, op: OperatorFacts) -> list[WeightFacts]:
        return [w for w in self.weights if w.subgraph == op.subgraph and w.tensor_index in op.weight_tensors]

    @property
    def weight_bytes(self) -> int:
        return sum(w.bytes for w in self.weights)


def _shape(t: schema.TensorT) -> tuple[int, ...]:
    return tuple(max(int(d), 1) for d in (t.shape if t.shape is not None else []))


def _elements(t: schema.TensorT) -> int:
    return int(np.prod(_shape(t), dtype=np.int64)) if t.shape is not None and len(t.shape) else 1


def _nbytes(t: schema.TensorT) -> int:
    dtype = NUMPY_DTYPES.get(int(t.type))
    return _elements(t) * (dtype.itemsize if dtype is not None else 4)


def _macs(code: int, tensors: list, inputs: list[int], out_elems: int) -> int:
    def shape(pos: int) -> tuple[int, ...]:
        return _shape(tensors[inputs[pos]]) if pos < len(inputs) and inputs[pos] >= 0 else ()

    w = shape(1)
    if code == BuiltinOp.CONV_2D and len(w) == 4:  # [OC, KH, KW, IC]
        return out_elems * w[1] * w[2] * w[3]
    if code == BuiltinOp.DEPTHWISE_CONV_2D and len(w) == 4:  # [1, KH, KW, OC]
        return out_elems * w[1] * w[2]
    if code == BuiltinOp.FULLY_CONNECTED and len(w) == 2:  # [OC, IC]
        return out_elems * w[1]
    if code == BuiltinOp.CONV_3D and len(w) == 5:  # [KD, KH, KW, IC, OC]
        return out_elems * w[0] * w[1] * w[2] * w[3]
    if code == BuiltinOp.TRANSPOSE_CONV and len(w) == 4:  # inputs: output_shape, weights, input
        x = shape(2)
        return int(np.prod(x, dtype=np.int64)) * w[0] * w[1] * w[2] if x else 0
    if code == BuiltinOp.BATCH_MATMUL:
        a = shape(0)
        return out_elems * (a[-1] if a else 1)
    return 0


def _pool_window(op: schema.OperatorT) -> int:
    opts = op.builtinOptions
    fh, fw = getattr(opts, "filterHeight", 1) or 1, getattr(opts, "filterWidth", 1) or 1
    return int(fh) * int(fw)


def _distinct_int8(values: np.ndarray) -> int:
    return int(np.count_nonzero(np.bincount(values.view(np.uint8).ravel(), minlength=256)))


def model_facts(model: schema.ModelT) -> ModelFacts:
    weights = []
    for w in find_weight_tensors(model):
        tensor = model.subgraphs[w.subgraph].tensors[w.tensor_index]
        values = tensor_values(model, tensor)
        weights.append(
            WeightFacts(
                subgraph=w.subgraph,
                tensor_index=w.tensor_index,
                name=w.name,
                op=w.op,
                operators=w.consumers,
                weights=int(values.size),
                bytes=int(values.nbytes),
                distinct_values=_distinct_int8(values),
            )
        )
    weight_keys = {(w.subgraph, w.tensor_index) for w in weights}
    operators = []
    for s, sg in enumerate(model.subgraphs or []):
        tensors = sg.tensors or []
        for o, op in enumerate(sg.operators or []):
            code = op_code(model, op)
            inputs = [int(i) for i in (op.inputs if op.inputs is not None else [])]
            outputs = [int(i) for i in (op.outputs if op.outputs is not None else []) if int(i) >= 0]
            act_in = const = 0
            w_idx = []
            in_elems = 0
            floats = False
            for i in inputs:
                if i < 0:
                    continue
                t = tensors[i]
                if (s, i) in weight_keys:
                    w_idx.append(i)
                elif buffer_bytes(model, t) is not None:
                    const += _nbytes(t)
                else:
                    act_in += _nbytes(t)
                    in_elems += _elements(t)
                    floats |= int(t.type) in FLOAT_TYPES
            out_bytes = sum(_nbytes(tensors[i]) for i in outputs)
            out_elems = sum(_elements(tensors[i]) for i in outputs)
            floats |= any(int(tensors[i].type) in FLOAT_TYPES for i in outputs)
            macs = _macs(code, tensors, inputs, out_elems)
            if macs:
                vector = 0
            elif code in POOL_OPS:
                vector = out_elems * _pool_window(op)
            else:
                vector = max(in_elems, out_elems)
            operators.append(
                OperatorFacts(
                    subgraph=s,
                    index=o,
                    op=op_name(model, op),
                    name=tensor_name(tensors[outputs[0]]) if outputs else "",
                    macs=int(macs),
                    vector_elements=int(vector),
                    activation_in_bytes=int(act_in),
                    activation_out_bytes=int(out_bytes),
                    constant_bytes=int(const),
                    weight_tensors=tuple(w_idx),
                    float_activations=floats,
                )
            )
    return ModelFacts(weights=tuple(weights), operators=tuple(operators))
