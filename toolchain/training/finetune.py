"""``toolchain finetune``: [prune,] cluster, fine-tune, strip and measure a Keras classifier.

The steps live in their own modules (pruning, clustering, keras_training); this one runs
them in order on checked data and writes the model with a JSON summary next to it.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..core.errors import ConfigError, InputError
from ..core.fileio import (
    atomic_write_bytes,
    atomic_write_json,
    sha256_bytes,
    sha256_file,
)
from .clustering import (
    ClusteredLayer,
    FinetuneConfig,
    SkippedLayer,
    cluster_model,
    clustered_report,
    strip_model,
    warn_user,
)
from .datasets import Dataset, check_fits_model
from .distribute import replicas, strategy_scope
from .keras_io import (
    check_classifier,
    keras_accuracy,
    keras_model_bytes,
    load_keras_model,
)
from .keras_training import compile_for_training, fit
from .pruning import PrunedLayer, prune_model
from .tf_env import seed_everything, tool_versions


@dataclass(frozen=True)
class FinetuneResult:
    accuracy_before: float  # top-1 on the test split, 0..1
    accuracy_after: float
    clustered_layers: tuple[ClusteredLayer, ...]
    skipped_layers: tuple[SkippedLayer, ...]
    pruned_layers: tuple[PrunedLayer, ...]  # empty unless pruning was asked for
    epochs: int
    train_samples: int
    test_samples: int
    elapsed_s: float = field(compare=False)
    replicas: int = 1  # devices (or workers x devices) the strategy trained on

    def summary(self) -> dict[str, Any]:
        """Deterministic content for the JSON summary (no times)."""
        return {
            "accuracy_before": self.accuracy_before,
            "accuracy_after": self.accuracy_after,
            "clustered_layers": [asdict(c) for c in self.clustered_layers],
            "skipped_layers": [
                {"name": s.name, "layer_type": s.layer_type, "reason": s.reason.value} for s in self.skipped_layers
            ],
            "pruned_layers": [asdict(p) for p in self.pruned_layers],
            "epochs": self.epochs,
            "train_samples": self.train_samples,
            "test_samples": self.test_samples,
            "replicas": self.replicas,
        }


def finetune_model(model, data: Dataset, config: FinetuneConfig, quiet: bool = False):
    """Cluster, fine-tune and strip a loaded Keras classifier. Returns (stripped model, result).

    ``data`` is checked against the model (shapes, label range) before any training.
    """
    t0 = time.perf_counter()
    in_shape, classes = check_classifier(model)
    data = check_fits_model(data, in_shape, classes)
    seed_everything(config.seed)
    with strategy_scope(config.strategy):  # every model built from here on holds the strategy's variables
        model = strip_model(model)  # a model saved with wrappers still in it
        accuracy_before = keras_accuracy(model, data.x_test, data.y_test)
        pruned: tuple[PrunedLayer, ...] = ()
        if config.prune_sparsity is not None:
            model, pruned = prune_model(model, data, config, quiet)
        clustered, plan = cluster_model(model, config)
        if not plan.clustered:
            warn_user("no layer was clustered: the output is the input model, fine-tuned")
        compile_for_training(clustered, config.learning_rate)
        fit(clustered, data, config.epochs, config.batch_size, quiet)
        stripped = strip_model(clustered)
        accuracy_after = keras_accuracy(stripped, data.x_test, data.y_test)
    result = FinetuneResult(
        accuracy_before=accuracy_before,
        accuracy_after=accuracy_after,
        clustered_layers=clustered_report(stripped, plan),
        skipped_layers=tuple(plan.skipped),
        pruned_layers=pruned,
        epochs=config.epochs,
        train_samples=len(data.x_train),
        test_samples=len(data.x_test),
        elapsed_s=time.perf_counter() - t0,
        replicas=replicas(config.strategy),
    )
    return stripped, result


def summary_path(output: str | Path) -> Path:
    """Where the JSON summary of an output goes: next to it, ``<output>.json``."""
    p = Path(output)
    return p.with_name(p.name + ".json")


def finetune_file(
    model_path: str | Path, data: Dataset, output: str | Path, config: FinetuneConfig, quiet: bool = False,
    trust_model_code: bool = False,
) -> FinetuneResult:
    """``toolchain finetune``: load, cluster + fine-tune, save OUT (.keras/.h5) and OUT.json."""
    out = Path(output)
    if out.suffix.lower() not in (".keras", ".h5"):
        raise ConfigError(f"output {out} must end in .keras or .h5")
    if out.resolve() == Path(model_path).resolve():
        raise InputError(f"output {out} would overwrite the input model: choose another path")
    with strategy_scope(config.strategy):  # loaded, clustered and trained in one strategy
        model = load_keras_model(model_path, trust_model_code)
        stripped, result = finetune_model(model, data, config, quiet=quiet)
    data_bytes = keras_model_bytes(stripped, out.suffix)
    atomic_write_bytes(out, data_bytes)
    atomic_write_json(
        summary_path(out),
        {
            "stage": "finetune",
            "input_model": {"file": Path(model_path).name, "sha256": sha256_file(model_path)},
            "data": data.describe(),
            "config": config.to_dict(),
            "result": result.summary(),
            "output_model": {"file": out.name, "sha256": sha256_bytes(data_bytes), "bytes": len(data_bytes)},
            "tool_versions": tool_versions(),
        },
    )
    return result
