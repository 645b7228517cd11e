"""The Ethos-N78 estimate on real converter-made models: how a .tflite becomes the support library's network,
and what the calibrated model reports for it (Arm's own figures: test_ethos_n_calibration, test_ethos_n_bridge)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter
from fixtures_compile import compile_models_dir, gather_int8

from toolchain.targets.compile import compile_model
from toolchain.targets.ethos_n import estimate_network
from toolchain.targets.ethos_n_from_tflite import network_from_tflite
from toolchain.targets.ethos_n_network import EthosNOpKind
from toolchain.targets.ethos_n_variants import EthosNVariant
from toolchain.targets.profiles import load_profile
from toolchain.tflite.model_io import read_model

pytestmark = pytest.mark.tf

__all__ = ["compile_models_dir", "gather_int8"]


def _interpreter_tensors(path):
    interp = Interpreter(model_path=str(path))
    tensors = {t["index"]: t for t in interp.get_tensor_details()}
    return interp, tensors


def _nhwc(shape) -> tuple[int, ...]:
    shape = [int(d) for d in shape]
    return {4: tuple(shape), 2: (shape[0], 1, 1, shape[1])}[len(shape)]


@pytest.mark.parametrize("fixture", ["conv_bn_int8", "depthwise_int8"])
def test_the_network_is_the_models_operators_with_their_weights_rearranged(fixture, request):
    path = request.getfixturevalue(fixture)
    net, cpu = network_from_tflite(read_model(path.read_bytes()))
    interp, tensors = _interpreter_tensors(path)
    ops = interp._get_ops_details()
    assert not cpu and [layer.index for layer in net.layers] == list(range(len(ops)))
    for layer, op in zip(net.layers, ops):
        assert layer.op == op["op_name"]
        main = layer.main
        if layer.op == "FULLY_CONNECTED":
            main = layer.ops[[o.kind for o in layer.ops].index(EthosNOpKind.FULLY_CONNECTED)]
        out = tensors[op["outputs"][0]]
        assert layer.ops[-1].output == op["outputs"][0]
        assert layer.ops[-1].out.shape == _nhwc(out["shape"])
        assert layer.ops[-1].out.scale == pytest.approx(out["quantization"][0])
        if main.weights is None:
            continue
        raw = interp.get_tensor(op["inputs"][1])  # LiteRT's copy of the TFLite weights
        if layer.op == "CONV_2D":
            expected = raw.transpose(1, 2, 3, 0)  # OHWI -> HWIO
        elif layer.op == "DEPTHWISE_CONV_2D":
            expected = raw.reshape(raw.shape[1], raw.shape[2], raw.shape[3], 1)  # HWIM
        else:
            assert layer.op == "FULLY_CONNECTED", layer.op
            expected = raw.T.reshape(1, 1, *raw.T.shape)
        np.testing.assert_array_equal(main.weights.values, expected)
        assert len(main.weights.scales) == len(tensors[op["inputs"][1]]["quantization_parameters"]["scales"])


def test_an_operator_the_library_cannot_take_is_named_with_the_toolchains_reason(gather_int8, tmp_path):
    d = compile_model(gather_int8, load_profile("ethos-n78"), tmp_path, allow_cpu=True).report
    [gather] = [n for n in d["ethos_n"]["not_supported"] if n["op"] == "GATHER"]
    assert gather["source"] == "toolchain"
    assert gather["reason"].endswith("is INT32, 1-D: the support library holds per-tensor quantized int8 or uint8 "
                                     "tensors of up to 4 dimensions only")
    assert {c["name"] for c in d["cpu_fallback"]} == {n["name"] for n in d["ethos_n"]["not_supported"]}
    assert {la["target"] for la in d["layers"] if la["op"] == "GATHER"} == {"cpu"}
    assert any("GATHER" in w and "does not run on the NPU (toolchain:" in w for w in d["warnings"])


def test_a_mean_arm_has_no_kernel_for_is_named_with_arms_rule(tmp_path):
    """Arm's support library averages 7x7 and 8x8 planes only (SupportQueries::IsMeanXySupported): a global average
    over 16x16 does not run on the NPU, and the report says why; over 8x8 it does."""
    from model_factory import conv_bn_model, convert_int8

    path = tmp_path / "mean16.tflite"
    path.write_bytes(convert_int8(conv_bn_model(input_hw=32)))
    net, _ = network_from_tflite(read_model(path.read_bytes()))
    [mean] = [la for la in net.layers if la.op == "MEAN"]
    assert not mean.mapped and mean.main.reason == "MeanXy is supported for 7x7 and 8x8 as HeightxWidth only"
    d = compile_model(path, load_profile("ethos-n78"), tmp_path / "out", allow_cpu=True).report
    [row] = [n for n in d["ethos_n"]["not_supported"] if n["op"] == "MEAN"]
    assert row["reason"].endswith("MeanXy is supported for 7x7 and 8x8 as HeightxWidth only")
    assert {la["target"] for la in d["layers"] if la["op"] == "MEAN"} == {"cpu"}


def test_the_estimate_adds_up(conv_bn_int8, tmp_path):
    d = compile_model(conv_bn_int8, load_profile("ethos-n78-8tops-2ple"), tmp_path, allow_cpu=True).report
    npu = [la for la in d["layers"] if la["target"] == "npu"]
    cpu = [la for la in d["layers"] if la["target"] == "cpu"]
    assert d["cycles_total"] == sum(la["cycles"] for la in npu) == d["ethos_n"]["model_cycles_total"]
    assert all(la["cycles"] == 0 and la["encoded_weight_bytes"] is None for la in cpu)
    assert all(la["cycles"] >= max(la["mce_cycles"], la["ple_cycles"]) for la in npu)
    assert d["inference_time_s"] == pytest.approx(d["cycles_total"] / 1e9)
    assert d["ethos_n"]["variant"] == "ETHOS_N78_8TOPS_2PLE_RATIO" and d["ethos_n"]["sram_bytes"] == 2 << 20
    assert d["ethos_n"]["estimator"] == "calibrated_model" and d["ethos_n"]["support_library_version"] is None
    assert 0 < d["budget"]["sram_used_bytes"] <= 2 << 20


# Arm's figures on the same converter-made networks (benchmarks/ethos_n_networks.py --library PATH)
_NETWORKS = json.loads((Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "ethos_n_networks.json")
                       .read_text())["rows"]


@pytest.mark.parametrize("fixture,network", [("conv_bn_int8", "conv_bn"), ("depthwise_int8", "depthwise")])
def test_the_network_estimate_follows_arms_passes(fixture, network, request):
    """conv_bn: Arm runs the strided convolution's interleave in the PLE of the convolution before it and the
    mean in the strided convolution's, in two passes that write to DRAM; depthwise: the reshape before the dense
    layer reads its input from DRAM. Over the layers both run on the NPU, the model's totals are Arm's."""
    net, _ = network_from_tflite(read_model(request.getfixturevalue(fixture).read_bytes()))
    rows = [r for r in _NETWORKS if r["network"] == network]
    assert len(rows) == 4
    for row in rows:
        v = EthosNVariant(row["variant"])
        est = estimate_network(net, v, v.hardware.default_sram_bytes)
        on_npu = [e for e in est.values() if e is not None]
        assert len(on_npu) == row["layers_compared"]
        assert sum(e.cycles for e in on_npu) == pytest.approx(row["arm_cycles"], rel=0.02)
        assert sum(e.encoded_weight_bytes for e in on_npu) == pytest.approx(row["arm_weight_bytes"], rel=0.05)
        if network == "conv_bn":  # the mean makes no pass of its own; the interleave none either
            assert [e.passes for e in on_npu] == [1, 1, 0]
