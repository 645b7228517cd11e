"""The rewriter's view of a target (``rewrite.planner.TargetSizer``), bound to Vela here.

It sits above both ``rewrite`` and ``targets``: the planner is given Vela's weight encoder for the
target (``targets.weight_encoding``: per tensor, through Vela's compiler core in a worker process)
and a compile of a candidate model, without importing either. Without a target, and for a target
Vela does not compile (Ethos-N, whose weight compression has the same 32-entry palette), weights are
sized by the default target's encoder (ethos-u55-128).
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from ..rewrite.planner import CompiledSizes, TargetSizer
from ..targets.profile import HardwareProfile
from ..targets.weight_encoding import DEFAULT_ENCODER_TARGET, VelaEncoder, encoded_bytes, encoder_for


def _compile_sizes(profile: HardwareProfile):
    def compile_sizes(model_bytes: bytes) -> CompiledSizes:
        from ..core.fileio import atomic_write_bytes
        from ..targets.compile import compile_model

        with tempfile.TemporaryDirectory(prefix="toolchain-flash-") as work:
            path = Path(work) / "model.tflite"
            atomic_write_bytes(path, model_bytes)
            r = compile_model(path, profile, Path(work) / "out", enforce_budget=False, allow_cpu=True)
            return CompiledSizes(int(r.budget.flash_used_bytes), int(r.report["encoded_weight_bytes"]))

    return compile_sizes


def _rate_model(profile: HardwareProfile):
    """Per model, Vela's per-tensor encoded bytes on ``profile`` (one worker, started on first use)."""
    holder: list[VelaEncoder] = []

    def rate_model(model_bytes: bytes):
        if not holder:
            holder.append(encoder_for(profile, model_bytes))
        return holder[0].model_rate(model_bytes)

    return rate_model


def sizer_for(profile: HardwareProfile | None) -> TargetSizer:
    """Vela's encoder and compile for ``profile``; without one, the default target's encoder (no compile)."""
    from ..targets.profiles import load_profile

    if profile is None or not profile.family.compiled_by_vela:
        default = load_profile(DEFAULT_ENCODER_TARGET)
        name = None if profile is None else profile.name
        budget = None if profile is None else profile.flash_budget_bytes
        return TargetSizer(name, _rate_model(default), encoded_bytes, None, budget, default.name)
    return TargetSizer(profile.name, _rate_model(profile), encoded_bytes, _compile_sizes(profile),
                       profile.flash_budget_bytes, profile.name)
