"""The rewriter's view of a target (``rewrite.planner.TargetSizer``), bound to Vela here.

It sits above both ``rewrite`` and ``targets``: the planner is given Vela's weight encoder and a
compile of a candidate model without importing either.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from ..rewrite.planner import CompiledSizes, TargetSizer
from ..targets.profile import HardwareProfile
from ..targets.weight_encoding import encoded_bytes


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


def sizer_for(profile: HardwareProfile | None) -> TargetSizer:
    """Vela's encoder and compile for ``profile``; without one, the encoder alone (weight budgets only)."""
    if profile is None:
        return TargetSizer(None, encoded_bytes)
    compile_sizes = _compile_sizes(profile) if profile.family.compiled_by_vela else None
    return TargetSizer(profile.name, encoded_bytes, compile_sizes, profile.flash_budget_bytes)
