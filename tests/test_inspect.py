from __future__ import annotations

import json

import numpy as np
import pytest

from toolchain.algorithms import metrics
from toolchain.cli import main
from toolchain.rewrite.inspect import inspect_model, tensor_stats

pytestmark = pytest.mark.tf


def test_tensor_stats_match_numpy():
    rng = np.random.default_rng(0)
    q = rng.integers(-20, 21, size=(6, 3, 3, 4)).astype(np.int8)
    q[0] = 0
    s = tensor_stats("t", "CONV_2D", q, 0, "per-channel")
    assert s.distinct_values == np.unique(q).size
    assert s.max_distinct_per_channel == max(np.unique(q[c]).size for c in range(6))
    assert s.zero_fraction == pytest.approx(np.mean(q == 0), abs=1e-6)
    _, counts = np.unique(q, return_counts=True)
    p = counts / counts.sum()
    assert s.entropy_bits_per_weight == pytest.approx(-(p * np.log2(p)).sum(), abs=1e-5)
    assert s.top32_fraction == pytest.approx(np.sort(counts)[::-1][:32].sum() / q.size, abs=1e-6)
    assert s.vela_palette == (s.top32_fraction > 0.5)


def test_vela_rules():
    c = metrics.value_counts(np.array([0] * 50 + [1] * 10 + [2] * 2, dtype=np.int8))
    assert metrics.vela_zero_runs_apply(c)
    c = metrics.value_counts(np.array([0] * 30 + [1] * 10, dtype=np.int8))
    assert not metrics.vela_zero_runs_apply(c)
    spread = metrics.value_counts(np.arange(-127, 128, dtype=np.int8))
    assert not metrics.vela_palette_applies(spread)


def test_inspect_cli_json_and_table(conv_bn_int8, capsys):
    assert main(["inspect", str(conv_bn_int8), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    direct = inspect_model(conv_bn_int8.read_bytes())
    assert data["weight_tensors"] == 3 == len(data["tensors"])
    assert data["model_bytes"] == conv_bn_int8.stat().st_size
    assert 0 < data["deflate_bytes"] < data["model_bytes"]
    assert [t["distinct_values"] for t in data["tensors"]] == [t.distinct_values for t in direct.tensors]
    assert main(["inspect", str(conv_bn_int8)]) == 0
    table = capsys.readouterr().out
    assert "distinct" in table and "CONV_2D" in table


def test_inspect_missing_and_directory(tmp_path, capsys):
    assert main(["inspect", str(tmp_path / "nope.tflite")]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["inspect", str(tmp_path)]) == 2
    assert "directory" in capsys.readouterr().err
