"""The deploy pipeline's Keras-side stage bodies: example, baseline, finetune, quantize.

They call the training stages (which import TensorFlow lazily, inside their
functions); the pipeline imports this module only for a Keras model, so the
post-training entry (an int8 .tflite) never loads TensorFlow.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.fileio import atomic_write_bytes
from .datasets import Dataset
from .inspect import deflate_size

FLOAT_MODEL = "model_float.tflite"
PLAIN_MODEL = "model_int8.tflite"
FINETUNED_MODEL = "model.keras"
BEFORE_MODEL = "model_int8.tflite"
# Bump when what the baseline stage writes changes: invalidates earlier baselines.
BASELINE_RECIPE = 1


def training_versions() -> dict[str, str]:
    from .finetune import tool_versions

    return tool_versions()


@dataclass(frozen=True)
class ExampleOutcome:
    model_path: Path
    float_accuracy: float
    reused: bool


def run_example(example_dir: Path, quiet: bool) -> ExampleOutcome:
    """The bundled example, trained or taken from its cache (build_example keeps its own cache key)."""
    from .example import build_example

    r = build_example(example_dir, quiet=quiet)
    return ExampleOutcome(r.model_path, r.float_accuracy, r.reused)


def run_baseline(model_path: Path, data: Dataset, quantize: dict[str, Any], out_dir: Path, quiet: bool) -> dict[str, Any]:
    """The unclustered model as float32 .tflite and as plain int8 (no clustering), with accuracies."""
    from .finetune import load_keras_model, strip_model
    from .quantize import QuantizeConfig, convert_float, quantize_model

    config = QuantizeConfig(**quantize)
    model = strip_model(load_keras_model(model_path))
    int8, result = quantize_model(model, data, config, quiet=quiet)
    float_bytes = convert_float(model)
    atomic_write_bytes(out_dir / FLOAT_MODEL, float_bytes)
    atomic_write_bytes(out_dir / PLAIN_MODEL, int8)
    return {
        "float_accuracy": result.float_accuracy,
        "plain_accuracy": result.int8_accuracy,
        "float_model_bytes": len(float_bytes),
        "float_deflate_bytes": deflate_size(float_bytes),
        "test_samples": result.test_samples,
    }


def quantize_dict(quantize: dict[str, Any]) -> dict[str, Any]:
    from .quantize import QuantizeConfig

    return QuantizeConfig(**quantize).to_dict()


def finetune_dict(finetune: dict[str, Any]) -> dict[str, Any]:
    from .finetune import FinetuneConfig

    return FinetuneConfig.from_dict(finetune, "pipeline config [finetune]").to_dict()


def run_finetune(model_path: Path, data: Dataset, finetune: dict[str, Any], out_dir: Path, quiet: bool) -> dict[str, Any]:
    from .finetune import FinetuneConfig, finetune_file

    config = FinetuneConfig.from_dict(finetune, "pipeline config [finetune]")
    r = finetune_file(model_path, data, out_dir / FINETUNED_MODEL, config, quiet=quiet)
    return {
        "accuracy_before": r.accuracy_before,
        "accuracy_after": r.accuracy_after,
        "clusters": config.clusters,
        "epochs": r.epochs,
        "train_samples": r.train_samples,
        "clustered_layers": len(r.clustered_layers),
        "skipped_layers": len(r.skipped_layers),
    }


def run_quantize(model_path: Path, data: Dataset, quantize: dict[str, Any], out_dir: Path, quiet: bool) -> dict[str, Any]:
    from .quantize import QuantizeConfig, quantize_file

    r = quantize_file(model_path, data, out_dir / BEFORE_MODEL, QuantizeConfig(**quantize), quiet=quiet)
    return {
        "int8_accuracy": r.int8_accuracy,
        "clustered_float_accuracy": r.float_accuracy,
        "max_distinct_values": max((w.distinct_values for w in r.weight_tensors), default=0),
    }
