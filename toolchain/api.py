"""The verbs as Python functions, for the names ``toolchain`` exports (see ``toolchain.__init__``).

Each takes and returns the same configs and results the CLI uses; errors are the typed
``ToolchainError`` subclasses whose ``exit_code`` the CLI would return.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .pipeline.progress import OutputMode, Progress
from .pipeline.result import DeployOptions, DeployResult
from .rewrite.config import ReclusterConfig
from .rewrite.inspect import ModelStats, inspect_model
from .rewrite.job import ReclusterJob
from .rewrite.output_aware import Calibration
from .rewrite.recluster import recluster_model
from .rewrite.result import ReclusterReport

if TYPE_CHECKING:
    from .targets.profile import HardwareProfile


def recluster(model_bytes: bytes, config: ReclusterConfig | None = None,
              calibration: Calibration | None = None) -> tuple[bytes, ReclusterReport]:
    """Rewrite every eligible weight tensor of an int8 .tflite to at most K distinct values; the input is not modified.

    With ``calibration`` (representative inputs) each layer's output error on them is minimised."""
    return recluster_model(model_bytes, config or ReclusterConfig(), calibration)


def rewrite_model(model_bytes: bytes, job: ReclusterJob | None = None,
                  target: str | HardwareProfile | None = None) -> tuple[bytes, ReclusterReport]:
    """What ``toolchain recluster`` does: plan K per tensor for ``job.request`` (a fixed K, auto, a weight or a
    flash budget on ``target``), rewrite, correct biases and verify; the input is not modified."""
    from .pipeline.target_sizer import sizer_for
    from .rewrite.job import run_job
    from .targets.profiles import load_profile

    profile = load_profile(target) if isinstance(target, str) else target
    return run_job(model_bytes, job or ReclusterJob(), sizer_for(profile))


def inspect(model_bytes: bytes) -> ModelStats:
    """Per-tensor weight statistics of an int8 .tflite: distinct values, Vela palette fit, entropy, sizes."""
    return inspect_model(model_bytes)


def deploy(options: DeployOptions, progress: Progress | None = None) -> DeployResult:
    """Run (or skip, when up to date) every stage of ``toolchain deploy``.

    A reclustered model over a target's budget is reported in the result, not raised:
    call ``result.raise_for_budget()`` for the CLI's exit 4.
    """
    from .pipeline.runner import run_pipeline

    return run_pipeline(options, progress or Progress(OutputMode.QUIET))
