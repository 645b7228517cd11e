"""The quantization rules LiteRT enforces, checked by the one model validator (toolchain.tflite.validate) that
every verb reads models through: one test per rule, on converter-made models edited in a single place.

Where LiteRT's own prepare step refuses the edited model, the test shows it too: the rule is LiteRT's, not
ours; the validator only says so earlier, in one line, before any stage rescales a weight.
"""
from __future__ import annotations

import json
import shutil

import fuzz_mutators as fm
import numpy as np
import pytest

from toolchain.core.errors import ModelFormatError
from toolchain.tflite.graph import BuiltinOp, op_code
from toolchain.tflite.model_io import read_model

pytestmark = pytest.mark.tf  # the models are made with the TFLite converter (conftest)


def _op(m, code: BuiltinOp):
    return next(op for op in m.subgraphs[0].operators if op_code(m, op) == code)


def _input(m, code: BuiltinOp, position: int):
    return m.subgraphs[0].tensors[int(_op(m, code).inputs[position])]


def zero_weight_scale(m):
    q = _input(m, BuiltinOp.FULLY_CONNECTED, 1).quantization
    q.scale = [0.0] + [float(s) for s in q.scale[1:]]


def three_bias_scales(m):
    q = _input(m, BuiltinOp.CONV_2D, 2).quantization  # 16 channels
    q.scale, q.zeroPoint = [float(s) for s in q.scale[:3]], [0, 0, 0]


def per_channel_activation(m):
    t = m.subgraphs[0].tensors[int(_op(m, BuiltinOp.CONV_2D).outputs[0])]
    n = int(t.shape[-1])
    t.quantization.scale, t.quantization.zeroPoint = [float(t.quantization.scale[0])] * n, [0] * n
    t.quantization.quantizedDimension = 3


def input_with_two_scales(m):
    q = m.subgraphs[0].tensors[int(m.subgraphs[0].inputs[0])].quantization
    q.scale, q.zeroPoint = [float(q.scale[0])] * 2, [int(q.zeroPoint[0])] * 2


def fc_weights_on_axis_1(m):
    t = _input(m, BuiltinOp.FULLY_CONNECTED, 1)
    n = int(t.shape[1])
    t.quantization.scale, t.quantization.zeroPoint = [float(t.quantization.scale[0])] * n, [0] * n
    t.quantization.quantizedDimension = 1


def rank_1001(m):
    m.subgraphs[0].tensors[int(m.subgraphs[0].inputs[0])].shape = [1] * 1001


RULES = [
    # (edit, seed, validator message, what LiteRT says, or None where LiteRT runs the model anyway)
    (zero_weight_scale, "dense", "have quantization scale 0 in channel 0", "unsupported scale value"),
    (three_bias_scales, "conv", "has 3 quantization scales for the 16 channels", "num_scales must be 1"),
    (per_channel_activation, "conv", "is an activation \\(or input\\) with 16 quantization scales",
     "no_integer_overflow_from_quantization"),
    (input_with_two_scales, "conv", "has 2 quantization scales for the 1 channels", "num_scales must be 1"),
    (fc_weights_on_axis_1, "dense", ("quantized per channel along dimension 1; this operator takes them along "
                                     "dimension 0"), "quantized_dimension != 0"),
    (rank_1001, "dense", "has 1001 dimensions; at most 8 are supported", None),
]


def _litert_error(data: bytes) -> str | None:
    from ai_edge_litert.interpreter import Interpreter

    try:
        it = Interpreter(model_content=data)
        it.allocate_tensors()
        for d in it.get_input_details():
            it.set_tensor(d["index"], np.zeros(d["shape"], d["dtype"]))
        it.invoke()
    except (RuntimeError, ValueError) as exc:
        return str(exc)
    return None


@pytest.mark.parametrize("edit, seed, message, litert", RULES, ids=[r[0].__name__ for r in RULES])
def test_each_quantization_rule_refuses_what_litert_refuses(edit, seed, message, litert, dense_int8, conv_bn_int8):
    data = fm.edited_model({"dense": dense_int8, "conv": conv_bn_int8}[seed].read_bytes(), edit)
    with pytest.raises(ModelFormatError, match="malformed .tflite: .*" + message):
        read_model(data)
    if litert is not None:
        assert litert in (_litert_error(data) or "LiteRT ran it")


def test_real_models_pass_the_quantization_rules(dense_int8, conv_bn_int8, depthwise_int8):
    for path in (dense_int8, conv_bn_int8, depthwise_int8):
        data = path.read_bytes()
        read_model(data)
        assert _litert_error(data) is None


def test_every_verb_reads_through_the_validator(dense_int8, tmp_path):
    """A weight channel with scale 0 (recluster used to write a NaN bias scale its own inspect then refused)."""
    from toolchain.api import deploy
    from toolchain.firmware.config import FirmwareConfig
    from toolchain.firmware.firmware import firmware_from_compile_dir
    from toolchain.palettes.table import PalettiseConfig, build_palette_set
    from toolchain.pipeline.result import DeployOptions
    from toolchain.rewrite.config import ReclusterConfig
    from toolchain.rewrite.inspect import inspect_model
    from toolchain.rewrite.recluster import recluster_model
    from toolchain.targets.compile import compile_model
    from toolchain.targets.profiles import load_profile

    bad = fm.edited_model(dense_int8.read_bytes(), zero_weight_scale)
    model = tmp_path / "bad.tflite"
    model.write_bytes(bad)
    good = compile_model(dense_int8, load_profile("ethos-u55-128"), tmp_path / "compiled")
    compiled = tmp_path / "compiled_bad"
    shutil.copytree(tmp_path / "compiled", compiled)
    (compiled / good.vela_model.name).write_bytes(bad)  # a compile directory whose model was swapped
    info = json.loads((compiled / "compile.json").read_text())
    assert info["vela_model"] == good.vela_model.name
    verbs = {
        "inspect": lambda: inspect_model(bad),
        "recluster": lambda: recluster_model(bad, ReclusterConfig()),
        "palettise": lambda: build_palette_set(bad, PalettiseConfig(tflm=False)),
        "compile": lambda: compile_model(model, load_profile("ethos-u55-128"), tmp_path / "c"),
        "firmware": lambda: firmware_from_compile_dir(compiled, tmp_path / "fw", FirmwareConfig("ethos-u55-128")),
        "deploy": lambda: deploy(DeployOptions(model=model, build_dir=tmp_path / "build")),
    }
    for run in verbs.values():
        with pytest.raises(ModelFormatError, match="quantization scale 0"):
            run()
    assert not (tmp_path / "c").exists() and not (tmp_path / "fw").exists() and not (tmp_path / "build").exists()
