"""Copy-on-write edits of a ModelT's constant buffers: a buffer shared by several tensors is split, never changed under another tensor."""
from __future__ import annotations

import numpy as np
from ai_edge_litert import schema_py_generated as schema


class ModelEditor:
    """Copy-on-write edits of constant buffers (a buffer shared by several tensors is split)."""

    def __init__(self, model: schema.ModelT) -> None:
        self.model = model
        self.refs: dict[int, int] = {}
        for sg in model.subgraphs:
            for t in sg.tensors or []:
                self.refs[t.buffer] = self.refs.get(t.buffer, 0) + 1

    def set_data(self, tensor: schema.TensorT, data: np.ndarray) -> None:
        raw = np.ascontiguousarray(data).view(np.uint8).ravel().copy()
        if self.refs.get(tensor.buffer, 0) > 1:
            self.refs[tensor.buffer] -= 1
            buf = schema.BufferT()
            self.model.buffers.append(buf)
            tensor.buffer = len(self.model.buffers) - 1
            self.refs[tensor.buffer] = 1
        self.model.buffers[tensor.buffer].data = raw
