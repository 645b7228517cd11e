"""Verification that verifies, fidelity in plain sight, and the wording around them.

- ``compare_outputs``: per output its kind (guessed from shape and name, or given), its kind's agreement
  (top-1, top-k anchors, mask), SQNR and errors in its own units and in steps, and whether each measure
  could be measured at all; checked against numpy here, also float reference vs int8 candidate.
- A reference whose answer never changed is "not measurable" (with the fix), never a lossless-looking
  figure; random and in-sample inputs are "weak evidence", never "ok"; a model LiteRT cannot run "not run".
- The gates (exit 5): top-1 and output SQNR; a gate that cannot be checked fails.
- Wording: the recluster summary sentence, "before (input)" vs "before (tfmot)".
- History: an entry only when a target's results changed, also when runs alternate between targets.
"""
from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pytest

from toolchain.core.errors import ConfigError, VerificationError
from toolchain.reporting.fidelity import check_gates, fidelity_of, verification_text
from toolchain.reporting.history import read_history, record_build
from toolchain.reporting.report import Variant
from toolchain.rewrite.outcome_text import rewrite_summary
from toolchain.rewrite.result import TensorAction, TensorResult
from toolchain.tflite.agreement import compare_outputs
from toolchain.tflite.interpreter import TensorSpec
from toolchain.tflite.output_kind import OutputKind, guess_output_kind, parse_output_kind

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
    feature = rng.integers(-50, 50, (20, 1, 4, 1)).astype(np.int8)  # no class axis: values
    a = compare_outputs(_rows(logits, feature), _rows(moved, feature), (_spec("logits", (1, 10)),
                                                                        _spec("feature", (1, 4, 1))))
    lo, fe = a.outputs
    assert (lo.kind, lo.metric) == (OutputKind.CLASS_SCORES, "top-1 agreement")
    assert (fe.kind, fe.metric) == (OutputKind.VALUES, "SQNR")
    assert lo.agreement == pytest.approx(np.mean(logits.argmax(-1) == moved.argmax(-1)))
    assert fe.agreement is None and a.top1_agreement == lo.agreement
    d = np.abs(logits.astype(int) - moved.astype(int))
    assert lo.max_abs_diff_steps == d.max() and lo.mean_abs_diff_steps == pytest.approx(d.mean())
    assert lo.max_abs_error == pytest.approx(0.5 * d.max()) and lo.mean_abs_error == pytest.approx(0.5 * d.mean())
    real = (logits.astype(float) - 3) * 0.5
    noise = (logits.astype(float) - moved.astype(float)) * 0.5
    assert lo.sqnr_db == pytest.approx(10 * math.log10(np.sum(real ** 2) / np.sum(noise ** 2)), abs=1e-3)
    assert fe.sqnr_db is None and fe.identical and fe.max_abs_diff_steps == 0  # identical output
    assert a.sqnr_db == lo.sqnr_db and a.informative and lo.informative and fe.informative


def test_float_reference_against_int8_candidate_in_real_units():
    """A quantizer's check: a float model's outputs against its int8 version, each side in its own units."""
    rng = np.random.default_rng(1)
    ref = rng.normal(0, 2, (16, 1, 5)).astype(np.float32)
    q = np.clip(np.round(ref / 0.1) - 4, -128, 127).astype(np.int8)  # scale 0.1, zero point -4
    a = compare_outputs(_rows(ref), _rows(q), (TensorSpec("y", (1, 5), np.dtype(np.float32), 0.0, 0),),
                        (TensorSpec("y", (1, 5), INT8, 0.1, -4),))
    (o,) = a.outputs
    err = np.abs(ref.astype(np.float64) - (q.astype(np.float64) + 4) * 0.1)
    assert o.max_abs_error == pytest.approx(err.max()) and o.max_abs_diff_steps == pytest.approx(err.max() / 0.1)
    assert o.agreement == pytest.approx(np.mean(ref.argmax(-1) == q.argmax(-1)))


def test_constant_reference_is_not_informative():
    zeros = np.zeros((16, 1, 12), np.int8)
    jitter = np.zeros((16, 1, 12), np.int8)
    jitter[::2, 0, 3] = 1  # one step of noise: what LiteRT's kernels may differ by, not a varying output
    a = compare_outputs(_rows(zeros), _rows(zeros), (_spec("kws", (1, 12)),))
    assert not a.informative and a.constant_outputs == ("kws",)
    assert a.top1_agreement is None and "top-1 class was 0" in a.top1_not_measurable  # not a lossless-looking 1.000
    assert not compare_outputs(_rows(jitter), _rows(jitter), (_spec("kws", (1, 12)),)).informative
    one = compare_outputs(_rows(jitter[:1]), _rows(jitter[:1]), (_spec("kws", (1, 12)),))
    assert not one.informative  # a single input cannot show whether the output moves


def test_an_empty_output_is_not_measurable_not_an_error():
    """A model (fuzzed) whose output has a zero dimension: the check says so instead of failing in numpy."""
    empty = np.zeros((4, 1, 0), np.int8)
    (o,) = compare_outputs(_rows(empty), _rows(empty), (_spec("y", (1, 0)),)).outputs
    assert o.agreement is None and o.not_measurable is not None and o.max_abs_error == 0.0


def test_top1_not_measurable_although_the_scores_move():
    """The issue's K=4 case: scores vary on random inputs but the reference's class never changes."""
    rng = np.random.default_rng(2)
    ref = rng.integers(-60, -20, (32, 1, 6)).astype(np.int8)
    ref[:, 0, 4] = 100  # class 4 always wins by a mile
    new = rng.integers(-60, 90, (32, 1, 6)).astype(np.int8)  # a broken rewrite
    new[:, 0, 4] = 100
    a = compare_outputs(_rows(ref), _rows(new), (_spec("Identity", (1, 6)),))
    (o,) = a.outputs
    assert o.informative and o.agreement is None and not a.informative  # the old check called this informative
    assert "top-1 class was 4 on every one of the 32 inputs" in o.not_measurable
    ver = {"inputs": "32 random inputs (seed 0)", "evidence": "random", "stateful": False, "not_run": None,
           **a.to_json()}
    with pytest.raises(VerificationError, match="top-1 agreement is not measurable: .*class was 4"):
        check_gates(ver, 0.99, None, "--min-top1-agreement", "--min-output-sqnr")
    assert fidelity_of(ver).value == "not_informative"


def test_detection_and_mask_agreement_against_numpy():
    rng = np.random.default_rng(3)
    scores = rng.normal(0, 1, (12, 1, 50, 1)).astype(np.float32)  # [inputs, batch, anchors, classes]
    moved = scores + rng.normal(0, 0.3, scores.shape).astype(np.float32)
    det = TensorSpec("classificators", (1, 50, 1), np.dtype(np.float32), 0.0, 0)
    (o,) = compare_outputs(_rows(scores), _rows(moved), (det,)).outputs
    assert (o.kind, o.metric) == (OutputKind.DETECTION_SCORES, "top-10 agreement")
    top = [set(np.argsort(-s.reshape(-1))[:10]) for s in scores]
    top_new = [set(np.argsort(-s.reshape(-1))[:10]) for s in moved]
    assert o.agreement == pytest.approx(np.mean([len(x & y) / 10 for x, y in zip(top, top_new)]))
    mask = rng.uniform(0, 1, (6, 1, 8, 8, 1)).astype(np.float32)  # a sigmoid: cut at 0.5
    mask_new = np.clip(mask + rng.normal(0, 0.1, mask.shape), 0, 1).astype(np.float32)
    seg = TensorSpec("segment", (1, 8, 8, 1), np.dtype(np.float32), 0.0, 0)
    (m,) = compare_outputs(_rows(mask), _rows(mask_new), (seg,)).outputs
    assert m.kind is OutputKind.MASK and m.agreement == pytest.approx(np.mean((mask > 0.5) == (mask_new > 0.5)))


@pytest.mark.parametrize("name, shape, kind", [
    ("Identity", (1, 10), OutputKind.CLASS_SCORES),
    ("StatefulPartitionedCall:0", (1, 1, 12), OutputKind.CLASS_SCORES),
    ("classificators", (1, 2016, 1), OutputKind.DETECTION_SCORES),
    ("regressors", (1, 2016, 18), OutputKind.VALUES),
    ("Identity_1", (1, 2016, 18), OutputKind.VALUES),
    ("segment_back", (1, 256, 256, 1), OutputKind.MASK),
    ("Identity", (1, 256, 256, 2), OutputKind.MASK),
    ("landmarks", (1, 63), OutputKind.VALUES),
    ("Identity", (1, 1), OutputKind.VALUES),
])
def test_output_kind_is_guessed_from_shape_and_name(name, shape, kind):
    assert guess_output_kind(name, shape) is kind


def test_output_kind_override_is_parsed_and_checked():
    assert parse_output_kind("ld_21_3d=values") == ("ld_21_3d", OutputKind.VALUES)
    assert parse_output_kind("a=b=mask") == ("a=b", OutputKind.MASK)  # the last '=' separates
    with pytest.raises(ConfigError, match="unknown output kind 'boxes'.*class_scores"):
        parse_output_kind("x=boxes")


# ----------------------------------------------------------------------------- wording and gate


def _ver(top1, informative=True, stateful=False, max_steps=3.0, evidence="held_out", not_run=None):
    return {"inputs": "64 held-back samples of cal.npz", "evidence": evidence, "samples": 32, "stateful": stateful,
            "not_run": not_run, "top1_agreement": top1, "max_abs_diff_steps": max_steps, "mean_abs_diff_steps": 0.5,
            "sqnr_db": 21.0, "informative": informative,
            "top1_not_measurable": None if top1 is not None or not informative else "the class never changed",
            "outputs": [{"name": "Identity", "kind": "class_scores", "metric": "top-1 agreement", "agreement": top1,
                         "not_measurable": None if informative else "the class never changed", "sqnr_db": 21.0,
                         "identical": False, "max_abs_error": 1.5, "mean_abs_error": 0.25,
                         "max_abs_diff_steps": max_steps, "mean_abs_diff_steps": 0.5, "reference_range_steps": 40.0,
                         "informative": informative}]}


def test_not_informative_is_said_with_the_fix_and_no_figures():
    text = verification_text(_ver(None, informative=False, max_steps=0.0))
    assert text.startswith("not informative") and "'Identity'" in text and "--calibration" in text
    assert "--verify-data" in text and "max 0" not in text and "1.000" not in text
    assert fidelity_of(_ver(None, informative=False)).value == "not_informative"
    stream = verification_text(_ver(None, informative=False, stateful=True))
    assert "a stream of real feature frames" in stream and "consecutive frames in time order" in stream


def test_low_agreement_warns_and_states_the_inputs():
    text = verification_text(_ver(0.875, stateful=True, max_steps=74))
    assert "top-1 agreement 0.875" in text and "max 74 / mean 0.50 output steps" in text and "SQNR 21.0 dB" in text
    assert "64 held-back samples of cal.npz" in text and "state carried" in text and "WARNING" in text
    assert "WARNING" not in verification_text(_ver(0.995))
    assert fidelity_of(_ver(0.995)).value == "ok" and fidelity_of(_ver(0.995), 0.999).value == "low"


@pytest.mark.parametrize("evidence, words", [("random", "random inputs: weak evidence"),
                                             ("in_sample", "in-sample (the fit saw these samples): weak evidence")])
def test_weak_evidence_is_never_ok(evidence, words):
    ver = _ver(1.0, evidence=evidence)
    assert fidelity_of(ver).value == "weak_evidence"
    assert verification_text(ver).startswith(words) and "--calibration" in verification_text(ver)
    assert fidelity_of(_ver(0.5, evidence=evidence)).value == "low"  # low stays low (red), whatever the inputs


def test_not_run_names_the_operator():
    ver = _ver(None, not_run="custom operator Convolution2DTransposeBias")
    assert fidelity_of(ver).value == "not_run"
    assert verification_text(ver).startswith("not run: custom operator Convolution2DTransposeBias")


@pytest.mark.parametrize("ver, message", [
    (_ver(0.9), "below --min-top1-agreement 0.95"),
    (_ver(None, informative=False), "top-1 agreement is not measurable"),
    ({**_ver(None), "top1_not_measurable": "no output of the model holds class scores"}, "holds class scores"),
    (_ver(None, not_run="custom operator X"), "verification not run: custom operator X"),
    (None, "skipped"),
])
def test_gate_fails_when_low_or_unprovable(ver, message):
    with pytest.raises(VerificationError, match=message):
        check_gates(ver, 0.95, None, "--min-top1-agreement", "--min-output-sqnr")
    check_gates(ver, None, None, "--min-top1-agreement", "--min-output-sqnr")  # no gate, no error


def test_gate_passes_at_the_threshold():
    check_gates(_ver(0.95), 0.95, 21.0, "--min-top1-agreement", "--min-output-sqnr")


def test_sqnr_gate_fails_when_low_or_on_a_constant_reference():
    with pytest.raises(VerificationError, match="SQNR 21.0 dB .* below --min-output-sqnr 30"):
        check_gates(_ver(1.0), None, 30.0, "--min-top1-agreement", "--min-output-sqnr")
    flat = _ver(None, informative=False)
    with pytest.raises(VerificationError, match="SQNR of output.* 'Identity' is not measurable"):
        check_gates(flat, None, 10.0, "--min-top1-agreement", "--min-output-sqnr")


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
