"""Choosing K per tensor for a goal, applying it and checking it: plan -> apply -> verify, for every door.

``toolchain recluster``, ``toolchain deploy`` and the Python API ask the same way: a ``PlanRequest``
saying what to keep, and a ``TargetSizer`` saying what the target's weight streams cost (Vela's own
encoder for the target, ``toolchain.targets.weight_encoding``). The sizer is built above this package
(``toolchain.pipeline.target_sizer``), so the rewriter never imports a target.

Goals: a fixed K (the config's); K per tensor for an SQNR floor (``--clusters auto`` without data);
the fewest encoded bytes keeping top-1 agreement and K=16's output noise (``--clusters auto`` with
data), or a given agreement or output SQNR, on held-back samples; the least output noise within a weight budget (Vela's encoded bytes of the
result on the target, checked by compiling it) or a flash budget (checked by compiling). The last
three choose per tensor among K and rate prices by measured sensitivity (rate_options, rate_plan) and
check the result itself (rate_goals).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import Enum
from typing import TYPE_CHECKING

from ..core.errors import ConfigError
from .choose_k import (
    AUTO_MIN_TOP1_AGREEMENT,
    BUDGET_CANDIDATES,
    PlanGoal,
    WeightSizeEstimator,
    config_with_plan,
    plan_min_sqnr,
)
from .config import Objective, ReclusterConfig

if TYPE_CHECKING:
    from .output_aware import Calibration
    from .rate_options import RateModel
    from .result import ReclusterReport

DEFAULT_MIN_SQNR_DB = 30.0  # --clusters auto without calibration data
BUDGET_MAX_CLUSTERS = 32  # size plans choose K up to this (and the config's K)
MAX_OUTPUT_SQNR_DB = 120.0


class SizeGoal(Enum):
    """What decides K per tensor."""

    FIXED = "fixed"  # the config's K and rules, as given
    AUTO = "auto"  # the fewest bytes keeping top-1 agreement and K=16's noise on held-back data, or an SQNR floor
    WEIGHT_BUDGET = "weight-budget"  # least output noise with Vela's encoded weights <= a byte budget
    FLASH_BUDGET = "flash-budget"  # least output noise with the compiled model within a flash budget
    FIDELITY = "fidelity"  # the fewest bytes keeping a floor on top-1 agreement or output SQNR on held-back data


def _finite(value: float | None, lo: float, hi: float, what: str, lo_open: bool = False) -> None:
    if value is None:
        return
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or not (lo < value if lo_open else lo <= value) or value > hi:
        raise ConfigError(f"{what} must be a finite number in {'(' if lo_open else '['}{lo:g}, {hi:g}], got {value!r}")


def _positive_bytes(value: int | None, what: str) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
        raise ConfigError(f"{what} must be a positive whole number of bytes, got {value!r}")


@dataclass(frozen=True)
class PlanRequest:
    """A goal and its figures (validated here, so every door refuses the same things the same way)."""

    goal: SizeGoal = SizeGoal.FIXED
    min_sqnr_db: float | None = None  # AUTO: a per-tensor SQNR floor (default without data: 30 dB)
    weight_budget_bytes: int | None = None  # WEIGHT_BUDGET
    flash_budget_bytes: int | None = None  # FLASH_BUDGET (None: the target profile's budget)
    min_top1_agreement: float | None = None  # AUTO with data / FIDELITY: top-1 agreement floor on held-back data
    min_output_sqnr_db: float | None = None  # FIDELITY: the model output's SQNR floor (dB) on held-back data
    max_clusters: int | None = None  # AUTO / FIDELITY: the largest K a tensor may get (default 32)

    def __post_init__(self) -> None:
        _finite(self.min_sqnr_db, 0.0, 120.0, "the minimum SQNR (--min-sqnr, dB)", lo_open=True)
        _finite(self.min_top1_agreement, 0.0, 1.0, "the top-1 agreement floor", lo_open=True)
        _finite(self.min_output_sqnr_db, 0.0, MAX_OUTPUT_SQNR_DB, "the output SQNR floor (dB)", lo_open=True)
        _positive_bytes(self.weight_budget_bytes, "the weight budget")
        _positive_bytes(self.flash_budget_bytes, "the flash budget")
        if self.min_sqnr_db is not None and self.goal is not SizeGoal.AUTO:
            raise ConfigError("a minimum SQNR (--min-sqnr) goes with --clusters auto")
        if self.goal is SizeGoal.WEIGHT_BUDGET and self.weight_budget_bytes is None:
            raise ConfigError("the weight budget must be a positive whole number of bytes, got None")
        if self.weight_budget_bytes is not None and self.goal is not SizeGoal.WEIGHT_BUDGET:
            raise ConfigError("a weight budget goes with the weight-budget goal")
        if self.flash_budget_bytes is not None and self.goal is not SizeGoal.FLASH_BUDGET:
            raise ConfigError("a flash budget goes with the flash-budget goal")
        floors = (self.min_top1_agreement is not None) + (self.min_output_sqnr_db is not None)
        if floors and self.goal not in (SizeGoal.AUTO, SizeGoal.FIDELITY):
            raise ConfigError("a fidelity floor (top-1 agreement or output SQNR) goes with --clusters auto")
        if floors > 1 or (floors and self.min_sqnr_db is not None):
            raise ConfigError("choose one floor: top-1 agreement, output SQNR or the per-tensor SQNR")
        if self.goal is SizeGoal.FIDELITY and not floors:
            raise ConfigError("the fidelity goal needs a floor: top-1 agreement or output SQNR")
        if self.max_clusters is not None:
            if self.goal not in (SizeGoal.AUTO, SizeGoal.FIDELITY):
                raise ConfigError("--max-clusters goes with --clusters auto")
            if isinstance(self.max_clusters, bool) or not isinstance(self.max_clusters, int) \
                    or not 2 <= self.max_clusters <= 256:
                raise ConfigError(f"--max-clusters must be a whole number from 2 to 256, got {self.max_clusters!r}")


@dataclass(frozen=True)
class CompiledSizes:
    """What a compile of a candidate model measured: flash used and the encoded weight streams in it."""

    flash_bytes: int
    encoded_weight_bytes: int


@dataclass(frozen=True)
class TargetSizer:
    """What the planner needs to know of a target: Vela's encoded bytes per weight tensor of a model (the rate
    model), and (for flash budgets) a compile of a whole candidate model. Built by
    ``toolchain.pipeline.target_sizer``."""

    name: str | None  # the target profile, None: the default encoder's target, no compile
    rate_model: Callable[[bytes], RateModel]
    encoded_bytes: WeightSizeEstimator  # the context-free estimate (SQNR plans' reports)
    compile_sizes: Callable[[bytes], CompiledSizes] | None = None  # None: the target is not compiled by Vela
    flash_budget_bytes: int | None = None  # the target profile's
    encoder_target: str | None = None  # whose encoder rate_model uses (the profile's, or the default's)


def _max_clusters(request: PlanRequest) -> int:
    from .choose_k import AUTO_MAX_CLUSTERS

    return request.max_clusters or AUTO_MAX_CLUSTERS


def rewrite_with_plan(original: bytes, config: ReclusterConfig, request: PlanRequest, calibration: Calibration | None,
                      sizer: TargetSizer | None,
                      progress: Callable[[str, int, int], None] | None = None) -> tuple[bytes, ReclusterReport]:
    """Plan, apply and verify for ``request``: the rewritten model and its report (with the plan).

    ``calibration`` is what the fits and the plan may learn from (run_job passes the fit part of its
    CalibrationSet: the verification's check samples never reach the planner); a fidelity floor holds back a
    seeded part of it (rate_goals.fit_fidelity). ``progress`` hears of the fixed-K and SQNR-planned fits."""
    from .recluster import recluster_model

    with_data = calibration is not None and config.objective_for(True) is Objective.OUTPUTS
    goal = request.goal
    if goal is SizeGoal.AUTO and with_data and request.min_sqnr_db is None:
        goal = SizeGoal.FIDELITY
    if goal is SizeGoal.FIXED:
        return recluster_model(original, config, calibration, progress)
    if not with_data and (request.min_top1_agreement is not None or request.min_output_sqnr_db is not None):
        raise ConfigError("a top-1 agreement or output SQNR floor is measured on calibration samples: give "
                          "--calibration (with the output objective)")
    if goal is SizeGoal.AUTO:
        floor = DEFAULT_MIN_SQNR_DB if request.min_sqnr_db is None else request.min_sqnr_db
        cfg = replace(config, clusters=_max_clusters(request))
        plan = plan_min_sqnr(original, cfg, floor, _sensitivity(original, cfg, calibration if with_data else None))
        rewritten, report = recluster_model(original, config_with_plan(cfg, plan), calibration, progress)
        return rewritten, replace(report, plan=plan)
    if sizer is None:
        raise ConfigError(f"the {goal.value} goal needs a target sizer (Vela's encoder)")
    if goal is SizeGoal.FIDELITY:
        from .rate_goals import FidelityFloor, fit_fidelity

        if not with_data:
            raise ConfigError("a fidelity floor is measured on held-back calibration samples: give --calibration")
        fidelity = (FidelityFloor(PlanGoal.OUTPUT_SQNR, request.min_output_sqnr_db) if request.min_output_sqnr_db
                    else FidelityFloor(PlanGoal.AGREEMENT, request.min_top1_agreement) if request.min_top1_agreement
                    else _default_fidelity(original))
        rewritten, report, plan = fit_fidelity(original, config, fidelity, calibration, sizer.rate_model(original),
                                               _max_clusters(request))
        return rewritten, replace(report, plan=plan)
    plan_cfg = replace(config, clusters=min(config.clusters, BUDGET_MAX_CLUSTERS))
    if goal is SizeGoal.FLASH_BUDGET:
        from .flash_plan import plan_flash_budget

        if sizer.name is None:
            raise ConfigError("a flash budget needs a target (--target NAME or --profile FILE)")
        rewritten, report, fit = plan_flash_budget(original, plan_cfg, sizer, request.flash_budget_bytes,
                                                   calibration=calibration if with_data else None)
        return rewritten, replace(report, plan=fit)
    from .rate_goals import plan_weight_budget_rate

    assert request.weight_budget_bytes is not None  # PlanRequest checked it
    rewritten, report, plan = plan_weight_budget_rate(original, plan_cfg, request.weight_budget_bytes,
                                                      sizer.rate_model(original), calibration if with_data else None)
    return rewritten, replace(report, plan=plan)


def _default_fidelity(original: bytes):
    """--clusters auto with no floor asked: no more output noise than K=16 everywhere on the held-back samples,
    and, when the output is class scores, top-1 agreement >= AUTO_MIN_TOP1_AGREEMENT (the argmax of a detector's
    boxes or a segmenter's mask means nothing: there the noise alone decides)."""
    from ..tflite.interpreter import output_specs
    from ..tflite.output_kind import OutputKind, guess_output_kind
    from .rate_goals import FidelityFloor

    spec = output_specs(original)[0]
    if guess_output_kind(spec.name, spec.shape) is OutputKind.CLASS_SCORES:
        return FidelityFloor(PlanGoal.AGREEMENT, AUTO_MIN_TOP1_AGREEMENT, no_noisier_than_uniform=True)
    return FidelityFloor(PlanGoal.OUTPUT_SQNR, 0.0, no_noisier_than_uniform=True)


def _sensitivity(original: bytes, config: ReclusterConfig, calibration: Calibration | None):
    """Per-tensor output errors on the calibration data for the SQNR planner (None without data)."""
    if calibration is None:
        return None
    from .sensitivity import measure_sensitivity

    return measure_sensitivity(original, config, calibration, tuple(k for k in BUDGET_CANDIDATES if k <= config.clusters))

