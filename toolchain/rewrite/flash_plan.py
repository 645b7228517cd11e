"""Choosing K per tensor so that the compiled model fits a flash budget, checked by compiling.

The compile is the target sizer's (``planner.TargetSizer.compile_sizes``, Vela for Ethos-U): this
package never runs a compiler itself. Flash holds the encoded weights and what is not weights (the
command stream, the flatbuffer around it): the latter is measured once by compiling the input, the
rest of the budget goes to the weights as a weight budget (rate_goals.fit_budget), and the result is
compiled to check the flash it really takes.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from ..core.errors import BudgetExceeded, ConfigError
from .choose_k import KPlan, PlanGoal
from .config import ReclusterConfig

if TYPE_CHECKING:
    from .output_aware import Calibration
    from .planner import TargetSizer
    from .result import ReclusterReport


@dataclass(frozen=True)
class FlashFit:
    """A size plan checked by compiling: predicted and actual flash of the rewritten model."""

    plan: KPlan
    target: str
    flash_budget_bytes: int
    overhead_bytes: int  # flash that is not encoded weight streams (command stream, flatbuffer)
    predicted_flash_bytes: int
    actual_flash_bytes: int
    actual_encoded_weight_bytes: int  # the compiler's figure
    attempts: int

    def to_json(self) -> dict:
        d = {k: v for k, v in self.__dict__.items() if k != "plan"}
        return self.plan.to_json() | {"flash": d}


def plan_flash_budget(model_bytes: bytes, config: ReclusterConfig, sizer: TargetSizer,
                      flash_budget_bytes: int | None = None,
                      calibration: Calibration | None = None) -> tuple[bytes, ReclusterReport, FlashFit]:
    """The rewrite with the least output noise whose compiled model fits the flash budget (the target's by default)."""
    from .rate_goals import fit_budget
    from .rate_options import PLAN_CLUSTERS, PLAN_RATE_LAMBDAS, measure_options

    compile_sizes = sizer.compile_sizes
    if compile_sizes is None or sizer.name is None:
        raise ConfigError(f"{sizer.name} is not compiled by Vela: a flash budget plan needs a Vela target")
    budget = flash_budget_bytes if flash_budget_bytes is not None else sizer.flash_budget_bytes
    if budget is None:
        raise ConfigError(f"no flash budget given and {sizer.name} has none")
    base = compile_sizes(model_bytes)
    overhead = max(base.flash_bytes - base.encoded_weight_bytes, 0)
    if budget <= overhead:
        raise BudgetExceeded(
            f"flash budget {budget} bytes is below the model's non-weight flash ({overhead} bytes on {sizer.name})")
    rate = sizer.rate_model(model_bytes)
    options = measure_options(model_bytes, config, calibration, rate, PLAN_CLUSTERS, PLAN_RATE_LAMBDAS)
    if budget - overhead < options.smallest_bytes:
        raise BudgetExceeded(
            f"flash budget {budget} bytes cannot be met on {sizer.name}: the smallest reachable is about "
            f"{overhead + options.smallest_bytes} bytes ({overhead} of them not weights)")
    measured = {}

    def flash_as_weights(model: bytes) -> int:
        """The compiled flash minus the overhead, so that the weight-budget loop checks the flash budget."""
        measured[model] = compile_sizes(model)
        return measured[model].flash_bytes - overhead

    try:
        rewritten, report, plan = fit_budget(model_bytes, config, options, budget - overhead, flash_as_weights,
                                             calibration, rate, PlanGoal.BUDGET)
    except BudgetExceeded:
        raise BudgetExceeded(f"flash budget {budget} bytes on {sizer.name} is not met by any plan tried; the smallest "
                             f"reachable is about {overhead + options.smallest_bytes} bytes") from None
    actual = measured[rewritten]
    plan = replace(plan, actual_encoded_bytes=actual.encoded_weight_bytes)
    fit = FlashFit(plan, sizer.name, budget, overhead, overhead + plan.predicted_encoded_bytes, actual.flash_bytes,
                   actual.encoded_weight_bytes, plan.attempts)
    return rewritten, report, fit
