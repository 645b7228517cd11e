"""Verification that verifies, fidelity in plain sight, and the wording around them.

- ``compare_outputs``: per output top-1 agreement (on a class axis), max and mean difference in output
  steps, SQNR, and whether the reference varied at all; checked against numpy here.
- A constant reference is "not informative" (with the fix), never a lossless-looking figure: in the
  recluster command, the deploy summary, report.json/md and the dashboard (red mark).
- The top-1 gate (exit 5) after the reports are written, and a gate that cannot be checked fails.
- Wording: the recluster summary sentence, "before (input)" vs "before (tfmot)".
- History: an entry only when a target's results changed, also when runs alternate between targets.
"""
from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pytest

from toolchain.core.errors import VerificationError
from toolchain.reporting.fidelity import check_top1_gate, fidelity_of, verification_text
from toolchain.reporting.history import read_history, record_build
from toolchain.reporting.report import Variant
from toolchain.rewrite.outcome_text import rewrite_summary
from toolchain.rewrite.result import TensorAction, TensorResult
from toolchain.tflite.agreement import compare_outputs
from toolchain.tflite.interpreter import TensorSpec

INT8 = np.dtype(np.int8)


def _spec(name: str, shape, scale: float = 0.5, zero_point: int = 3) -> TensorSpec:
    return TensorSpec(name, tuple(shape), INT8, scale, zero_point)


def _rows(*arrays):
    """compare_outputs' layout: one list per sample, one array per output."""
    return [list(row) for row in zip(*arrays)]


# ----------------------------------------------------------------------------- compare_outputs


def test_per_output_figures_against_numpy():
    rng = np.random.default_rng(0)
    logits = rng.integers(-100, 100, (20, 1, 10)).astype(np.int8)
    moved = np.clip(logits.astype(int) + rng.integers(-3, 4, logits.shape), -128, 127).astype(np.int8)
    feature = rng.integers(-50, 50, (20, 1, 4, 4, 1)).astype(np.int8)  # last axis of 1: no class axis
    a = compare_outputs(_rows(logits, feature), _rows(moved, feature), (_spec("logits", (1, 10)),
                                                                        _spec("feature", (1, 4, 4, 1))))
    lo, fe = a.outputs
    assert lo.top1_agreement == pytest.approx(np.mean(logits.argmax(-1) == moved.argmax(-1)))
    assert fe.top1_agreement is None and a.top1_agreement == lo.top1_agreement
    d = np.abs(logits.astype(int) - moved.astype(int))
    assert lo.max_abs_diff_steps == d.max() and lo.mean_abs_diff_steps == pytest.approx(d.mean())
    real = (logits.astype(float) - 3) * 0.5
    noise = (logits.astype(float) - moved.astype(float)) * 0.5
    assert lo.sqnr_db == pytest.approx(10 * math.log10(np.sum(real ** 2) / np.sum(noise ** 2)), abs=1e-3)
    assert fe.sqnr_db is None and fe.max_abs_diff_steps == 0  # identical output
    assert a.sqnr_db == lo.sqnr_db and a.informative and lo.informative and fe.informative


def test_constant_reference_is_not_informative():
    zeros = np.zeros((16, 1, 12), np.int8)
    jitter = np.zeros((16, 1, 12), np.int8)
    jitter[::2, 0, 3] = 1  # one step of noise: what LiteRT's kernels may differ by, not a varying output
    a = compare_outputs(_rows(zeros), _rows(zeros), (_spec("kws", (1, 12)),))
    assert not a.informative and a.constant_outputs == ("kws",)
    assert a.max_abs_diff_steps == 0 and a.top1_agreement == 1.0  # the lossless-looking figures of the issue
    assert not compare_outputs(_rows(jitter), _rows(jitter), (_spec("kws", (1, 12)),)).informative
    varied = jitter.copy()
    varied[1, 0, 5] = 2
    assert compare_outputs(_rows(varied), _rows(varied), (_spec("kws", (1, 12)),)).informative
    one = compare_outputs(_rows(varied[:1]), _rows(varied[:1]), (_spec("kws", (1, 12)),))
    assert not one.informative  # a single input cannot show whether the output moves


# ----------------------------------------------------------------------------- wording and gate


def _ver(top1, informative=True, stateful=False, max_steps=3.0):
    return {"inputs": "random (seed 0)", "samples": 32, "stateful": stateful, "top1_agreement": top1,
            "max_abs_diff_steps": max_steps, "mean_abs_diff_steps": 0.5, "sqnr_db": 21.0, "informative": informative,
            "outputs": [{"name": "Identity", "informative": informative}]}


def test_not_informative_is_said_with_the_fix_and_no_figures():
    text = verification_text(_ver(1.0, informative=False, max_steps=0.0))
    assert text.startswith("not informative") and "'Identity'" in text and "--calibration" in text
    assert "--data" in text and "max 0" not in text and "1.000" not in text
    assert fidelity_of(_ver(1.0, informative=False)).value == "not_informative"


def test_low_agreement_warns_and_states_the_inputs():
    text = verification_text(_ver(0.875, stateful=True, max_steps=74))
    assert "top-1 agreement 0.875" in text and "max 74 / mean 0.50 output steps" in text and "SQNR 21.0 dB" in text
    assert "a stream of 32 invocations" in text and "state carried" in text and "WARNING" in text
    assert "WARNING" not in verification_text(_ver(0.995))
    assert fidelity_of(_ver(0.995)).value == "ok" and fidelity_of(_ver(0.995), 0.999).value == "low"


@pytest.mark.parametrize("ver, message", [
    (_ver(0.9), "below --min-top1-agreement 0.95"),
    (_ver(1.0, informative=False), "not informative"),
    (_ver(None), "no output of the model has a class axis"),
    (None, "skipped"),
])
def test_gate_fails_when_low_or_unprovable(ver, message):
    with pytest.raises(VerificationError, match=message):
        check_top1_gate(ver, 0.95, "--min-top1-agreement")
    check_top1_gate(ver, None, "--min-top1-agreement")  # no gate, no error


def test_gate_passes_at_the_threshold():
    check_top1_gate(_ver(0.95), 0.95, "--min-top1-agreement")


def _tensor(op, action, before, after):
    return TensorResult(name="t", op=op, shape=(8,), granularity="per-channel", action=action, reason=None,
                        clusters=16, distinct_before=before, distinct_after=after, squared_error=0.0, sqnr_db=None,
                        scales_refit=False)


def test_recluster_summary_separates_what_was_left_alone():
    tensors = ([_tensor("CONV_2D", TensorAction.REWRITTEN, 200, 16)] * 14 + [_tensor("CONV_2D", TensorAction.REWRITTEN,
                                                                                      90, 15)]
               + [_tensor("DEPTHWISE_CONV_2D", TensorAction.SKIPPED, 248, 248)]
               + [_tensor("DEPTHWISE_CONV_2D", TensorAction.SKIPPED, 100, 100)] * 7)
    assert rewrite_summary(tensors) == ("16 values in 15 rewritten tensors; 8 depthwise tensors left as they were "
                                        "(up to 248 values)")
    one = [_tensor("FULLY_CONNECTED", TensorAction.REWRITTEN, 99, 8), _tensor("CONV_2D", TensorAction.UNCHANGED, 9, 9),
           _tensor("CONV_2D", TensorAction.SKIPPED, 40, 40)]
    assert rewrite_summary(one) == ("8 values in 1 rewritten tensor; 1 tensor already within K (up to 9 values); "
                                    "1 other tensor left as it was (up to 40 values)")


def test_before_is_tfmot_only_when_the_finetune_stage_ran():
    assert Variant.BEFORE.short(finetuned=True) == "before (tfmot)"
    assert Variant.BEFORE.short(finetuned=False) == "before (input)"
    assert "tfmot" not in Variant.BEFORE.label(finetuned=False)


# ----------------------------------------------------------------------------- history


def test_history_appends_only_when_a_targets_results_change(tmp_path):
    path = tmp_path / "history.jsonl"
    t0 = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    u55, n78 = {"after": {"flash_bytes": 100}}, {"after": {"flash_bytes": 70}}
    assert record_build(path, 16, {"u55": u55}, t0).appended
    assert record_build(path, 16, {"n78": n78}, t0).appended  # a new target is a new result
    # runs alternating between targets, nothing changed: nothing appended
    assert not record_build(path, 16, {"u55": u55}, t0).appended
    assert not record_build(path, 16, {"n78": n78}, t0).appended
    assert not record_build(path, 16, {"u55": u55, "n78": n78}, t0).appended
    assert record_build(path, 8, {"u55": u55}, t0).appended  # K is part of the result
    assert record_build(path, 8, {"u55": {"after": {"flash_bytes": 90}}}, t0).appended
    assert [sorted(e["targets"]) for e in read_history(path)] == [["u55"], ["n78"], ["u55"], ["u55"]]
