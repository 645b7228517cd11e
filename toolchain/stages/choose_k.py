"""Choosing K per tensor: from an error budget (minimum SQNR) or from a weight-size budget.

Sizes come from Vela's own single-tensor weight encoder (ethosu.vela.api.npu_encode_weights,
the encoder the compiler uses; U55/U65 streams, which DESIGN.md measured within 1-3%
of U85's). The size plan is a multiple-choice knapsack solved exactly by dynamic
programming over byte buckets (bucket sizes round up, so the budget always holds).
"""
from __future__ import annotations

import glob
import math
import os
from dataclasses import dataclass, replace

import numpy as np

from ..core.errors import BudgetExceeded, ConfigError
from ..tflite.graph import BuiltinOp, Granularity, WeightTensor, find_weight_tensors, require_int8_model, tensor_values
from ..tflite.model_io import read_model
from .recluster import ReclusterConfig, TensorRule, _channels_first, _fit_candidates, clusters_for

BUDGET_CANDIDATES = (2, 4, 8, 16, 32, 64)
KNAPSACK_BUCKETS = 4000


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


def encoded_bytes(q: np.ndarray, op: str) -> int:
    """Bytes of Vela's encoded weight stream for one tensor (Ethos-U55-128 encoder)."""
    from ethosu.vela.api import NpuAccelerator, NpuBlockTraversal, npu_encode_weights

    depthwise = op == BuiltinOp.DEPTHWISE_CONV_2D.name
    if depthwise:  # TFLite [1, H, W, C] -> OHWI with one input channel per output
        vol = np.transpose(q, (3, 1, 2, 0))
    elif q.ndim == 4:
        vol = q
    else:  # fully connected [O, I] (or anything else) as O x 1 x 1 x I
        vol = q.reshape(q.shape[0], 1, 1, -1)
    enc = npu_encode_weights(
        NpuAccelerator.Ethos_U55_128, np.ascontiguousarray(vol.astype(np.int16)), (1, 1), 8, 16, depthwise,
        NpuBlockTraversal.DEPTH_FIRST,
    )
    return len(enc)


def _tensor_options(model, w: WeightTensor, config: ReclusterConfig, ks: tuple[int, ...], with_bytes: bool):
    q = tensor_values(model, model.subgraphs[w.subgraph].tensors[w.tensor_index])
    per_tensor = w.quantization.granularity is Granularity.PER_TENSOR
    qc = q.reshape(1, -1) if per_tensor else _channels_first(q, w.channel_axis)
    scales = w.quantization.scales.astype(np.float64)[: 1 if per_tensor else None]
    f = scales[:, None] * qc.astype(np.float64)
    signal = float(np.sum(f * f)) or 1.0
    distinct = int(np.unique(q).size)
    options = [(None, 0.0, encoded_bytes(q, w.op) if with_bytes else 0)]
    for k in ks:
        if k >= distinct:
            continue
        err, codes, _, _ = _fit_candidates(qc, scales, k, config, may_refit=True)
        size = 0
        if with_bytes:
            new_q = codes.reshape(q.shape) if per_tensor else np.moveaxis(
                codes.reshape((q.shape[w.channel_axis],) + tuple(d for i, d in enumerate(q.shape) if i != w.channel_axis)),
                0, w.channel_axis)
            size = encoded_bytes(new_q, w.op)
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
            opts = _tensor_options(model, w, config, (mid,), with_bytes=False)
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


def plan_weight_budget(model_bytes: bytes, config: ReclusterConfig, budget_bytes: int,
                       candidates: tuple[int, ...] = BUDGET_CANDIDATES) -> KPlan:
    """Per-tensor K minimising the summed relative error with Vela-encoded weights <= budget_bytes."""
    if budget_bytes <= 0:
        raise ConfigError(f"the weight budget must be positive, got {budget_bytes}")
    model = read_model(model_bytes)
    require_int8_model(model)
    planned, fixed = _eligible(model, config)
    fixed_bytes = 0
    for w in fixed:
        fixed_bytes += encoded_bytes(tensor_values(model, model.subgraphs[w.subgraph].tensors[w.tensor_index]), w.op)
    ks = tuple(k for k in candidates if k <= config.clusters)
    options = [_tensor_options(model, w, config, ks, with_bytes=True) for w in planned]
    room = budget_bytes - fixed_bytes
    smallest = sum(min(o[2] for o in opts) for opts in options)
    if room < smallest:
        raise BudgetExceeded(
            f"weight budget {budget_bytes} bytes cannot be met: even K={min(ks) if ks else '-'} everywhere needs "
            f"{smallest + fixed_bytes} bytes ({fixed_bytes} in tensors left alone)"
        )
    choice_idx = _knapsack(options, room)
    choices = tuple(
        TensorChoice(w.name, w.op, w.size, opts[i][0], opts[i][1], opts[i][2])
        for w, opts, i in zip(planned, options, choice_idx)
    )
    return KPlan("budget", float(budget_bytes), choices, fixed_bytes)


def _knapsack(options: list[list[tuple]], room: int) -> list[int]:
    """Multiple-choice knapsack: one option per tensor, minimum total error, total bytes <= room."""
    bucket = max(1, math.ceil(room / KNAPSACK_BUCKETS))
    cap = room // bucket
    inf = np.inf
    best = np.zeros(cap + 1)  # best[b]: min error using at most b buckets
    picks = []
    for opts in options:
        nxt = np.full(cap + 1, inf)
        arg = np.full(cap + 1, -1, dtype=np.int64)
        for i, (_, err, size) in enumerate(opts):
            cost = math.ceil(size / bucket)
            if cost > cap:
                continue
            cand = np.full(cap + 1, inf)
            cand[cost:] = best[: cap + 1 - cost] + err
            better = cand < nxt
            nxt = np.where(better, cand, nxt)
            arg = np.where(better, i, arg)
        picks.append(arg)
        best = nxt
    b = int(np.argmin(best))
    if not np.isfinite(best[b]):
        raise BudgetExceeded("the weight budget cannot be met")
    chosen = []
    for opts, arg in zip(reversed(options), reversed(picks)):
        i = int(arg[b])
        chosen.append(i)
        b -= math.ceil(opts[i][2] / bucket)
    return list(reversed(chosen))


def config_with_plan(config: ReclusterConfig, plan: KPlan) -> ReclusterConfig:
    return replace(config, rules=plan.as_rules() + config.rules)


@dataclass(frozen=True)
class FlashFit:
    """A size plan checked by compiling with Vela: predicted and actual flash of the rewritten model."""

    plan: KPlan
    target: str
    flash_budget_bytes: int
    overhead_bytes: int  # flash that is not encoded weight streams (command stream, biases/scales, flatbuffer)
    predicted_flash_bytes: int
    actual_flash_bytes: int
    actual_encoded_weight_bytes: int  # Vela's figure (includes bias/scale streams)
    attempts: int

    def to_json(self) -> dict:
        d = {k: v for k, v in self.__dict__.items() if k != "plan"}
        return self.plan.to_json() | {"flash": d}


def _compile_bytes(model_bytes: bytes, profile, work: "os.PathLike[str]", tag: str):
    from pathlib import Path

    from .compile import compile_model

    d = Path(work) / tag
    d.mkdir(parents=True, exist_ok=True)
    path = d / "model.tflite"
    path.write_bytes(model_bytes)
    return compile_model(path, profile, d / "out", enforce_budget=False, allow_cpu=True)


def plan_flash_budget(model_bytes: bytes, config: ReclusterConfig, profile, flash_budget_bytes: int | None = None,
                      max_attempts: int = 3) -> FlashFit:
    """Per-tensor K so that the Vela-compiled model fits the flash budget (the profile's by default).

    The non-weight part of flash is measured once by compiling the input; the plan is then
    compiled and, should Vela's real figure exceed the budget, re-planned with the excess removed.
    """
    import tempfile

    from .recluster import recluster_model

    if not profile.family.compiled_by_vela:
        raise ConfigError(f"{profile.name} is not compiled by Vela: a flash budget plan needs a Vela target")
    budget = int(flash_budget_bytes if flash_budget_bytes is not None else profile.flash_budget_bytes)
    model = read_model(model_bytes)
    require_int8_model(model)
    mine = sum(encoded_bytes(tensor_values(model, model.subgraphs[w.subgraph].tensors[w.tensor_index]), w.op)
               for w in find_weight_tensors(model))
    with tempfile.TemporaryDirectory(prefix="toolchain-flash-") as work:
        base = _compile_bytes(model_bytes, profile, work, "original")
        overhead = max(int(base.budget.flash_used_bytes) - mine, 0)
        room = budget - overhead
        if room <= 0:
            raise BudgetExceeded(
                f"flash budget {budget} bytes is below the model's non-weight flash ({overhead} bytes on {profile.name})"
            )
        for attempt in range(1, max_attempts + 1):
            plan = plan_weight_budget(model_bytes, config, room)
            rewritten, _ = recluster_model(model_bytes, config_with_plan(config, plan))
            actual = _compile_bytes(rewritten, profile, work, f"attempt{attempt}")
            flash = int(actual.budget.flash_used_bytes)
            if flash <= budget or attempt == max_attempts:
                break
            room -= flash - budget  # Vela's streams came out larger than predicted: ask for less
        fit = FlashFit(plan, profile.name, budget, overhead, overhead + plan.predicted_encoded_bytes, flash,
                       int(actual.report["encoded_weight_bytes"]), attempt)
    if fit.actual_flash_bytes > budget:
        raise BudgetExceeded(
            f"after {attempt} attempts the compiled model needs {fit.actual_flash_bytes} bytes of flash on "
            f"{profile.name}, over the {budget}-byte budget"
        )
    return fit
