"""Choosing K per tensor: from an error budget (minimum SQNR) or from a weight-size budget.

Sizes come from Vela's own single-tensor weight encoder (ethosu.vela.api.npu_encode_weights,
the encoder the compiler uses; U55/U65 streams, which DESIGN.md measured within 1-3%
of U85's). The size plan is a multiple-choice knapsack solved exactly by dynamic
programming over byte buckets (bucket sizes round up, so the budget always holds).
"""
from __future__ import annotations

import glob
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

from ..algorithms.channels import channels_first
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
from .config import ReclusterConfig, TensorRule, clusters_for
from .fit import best_weight_fit

# Bytes of one int8 weight tensor, given the operator that consumes it, once encoded for a
# target: the planner is given one (the targets package has Vela's), it never imports a target.
WeightSizeEstimator = Callable[[np.ndarray, str], int]

BUDGET_CANDIDATES = (2, 4, 8, 16, 32, 64)


@dataclass(frozen=True)
class TensorChoice:
    name: str
    op: str
    weights: int
    clusters: int | None  # None: left as it is
    relative_error: float  # noise energy / signal energy of the tensor (10^(-SQNR/10))
    predicted_encoded_bytes: int


@dataclass(frozen=True)
class KPlan:
    mode: str  # "sqnr" or "budget"
    target: float  # the SQNR floor in dB, or the weight budget in bytes
    choices: tuple[TensorChoice, ...]
    fixed_encoded_bytes: int  # tensors the plan may not touch (skipped by rules, depthwise...)

    @property
    def predicted_encoded_bytes(self) -> int:
        return self.fixed_encoded_bytes + sum(c.predicted_encoded_bytes for c in self.choices)

    def as_rules(self) -> tuple[TensorRule, ...]:
        """Exact-name rules that make recluster use the chosen K per tensor."""
        label = "the SQNR plan" if self.mode == "sqnr" else "the size plan"
        return tuple(TensorRule(clusters=c.clusters, pattern=glob.escape(c.name), label=label) for c in self.choices)

    def to_json(self) -> dict:
        return {
            "mode": self.mode,
            "target": self.target,
            "predicted_encoded_bytes": self.predicted_encoded_bytes,
            "fixed_encoded_bytes": self.fixed_encoded_bytes,
            "tensors": [c.__dict__ for c in self.choices],
        }


def _tensor_options(model, w: WeightTensor, config: ReclusterConfig, ks: tuple[int, ...],
                    encoded_size: WeightSizeEstimator | None):
    q = tensor_values(model, model.subgraphs[w.subgraph].tensors[w.tensor_index])
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
        err, codes, _, _ = best_weight_fit(qc, scales, k, config, may_refit=True)
        size = 0
        if encoded_size:
            new_q = codes.reshape(q.shape) if per_tensor else np.moveaxis(
                codes.reshape((q.shape[w.channel_axis],) + tuple(d for i, d in enumerate(q.shape) if i != w.channel_axis)),
                0, w.channel_axis)
            size = encoded_size(new_q, w.op)
        options.append((k, err / signal, size))
    return options


def _eligible(model, config: ReclusterConfig):
    planned, fixed = [], []
    for w in find_weight_tensors(model):
        k, _ = clusters_for(w, config)
        (planned if k is not None else fixed).append(w)
    return planned, fixed


def plan_min_sqnr(model_bytes: bytes, config: ReclusterConfig, min_sqnr_db: float) -> KPlan:
    """Smallest K per tensor (2..config.clusters) whose rewrite keeps SQNR >= min_sqnr_db."""
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
        # error is non-increasing in K: binary search for the smallest K meeting the floor
        while lo <= hi:
            mid = (lo + hi) // 2
            opts = _tensor_options(model, w, config, (mid,), encoded_size=None)
            rel = opts[1][1] if len(opts) > 1 else 0.0
            if rel <= limit:
                best, hi = (mid, rel), mid - 1
            else:
                lo = mid + 1
        if best is None:
            choices.append(TensorChoice(w.name, w.op, w.size, None, 0.0, 0))
        else:
            choices.append(TensorChoice(w.name, w.op, w.size, best[0], best[1], 0))
    return KPlan("sqnr", float(min_sqnr_db), tuple(choices), 0)


def plan_weight_budget(model_bytes: bytes, config: ReclusterConfig, budget_bytes: int, encoded_size: WeightSizeEstimator,
                       candidates: tuple[int, ...] = BUDGET_CANDIDATES) -> KPlan:
    """Per-tensor K minimising the summed relative error with Vela-encoded weights <= budget_bytes."""
    if budget_bytes <= 0:
        raise ConfigError(f"the weight budget must be positive, got {budget_bytes}")
    model = read_model(model_bytes)
    require_int8_model(model)
    planned, fixed = _eligible(model, config)
    fixed_bytes = 0
    for w in fixed:
        fixed_bytes += encoded_size(tensor_values(model, model.subgraphs[w.subgraph].tensors[w.tensor_index]), w.op)
    ks = tuple(k for k in candidates if k <= config.clusters)
    options = [_tensor_options(model, w, config, ks, encoded_size=encoded_size) for w in planned]
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
    return KPlan("budget", float(budget_bytes), choices, fixed_bytes)


def config_with_plan(config: ReclusterConfig, plan: KPlan) -> ReclusterConfig:
    return replace(config, rules=plan.as_rules() + config.rules)
