"""One rewrite, every step: plan K per tensor, apply the fit, correct biases, verify.

``toolchain recluster``, the deploy pipeline and the Python API run this; the verbs only parse
and print. The target's sizes come in as a ``TargetSizer`` (``toolchain.pipeline.target_sizer``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..core.errors import ConfigError
from .config import Objective, ReclusterConfig
from .planner import PlanRequest, TargetSizer, rewrite_with_plan
from .result import ReclusterReport


@dataclass(frozen=True)
class VerifyOptions:
    """Running the original and the rewritten model side by side in LiteRT."""

    enabled: bool = True
    samples: int = 32
    seed: int = 0  # of the random inputs used without calibration data


@dataclass(frozen=True)
class ReclusterJob:
    """What to rewrite and how: the fit's config, the K goal, the calibration file, bias correction, checks."""

    config: ReclusterConfig = field(default_factory=ReclusterConfig)
    request: PlanRequest = field(default_factory=PlanRequest)
    calibration_file: Path | None = None  # an .npz of representative inputs (tflite.inputs.load_calibration)
    bias_correction: bool = False
    verify: VerifyOptions = field(default_factory=VerifyOptions)

    def __post_init__(self) -> None:
        if self.bias_correction and self.calibration_file is None:
            raise ConfigError("--bias-correction needs --calibration data (representative inputs)")


def run_job(original: bytes, job: ReclusterJob, sizer: TargetSizer | None = None) -> tuple[bytes, ReclusterReport]:
    """The rewritten model and its report (plan, fits, bias corrections, verification); ``original`` is not modified."""
    from .verify import calibration_inputs, verify, with_verification

    config = job.config
    calibration = None
    if job.calibration_file is not None and config.objective_for(True) is Objective.OUTPUTS:
        from .output_aware import calibration_from_file

        calibration = calibration_from_file(original, job.calibration_file, config)
    rewritten, report = rewrite_with_plan(original, config, job.request, calibration, sizer)
    if job.bias_correction and report.calibration is None:  # the output-aware fit's bias is already optimal
        from .bias_correction import correct_biases

        inputs, _ = calibration_inputs(original, job.calibration_file, max(job.verify.samples, 1), job.verify.seed)
        rewritten, corrections = correct_biases(original, rewritten, inputs)
        report = replace(report, bias_corrections=corrections)
    if job.verify.enabled:
        calibration_path: str | os.PathLike[str] | None = job.calibration_file
        report = with_verification(report, verify(original, rewritten, calibration_path, job.verify.samples,
                                                  job.verify.seed))
    return rewritten, report
