"""A sample of the corpus of real third-party models (benchmarks/wild_corpus.py, `make corpus-wild`).

Downloads the mediapipe 0.10.21 wheel with pip (no install) into build/corpus-wild, then deploys the palm
detector (lite) and the selfie segmenter from their float files with synthetic calibration for ethos-u55-128
and ethos-u85-256. Without network the test skips saying so; under CI=true it fails.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
from conftest import IN_CI

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import wild_corpus as wc

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def mediapipe_models() -> dict[str, Path]:
    try:
        files = wc.fetch_mediapipe(REPO / "build" / "corpus-wild")
    except (wc.FetchError, OSError) as exc:
        msg = f"cannot download the mediapipe 0.10.21 wheel (no network to the package registry?): {exc}"
        if IN_CI:
            pytest.fail(f"CI=true but {msg}")
        pytest.skip(msg)
    return {f.stem: f for f in files}


def test_the_wheel_holds_14_models(mediapipe_models):
    assert len(mediapipe_models) == 14


def test_palm_detector_deploys_from_its_float_file(mediapipe_models, tmp_path):
    row = wc.record(mediapipe_models["palm_detection_lite"], tmp_path)
    assert "refused" not in row, row.get("refused")
    assert row["quantized"].startswith("ai-edge-quantizer") and row["rewritten"] != "no"
    for t in wc.TARGETS:
        m = row["targets"][t]
        assert m["npu_operators"] > 0 and m["encoded_after_bytes"] < m["encoded_before_bytes"]
    assert [o["name"] for o in row["fidelity"]["outputs"]] == ["Identity", "Identity_1"]


def test_selfie_segmenter_names_its_custom_operator(mediapipe_models, tmp_path):
    row = wc.record(mediapipe_models["selfie_segmentation"], tmp_path)
    said = row.get("refused") or row.get("fidelity_not_run") or ""
    assert "Convolution2DTransposeBias" in said
