"""Edits of a ModelT: copy-on-write constant buffers (a buffer shared by several tensors is split, never
changed under another tensor), removing operators, dropping what nothing references, adding a signature."""
from __future__ import annotations

import numpy as np
from ai_edge_litert import schema_py_generated as schema

DEFAULT_SIGNATURE_KEY = "serving_default"  # the key the TF converter gives a model's one signature


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
        if self.refs.get(tensor.buffer, 0) > 1 or tensor.buffer == 0:  # buffer 0 is the shared empty buffer
            if tensor.buffer in self.refs:
                self.refs[tensor.buffer] -= 1
            buf = schema.BufferT()
            self.model.buffers.append(buf)
            tensor.buffer = len(self.model.buffers) - 1
            self.refs[tensor.buffer] = 1
        self.model.buffers[tensor.buffer].data = raw


def _ints(v) -> list[int]:
    return [] if v is None else [int(x) for x in v]


def remove_operators(sg: schema.SubGraphT, indices: set[int]) -> None:
    """Drop operators by index; their tensors stay until ``prune_unreferenced``."""
    sg.operators = [op for o, op in enumerate(sg.operators or []) if o not in indices]


def prune_unreferenced(model: schema.ModelT) -> None:
    """Drop tensors no operator, subgraph input/output or signature refers to, then buffers and operator
    codes nothing uses (buffer 0, the empty buffer every activation points at, stays first)."""
    for s, sg in enumerate(model.subgraphs or []):
        used = set(_ints(sg.inputs)) | set(_ints(sg.outputs))
        for op in sg.operators or []:
            used |= {i for i in _ints(op.inputs) + _ints(op.outputs) + _ints(op.intermediates) if i >= 0}
        for sd in model.signatureDefs or []:
            if sd.subgraphIndex == s:
                used |= {int(m.tensorIndex) for m in (sd.inputs or []) + (sd.outputs or [])}
        keep = sorted(used)
        new_index = {old: new for new, old in enumerate(keep)}
        sg.tensors = [sg.tensors[i] for i in keep]

        def remap(v, new_index=new_index):
            return None if v is None else [new_index[i] if i >= 0 else i for i in _ints(v)]

        sg.inputs, sg.outputs = remap(sg.inputs), remap(sg.outputs)
        for op in sg.operators or []:
            op.inputs, op.outputs = remap(op.inputs), remap(op.outputs)
            if op.intermediates is not None:
                op.intermediates = remap(op.intermediates)
        for sd in model.signatureDefs or []:
            if sd.subgraphIndex == s:
                for m in (sd.inputs or []) + (sd.outputs or []):
                    m.tensorIndex = new_index[int(m.tensorIndex)]
    _prune_buffers(model)
    _prune_operator_codes(model)


def _prune_buffers(model: schema.ModelT) -> None:
    used = {0} | {int(t.buffer) for sg in model.subgraphs or [] for t in sg.tensors or []}
    used |= {int(m.buffer) for m in model.metadata or []}  # metadata entries point at buffers too
    keep = sorted(b for b in used if b < len(model.buffers or []))
    new_index = {old: new for new, old in enumerate(keep)}
    model.buffers = [model.buffers[i] for i in keep]
    for sg in model.subgraphs or []:
        for t in sg.tensors or []:
            t.buffer = new_index[int(t.buffer)]
    for m in model.metadata or []:
        m.buffer = new_index[int(m.buffer)]


def _prune_operator_codes(model: schema.ModelT) -> None:
    used = sorted({int(op.opcodeIndex) for sg in model.subgraphs or [] for op in sg.operators or []})
    new_index = {old: new for new, old in enumerate(used)}
    model.operatorCodes = [model.operatorCodes[i] for i in used]
    for sg in model.subgraphs or []:
        for op in sg.operators or []:
            op.opcodeIndex = new_index[int(op.opcodeIndex)]


def _tensor_map(name: str, index: int) -> schema.TensorMapT:
    m = schema.TensorMapT()
    m.name, m.tensorIndex = name, index
    return m


def add_default_signature(model: schema.ModelT) -> bool:
    """Give a model without a SignatureDef one for subgraph 0, named after its input and output tensors
    (unique, in order); returns False when it already had one. Runtimes that call by signature need it."""
    if model.signatureDefs:
        return False
    sg = model.subgraphs[0]

    def names(indices: list[int]) -> list[str]:
        seen: set[str] = set()
        out = []
        for pos, i in enumerate(indices):
            raw = sg.tensors[i].name
            name = (raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw or "") or f"tensor_{pos}"
            while name in seen:
                name = f"{name}_{pos}"
            seen.add(name)
            out.append(name)
        return out

    sd = schema.SignatureDefT()
    sd.signatureKey, sd.subgraphIndex = DEFAULT_SIGNATURE_KEY, 0
    ins, outs = _ints(sg.inputs), _ints(sg.outputs)
    sd.inputs = [_tensor_map(n, i) for n, i in zip(names(ins), ins)]
    sd.outputs = [_tensor_map(n, i) for n, i in zip(names(outs), outs)]
    model.signatureDefs = [sd]
    return True
