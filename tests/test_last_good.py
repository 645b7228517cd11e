"""A failed gate keeps the last good output: ``toolchain recluster`` and deploy's recluster stage write the
rejected candidate beside it (``*.rejected.tflite``), leave the good output and its manifest in place, and
never take the rejected result for up to date."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from fixtures_pipeline import deploy

from toolchain.cli import main
from toolchain.tflite.graph import find_weight_tensors, tensor_values
from toolchain.tflite.model_io import read_model

pytestmark = pytest.mark.tf  # the input model is made with the TFLite converter


def _max_distinct(path: Path) -> int:
    model = read_model(path.read_bytes())
    return max(int(np.unique(tensor_values(model, model.subgraphs[w.subgraph].tensors[w.tensor_index])).size)
               for w in find_weight_tensors(model))


def _digests(d: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.iterdir()) if p.is_file()}


@pytest.fixture
def check_npz(tmp_path) -> Path:
    """Varied images for the check: on random int8 inputs the small classifier answers one class, so top-1
    agreement is not measurable there (a gate then fails for that reason, not for the agreement)."""
    path = tmp_path / "check" / "varied.npz"
    path.parent.mkdir()
    np.savez(path, x=np.random.default_rng(3).normal(0, 1, (64, 16, 16, 1)).astype(np.float32))
    return path


# ----------------------------------------------------------------------------- toolchain recluster


def test_recluster_gate_keeps_the_last_good_output(conv_bn_int8, check_npz, tmp_path, capsys):
    out, report = tmp_path / "out.tflite", tmp_path / "out.json"
    check = ["--verify-data", str(check_npz)]
    assert main(["recluster", str(conv_bn_int8), "-o", str(out), "-k", "16", *check]) == 0
    good, good_report = out.read_bytes(), report.read_bytes()
    capsys.readouterr()
    # K=2 loses agreement with the original: below a 0.99 gate, exit 5
    gated = ["recluster", str(conv_bn_int8), "-o", str(out), "-k", "2", *check, "--min-top1-agreement", "0.99"]
    assert main(gated) == 5
    cap = capsys.readouterr()
    assert out.read_bytes() == good and report.read_bytes() == good_report
    rejected, rejected_report = tmp_path / "out.rejected.tflite", tmp_path / "out.rejected.json"
    assert _max_distinct(rejected) <= 2 < _max_distinct(out)  # the candidate is there to inspect
    assert b'"top1_agreement"' in rejected_report.read_bytes()
    err = cap.err.strip()
    assert "\n" not in err and "below --min-top1-agreement 0.99" in err
    assert f"rejected candidate written to {rejected} and {rejected_report}" in err
    assert f"{out}, {report} kept (the last good output)" in err
    assert f"wrote {rejected} and {rejected_report}" in cap.out
    # the same command again: rejected again, nothing taken for up to date
    assert main(gated) == 5 and out.read_bytes() == good
    # a passing run replaces the output and removes the rejected candidate it supersedes
    capsys.readouterr()
    assert main(["recluster", str(conv_bn_int8), "-o", str(out), "-k", "2", *check]) == 0
    assert _max_distinct(out) <= 2 and not rejected.exists() and not rejected_report.exists()


def test_recluster_sqnr_gate_keeps_the_last_good_output_too(conv_bn_int8, check_npz, tmp_path, capsys):
    out = tmp_path / "out.tflite"
    check = ["--verify-data", str(check_npz)]
    assert main(["recluster", str(conv_bn_int8), "-o", str(out), "-k", "16", *check]) == 0
    good = out.read_bytes()
    capsys.readouterr()
    assert main(["recluster", str(conv_bn_int8), "-o", str(out), "-k", "2", *check, "--min-output-sqnr", "60"]) == 5
    err = capsys.readouterr().err
    assert "is below --min-output-sqnr 60 dB" in err and "kept (the last good output)" in err
    assert out.read_bytes() == good and _max_distinct(tmp_path / "out.rejected.tflite") <= 2


def test_recluster_gate_without_an_earlier_output_writes_only_the_rejected_candidate(conv_bn_int8, tmp_path, capsys):
    out = tmp_path / "new.tflite"
    assert main(["recluster", str(conv_bn_int8), "-o", str(out), "-k", "2", "--min-top1-agreement", "0.99"]) == 5
    assert not out.exists() and not (tmp_path / "new.json").exists()
    assert (tmp_path / "new.rejected.tflite").is_file()
    assert f"{out}, {tmp_path / 'new.json'} not written" in capsys.readouterr().err


def test_recluster_budget_gate_keeps_the_last_good_output(conv_bn_int8, tmp_path, capsys):
    out = tmp_path / "out.tflite"
    assert main(["recluster", str(conv_bn_int8), "-o", str(out), "-k", "16"]) == 0
    before = _digests(tmp_path)
    assert main(["recluster", str(conv_bn_int8), "-o", str(out), "--weight-budget", "1"]) == 4
    assert "weight budget" in capsys.readouterr().err
    assert _digests(tmp_path) == before  # planning failed: no candidate, nothing touched


def test_rejected_path_may_not_be_the_input(conv_bn_int8, tmp_path, capsys):
    model = tmp_path / "m.rejected.tflite"
    model.write_bytes(conv_bn_int8.read_bytes())
    assert main(["recluster", str(model), "-o", str(tmp_path / "m.tflite"), "-k", "2",
                 "--min-top1-agreement", "0.99"]) == 2
    assert model.read_bytes() == conv_bn_int8.read_bytes()
    capsys.readouterr()


# ----------------------------------------------------------------------------- deploy's recluster stage


def test_deploy_rejected_stage_keeps_the_last_good_output_and_manifest(conv_bn_int8, check_npz, tmp_path):
    build = tmp_path / "b"
    base = (str(conv_bn_int8), "--target", "ethos-u55", "--build-dir", str(build), "--verify-data", str(check_npz))
    assert deploy(*base, "--clusters", "16").rc == 0
    rdir = build / "conv_bn_int8" / "recluster"
    report = build / "conv_bn_int8" / "ethos-u55-128" / "report" / "report.json"
    good, good_report = _digests(rdir), report.read_bytes()
    assert {"model.tflite", "recluster.json", "manifest.json"} <= set(good)

    gated = (*base, "--clusters", "2", "--min-top1-agreement", "0.99", "--json")
    run = deploy(*gated)
    assert run.rc == 5 and run.json["exit_code"] == 5
    stages = [(s["name"], s["status"]) for s in run.json["stages"]]
    assert stages[-1] == ("recluster (K=2)", "rejected")  # nothing after it ran
    assert f"rejected candidate written to {rdir / 'model.rejected.tflite'} and {rdir / 'recluster.rejected.json'}" \
        in run.stderr
    assert f"{rdir / 'model.tflite'}, {rdir / 'recluster.json'} kept (the last good output)" in run.stderr
    now = _digests(rdir)
    assert {k: v for k, v in now.items() if ".rejected." not in k} == good  # model, report and manifest as they were
    assert set(now) - set(good) == {"model.rejected.tflite", "recluster.rejected.json"}
    assert _max_distinct(rdir / "model.rejected.tflite") <= 2 < _max_distinct(rdir / "model.tflite")
    assert report.read_bytes() == good_report
    rejected = (rdir / "model.rejected.tflite").read_bytes()

    # a rebuild does the stage again (the rejected result is not up to date) and rejects it again
    again = deploy(*gated)
    assert again.rc == 5 and [(s["name"], s["status"]) for s in again.json["stages"]][-1] == stages[-1]
    assert again.json["stages"][-1]["time_s"] >= 0 and _digests(rdir) == now

    # back to the settings of the good output: up to date, and the rejected candidate beside it is cleared
    back = deploy(*base, "--clusters", "16", "--json")
    assert back.rc == 0 and ("recluster (K=16)", "up to date") in [(s["name"], s["status"]) for s in back.json["stages"]]
    assert _digests(rdir) == good
    # without the gate the rejected candidate is accepted: it replaces the output
    ok = deploy(*base, "--clusters", "2", "--json")
    assert ok.rc == 0, ok.stderr
    assert (rdir / "model.tflite").read_bytes() == rejected  # the same candidate, byte for byte
    # a stricter gate on that up-to-date stage fails without touching anything
    settled = _digests(rdir)
    strict = deploy(*gated)
    assert strict.rc == 5 and [(s["name"], s["status"]) for s in strict.json["stages"]][-1] == stages[-1]
    assert _digests(rdir) == settled
