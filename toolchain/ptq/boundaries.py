"""The quantized model's inputs and outputs: int8 (what an NPU deployment feeds and reads) or float32
with a QUANTIZE / DEQUANTIZE at the boundary (a drop-in for the float model's callers).

A float input that only feeds a QUANTIZE becomes that QUANTIZE's int8 output; a float output made by a
DEQUANTIZE becomes the DEQUANTIZE's int8 input; the other way round inserts the operators. The
signature follows the tensors, so callers keep its names.
"""
from __future__ import annotations

from ai_edge_litert import schema_py_generated as schema

from ..tflite.editor import prune_unreferenced, remove_operators
from ..tflite.graph import BuiltinOp, TensorType, op_code, tensor_name


def _ints(v) -> list[int]:
    return [] if v is None else [int(x) for x in v]


def _retarget_signature(model: schema.ModelT, subgraph: int, old: int, new: int) -> None:
    for sd in model.signatureDefs or []:
        if sd.subgraphIndex == subgraph:
            for m in (sd.inputs or []) + (sd.outputs or []):
                if int(m.tensorIndex) == old:
                    m.tensorIndex = new


def to_int8_io(model: schema.ModelT) -> int:
    """Drop float boundary QUANTIZE/DEQUANTIZE operators of subgraph 0; returns how many were dropped."""
    sg = model.subgraphs[0]
    consumers: dict[int, list[int]] = {}
    producer: dict[int, int] = {}
    for o, op in enumerate(sg.operators or []):
        for t in _ints(op.inputs):
            consumers.setdefault(t, []).append(o)
        for t in _ints(op.outputs):
            producer[t] = o
    drop: set[int] = set()
    inputs = _ints(sg.inputs)
    for pos, t in enumerate(inputs):
        users = consumers.get(t, [])
        if int(sg.tensors[t].type) != TensorType.FLOAT32 or len(users) != 1:
            continue
        op = sg.operators[users[0]]
        out = _ints(op.outputs)[0]
        if op_code(model, op) == BuiltinOp.QUANTIZE and int(sg.tensors[out].type) == TensorType.INT8:
            inputs[pos] = out
            drop.add(users[0])
            _retarget_signature(model, 0, t, out)
    outputs = _ints(sg.outputs)
    for pos, t in enumerate(outputs):
        o = producer.get(t)
        if o is None or int(sg.tensors[t].type) != TensorType.FLOAT32:
            continue
        op = sg.operators[o]
        src = _ints(op.inputs)[0]
        if (op_code(model, op) == BuiltinOp.DEQUANTIZE and int(sg.tensors[src].type) == TensorType.INT8
                and src not in outputs):
            outputs[pos] = src
            drop.add(o)
            _retarget_signature(model, 0, t, src)
    if drop:
        sg.inputs, sg.outputs = inputs, outputs
        remove_operators(sg, drop)
        prune_unreferenced(model)
    return len(drop)


def _opcode_index(model: schema.ModelT, code: BuiltinOp, version: int) -> int:
    for i, oc in enumerate(model.operatorCodes or []):
        if max(int(oc.builtinCode), int(oc.deprecatedBuiltinCode)) == code:
            return i
    oc = schema.OperatorCodeT()
    oc.builtinCode = oc.deprecatedBuiltinCode = int(code)
    oc.version = version
    model.operatorCodes.append(oc)
    return len(model.operatorCodes) - 1


def _float_twin(sg: schema.SubGraphT, t: int, suffix: str) -> int:
    src = sg.tensors[t]
    twin = schema.TensorT()
    twin.shape, twin.shapeSignature = src.shape, src.shapeSignature
    twin.type, twin.buffer = TensorType.FLOAT32, 0
    twin.name = tensor_name(src) + suffix
    sg.tensors.append(twin)
    return len(sg.tensors) - 1


def _operator(index: int, inputs: list[int], outputs: list[int]) -> schema.OperatorT:
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = index, inputs, outputs
    return op


def to_float_io(model: schema.ModelT) -> int:
    """Give every int8 input and output of subgraph 0 a float32 twin at the boundary; returns how many."""
    sg = model.subgraphs[0]
    quantize = dequantize = None
    head, tail = [], []
    inputs, outputs = _ints(sg.inputs), _ints(sg.outputs)
    for pos, t in enumerate(inputs):
        if int(sg.tensors[t].type) == TensorType.INT8:
            quantize = _opcode_index(model, BuiltinOp.QUANTIZE, 2) if quantize is None else quantize
            f = _float_twin(sg, t, "_float")
            head.append(_operator(quantize, [f], [t]))
            inputs[pos] = f
            _retarget_signature(model, 0, t, f)
    for pos, t in enumerate(outputs):
        if int(sg.tensors[t].type) == TensorType.INT8:
            dequantize = _opcode_index(model, BuiltinOp.DEQUANTIZE, 2) if dequantize is None else dequantize
            f = _float_twin(sg, t, "_float")
            tail.append(_operator(dequantize, [t], [f]))
            outputs[pos] = f
            _retarget_signature(model, 0, t, f)
    sg.inputs, sg.outputs = inputs, outputs
    sg.operators = head + list(sg.operators or []) + tail
    return len(head) + len(tail)
