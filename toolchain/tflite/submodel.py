"""A model holding only some operators of another (with their tensors and constant buffers).

What a per-tensor size estimate compiles: the operators that read one weight tensor, with the
real shapes, strides and quantization around them, so the compiler makes the same choices for
them as in the whole model. The weight tensor's data is then swapped for each candidate
(``SubModel.with_weights``) without copying the rest.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from .graph import WeightTensor
from .model_io import write_model


@dataclass
class SubModel:
    """The operators of one weight tensor as a model of their own (an editable template, not a result)."""

    model: schema.ModelT
    weight_buffer: int  # the buffer of the weight tensor in ``model``
    shape: tuple[int, ...]

    def with_weights(self, q: np.ndarray) -> bytes:
        """The sub-model's bytes with ``q`` (int8, the tensor's shape) as the weights."""
        data = np.ascontiguousarray(q, dtype=np.int8)
        if tuple(data.shape) != self.shape:
            raise ValueError(f"weights of shape {tuple(data.shape)} for a tensor of shape {self.shape}")
        buf = self.model.buffers[self.weight_buffer]
        old = buf.data
        buf.data = data.view(np.uint8).ravel()
        try:
            return write_model(self.model)
        finally:
            buf.data = old


def _is_constant(model: schema.ModelT, tensor: schema.TensorT) -> bool:
    return tensor.buffer > 0 and model.buffers[tensor.buffer].data is not None


def weight_submodel(model: schema.ModelT, w: WeightTensor) -> SubModel:
    """The consumers of ``w`` (in its subgraph) as a model: its inputs are their non-constant inputs not produced
    by one of them, its outputs every tensor they produce."""
    sg = model.subgraphs[w.subgraph]
    ops = [copy.deepcopy(sg.operators[o]) for o in w.consumers]
    used: list[int] = []
    for op in ops:
        for t in list(op.inputs if op.inputs is not None else []) + list(op.outputs if op.outputs is not None else []):
            if int(t) >= 0 and int(t) not in used:
                used.append(int(t))
    remap = {old: new for new, old in enumerate(used)}
    out = schema.ModelT()
    out.version = model.version
    out.operatorCodes = copy.deepcopy(model.operatorCodes)
    out.buffers = [schema.BufferT()]
    out.description = "weight sub-model"
    tensors = []
    weight_buffer = 0
    for old in used:
        t = copy.deepcopy(sg.tensors[old])
        if _is_constant(model, sg.tensors[old]):
            b = schema.BufferT()
            b.data = model.buffers[t.buffer].data
            out.buffers.append(b)
            t.buffer = len(out.buffers) - 1
            if old == w.tensor_index:
                weight_buffer = t.buffer
        else:
            t.buffer = 0
        tensors.append(t)
    produced = set()
    for op in ops:
        op.inputs = [remap[int(i)] if int(i) >= 0 else -1 for i in op.inputs]
        op.outputs = [remap[int(i)] for i in op.outputs]
        produced.update(op.outputs)
    sub = schema.SubGraphT()
    sub.name = "main"
    sub.tensors = tensors
    sub.operators = ops
    sub.inputs = [i for i in dict.fromkeys(int(x) for op in ops for x in op.inputs)
                  if i >= 0 and i not in produced and tensors[i].buffer == 0]
    sub.outputs = sorted(produced)
    out.subgraphs = [sub]
    return SubModel(out, weight_buffer, w.shape)
