"""Deployment toolchain for Arm Ethos-U/N NPUs: re-cluster int8 TFLite weights into shared palettes.

The public Python API is listed once, in ``_PUBLIC`` below (name -> defining module), and
every name is importable from ``toolchain``::

    import toolchain
    rewritten, report = toolchain.recluster(model_bytes, toolchain.ReclusterConfig(clusters=16))
    result = toolchain.compile_model(path, toolchain.load_profile("ethos-u55"), out_dir)
    outcome = toolchain.deploy(toolchain.DeployOptions(model=path, targets=("ethos-u55-128",)))

Names are loaded on first use (PEP 562), so ``import toolchain`` costs nothing and never
imports TensorFlow; the training functions import it when they are called.
"""
from __future__ import annotations

import importlib
from typing import Any

from .core.version import __version__

_PUBLIC: dict[str, str] = {
    # the verbs as functions
    "recluster": "toolchain.api",
    "rewrite_model": "toolchain.api",
    "inspect": "toolchain.api",
    "deploy": "toolchain.api",
    "compile_model": "toolchain.targets.compile",
    "palettise_file": "toolchain.palettes.palettise",
    "firmware_from_compile_dir": "toolchain.firmware.firmware",
    "check_firmware": "toolchain.firmware.target_check",
    "finetune_file": "toolchain.training.finetune",
    "quantize_file": "toolchain.training.quantize",
    "build_example": "toolchain.training.example",
    "load_dataset": "toolchain.training.datasets",
    "evaluate_tflite": "toolchain.tflite.accuracy",
    "write_sweep": "toolchain.reporting.sweep",
    "run_sweep": "toolchain.pipeline.sweep_runner",
    "load_profile": "toolchain.targets.profiles",
    "list_profiles": "toolchain.targets.profiles",
    # configs (frozen dataclasses)
    "ReclusterConfig": "toolchain.rewrite.config",
    "TensorRule": "toolchain.rewrite.config",
    "ScaleFit": "toolchain.rewrite.config",
    "Objective": "toolchain.rewrite.config",
    "Calibration": "toolchain.rewrite.output_aware",
    "ReclusterJob": "toolchain.rewrite.job",
    "VerifyOptions": "toolchain.rewrite.verify",
    "CalibrationSet": "toolchain.rewrite.calibration_set",
    "CheckSet": "toolchain.rewrite.calibration_set",
    "hold_back": "toolchain.rewrite.calibration_set",
    "OutputKind": "toolchain.tflite.output_kind",
    "PlanRequest": "toolchain.rewrite.planner",
    "SizeGoal": "toolchain.rewrite.planner",
    "PalettiseConfig": "toolchain.palettes.table",
    "FirmwareConfig": "toolchain.firmware.config",
    "FirmwareCheckInputs": "toolchain.firmware.target_check",
    "FinetuneConfig": "toolchain.training.clustering",
    "QuantizeConfig": "toolchain.training.quantize",
    "DeployOptions": "toolchain.pipeline.result",
    "SweepOptions": "toolchain.pipeline.sweep_points",
    "Executor": "toolchain.pipeline.sweep_points",
    "Strategy": "toolchain.training.distribute",
    "HardwareProfile": "toolchain.targets.profile",
    # results (frozen dataclasses)
    "ReclusterReport": "toolchain.rewrite.result",
    "TensorResult": "toolchain.rewrite.result",
    "TensorAction": "toolchain.rewrite.result",
    "Verification": "toolchain.rewrite.result",
    "Evidence": "toolchain.rewrite.result",
    "ModelStats": "toolchain.rewrite.inspect",
    "CompileResult": "toolchain.targets.compile_result",
    "DeployResult": "toolchain.pipeline.result",
    "FirmwareCheckResult": "toolchain.firmware.target_check",
    "SweepRun": "toolchain.pipeline.sweep_runner",
    "PointOutcome": "toolchain.pipeline.sweep_points",
    "FinetuneResult": "toolchain.training.finetune",
    "QuantizeResult": "toolchain.training.quantize",
    # errors and exit codes
    "ToolchainError": "toolchain.core.errors",
    "ExitCode": "toolchain.core.errors",
}

__all__ = ["__version__", *_PUBLIC]  # noqa: PLE0604 (the keys of _PUBLIC are strings; ruff cannot see it)


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'toolchain' has no attribute '{name}'")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))
