"""Choosing K per tensor: from an error budget (minimum SQNR) or from a weight-size budget.

Sizes come from Vela's own single-tensor weight encoder (ethosu.vela.api.npu_encode_weights,
the encoder the compiler uses; U55/U65 streams, within 1-3% of U85's). The size plan is a
multiple-choice knapsack solved exactly by dynamic programming over byte buckets (bucket sizes
round up, so the budget always holds).
"""
from __future__ import annotations

import glob
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import Enum
from typing import TYPE_CHECKING

import numpy as np

from ..algorithms.channels import channels_first, from_channels_first
from ..algorithms.knapsack import multiple_choice_knapsack
from ..core.errors import BudgetExceeded, ConfigError
from ..tflite.graph import (
    Granularity,
    WeightTensor,
    find_weight_tensors,
    require_int8_model,
    tensor_values,
)
from ..tflite.model_io import read_model
from .config import Objective, ReclusterConfig, TensorRule, clusters_for
from .fit import best_weight_fit

if TYPE_CHECKING:
    from .output_aware import Calibration
    from .sensitivity import Sensitivity

# Bytes of one int8 weight tensor, given the operator that consumes it, once encoded for a
# target: the planner is given one (the targets package has Vela's), it never imports a target.
WeightSizeEstimator = Callable[[np.ndarray, str], int]

BUDGET_CANDIDATES = (2, 4, 8, 16, 32, 64)
AUTO_MAX_CLUSTERS = 32  # --clusters auto never exceeds Vela's palette unless asked
AUTO_MIN_TOP1_AGREEMENT = 0.995  # --clusters auto with data: top-1 agreement on the calibration data


@dataclass(frozen=True)
class TensorChoice:
    name: str
    op: str
    weights: int
    clusters: int | None  # None: left as it is
    relative_error: float  # noise energy / signal energy of the tensor (10^(-SQNR/10))
    predicted_encoded_bytes: int
    rate_lambda: float = 0.0  # the rate price of its fit (rate plans)


class PlanGoal(Enum):
    """What a K plan keeps: an SQNR floor, a weight budget, top-1 agreement or the output's SQNR on data."""

    SQNR = "sqnr"
    BUDGET = "budget"
    AGREEMENT = "agreement"
    OUTPUT_SQNR = "output-sqnr"  # the model output's SQNR (dB) against the original's on held-back samples


@dataclass(frozen=True)
class KPlan:
    mode: PlanGoal
    target: float  # the SQNR floor in dB, the weight budget in bytes, or the top-1 agreement floor
    choices: tuple[TensorChoice, ...]
    fixed_encoded_bytes: int  # tensors the plan may not touch (skipped by rules, depthwise...)
    error_measure: Objective = Objective.WEIGHTS  # OUTPUTS: errors are layer outputs' on calibration data
    predicted_top1_agreement: float | None = None  # agreement plan: measured with the planned fits
    # Agreement plan: the agreement with every tensor at the largest K. Below the floor, near-ties of the original
    # flip under any rewrite; the plan then keeps this agreement instead of leaving every tensor alone.
    attainable_top1_agreement: float | None = None
    # Rate plans (rate_plan): the target whose encoder sized them, Vela's figure for the rewritten model, the
    # smallest figure the options reach, the plans tried, and the fidelity measured on held-back samples.
    target_name: str | None = None
    actual_encoded_bytes: int | None = None
    smallest_encoded_bytes: int | None = None
    attempts: int = 1
    checked_fidelity: float | None = None
    check_samples: int | None = None
    held_out: bool | None = None  # the fidelity check ran on samples the fit never saw
    no_noisier_than_k16: bool = False  # and no more output noise there than K=16 everywhere (auto's default)

    @property
    def effective_target(self) -> float:
        if self.attainable_top1_agreement is None:
            return self.target
        return min(self.target, self.attainable_top1_agreement)

    @property
    def predicted_encoded_bytes(self) -> int:
        return self.fixed_encoded_bytes + sum(c.predicted_encoded_bytes for c in self.choices)

    def as_rules(self) -> tuple[TensorRule, ...]:
        """Exact-name rules that make recluster use the chosen K per tensor."""
        label = {PlanGoal.SQNR: "the SQNR plan", PlanGoal.AGREEMENT: "the agreement plan",
                 PlanGoal.OUTPUT_SQNR: "the output SQNR plan"}.get(self.mode, "the size plan")
        return tuple(TensorRule(clusters=c.clusters, pattern=glob.escape(c.name), label=label,
                                rate_lambda=c.rate_lambda if c.clusters is not None and c.rate_lambda else None)
                     for c in self.choices)

    def to_json(self) -> dict:
        return {
            "mode": self.mode.value,
            "target": self.target,
            "predicted_encoded_bytes": self.predicted_encoded_bytes,
            "fixed_encoded_bytes": self.fixed_encoded_bytes,
            "error_measure": self.error_measure.value,
            "predicted_top1_agreement": self.predicted_top1_agreement,
            "attainable_top1_agreement": self.attainable_top1_agreement,
            "tensors": [c.__dict__ for c in self.choices],
            "target_name": self.target_name,
            "actual_encoded_bytes": self.actual_encoded_bytes,
            "smallest_encoded_bytes": self.smallest_encoded_bytes,
            "attempts": self.attempts,
            "checked_fidelity": self.checked_fidelity,
            "check_samples": self.check_samples,
            "held_out": self.held_out,
            "no_noisier_than_k16": self.no_noisier_than_k16,
        }


def _tensor_options(model, w: WeightTensor, config: ReclusterConfig, ks: tuple[int, ...],
                    encoded_size: WeightSizeEstimator | None, sensitivity: Sensitivity | None = None):
    """(K or None, relative error, encoded bytes) per candidate: output error on calibration data when
    ``sensitivity`` measured the tensor, else the weights' own error."""
    q = tensor_values(model, model.subgraphs[w.subgraph].tensors[w.tensor_index])
    measured = sensitivity.tensors.get(w.name) if sensitivity is not None else None
    per_tensor = w.quantization.granularity is Granularity.PER_TENSOR
    qc = q.reshape(1, -1) if per_tensor else channels_first(q, w.channel_axis)
    scales = w.quantization.scales.astype(np.float64)[: 1 if per_tensor else None]
    f = scales[:, None] * qc.astype(np.float64)
    signal = float(np.sum(f * f)) or 1.0
    distinct = int(np.unique(q).size)
    options = [(None, 0.0, encoded_size(q, w.op) if encoded_size else 0)]
    for k in ks:
        if k >= distinct:
            continue
        if measured is not None and k in measured.fits:
            rel = measured.relative_error(k)
            new_q = from_channels_first(measured.fits[k].codes, q.shape, w.channel_axis)
        else:
            err, codes, _, _ = best_weight_fit(qc, scales, k, config, may_refit=True)
            rel = err / signal
            new_q = codes.reshape(q.shape) if per_tensor else from_channels_first(codes, q.shape, w.channel_axis)
        options.append((k, rel, encoded_size(new_q, w.op) if encoded_size else 0))
    return options


def _eligible(model, config: ReclusterConfig):
    planned, fixed = [], []
    for w in find_weight_tensors(model):
        k, _ = clusters_for(w, config)
        (planned if k is not None else fixed).append(w)
    return planned, fixed


def plan_min_sqnr(model_bytes: bytes, config: ReclusterConfig, min_sqnr_db: float,
                  sensitivity: Sensitivity | None = None) -> KPlan:
    """Smallest K per tensor (2..config.clusters) whose rewrite keeps SQNR >= min_sqnr_db.

    With ``sensitivity`` the SQNR of a measured tensor is its output's on calibration data."""
    if not 0 < min_sqnr_db <= 120:
        raise ConfigError(f"--min-sqnr must be in (0, 120] dB, got {min_sqnr_db}")
    model = read_model(model_bytes)
    require_int8_model(model)
    planned, _ = _eligible(model, config)
    limit = 10 ** (-min_sqnr_db / 10)
    choices = []
    for w in planned:
        q = tensor_values(model, model.subgraphs[w.subgraph].tensors[w.tensor_index])
        distinct = int(np.unique(q).size)
        lo, hi = 2, min(config.clusters, distinct)
        best = None
        measured = sensitivity.tensors.get(w.name) if sensitivity is not None else None
        if measured is not None:  # the measured K only (powers of two): the smallest meeting the floor
            best = next(((k, measured.relative_error(k)) for k in sorted(measured.fits)
                         if k <= hi and measured.relative_error(k) <= limit), None)
            lo = hi + 1
        # error is non-increasing in K: binary search for the smallest K meeting the floor
        while lo <= hi:
            mid = (lo + hi) // 2
            opts = _tensor_options(model, w, config, (mid,), encoded_size=None, sensitivity=sensitivity)
            rel = opts[1][1] if len(opts) > 1 else 0.0
            if rel <= limit:
                best, hi = (mid, rel), mid - 1
            else:
                lo = mid + 1
        if best is None:
            choices.append(TensorChoice(w.name, w.op, w.size, None, 0.0, 0))
        else:
            choices.append(TensorChoice(w.name, w.op, w.size, best[0], best[1], 0))
    return KPlan(PlanGoal.SQNR, float(min_sqnr_db), tuple(choices), 0, _metric(sensitivity))


def plan_weight_budget(model_bytes: bytes, config: ReclusterConfig, budget_bytes: int, encoded_size: WeightSizeEstimator,
                       candidates: tuple[int, ...] = BUDGET_CANDIDATES, sensitivity: Sensitivity | None = None) -> KPlan:
    """Per-tensor K minimising the summed relative error with Vela-encoded weights <= budget_bytes.

    With ``sensitivity`` a measured tensor's error is its output's on calibration data."""
    if budget_bytes <= 0:
        raise ConfigError(f"the weight budget must be positive, got {budget_bytes}")
    model = read_model(model_bytes)
    require_int8_model(model)
    planned, fixed = _eligible(model, config)
    fixed_bytes = 0
    for w in fixed:
        fixed_bytes += encoded_size(tensor_values(model, model.subgraphs[w.subgraph].tensors[w.tensor_index]), w.op)
    ks = tuple(k for k in candidates if k <= config.clusters)
    options = [_tensor_options(model, w, config, ks, encoded_size=encoded_size, sensitivity=sensitivity)
               for w in planned]
    room = budget_bytes - fixed_bytes
    smallest = sum(min(o[2] for o in opts) for opts in options)
    if room < smallest:
        raise BudgetExceeded(
            f"weight budget {budget_bytes} bytes cannot be met: even K={min(ks) if ks else '-'} everywhere needs "
            f"{smallest + fixed_bytes} bytes ({fixed_bytes} in tensors left alone)"
        )
    choice_idx = multiple_choice_knapsack(options, room)
    choices = tuple(
        TensorChoice(w.name, w.op, w.size, opts[i][0], opts[i][1], opts[i][2])
        for w, opts, i in zip(planned, options, choice_idx)
    )
    return KPlan(PlanGoal.BUDGET, float(budget_bytes), choices, fixed_bytes, _metric(sensitivity))


def _metric(sensitivity: Sensitivity | None) -> Objective:
    return Objective.OUTPUTS if sensitivity is not None and sensitivity.tensors else Objective.WEIGHTS


def plan_agreement(model_bytes: bytes, config: ReclusterConfig, calibration: Calibration,
                   min_top1: float = AUTO_MIN_TOP1_AGREEMENT, max_clusters: int = AUTO_MAX_CLUSTERS) -> KPlan:
    """Smallest K per tensor (powers of two up to ``max_clusters``) keeping the model's top-1 agreement with
    the original on the calibration data >= ``min_top1``.

    Every tensor gets the smallest K whose output error (each layer fitted on the original inputs) is <= a
    threshold, none when no K is (left as it is); the threshold is found by bisection over the measured
    errors, each step one output-aware rewrite (sequential, as the final one) and one LiteRT pass. Tensors
    the output-aware fit cannot model keep config.clusters (capped at max_clusters). When even every tensor
    at ``max_clusters`` stays below ``min_top1`` (near-ties of the original flip under any change), that
    agreement is the floor instead, and the plan says so (``attainable_top1_agreement``).
    """
    from .recluster import recluster_model
    from .sensitivity import measure_sensitivity, model_outputs, top1_agreement

    if not 0 < min_top1 <= 1:
        raise ConfigError(f"the top-1 agreement floor must be in (0, 1], got {min_top1}")
    ks = tuple(sorted({k for k in BUDGET_CANDIDATES if k < max_clusters} | {max_clusters}))
    sens = measure_sensitivity(model_bytes, config, calibration, ks)
    rows = calibration.rows[: config.calibration_samples]
    reference = model_outputs(model_bytes, rows, sens.batch)
    names = sorted(sens.tensors)
    model = read_model(model_bytes)
    others = []  # what the output-aware fit cannot model keeps the configured K
    for w in find_weight_tensors(model):
        k, _ = clusters_for(w, config)
        if w.name not in sens.tensors and k is not None:
            others.append(TensorChoice(w.name, w.op, w.size, min(k, max_clusters), 0.0, 0))

    def plan_for(threshold: float, agreement: float | None = None, attainable: float | None = None) -> KPlan:
        choices = []
        for n in names:
            t = sens.tensors[n]
            k = next((k for k in ks if k >= t.distinct or t.relative_error(k) <= threshold), None)
            choices.append(TensorChoice(n, t.op, t.weights, k, t.relative_error(k) if k else 0.0, 0))
        return KPlan(PlanGoal.AGREEMENT, float(min_top1), tuple(choices + others), 0, Objective.OUTPUTS, agreement,
                     attainable)

    def agreement(plan: KPlan) -> float:
        rewritten, _ = recluster_model(model_bytes, config_with_plan(config, plan), calibration)
        return top1_agreement(reference, model_outputs(rewritten, rows, sens.batch))

    thresholds = sorted({0.0} | {t.relative_error(k) for t in sens.tensors.values() for k in t.fits})
    largest = KPlan(PlanGoal.AGREEMENT, float(min_top1), tuple(
        TensorChoice(n, sens.tensors[n].op, sens.tensors[n].weights, max_clusters, 0.0, 0) for n in names) + tuple(others),
        0, Objective.OUTPUTS)
    attainable = agreement(largest) if names else 1.0
    floor = min(float(min_top1), attainable)
    lo, hi, best = 1, len(thresholds) - 1, (0.0, 1.0)  # threshold 0 leaves every lossy tensor as it is
    while lo <= hi:
        mid = (lo + hi) // 2
        a = agreement(plan_for(thresholds[mid]))
        if a >= floor:
            best, lo = (thresholds[mid], a), mid + 1
        else:
            hi = mid - 1
    return plan_for(*best, attainable=attainable if attainable < min_top1 else None)


def config_with_plan(config: ReclusterConfig, plan: KPlan) -> ReclusterConfig:
    return replace(config, rules=plan.as_rules() + config.rules)
