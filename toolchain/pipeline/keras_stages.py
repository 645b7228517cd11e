"""The deploy pipeline's Keras-side stage bodies: example, baseline, finetune, quantize.

They call the training stages (which import TensorFlow lazily, inside their
functions); the pipeline imports this module only for a Keras model, so the
post-training entry (an int8 .tflite) never loads TensorFlow.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.fileio import atomic_write_bytes
from ..reporting.formatting import fmt_pct
from ..reporting.report import Variant
from ..rewrite.inspect import deflate_size
from ..training.datasets import Dataset
from .config import PipelineConfig
from .inputs import Entry
from .manifest import TRAINING_STAGE_CODE, StageKey, file_digest, package_versions
from .progress import StageRecord, StageStatus
from .stage_runner import StageRunner

FLOAT_MODEL = "model_float.tflite"
PLAIN_MODEL = "model_int8.tflite"
FINETUNED_MODEL = "model.keras"
BEFORE_MODEL = "model_int8.tflite"
# Bump when what the baseline stage writes changes: invalidates earlier baselines.
BASELINE_RECIPE = 1


def training_versions() -> dict[str, str]:
    from ..training.tf_env import tool_versions

    return tool_versions()


@dataclass(frozen=True)
class ExampleOutcome:
    model_path: Path
    float_accuracy: float
    reused: bool


def run_example(example_dir: Path, quiet: bool) -> ExampleOutcome:
    """The bundled example, trained or taken from its cache (build_example keeps its own cache key)."""
    from ..training.example import build_example

    r = build_example(example_dir, quiet=quiet)
    return ExampleOutcome(r.model_path, r.float_accuracy, r.reused)


def run_baseline(model_path: Path, data: Dataset, quantize: dict[str, Any], out_dir: Path, quiet: bool,
                 trust_model_code: bool = False) -> dict[str, Any]:
    """The unclustered model as float32 .tflite and as plain int8 (no clustering), with accuracies."""
    from ..training.clustering import strip_model
    from ..training.keras_io import load_keras_model
    from ..training.quantize import QuantizeConfig, convert_float, quantize_model

    config = QuantizeConfig(**quantize)
    model = strip_model(load_keras_model(model_path, trust_model_code))
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
    from ..training.quantize import QuantizeConfig

    return QuantizeConfig(**quantize).to_dict()


def finetune_dict(finetune: dict[str, Any]) -> dict[str, Any]:
    from ..training.clustering import FinetuneConfig

    return FinetuneConfig.from_dict(finetune, "pipeline config [finetune]").to_dict()


def run_finetune(model_path: Path, data: Dataset, finetune: dict[str, Any], out_dir: Path, quiet: bool,
                 trust_model_code: bool = False) -> dict[str, Any]:
    from ..training.clustering import FinetuneConfig
    from ..training.finetune import finetune_file

    config = FinetuneConfig.from_dict(finetune, "pipeline config [finetune]")
    r = finetune_file(model_path, data, out_dir / FINETUNED_MODEL, config, quiet=quiet, trust_model_code=trust_model_code)
    return {
        "accuracy_before": r.accuracy_before,
        "accuracy_after": r.accuracy_after,
        "clusters": config.clusters,
        "epochs": r.epochs,
        "train_samples": r.train_samples,
        "clustered_layers": len(r.clustered_layers),
        "skipped_layers": len(r.skipped_layers),
    }


def run_quantize(model_path: Path, data: Dataset, quantize: dict[str, Any], out_dir: Path, quiet: bool,
                 trust_model_code: bool = False) -> dict[str, Any]:
    from ..training.quantize import QuantizeConfig, quantize_file

    r = quantize_file(model_path, data, out_dir / BEFORE_MODEL, QuantizeConfig(**quantize), quiet=quiet,
                      trust_model_code=trust_model_code)
    return {
        "int8_accuracy": r.int8_accuracy,
        "clustered_float_accuracy": r.float_accuracy,
        "max_distinct_values": max((w.distinct_values for w in r.weight_tensors), default=0),
    }


# ----------------------------------------------------------------------------- the wiring


def training_stage_key(stage: str, inputs: dict[str, Any], config: dict[str, Any]) -> StageKey:
    return StageKey(stage, inputs, config, {**package_versions(code=TRAINING_STAGE_CODE), **training_versions()})


def run_keras_stages(run: StageRunner, entry: Entry, mdir: Path, config: PipelineConfig, data, models, accuracies):
    quiet = not run.progress.interactive
    trust = run.options.trust_model_code  # the user's word for their model: Lambda layers, custom objects
    # Settings are checked before anything trains (a bad CONFIG fails in a second, not after a fine-tune).
    quantize_cfg = quantize_dict(config.quantize)
    finetune_cfg = finetune_dict(config.finetune)
    if entry is Entry.EXAMPLE:
        t0 = time.perf_counter()
        example_dir = run.options.example_dir or (run.options.build_dir / "example")
        with run.progress.training_output():
            ex = run_example(example_dir, quiet)
        run.record(StageRecord("example", StageStatus.UP_TO_DATE if ex.reused else StageStatus.RAN,
                               time.perf_counter() - t0, f"float accuracy {fmt_pct(ex.float_accuracy)}"))
        source = ex.model_path
    else:
        source = Path(run.options.model)  # type: ignore[arg-type]
    data_key = {"sha256": data.fingerprint(), "train_samples": len(data.x_train),
                "test_samples": len(data.x_test)}

    bdir = mdir / "baseline"
    key = training_stage_key("baseline", {"model": file_digest(source), "data": data_key},
                        {"quantize": quantize_cfg, "recipe": BASELINE_RECIPE})

    def baseline():
        with run.progress.training_output():
            return run_baseline(source, data, config.quantize, bdir, quiet, trust)

    base = run.stage("baseline (float, plain int8)", bdir, key, baseline,
                     lambda r: f"float {fmt_pct(r['float_accuracy'])}, plain int8 {fmt_pct(r['plain_accuracy'])}")
    models[Variant.PLAIN] = (bdir / PLAIN_MODEL, f"baseline/{PLAIN_MODEL}")
    accuracies[Variant.PLAIN] = base["plain_accuracy"]

    fdir = mdir / "finetune"
    key = training_stage_key("finetune", {"model": file_digest(source), "data": data_key}, finetune_cfg)

    def finetune():
        with run.progress.training_output():
            return run_finetune(source, data, config.finetune, fdir, quiet, trust)

    ft = run.stage(f"finetune (K={finetune_cfg['clusters']})", fdir, key, finetune,
                   lambda r: f"float accuracy {fmt_pct(r['accuracy_before'])} -> {fmt_pct(r['accuracy_after'])}")

    qdir = mdir / "quantize"
    clustered = fdir / FINETUNED_MODEL
    key = training_stage_key("quantize", {"model": file_digest(clustered), "data": data_key}, quantize_cfg)

    def quantize():
        with run.progress.training_output():
            return run_quantize(clustered, data, config.quantize, qdir, quiet, trust)

    q = run.stage("quantize (tfmot flow)", qdir, key, quantize,
                  lambda r: f"int8 accuracy {fmt_pct(r['int8_accuracy'])}, up to {r['max_distinct_values']} values/tensor")
    models[Variant.BEFORE] = (qdir / BEFORE_MODEL, f"quantize/{BEFORE_MODEL}")
    accuracies[Variant.BEFORE] = q["int8_accuracy"]
    float_model = {"file": f"baseline/{FLOAT_MODEL}", "file_bytes": base["float_model_bytes"],
                   "deflate_bytes": base["float_deflate_bytes"], "accuracy": base["float_accuracy"]}
    return float_model, ft
