"""Choosing K per tensor for a goal (fixed K, auto, a weight or a flash budget): the plan step of a rewrite.

Every door (``toolchain recluster``, ``toolchain deploy``, the Python API) asks for a plan the same
way: a ``PlanRequest`` saying what to keep, and a ``TargetSizer`` saying what the target's weight
streams cost. The sizer is built above this package (``toolchain.pipeline.target_sizer``), so the
rewriter never imports a target.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import Enum
from typing import TYPE_CHECKING

from ..core.errors import ConfigError
from .choose_k import (
    BUDGET_CANDIDATES,
    KPlan,
    WeightSizeEstimator,
    config_with_plan,
    plan_agreement,
    plan_min_sqnr,
    plan_weight_budget,
)
from .config import ReclusterConfig

if TYPE_CHECKING:
    from .flash_plan import FlashFit
    from .output_aware import Calibration

DEFAULT_MIN_SQNR_DB = 30.0  # --clusters auto without calibration data
BUDGET_MAX_CLUSTERS = 64  # size plans choose K from BUDGET_CANDIDATES, up to this


class SizeGoal(Enum):
    """What decides K per tensor."""

    FIXED = "fixed"  # the config's K and rules, as given
    AUTO = "auto"  # the smallest K keeping top-1 agreement on calibration data, or an SQNR floor
    WEIGHT_BUDGET = "weight-budget"  # least error with encoded weights <= a byte budget
    FLASH_BUDGET = "flash-budget"  # least error with the compiled model within a flash budget, checked by compiling


@dataclass(frozen=True)
class PlanRequest:
    """A goal and its figure (validated here, so every door refuses the same things the same way)."""

    goal: SizeGoal = SizeGoal.FIXED
    min_sqnr_db: float | None = None  # AUTO: a per-tensor SQNR floor (default without data: 30 dB)
    weight_budget_bytes: int | None = None  # WEIGHT_BUDGET
    flash_budget_bytes: int | None = None  # FLASH_BUDGET (None: the target profile's budget)

    def __post_init__(self) -> None:
        if self.min_sqnr_db is not None and self.goal is not SizeGoal.AUTO:
            raise ConfigError("a minimum SQNR (--min-sqnr) goes with --clusters auto")
        if self.goal is SizeGoal.WEIGHT_BUDGET and (self.weight_budget_bytes is None or self.weight_budget_bytes <= 0):
            raise ConfigError(f"the weight budget must be a positive number of bytes, got {self.weight_budget_bytes}")
        if self.weight_budget_bytes is not None and self.goal is not SizeGoal.WEIGHT_BUDGET:
            raise ConfigError("a weight budget goes with the weight-budget goal")
        if self.flash_budget_bytes is not None and (self.goal is not SizeGoal.FLASH_BUDGET or self.flash_budget_bytes <= 0):
            raise ConfigError(f"a flash budget must be positive and go with a target, got {self.flash_budget_bytes}")


@dataclass(frozen=True)
class CompiledSizes:
    """What a compile of a candidate model measured: flash used and the encoded weight streams in it."""

    flash_bytes: int
    encoded_weight_bytes: int


@dataclass(frozen=True)
class TargetSizer:
    """What the planner needs to know of a target: the encoded size of one weight tensor, and (for flash
    budgets) a compile of a whole candidate model. Built by ``toolchain.pipeline.target_sizer``."""

    name: str | None
    encoded_bytes: WeightSizeEstimator
    compile_sizes: Callable[[bytes], CompiledSizes] | None = None  # None: the target is not compiled by Vela
    flash_budget_bytes: int | None = None  # the target profile's


def _sensitivity(original: bytes, config: ReclusterConfig, calibration: Calibration | None):
    """Per-tensor output errors on the calibration data for the K planners (None without data)."""
    if calibration is None:
        return None
    from .sensitivity import measure_sensitivity

    return measure_sensitivity(original, config, calibration, tuple(k for k in BUDGET_CANDIDATES if k <= config.clusters))


def plan_sizes(original: bytes, config: ReclusterConfig, request: PlanRequest, calibration: Calibration | None,
               sizer: TargetSizer | None) -> tuple[ReclusterConfig, KPlan | FlashFit | None]:
    """The config whose rules carry the chosen K per tensor, and the plan (None for a fixed K)."""
    if request.goal is SizeGoal.FIXED:
        return config, None
    if request.goal is SizeGoal.FLASH_BUDGET:
        from .flash_plan import plan_flash_budget

        if sizer is None or sizer.name is None:
            raise ConfigError("a flash budget needs a target (--target NAME or --profile FILE)")
        fit = plan_flash_budget(original, replace(config, clusters=min(config.clusters, BUDGET_MAX_CLUSTERS)), sizer,
                                request.flash_budget_bytes, calibration=calibration)
        return config_with_plan(config, fit.plan), fit
    if request.goal is SizeGoal.WEIGHT_BUDGET:
        if sizer is None:
            raise ConfigError("a weight budget needs a weight-size estimator (a target sizer)")
        plan_cfg = replace(config, clusters=min(config.clusters, BUDGET_MAX_CLUSTERS))
        assert request.weight_budget_bytes is not None  # PlanRequest checked it
        plan = plan_weight_budget(original, plan_cfg, request.weight_budget_bytes, sizer.encoded_bytes,
                                  sensitivity=_sensitivity(original, plan_cfg, calibration))
        return config_with_plan(config, plan), plan
    if calibration is not None and request.min_sqnr_db is None:
        plan = plan_agreement(original, config, calibration, max_clusters=config.clusters)
    else:
        floor = DEFAULT_MIN_SQNR_DB if request.min_sqnr_db is None else request.min_sqnr_db
        plan = plan_min_sqnr(original, config, floor, _sensitivity(original, config, calibration))
    return config_with_plan(config, plan), plan

