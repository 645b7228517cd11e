"""The verbs as Python functions, for the names ``toolchain`` exports (see ``toolchain.__init__``).

Each takes and returns the same configs and results the CLI uses; errors are the typed
``ToolchainError`` subclasses whose ``exit_code`` the CLI would return.
"""
from __future__ import annotations

from .pipeline.progress import OutputMode, Progress
from .pipeline.result import DeployOptions, DeployResult
from .rewrite.config import ReclusterConfig
from .rewrite.inspect import ModelStats, inspect_model
from .rewrite.output_aware import Calibration
from .rewrite.recluster import recluster_model
from .rewrite.result import ReclusterReport


def recluster(model_bytes: bytes, config: ReclusterConfig | None = None,
              calibration: Calibration | None = None) -> tuple[bytes, ReclusterReport]:
    """Rewrite every eligible weight tensor of an int8 .tflite to at most K distinct values; the input is not modified.

    With ``calibration`` (representative inputs) each layer's output error on them is minimised."""
    return recluster_model(model_bytes, config or ReclusterConfig(), calibration)


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
