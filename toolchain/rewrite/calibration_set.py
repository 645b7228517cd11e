"""The data of one rewrite: what the fit may learn from, and what the check runs on that the fit never saw.

A check on the samples a fit was tuned on flatters it (a K=8 MobileNetV2-style net printed agreement
1.000 on its calibration samples and 0.966 on a test split), so a calibration file is split: a
seeded part is held back (at least ``MIN_HELD_BACK`` samples, one in ``HOLD_BACK_ONE_IN``, and every
sample the fit would not use anyway) and only the rest reaches the output-aware fit, the K planner
and bias correction. A separate check file (``--verify-data``) or a labelled test split replaces the
held-back part. When nothing learns from the data (the weight-space fit), all of it is the check.

``CalibrationSet`` is what ``toolchain.rewrite.job.run_job`` takes (``ReclusterJob.data``), and what a
K planner can take to judge candidates on samples the fit never saw (``CalibrationSet.check``).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .output_aware import INVOKE_OVERHEAD_S, LITERT_MACS_PER_S, Calibration
from .result import Evidence

MIN_HELD_BACK = 32  # a held-back check smaller than this says little: below 2x, the check is in-sample
HOLD_BACK_ONE_IN = 8
# How many check samples to run by default: as many as about CHECK_BUDGET_S of LiteRT time for both models
# (estimated from the model's multiply-accumulates, not timed, so the same input gives the same report).
CHECK_BUDGET_S = 20.0
MIN_CHECK_SAMPLES = 32
MAX_CHECK_SAMPLES = 1024
RANDOM_CHECK_SAMPLES = 32  # random inputs are weak evidence however many
# A calibration file is read up to this many samples beyond the fit's: more than any check runs by default,
# and a 3 MB .npz that inflates to gigabytes is not read whole (the rest of the file is never decompressed).
MAX_READ_BEYOND_FIT = 8192


@dataclass(frozen=True)
class CheckSet:
    """Inputs to verify a rewrite on: one list of input arrays per sample (or per step of a stream)."""

    rows: list = field(repr=False, compare=False)
    source: str  # what they are, for people: "256 held-back samples of cal.npz"
    evidence: Evidence
    labels: np.ndarray | None = field(default=None, repr=False, compare=False)  # integer class per sample

    @property
    def samples(self) -> int:
        return len(self.rows)

    def first(self, n: int) -> CheckSet:
        """The first ``n`` samples (a stream stays a prefix of itself), the description updated."""
        if n >= self.samples:
            return self
        return replace(self, rows=self.rows[:n], labels=None if self.labels is None else self.labels[:n],
                       source=_recount(self.source, self.samples, n))


@dataclass(frozen=True)
class CalibrationSet:
    """What a rewrite may learn from (``fit``: None for none) and what it is checked on (``check``: None for
    seeded random inputs, weak evidence)."""

    fit: Calibration | None = None
    check: CheckSet | None = None
    warnings: tuple[str, ...] = ()  # about the data (e.g. values outside the input's quantization range)
    notes: tuple[str, ...] = ()  # how the data was used, when not as asked (e.g. LiteRT cannot run the model)


def _recount(source: str, old: int, new: int) -> str:
    prefix = f"{old} "
    return f"{new} {source[len(prefix):]}" if source.startswith(prefix) else f"{new} of {source}"


def _take(rows: list, labels: np.ndarray | None, idx: np.ndarray) -> tuple[list, np.ndarray | None]:
    return [rows[i] for i in idx], None if labels is None else labels[idx]


def hold_back(rows: list, source: str, fit_samples: int, seed: int = 0, labels: np.ndarray | None = None,
              warnings: tuple[str, ...] = ()) -> CalibrationSet:
    """Split samples into a fit part (at most ``fit_samples``) and a held-back check part (see the module doc).

    With fewer than 2 x MIN_HELD_BACK samples nothing can be held back: the fit uses all of them and the
    check runs on the same samples, labelled in-sample (weak evidence).
    """
    n = len(rows)
    if n < 2 * MIN_HELD_BACK:
        return CalibrationSet(
            Calibration(rows, source),
            CheckSet(rows, f"{n} samples of {source}, the same the fit used (in-sample: {2 * MIN_HELD_BACK} or more "
                           f"samples let {MIN_HELD_BACK} be held back)", Evidence.IN_SAMPLE, labels),
            warnings)
    held = max(MIN_HELD_BACK, math.ceil(n / HOLD_BACK_ONE_IN), n - fit_samples)
    order = np.random.default_rng(seed).permutation(n)
    check_idx, fit_idx = np.sort(order[:held]), np.sort(order[held:])
    fit_rows, _ = _take(rows, None, fit_idx)
    check_rows, check_labels = _take(rows, labels, check_idx)
    return CalibrationSet(
        Calibration(fit_rows, f"{len(fit_rows)} of {n} samples of {source}, the rest held back for the check"),
        CheckSet(check_rows, f"{held} held-back samples of {source}", Evidence.HELD_OUT, check_labels), warnings)


def check_only(rows: list, source: str, labels: np.ndarray | None = None, stream: bool = False,
               warnings: tuple[str, ...] = ()) -> CalibrationSet:
    """All samples for the check: nothing learns from them (the weight-space fit)."""
    what = f"a stream of {len(rows)} samples of {source}" if stream else f"{len(rows)} samples of {source}"
    return CalibrationSet(None, CheckSet(rows, f"{what} (the weight-space fit does not use data)", Evidence.HELD_OUT,
                                         labels), warnings)


def default_check_samples(model_bytes: bytes) -> int:
    """Check samples when not given: as many as CHECK_BUDGET_S of LiteRT time for both models allow, estimated
    from the model's size, within MIN_CHECK_SAMPLES..MAX_CHECK_SAMPLES."""
    from ..tflite.model_io import read_model
    from .layers import model_macs

    per_sample_s = 2 * (INVOKE_OVERHEAD_S + model_macs(read_model(bytes(model_bytes))) / LITERT_MACS_PER_S)
    return max(MIN_CHECK_SAMPLES, min(MAX_CHECK_SAMPLES, int(CHECK_BUDGET_S / per_sample_s)))


def _name(path: str | os.PathLike[str]) -> str:
    return os.path.basename(os.fspath(path))


def calibration_set_from_files(model_bytes: bytes, calibration: Path | None, verify: Path | None, *,
                               fit_uses_data: bool, fit_samples: int, seed: int, stateful: bool,
                               check: CheckSet | None = None) -> CalibrationSet:
    """The CalibrationSet of ``--calibration`` and ``--verify-data`` files (tflite.inputs.load_samples format).

    ``fit_uses_data``: whether anything of the rewrite learns from the calibration samples (the output-aware
    fit, a K plan on data, bias correction); only then is part of them held back, unless the check has its
    own samples (``verify``, else ``check``, e.g. a test split). A stateful model's samples are a stream,
    checked in file order and never split.
    """
    from ..tflite.inputs import load_samples
    from ..tflite.interpreter import input_specs

    if calibration is None and verify is None:
        return CalibrationSet(None, check)
    specs = input_specs(model_bytes)
    warnings: list[str] = []
    if verify is not None:
        v = load_samples(verify, specs)
        warnings += v.warnings
        what = f"a stream of {len(v.rows)} samples" if stateful else f"{len(v.rows)} samples"
        check = CheckSet(v.rows, f"{what} of {_name(verify)} (--verify-data)", Evidence.HELD_OUT, v.labels)
    if calibration is None:
        return CalibrationSet(None, check, tuple(warnings))
    c = load_samples(calibration, specs, limit=fit_samples + MAX_READ_BEYOND_FIT)
    warnings += c.warnings
    if check is not None:  # the check has its own file: the fit may use the whole calibration file
        fit = Calibration(c.rows[:fit_samples], _name(calibration)) if fit_uses_data else None
        return CalibrationSet(fit, check, tuple(warnings))
    if not fit_uses_data or stateful:
        return check_only(c.rows, _name(calibration), c.labels, stateful, tuple(warnings))
    return hold_back(c.rows, _name(calibration), fit_samples, seed, c.labels, tuple(warnings))
