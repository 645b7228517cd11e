"""Deployment toolchain for Arm Ethos-U/N NPUs: re-cluster int8 TFLite weights into shared palettes.

The public Python API mirrors the CLI. Importing this package never imports TensorFlow.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .stages.recluster import ReclusterConfig, ReclusterReport


def recluster(model_bytes: bytes, config: "ReclusterConfig | None" = None) -> "tuple[bytes, ReclusterReport]":
    """Rewrite every eligible weight tensor of an int8 .tflite to at most K distinct values.

    Returns the new model's bytes and a report (see ``toolchain.stages.recluster``).
    """
    from .stages.recluster import ReclusterConfig, recluster_model

    return recluster_model(model_bytes, config or ReclusterConfig())


def inspect(model_bytes: bytes):
    """Per-tensor weight statistics of a .tflite model (see ``toolchain.stages.inspect``)."""
    from .stages.inspect import inspect_model

    return inspect_model(model_bytes)
