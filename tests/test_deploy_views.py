"""What a new user sees: fidelity (after vs before) in the terminal, report.json, report.md and the
dashboards; the top-1 gate; deploy --allow-cpu; every target of a model directory on its top-level page;
Ethos-N78 figures marked as an analytical estimate; microseconds next to cycles; the history."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from fixtures_compile import *
from fixtures_pipeline import deploy, tree_digest

from toolchain.cli import main

pytestmark = pytest.mark.tf  # input models come from the real converter


@pytest.fixture(scope="module")
def constant_int8(tmp_path_factory) -> Path:
    """A classifier whose softmax is saturated on one class for every input (a bias that outweighs the
    inputs): its int8 output never moves, so verification on it compares nothing."""
    import model_factory as mf

    keras = mf._keras()
    keras.utils.set_random_seed(0)
    inp = keras.Input((16,), batch_size=1)
    x = keras.layers.Dense(32, activation="relu", name="fc1")(inp)
    bias = keras.initializers.Constant([60.0] + [0.0] * 7)
    out = keras.layers.Dense(8, activation="softmax", name="fc2", bias_initializer=bias)(x)
    path = tmp_path_factory.mktemp("constant") / "constant.tflite"
    path.write_bytes(mf.convert_int8(keras.Model(inp, out)))
    return path


def test_constant_outputs_are_not_informative_everywhere(constant_int8, tmp_path, capsys):
    out = tmp_path / "k4.tflite"
    assert main(["recluster", str(constant_int8), "-o", str(out), "-k", "4"]) == 0
    text = capsys.readouterr().out
    line = next(ln for ln in text.splitlines() if ln.startswith("verification: "))
    assert "not informative" in line and "--calibration" in line and "output steps" not in line
    assert json.loads(out.with_suffix(".json").read_text())["verification"]["informative"] is False
    assert main(["recluster", str(constant_int8), "-o", str(out), "-k", "4", "--min-top1-agreement", "0.5"]) == 5
    assert "top-1 agreement is not measurable" in capsys.readouterr().err

    run = deploy(str(constant_int8), "--target", "ethos-u55", "--clusters", "4", "--build-dir", str(tmp_path / "b"))
    assert run.rc == 0, run.stderr
    summary = next(ln for ln in run.stdout.splitlines() if ln.startswith("after vs before: "))
    assert "WARNING: not informative" in summary and "--calibration" in summary and "--verify-data" in summary
    rdir = tmp_path / "b" / "constant" / "ethos-u55-128" / "report"
    doc = json.loads((rdir / "report.json").read_text())
    assert doc["fidelity"]["status"] == "not_informative" and doc["fidelity"]["informative"] is False
    assert any(w.startswith("after vs before: not informative") for w in doc["warnings"])
    assert "**WARNING**: not informative" in (rdir / "report.md").read_text()
    page = (rdir / "index.html").read_text()
    assert re.search(r'<p class="over" data-fidelity="not_informative">WARNING: not informative', page)
    combined = (tmp_path / "b" / "constant" / "index.html").read_text()
    assert '<span class="over" data-fidelity="not_informative">not measurable</span>' in combined


def test_low_agreement_is_warned_and_gated_after_the_reports(conv_bn_int8, tmp_path):
    import numpy as np

    cal = tmp_path / "cal.npz"  # varied images: on random int8 inputs this classifier answers one class
    np.savez(cal, x=np.random.default_rng(0).normal(0, 1, (128, 16, 16, 1)).astype(np.float32))
    base = (str(conv_bn_int8), "--target", "ethos-u55", "--clusters", "2", "--build-dir", str(tmp_path / "b"),
            "--calibration", str(cal), "--objective", "weights")
    run = deploy(*base, "--json")
    assert run.rc == 0, run.stderr
    rdir = tmp_path / "b" / "conv_bn_int8" / "ethos-u55-128" / "report"
    doc = json.loads((rdir / "report.json").read_text())
    top1 = doc["fidelity"]["top1_agreement"]
    assert top1 < 0.99 and doc["fidelity"]["status"] == "low" and run.json["fidelity"] == doc["fidelity"]
    assert doc["fidelity"]["top1_agreement"] == doc["recluster"]["verification"]["top1_agreement"]
    assert any("after vs before" in w and f"{top1:.3f}" in w for w in doc["warnings"])
    assert re.search(r'<p class="over" data-fidelity="low">WARNING: top-1 agreement', (rdir / "index.html").read_text())
    assert "<span class=\"over\" data-fidelity=\"low\">" in (tmp_path / "b" / "conv_bn_int8" / "index.html").read_text()
    text = deploy(*base).stdout
    assert f"after vs before: top-1 agreement {top1:.3f}" in text and "WARNING" in text
    assert "on 128 samples of cal.npz (the weight-space fit does not use data)" in text
    assert re.search(r"\S+\s+class scores\s+top-1 agreement\s+" + f"{top1:.3f}", text)  # a row per output

    (rdir / "report.json").unlink()
    gated = deploy(*base, "--min-top1-agreement", "0.99", "--json")
    assert gated.rc == 5 and "below verify.min_top1_agreement" in gated.stderr
    assert gated.json["exit_code"] == 5
    # the recluster stage refuses it (up to date, but below the stricter gate): no stage after it runs
    assert [(s["name"], s["status"]) for s in gated.json["stages"]][-1] == ("recluster (K=2)", "rejected")
    assert not (rdir / "report.json").exists()
    cfg = tmp_path / "gate.toml"
    cfg.write_text(f"[verify]\nmin_top1_agreement = {top1}\n")
    assert deploy(*base, "--config", str(cfg)).rc == 0  # at the threshold: passes
    written = json.loads((rdir / "report.json").read_text())
    assert written["fidelity"]["min_top1_agreement"] == top1


def test_deploy_allow_cpu(hybrid_int8, tmp_path):
    base = (str(hybrid_int8), "--target", "ethos-u55", "--build-dir", str(tmp_path / "b"))
    refused = deploy(*base)
    assert refused.rc == 2 and "runs mostly on the CPU" in refused.stderr and "--allow-cpu" in refused.stderr
    accepted = deploy(*base, "--allow-cpu", "--json")
    assert accepted.rc == 0, accepted.stderr
    after = accepted.json["targets"][0]["models"]["after"]
    assert after["cpu_operators"] > 0


def test_model_page_lists_every_target_and_marks_the_estimate(conv_bn_int8, tmp_path):
    build = tmp_path / "b"
    mdir = build / "conv_bn_int8"
    u55 = deploy(str(conv_bn_int8), "--target", "ethos-u55", "--build-dir", str(build), "--json")
    assert u55.rc == 0, u55.stderr
    n78 = deploy(str(conv_bn_int8), "--target", "ethos-n78", "--build-dir", str(build))
    assert n78.rc == 0, n78.stderr
    row = next(ln for ln in n78.stdout.splitlines() if ln.startswith("ethos-n78-1tops-4ple"))
    assert row.startswith("ethos-n78-1tops-4ple *")
    assert "* Ethos-N78 calibrated analytical estimate (max error on the grid: " in n78.stdout
    assert re.search(r"\bcycles\s+time us\b", n78.stdout)  # microseconds next to cycles

    page = (mdir / "index.html").read_text()
    assert "2 target(s)" in page  # the u55 target of the earlier run is still listed
    for name in ("ethos-u55-128", "ethos-n78-1tops-4ple"):
        assert f'href="./{name}/report/index.html"' in page  # relative, built by the dashboard
    assert '<a href="./ethos-n78-1tops-4ple/report/index.html">ethos-n78-1tops-4ple</a> <span class="estimate">' \
           "(analytical estimate)</span>" in page
    assert "Cycles per inference (Ethos-N78: estimate)" in page and "time after (us)" in page
    n78_page = (mdir / "ethos-n78-1tops-4ple" / "report" / "index.html").read_text()
    assert "ESTIMATE (not a Vela compile): calibrated analytical estimate (max error on the grid:" in n78_page
    assert "Cycles per inference (analytical estimate)" in n78_page
    assert "Time per inference (analytical estimate)" in n78_page
    n78_md = (mdir / "ethos-n78-1tops-4ple" / "report" / "report.md").read_text()
    assert "ESTIMATE, not a Vela compile: calibrated analytical estimate (max error on the grid:" in n78_md
    assert "| cycles (analytical estimate) |" in n78_md and "| inference time (us) (analytical estimate) |" in n78_md
    u55_doc = json.loads((mdir / "ethos-u55-128" / "report" / "report.json").read_text())
    u55_us = f"{u55_doc['models']['after']['inference_time_s'] * 1e6:,.1f}"
    assert u55_us in page

    # history: one entry per changed result, none for runs that alternate between unchanged targets
    history = mdir / "history.jsonl"
    assert len(history.read_text().splitlines()) == 2
    before = tree_digest(build)
    again = deploy(str(conv_bn_int8), "--target", "ethos-u55", "--build-dir", str(build), "--json")
    assert again.rc == 0 and again.json["history_appended"] is False
    assert tree_digest(build) == before  # nothing rewritten, the page still lists both targets
