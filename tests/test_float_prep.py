"""tflite.float_prep: the edits a float model gets before ai-edge-quantizer reads it change no output.

Inputs are real converter models: float16 weights behind DEQUANTIZE, sparse float16 weights behind DENSIFY
(the converter's sparsity mode on a model with 80% zero weights), and the same model with its operator codes
written the way old converters wrote them (only the deprecated field). LiteRT runs the model before and after
on seeded inputs; the outputs must be bit-identical.
"""
from __future__ import annotations

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter, OpResolverType

from toolchain.tflite.float_prep import prepare_float_model
from toolchain.tflite.graph import BuiltinOp, op_code
from toolchain.tflite.model_io import read_model, write_model

pytestmark = pytest.mark.tf


@pytest.fixture(scope="module")
def sparse_fp16(model_dir):
    import model_factory as mf

    path = model_dir / "conv_bn_sparse_fp16.tflite"
    if not path.exists():
        path.write_bytes(mf.convert_float16_sparse(mf.conv_bn_model()))
    return path.read_bytes()


def _outputs(model: bytes, seed: int = 0) -> list[np.ndarray]:
    it = Interpreter(model_content=model,
                     experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    it.allocate_tensors()
    rng = np.random.default_rng(seed)
    for d in it.get_input_details():
        it.set_tensor(d["index"], rng.normal(0, 1, d["shape"]).astype(d["dtype"]))
    it.invoke()
    return [it.get_tensor(d["index"]).copy() for d in it.get_output_details()]


def _ops(model: bytes) -> list[int]:
    m = read_model(model)
    return [op_code(m, op) for op in m.subgraphs[0].operators]


def test_sparse_float16_folds_to_float32_with_identical_outputs(sparse_fp16):
    before = _ops(sparse_fp16)
    assert BuiltinOp.DENSIFY in before and BuiltinOp.DEQUANTIZE in before  # what the fixture is for
    out, prep = prepare_float_model(sparse_fp16)
    assert prep.densified == before.count(BuiltinOp.DENSIFY)
    assert prep.float16_folded == before.count(BuiltinOp.DEQUANTIZE)
    after = _ops(out)
    assert BuiltinOp.DENSIFY not in after and BuiltinOp.DEQUANTIZE not in after
    assert len(after) == len(before) - prep.densified - prep.float16_folded
    for seed in range(3):
        for a, b in zip(_outputs(sparse_fp16, seed), _outputs(out, seed)):
            assert a.dtype == b.dtype and np.array_equal(a.view(np.uint8), b.view(np.uint8))
    assert len(read_model(out).signatureDefs) == 1 and not prep.signature_added  # the converter wrote one
    assert len(out) > len(sparse_fp16)  # float32 dense weights: the file grows, nothing is lost


def test_old_operator_codes_are_completed_and_a_signature_added(sparse_fp16):
    folded, _ = prepare_float_model(sparse_fp16)
    m = read_model(folded)
    m.signatureDefs = []  # as MediaPipe's models ship
    for oc in m.operatorCodes:  # as old converters wrote them: the code in the deprecated field only
        oc.deprecatedBuiltinCode, oc.builtinCode = max(int(oc.builtinCode), int(oc.deprecatedBuiltinCode)), 0
    old = write_model(m)
    out, prep = prepare_float_model(old)
    assert prep.codes_completed == len(m.operatorCodes) - sum(
        int(oc.deprecatedBuiltinCode) == 0 for oc in m.operatorCodes)
    new = read_model(out)
    assert all(int(oc.builtinCode) == int(oc.deprecatedBuiltinCode) for oc in new.operatorCodes)
    assert prep.signature_added and [int(t.tensorIndex) for t in new.signatureDefs[0].inputs] == list(
        new.subgraphs[0].inputs)
    for a, b in zip(_outputs(old), _outputs(out)):
        assert np.array_equal(a, b)


def test_a_prepared_model_comes_back_unchanged(sparse_fp16):
    once, _ = prepare_float_model(sparse_fp16)
    twice, prep = prepare_float_model(once)
    assert not prep.changed and twice == once
