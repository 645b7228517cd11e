"""Vela's encoder as the rate model: per-tensor sizes summed against a full compile by the Vela command line."""
from __future__ import annotations

import numpy as np
import pytest

from toolchain.core.errors import ToolError
from toolchain.rewrite.config import ReclusterConfig
from toolchain.rewrite.recluster import recluster_model
from toolchain.targets.compile import compile_model
from toolchain.targets.profiles import load_profile
from toolchain.targets.weight_encoding import EncoderTarget, VelaEncoder, encoder_for
from toolchain.tflite.graph import find_weight_tensors, tensor_values
from toolchain.tflite.model_io import read_model

pytestmark = pytest.mark.tf


def _vela_figure(tmp_path, data: bytes, target: str, name: str) -> int:
    path = tmp_path / f"{name}.tflite"
    path.write_bytes(data)
    r = compile_model(path, load_profile(target), tmp_path / f"{name}-{target}", enforce_budget=False)
    return int(r.report["encoded_weight_bytes"])


@pytest.mark.parametrize("target", ["ethos-u55-128", "ethos-u85-256"])
def test_per_tensor_sizes_add_up_to_vela_compile(conv_bn_int8, depthwise_int8, tmp_path, target):
    encoder = encoder_for(load_profile(target))
    try:
        for fixture in (conv_bn_int8, depthwise_int8):
            data = fixture.read_bytes()
            rate = encoder.model_rate(data)
            assert rate.model_total_bytes == _vela_figure(tmp_path, data, target, fixture.stem)
            for k in (4, 16):
                out, _ = recluster_model(data, ReclusterConfig(clusters=k, min_weights=0, include_depthwise=True))
                m = read_model(out)
                changed = {w.name: tensor_values(m, m.subgraphs[0].tensors[w.tensor_index])
                           for w in find_weight_tensors(m)}
                predicted = rate.total_bytes(changed)
                vela = _vela_figure(tmp_path, out, target, f"{fixture.stem}-k{k}")
                assert abs(predicted - vela) <= 0.01 * vela, (fixture.stem, k, predicted, vela)
                assert rate.model_bytes_of(out) == vela
    finally:
        encoder.close()


def test_accelerators_encode_differently_and_answers_are_cached(conv_bn_int8):
    data = conv_bn_int8.read_bytes()
    u55, u85 = (encoder_for(load_profile(t)) for t in ("ethos-u55-128", "ethos-u85-256"))
    try:
        a, b = u55.model_rate(data), u85.model_rate(data)
        assert a.original_bytes != b.original_bytes  # U85's streams are not U55's (measured: conv and dense differ)
        compiles = u55.compiles
        name = next(iter(a.original_bytes))
        w = next(w for w in find_weight_tensors(read_model(data)) if w.name == name)
        q = tensor_values(read_model(data), read_model(data).subgraphs[0].tensors[w.tensor_index])
        assert a.tensor_bytes(name, q) == a.original_bytes[name]
        assert u55.compiles == compiles  # the same content is not compiled again
        assert a.tensor_bytes(name, np.zeros_like(q)) < a.original_bytes[name]  # zeros: Vela's cheapest code
    finally:
        u55.close()
        u85.close()


def test_a_model_vela_cannot_size_is_a_tool_error():
    enc = VelaEncoder(EncoderTarget.of(load_profile("ethos-u55-128")))
    try:
        with pytest.raises(ToolError, match="could not size|stopped"):
            enc.model_bytes(b"TFL3" * 8)
    finally:
        enc.close()
