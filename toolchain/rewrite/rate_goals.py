"""Plan, apply, verify for the goals sized by Vela's encoder: a weight budget, a flash budget, a fidelity floor.

Each budget measures the tensors' options once (rate_options), plans (rate_plan), applies the plan with
the same fit a fixed K uses (each layer fitted in sequence on the rewritten prefix, so the result is
not exactly the options' independent fits), and verifies what the plan promised on the result itself:
Vela's encoded bytes of the rewritten model (a compile of it, the figure of Vela's summary), its
compiled flash, or its fidelity on held-back samples. When a budget's check fails the plan is tightened
and applied again, a few times at most; a budget that cannot be met raises BudgetExceeded naming the
smallest size reachable. A fidelity floor is not applied in sequence: its plans are judged by running the
options' own fits (each tensor fitted alone on the original inputs) on held-back samples, and the plan
chosen is returned as it was measured (option_result), so it costs no second fit.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from ..core.errors import BudgetExceeded
from .choose_k import KPlan, PlanGoal
from .config import ReclusterConfig
from .option_result import options_rewrite, plan_config
from .rate_options import (
    PLAN_CLUSTERS,
    PLAN_RATE_LAMBDAS,
    RateModel,
    RateOptions,
    measure_options,
    model_with,
    model_with_options,
    pareto,
)
from .rate_plan import (
    budget_picks,
    plan_from_options,
    plan_from_picks,
    smallest_message,
    smallest_passing,
    tradeoff_path,
)
from .result import Evidence

if TYPE_CHECKING:
    from .output_aware import Calibration
    from .result import ReclusterReport

MAX_ATTEMPTS = 4  # the first plan and up to three corrected ones
# The first plan asks for this much less: a whole model's figure came out 0.7-1.1% above the sum of its tensors'
# (Vela schedules a whole model's streams a little differently), so without it most budgets took two plans.
FIRST_PLAN_MARGIN = 0.01
# --clusters auto's candidates: fewer than a budget's, so that it costs about two fits
AUTO_CLUSTERS = (2, 4, 6, 8, 12, 16, 32)
AUTO_RATE_LAMBDAS = (0.0, 1.0)


def _apply(original: bytes, config: ReclusterConfig, plan: KPlan, calibration: Calibration | None):
    from .recluster import recluster_model

    # the plan decides each depthwise tensor itself (its "as it is" option): no second verdict on apply
    return recluster_model(original, plan_config(config, plan), calibration)


def plan_weight_budget_rate(original: bytes, config: ReclusterConfig, budget_bytes: int, rate: RateModel,
                            calibration: Calibration | None) -> tuple[bytes, ReclusterReport, KPlan]:
    """The least output noise whose Vela-encoded weights (the compiled figure of the result) fit ``budget_bytes``."""
    options = measure_options(original, config, calibration, rate, PLAN_CLUSTERS, PLAN_RATE_LAMBDAS)
    return fit_budget(original, config, options, budget_bytes, rate.model_bytes_of, calibration, rate)


def rescaled(options: RateOptions, picks: list[int], model_bytes: bytes, rate: RateModel,
             measured_bytes: int) -> RateOptions:
    """The options corrected by what an applied plan really took: each fitted tensor's bytes scaled by its
    applied fit's over its picked option's (fitted in sequence, a tensor's codes differ from its own fit's),
    and the fixed part moved by what the whole model's figure, ``measured_bytes``, holds beyond its tensors
    (the compiler schedules a whole model's streams a little differently: about 1% measured)."""
    from ..tflite.graph import find_weight_tensors, tensor_values
    from ..tflite.model_io import read_model

    m = read_model(model_bytes)
    values = {w.name: tensor_values(m, m.subgraphs[w.subgraph].tensors[w.tensor_index]) for w in find_weight_tensors(m)}
    tensors, applied = [], 0
    for t, i in zip(options.tensors, picks):
        picked = t.options[i]
        actual = rate.tensor_bytes(t.name, values[t.name]) if t.name in values else picked.encoded_bytes
        applied += actual
        if picked.clusters is None:
            tensors.append(t)
            continue
        ratio = actual / max(picked.encoded_bytes, 1)
        scaled = [o if o.clusters is None else replace(o, encoded_bytes=math.ceil(o.encoded_bytes * ratio))
                  for o in t.options]
        tensors.append(replace(t, options=pareto(scaled)))
    return replace(options, tensors=tuple(tensors), fixed_bytes=measured_bytes - applied)


def fit_budget(original: bytes, config: ReclusterConfig, options: RateOptions, budget_bytes: int, measure,
               calibration: Calibration | None, rate: RateModel, goal: PlanGoal = PlanGoal.BUDGET):
    """Plan for ``budget_bytes``, apply, measure the result with ``measure(model) -> bytes``; while over, correct the
    options by what the result really took (``rescaled``), and from the second miss also ask for less."""
    asked = max(int(budget_bytes * (1 - FIRST_PLAN_MARGIN)), options.smallest_bytes)
    if budget_bytes < options.smallest_bytes:
        raise BudgetExceeded(smallest_message(options, budget_bytes))
    smallest_tried = None
    for attempt in range(1, MAX_ATTEMPTS + 1):
        picks = budget_picks(options, asked)
        plan = plan_from_picks(options, picks, goal, budget_bytes, attempts=attempt)
        rewritten, report = _apply(original, config, plan, calibration)
        actual = measure(rewritten)
        if actual <= budget_bytes:
            return rewritten, report, replace(plan, actual_encoded_bytes=actual)
        smallest_tried = actual if smallest_tried is None else min(smallest_tried, actual)
        options = rescaled(options, picks, rewritten, rate, actual)
        if attempt > 1:
            asked -= actual - budget_bytes  # still larger than planned: ask for less
        if asked < options.smallest_bytes:
            break
    raise BudgetExceeded(
        f"weight budget {budget_bytes} bytes on {options.target} is not met: the closest plan compiled to "
        f"{smallest_tried} bytes after {attempt} attempt(s); the smallest the options reach is about "
        f"{options.smallest_bytes} bytes")


@dataclass(frozen=True)
class FidelityFloor:
    """A floor on the rewritten model's agreement with the original, on samples the fit never saw."""

    goal: PlanGoal  # AGREEMENT (top-1 agreement) or OUTPUT_SQNR (dB)
    floor: float
    # and no more output noise on those samples than K=16 everywhere (the same fits): --clusters auto's default,
    # since a few dozen held-back samples cannot resolve a top-1 agreement near 1 (one flip is 1/64)
    no_noisier_than_uniform: bool = False

    def measure(self, reference: np.ndarray, outputs: np.ndarray) -> float:
        if self.goal is PlanGoal.AGREEMENT:
            return float(np.mean(np.argmax(reference, axis=1) == np.argmax(outputs, axis=1)))
        noise = float(np.sum((outputs - reference) ** 2))
        signal = float(np.sum(reference**2)) or 1.0
        return math.inf if noise == 0 else 10.0 * math.log10(signal / noise)


def _outputs(model_bytes: bytes, rows: list, batch: int, spec, validated: bool = True) -> np.ndarray:
    """The first output (``spec``: the original's, which a rewrite keeps) of every sample, dequantized,
    flattened (samples, values); ``validated``: the bytes are a rewrite of the validated original."""
    from ..tflite import interpreter as rt
    from .sensitivity import model_outputs

    raw = model_outputs(model_bytes, rows, batch, spec.index, validated)
    return rt.dequantize_output(raw, spec).astype(np.float64).reshape(len(rows), -1)


def fit_fidelity(original: bytes, config: ReclusterConfig, fidelity: FidelityFloor, calibration: Calibration,
                 rate: RateModel, max_clusters: int,
                 lambdas: tuple[float, ...] = AUTO_RATE_LAMBDAS) -> tuple[bytes, ReclusterReport, KPlan]:
    """The fewest encoded bytes along the trade-off path whose rewrite keeps ``fidelity`` on held-back samples:
    a seeded part of the fit's ``calibration`` held back by calibration_set.hold_back (one in eight, at least
    32; fewer than 64 samples: the check is in-sample). Not the verification's check samples: a plan chosen
    on them would make that check in-sample for the plan.

    When even the least noisy plan misses the floor (near-ties of the original flip under any rewrite),
    the floor becomes what that plan attains, and the plan says so."""
    from ..tflite import interpreter as rt
    from ..tflite.activations import choose_batch
    from ..tflite.model_io import read_model
    from .calibration_set import hold_back

    split = hold_back(calibration.rows, calibration.source, calibration.samples, config.calibration_seed)
    fit_cal, check_rows, held_out = split.fit, split.check.rows, split.check.evidence is Evidence.HELD_OUT
    spec = rt.output_specs(original)[0]
    batch = choose_batch(original, check_rows, [spec.index])
    reference = _outputs(original, check_rows, batch, spec, validated=False)
    ks = tuple(k for k in AUTO_CLUSTERS if k <= max_clusters)
    options = measure_options(original, replace(config, clusters=max_clusters), fit_cal, rate, ks, lambdas,
                              full_fits=False, keep_original=False)
    path = tradeoff_path(options)
    parsed = read_model(original)
    outputs: dict[int, np.ndarray] = {}

    def run(i: int) -> np.ndarray:
        if i not in outputs:
            outputs[i] = _outputs(model_with(parsed, options.tensors, path[i]), check_rows, batch, spec)
        return outputs[i]

    def score(i: int) -> float:
        return fidelity.measure(reference, run(i))

    uniform = [t.uniform for t in options.tensors]
    u_outputs: list[np.ndarray] = []  # K=16 everywhere (the same fits) on the check samples, run at most once

    def run_uniform() -> np.ndarray:
        if not u_outputs:
            u_outputs.append(_outputs(model_with_options(parsed, options.tensors, uniform)[0], check_rows, batch,
                                      spec))
        return u_outputs[0]

    # K=16 everywhere's output noise on the check samples, when the floor asks for no more than that
    u_noise = float(np.sum((run_uniform() - reference) ** 2)) if fidelity.no_noisier_than_uniform else math.inf
    attainable = score(len(path) - 1)
    floor = min(fidelity.floor, attainable)
    start = smallest_passing(len(path), lambda i: score(i) >= floor
                             and float(np.sum((run(i) - reference) ** 2)) <= u_noise)
    start = len(path) - 1 if start is None else start
    extra = {"attainable_top1_agreement": attainable if attainable < fidelity.floor else None,
             "check_samples": len(check_rows), "no_noisier_than_k16": fidelity.no_noisier_than_uniform}
    # The result is the plan whose model was measured (the options' own fits): no second fit, no surprise.
    chosen = [t.options[i] for t, i in zip(options.tensors, path[start])]
    plan = plan_from_options(options, chosen, fidelity.goal, fidelity.floor, attempts=1, **extra)
    rewritten, report = options_rewrite(parsed, options, chosen, config, plan, fit_cal)
    got, actual = score(start), rate.model_bytes_of(rewritten)
    if actual > options.uniform_bytes:  # K=16 everywhere may be smaller: when it keeps the floor, it wins
        u_plan = plan_from_options(options, uniform, fidelity.goal, fidelity.floor, attempts=2, **extra)
        u_model, u_report = options_rewrite(parsed, options, uniform, config, u_plan, fit_cal)
        got_u = fidelity.measure(reference, run_uniform())
        actual_u = rate.model_bytes_of(u_model)
        if got_u >= floor and actual_u < actual:
            rewritten, report, plan, got, actual = u_model, u_report, u_plan, got_u, actual_u
    plan = replace(plan, actual_encoded_bytes=actual, checked_fidelity=got, check_samples=len(check_rows),
                   predicted_top1_agreement=got if fidelity.goal is PlanGoal.AGREEMENT else None,
                   held_out=held_out)
    return rewritten, report, plan
