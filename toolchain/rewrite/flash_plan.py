"""Choosing K per tensor so that the compiled model fits a flash budget, checked by compiling.

The compile is the target sizer's (``planner.TargetSizer.compile_sizes``, Vela for Ethos-U): this
package never runs a compiler itself.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..core.errors import BudgetExceeded, ConfigError
from ..tflite.graph import find_weight_tensors, require_int8_model, tensor_values
from ..tflite.model_io import read_model
from .choose_k import BUDGET_CANDIDATES, KPlan, config_with_plan, plan_weight_budget
from .config import ReclusterConfig

if TYPE_CHECKING:
    from .output_aware import Calibration
    from .planner import TargetSizer

MAX_ATTEMPTS = 3  # the first plan and up to two re-plans with Vela's excess removed


@dataclass(frozen=True)
class FlashFit:
    """A size plan checked by compiling: predicted and actual flash of the rewritten model."""

    plan: KPlan
    target: str
    flash_budget_bytes: int
    overhead_bytes: int  # flash that is not encoded weight streams (command stream, biases/scales, flatbuffer)
    predicted_flash_bytes: int
    actual_flash_bytes: int
    actual_encoded_weight_bytes: int  # the compiler's figure (includes bias/scale streams)
    attempts: int

    def to_json(self) -> dict:
        d = {k: v for k, v in self.__dict__.items() if k != "plan"}
        return self.plan.to_json() | {"flash": d}


def plan_flash_budget(model_bytes: bytes, config: ReclusterConfig, sizer: TargetSizer,
                      flash_budget_bytes: int | None = None, max_attempts: int = MAX_ATTEMPTS,
                      calibration: Calibration | None = None) -> FlashFit:
    """Per-tensor K so that the compiled model fits the flash budget (the target's by default).

    The non-weight part of flash is measured once by compiling the input; the plan is then
    compiled and, should the real figure exceed the budget, re-planned with the excess removed.
    With ``calibration`` tensors are ranked by their output error on it and rewritten by the
    output-aware fit.
    """
    from .recluster import recluster_model

    if sizer.compile_sizes is None or sizer.name is None:
        raise ConfigError(f"{sizer.name} is not compiled by Vela: a flash budget plan needs a Vela target")
    budget = flash_budget_bytes if flash_budget_bytes is not None else sizer.flash_budget_bytes
    if budget is None:
        raise ConfigError(f"no flash budget given and {sizer.name} has none")
    model = read_model(model_bytes)
    require_int8_model(model)
    mine = sum(sizer.encoded_bytes(tensor_values(model, model.subgraphs[w.subgraph].tensors[w.tensor_index]), w.op)
               for w in find_weight_tensors(model))
    base = sizer.compile_sizes(model_bytes)
    overhead = max(base.flash_bytes - mine, 0)
    room = budget - overhead
    if room <= 0:
        raise BudgetExceeded(
            f"flash budget {budget} bytes is below the model's non-weight flash ({overhead} bytes on {sizer.name})"
        )
    sens = None
    if calibration is not None:
        from .sensitivity import measure_sensitivity

        sens = measure_sensitivity(model_bytes, config, calibration,
                                   tuple(k for k in BUDGET_CANDIDATES if k <= config.clusters))
    for attempt in range(1, max_attempts + 1):
        plan = plan_weight_budget(model_bytes, config, room, sizer.encoded_bytes, sensitivity=sens)
        rewritten, _ = recluster_model(model_bytes, config_with_plan(config, plan), calibration)
        actual = sizer.compile_sizes(rewritten)
        if actual.flash_bytes <= budget or attempt == max_attempts:
            break
        room -= actual.flash_bytes - budget  # the streams came out larger than predicted: ask for less
    fit = FlashFit(plan, sizer.name, budget, overhead, overhead + plan.predicted_encoded_bytes, actual.flash_bytes,
                   actual.encoded_weight_bytes, attempt)
    if fit.actual_flash_bytes > budget:
        raise BudgetExceeded(
            f"after {attempt} attempts the compiled model needs {fit.actual_flash_bytes} bytes of flash on "
            f"{sizer.name}, over the {budget}-byte budget"
        )
    return fit
