"""Operators run in file order: validation refuses a graph whose operators read tensors written later (or
in a cycle), and control-flow operators naming subgraphs that do not exist or that run themselves.

Before these rules, operators out of order passed validation and LiteRT read uninitialised memory: three
identical runs of ``recluster`` gave three different reports. The models are the converter's dense model
edited once per rule (tests/fuzz_mutators.py), and a 5,000-operator chain built here for the cost.
"""
from __future__ import annotations

import time

import fuzz_mutators as fm
import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema

from toolchain.core.errors import ModelFormatError
from toolchain.tflite.model_io import read_model, write_model
from toolchain.tflite.validate import validate_model

pytestmark = pytest.mark.tf  # the dense model comes from the TFLite converter


@pytest.mark.parametrize("edit, message", [
    (fm.operators_swapped, ("operator 0 of subgraph 0 \\(FULLY_CONNECTED\\) reads tensor 4 .* before it is written: "
                            "it is written by operator 1, which runs later")),
    (fm.operator_cycle, "operator 0 .* reads tensor 5 .* written by operator 1, which runs later"),
    (lambda b: fm.control_flow_op(b, 99), ("operator 0 of subgraph 0 \\(CALL_ONCE\\) names subgraph 99 as its "
                                           "initSubgraphIndex; the model has 1 subgraph")),
    (lambda b: fm.control_flow_op(b, 0), "subgraph 0 runs subgraph 0 through control flow"),
])
def test_graphs_that_cannot_run_in_file_order_are_refused(dense_int8, edit, message):
    seed = dense_int8.read_bytes()
    read_model(seed)  # the converter's model passes
    with pytest.raises(ModelFormatError, match=message):
        read_model(edit(seed))


def test_an_operator_reading_its_own_output_is_a_cycle(dense_int8):
    def edit(m):
        op = m.subgraphs[0].operators[1]
        op.inputs = [int(op.outputs[0]), *(int(i) for i in op.inputs[1:])]
    with pytest.raises(ModelFormatError, match="operator 1 .* written by itself"):
        read_model(fm.edited_model(dense_int8.read_bytes(), edit))


def _chain(n: int) -> schema.ModelT:
    """Input -> n RELU operators -> output, in order."""
    m = schema.ModelT()
    m.version = 3
    oc = schema.OperatorCodeT()
    oc.builtinCode = oc.deprecatedBuiltinCode = schema.BuiltinOperator.RELU
    oc.version = 1
    m.operatorCodes = [oc]
    m.buffers = [schema.BufferT() for _ in range(n + 2)]
    sg = schema.SubGraphT()
    sg.tensors = []
    for i in range(n + 1):
        t = schema.TensorT()
        t.name, t.shape, t.type, t.buffer = f"t{i}".encode(), np.array([1, 8], np.int32), schema.TensorType.FLOAT32, i + 1
        sg.tensors.append(t)
    sg.operators = []
    for i in range(n):
        op = schema.OperatorT()
        op.opcodeIndex, op.inputs, op.outputs = 0, np.array([i], np.int32), np.array([i + 1], np.int32)
        sg.operators.append(op)
    sg.inputs, sg.outputs = np.array([0], np.int32), np.array([n], np.int32)
    m.subgraphs = [sg]
    return m


def test_thousands_of_operators_validate_in_milliseconds():
    model = read_model(write_model(_chain(5000)))
    t0 = time.perf_counter()
    validate_model(model)
    elapsed_s = time.perf_counter() - t0
    assert elapsed_s < 0.5, elapsed_s  # ~30 ms here; generous for a loaded CI machine
    ops = model.subgraphs[0].operators
    ops[10], ops[4000] = ops[4000], ops[10]
    with pytest.raises(ModelFormatError, match="operator 10 .* reads tensor 4000 .* written by operator 3999, which runs later"):
        validate_model(model)
