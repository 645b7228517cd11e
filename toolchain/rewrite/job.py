"""One rewrite, every step: split the data, plan K per tensor, apply the fit, correct biases, verify.

``toolchain recluster``, the deploy pipeline and the Python API run this; the verbs only parse
and print. The target's sizes come in as a ``TargetSizer`` (``toolchain.pipeline.target_sizer``).
What the fit learns from and what the check runs on are kept apart (calibration_set.py), so the
verification's figures come from samples the rewrite never saw.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..core.errors import ConfigError
from .calibration_set import CalibrationSet, calibration_set_from_files
from .config import Objective, ReclusterConfig
from .planner import PlanRequest, TargetSizer, rewrite_with_plan
from .result import ReclusterReport
from .verify import VerifyOptions

BIAS_CORRECTION_SAMPLES = 32  # fit samples whose mean activations bias correction uses

STATEFUL_OUTPUTS = ("the output-aware fit needs independent samples; this model keeps state between invocations: "
                    "use --objective weights (the default for such a model)")


@dataclass(frozen=True)
class ReclusterJob:
    """What to rewrite and how: the fit's config, the K goal, the data, bias correction, checks.

    The data is either files (``calibration_file``: representative inputs, ``verify_file``: inputs for the
    check only) or a ``CalibrationSet`` built in code (``data``), not both.
    """

    config: ReclusterConfig = field(default_factory=ReclusterConfig)
    request: PlanRequest = field(default_factory=PlanRequest)
    calibration_file: Path | None = None  # an .npz of representative inputs (tflite.inputs.load_samples)
    bias_correction: bool = False
    verify: VerifyOptions = field(default_factory=VerifyOptions)
    verify_file: Path | None = None  # an .npz the check runs on (then no calibration sample is held back)
    data: CalibrationSet | None = None

    def __post_init__(self) -> None:
        if self.data is not None and (self.calibration_file is not None or self.verify_file is not None):
            raise ConfigError("give the data as files or as a CalibrationSet, not both")
        has_fit_data = self.calibration_file is not None or (self.data is not None and self.data.fit is not None)
        if self.bias_correction and not has_fit_data:
            raise ConfigError("--bias-correction needs --calibration data (representative inputs)")

    def fit_uses_data(self) -> bool:
        """Whether anything of the rewrite learns from calibration samples (then some are held back)."""
        # the K planners see the data only with the output-aware objective (what run_job passes them)
        return self.config.objective is not Objective.WEIGHTS or self.bias_correction


def job_data(original: bytes, job: ReclusterJob) -> CalibrationSet:
    """The job's CalibrationSet: given, or read from its files; without the fit part when LiteRT cannot run
    the model or the model keeps state (the output-aware fit needs independent samples)."""
    from ..core.fileio import require_regular_file
    from ..tflite.graph import has_resource_variables
    from ..tflite.interpreter import litert_cannot_run
    from ..tflite.model_io import read_model

    blocker = litert_cannot_run(original)
    stateful = has_resource_variables(read_model(bytes(original)))
    if stateful and job.config.objective is Objective.OUTPUTS:
        raise ConfigError(STATEFUL_OUTPUTS)
    if blocker is not None:
        for path in (job.calibration_file, job.verify_file):  # unused, but a wrong path is still an error
            if path is not None:
                require_regular_file(path, "calibration file")
        given = job.data is not None or job.calibration_file is not None or job.verify_file is not None
        note = (f"the data was not used: LiteRT cannot run the model ({blocker}), so the rewrite is the "
                "weight-space fit and it is not verified") if given else None
        return CalibrationSet(notes=(note,) if note else ())
    if job.data is not None:
        data = job.data
    else:
        data = calibration_set_from_files(original, job.calibration_file, job.verify_file,
                                          fit_uses_data=job.fit_uses_data() and not stateful,
                                          fit_samples=job.config.calibration_samples,
                                          seed=job.config.calibration_seed, stateful=stateful)
    if stateful and data.fit is not None:
        note = "the model keeps state between invocations: the weight-space fit, the data is a stream for the check"
        data = replace(data, fit=None, notes=(*data.notes, note))
    return data


def run_job(original: bytes, job: ReclusterJob, sizer: TargetSizer | None = None,
            progress: Callable[[str, int, int], None] | None = None) -> tuple[bytes, ReclusterReport]:
    """The rewritten model and its report (plan, fits, bias corrections, verification); ``original`` is not modified.
    ``progress(what, done, total)`` hears of the steps that take seconds (total 0: a step of unknown length)."""
    def step(what: str) -> None:
        if progress is not None:
            progress(what, 0, 0)

    from .verify import verify, with_verification

    if job.data is None and (job.calibration_file is not None or job.verify_file is not None):
        step("reading the calibration data")
    data = job_data(original, job)
    config = job.config
    calibration = data.fit if config.objective_for(data.fit is not None) is Objective.OUTPUTS else None
    if data.notes and config.objective is Objective.OUTPUTS and calibration is None:
        config = replace(config, objective=Objective.WEIGHTS)  # LiteRT cannot run it (see the notes)
    # plan -> apply -> verify for the request, on the fit's samples only: the check stays out of sample
    rewritten, report = rewrite_with_plan(original, config, job.request, calibration, sizer, progress)
    report = replace(report, data_notes=data.notes, data_warnings=data.warnings)
    if job.bias_correction and report.calibration is None and data.fit is not None:
        # the output-aware fit's bias is already optimal
        from .bias_correction import correct_biases

        rewritten, corrections = correct_biases(original, rewritten, data.fit.rows[:BIAS_CORRECTION_SAMPLES])
        report = replace(report, bias_corrections=corrections)
    if job.verify.enabled:
        step("verifying in LiteRT")
        report = with_verification(report, verify(original, rewritten, data, job.verify))
    return rewritten, report
