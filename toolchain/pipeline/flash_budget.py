"""Choosing K per tensor so that the Vela-compiled model fits a flash budget, checked by compiling."""
from __future__ import annotations

import os
from dataclasses import dataclass

from ..core.errors import BudgetExceeded, ConfigError
from ..rewrite.choose_k import KPlan, config_with_plan, plan_weight_budget
from ..rewrite.config import ReclusterConfig
from ..targets.weight_encoding import encoded_bytes
from ..tflite.graph import find_weight_tensors, require_int8_model, tensor_values
from ..tflite.model_io import read_model


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

    from ..targets.compile import compile_model

    d = Path(work) / tag
    d.mkdir(parents=True, exist_ok=True)
    path = d / "model.tflite"
    path.write_bytes(model_bytes)
    return compile_model(path, profile, d / "out", enforce_budget=False, allow_cpu=True)


def plan_flash_budget(model_bytes: bytes, config: ReclusterConfig, profile, flash_budget_bytes: int | None = None,
                      max_attempts: int = 3, calibration=None) -> FlashFit:
    """Per-tensor K so that the Vela-compiled model fits the flash budget (the profile's by default).

    The non-weight part of flash is measured once by compiling the input; the plan is then
    compiled and, should Vela's real figure exceed the budget, re-planned with the excess removed.
    With ``calibration`` (rewrite.output_aware.Calibration) tensors are ranked by their output error on it
    and rewritten by the output-aware fit.
    """
    import tempfile

    from ..rewrite.recluster import recluster_model

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
        sens = None
        if calibration is not None:
            from ..rewrite.choose_k import BUDGET_CANDIDATES
            from ..rewrite.sensitivity import measure_sensitivity

            sens = measure_sensitivity(model_bytes, config, calibration,
                                       tuple(k for k in BUDGET_CANDIDATES if k <= config.clusters))
        for attempt in range(1, max_attempts + 1):
            plan = plan_weight_budget(model_bytes, config, room, encoded_bytes, sensitivity=sens)
            rewritten, _ = recluster_model(model_bytes, config_with_plan(config, plan), calibration)
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
