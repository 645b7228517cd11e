"""Full-integer int8 conversion with the TFLite converter, measured with LiteRT.

The model is converted through a concrete function with a fixed batch of 1, so
the .tflite has no dynamic batch dimension (Vela would otherwise warn and patch
it). Calibration samples are drawn from the real training split
with a seeded generator, so the same .keras, data and seed give a byte-identical
.tflite. Optional: cluster-preserving QAT (tfmot's CQAT scheme, a short
fine-tune) and per-tensor quantization (for comparison in reports).

TensorFlow is imported only inside the functions that need it.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import ConfigError, InputError, ToolError
from ..core.fileio import (
    atomic_write_bytes,
    atomic_write_json,
    sha256_bytes,
    sha256_file,
)
from ..tflite.accuracy import evaluate_tflite
from ..tflite.graph import find_weight_tensors, tensor_values
from ..tflite.model_io import read_model
from .clustering import strip_model
from .datasets import Dataset, check_fits_model
from .distribute import Strategy, parse_strategy, strategy_scope
from .finetune import summary_path
from .keras_io import check_classifier, keras_accuracy, load_keras_model
from .keras_training import compile_for_training, fit
from .tf_env import (
    first_line,
    import_tf,
    import_tfmot,
    native_stderr_filtered,
    seed_everything,
    tool_versions,
)

DEFAULT_REPRESENTATIVE_SAMPLES = 200


@dataclass(frozen=True)
class QuantizeConfig:
    representative_samples: int = DEFAULT_REPRESENTATIVE_SAMPLES  # calibration samples from x_train
    per_tensor: bool = False  # one scale per weight tensor instead of one per output channel
    cluster_preserving_qat: bool = False  # tfmot CQAT fine-tune before conversion
    qat_epochs: int = 1
    qat_learning_rate: float = 1e-5
    batch_size: int = 32
    preserve_sparsity: bool = False  # CQAT only: keep zero weights at zero
    seed: int = 0
    strategy: Strategy = Strategy.DEFAULT  # CQAT only: where it trains (toolchain.training.distribute)

    def __post_init__(self) -> None:
        object.__setattr__(self, "strategy", parse_strategy(self.strategy, "QAT strategy"))
        if not isinstance(self.representative_samples, int) or self.representative_samples < 1:
            raise ConfigError(f"representative samples must be >= 1, got {self.representative_samples!r}")
        if not isinstance(self.qat_epochs, int) or self.qat_epochs < 1:
            raise ConfigError(f"QAT epochs must be >= 1, got {self.qat_epochs!r}")
        if not (isinstance(self.qat_learning_rate, (int, float)) and 0 < self.qat_learning_rate <= 1):
            raise ConfigError(f"QAT learning rate must be in (0, 1], got {self.qat_learning_rate!r}")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ConfigError(f"batch size must be >= 1, got {self.batch_size!r}")
        if not isinstance(self.seed, int) or not 0 <= self.seed < 2**32:
            raise ConfigError(f"seed must be a whole number from 0 to 2^32-1, got {self.seed!r}")
        if self.per_tensor and self.cluster_preserving_qat:
            raise ConfigError(
                "per-tensor quantization cannot be combined with cluster-preserving QAT "
                "(tfmot's QAT scheme fixes per-channel quantization for convolutions)"
            )
        if self.preserve_sparsity and not self.cluster_preserving_qat:
            raise ConfigError(
                "sparsity preservation applies to cluster-preserving QAT only (add --cluster-preserving-qat)"
            )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["strategy"] = self.strategy.value
        if not self.cluster_preserving_qat:  # QAT settings are irrelevant without QAT
            for k in ("qat_epochs", "qat_learning_rate", "batch_size", "preserve_sparsity", "strategy"):
                d.pop(k)
        return d


@dataclass(frozen=True)
class WeightTensorStats:
    """Distinct int8 values of one weight tensor of the converted model."""

    name: str
    op: str
    granularity: str  # "per-channel", "per-tensor" (or "none": not quantized)
    distinct_values: int
    max_distinct_values_per_channel: int


@dataclass(frozen=True)
class QuantizeResult:
    float_accuracy: float  # Keras model on the test split (before QAT), 0..1
    int8_accuracy: float  # LiteRT on the test split, 0..1
    qat_float_accuracy: float | None  # Keras QAT model (fake-quantized), when QAT ran
    model_bytes: int  # size of the .tflite
    test_samples: int
    representative_samples: int
    weight_tensors: tuple[WeightTensorStats, ...]
    elapsed_s: float = field(compare=False)

    def summary(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("elapsed_s")  # times go to stdout, never into the file
        return d


def representative_indices(n_train: int, count: int, seed: int) -> np.ndarray:
    """Which training samples calibrate: a seeded draw without replacement, in sorted order."""
    count = min(count, n_train)
    return np.sort(np.random.default_rng(seed).choice(n_train, size=count, replace=False))


def batch1_concrete_function(model):
    """The model traced in inference mode for one float32 sample: the converter's input."""
    tf = import_tf()
    shape = [1, *[int(d) for d in model.inputs[0].shape[1:]]]
    fn = tf.function(lambda x: model(x, training=False))
    return fn.get_concrete_function(tf.TensorSpec(shape, tf.float32, name="input"))


def convert_float(model) -> bytes:
    """The float32 .tflite of a Keras model (batch 1): the size compression rates are measured against."""
    tf = import_tf()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([batch1_concrete_function(model)], model)
    try:
        with native_stderr_filtered():
            return bytes(converter.convert())
    except Exception as exc:  # noqa: BLE001  the converter raises many types: one line, exit code 3
        raise ToolError(f"TFLite converter failed on the float model: {first_line(exc)}") from None


def convert_int8(model, calibration: np.ndarray, per_tensor: bool = False) -> bytes:
    """Full-integer int8 .tflite (int8 input and output) of a Keras model, batch fixed to 1.

    ``calibration`` (N, *sample_shape) float32 feeds the representative dataset (a QAT
    model's fake-quant nodes fix the ranges they cover; the rest is calibrated).
    """
    tf = import_tf()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([batch1_concrete_function(model)], model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    samples = np.asarray(calibration, dtype=np.float32)

    def representative():
        for i in range(samples.shape[0]):
            yield [samples[i : i + 1]]

    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    if per_tensor:
        converter._experimental_disable_per_channel = True  # the converter's only switch for it
    try:
        with native_stderr_filtered():
            return bytes(converter.convert())
    except Exception as exc:  # noqa: BLE001  ConverterError and friends: one line, exit code 3
        raise ToolError(f"TFLite converter failed: {first_line(exc)}") from None


def cluster_preserving_qat(model, data: Dataset, config: QuantizeConfig, quiet: bool):
    """tfmot's cluster-preserving quantization-aware training (a short fine-tune)."""
    tfmot = import_tfmot()
    try:
        annotated = tfmot.quantization.keras.quantize_annotate_model(model)
        qat = tfmot.quantization.keras.quantize_apply(
            annotated,
            tfmot.experimental.combine.Default8BitClusterPreserveQuantizeScheme(config.preserve_sparsity),
        )
    except Exception as exc:  # noqa: BLE001  tfmot raises ValueError, KeyError... for layers it cannot quantize
        raise ToolError(f"tfmot cannot prepare the model for QAT: {first_line(exc)}") from None
    compile_for_training(qat, config.qat_learning_rate)
    fit(qat, data, config.qat_epochs, config.batch_size, quiet)
    return qat


def weight_tensor_stats(tflite_bytes: bytes) -> tuple[WeightTensorStats, ...]:
    """Distinct int8 values per weight tensor, and the most within one channel."""
    model = read_model(tflite_bytes)
    stats = []
    for w in find_weight_tensors(model):
        values = tensor_values(model, model.subgraphs[w.subgraph].tensors[w.tensor_index])
        total = int(np.unique(values).size)
        if values.ndim:
            rows = np.moveaxis(values, w.channel_axis, 0).reshape(values.shape[w.channel_axis], -1)
        else:
            rows = values.reshape(1, -1)
        worst = max(int(np.unique(row).size) for row in rows)
        stats.append(WeightTensorStats(w.name, w.op, w.quantization.granularity.value, total, worst))
    return tuple(stats)


def quantize_model(model, data: Dataset, config: QuantizeConfig, quiet: bool = False) -> tuple[bytes, QuantizeResult]:
    """Convert a loaded Keras classifier to full int8 and measure it. Data is checked first."""
    t0 = time.perf_counter()
    in_shape, classes = check_classifier(model)
    data = check_fits_model(data, in_shape, classes)
    seed_everything(config.seed)
    model = strip_model(model)
    float_accuracy = keras_accuracy(model, data.x_test, data.y_test)
    qat_accuracy = None
    if config.cluster_preserving_qat:
        with strategy_scope(config.strategy):  # the QAT model is built, compiled and trained in the strategy
            model = cluster_preserving_qat(model, data, config, quiet)
            qat_accuracy = keras_accuracy(model, data.x_test, data.y_test)
    # Even a QAT model needs calibration in TF 2.21: the converter refuses int8 I/O without it.
    idx = representative_indices(len(data.x_train), config.representative_samples, config.seed)
    tflite = convert_int8(model, data.x_train[idx], per_tensor=config.per_tensor)
    int8_accuracy = evaluate_tflite(tflite, data.x_test, data.y_test)
    result = QuantizeResult(
        float_accuracy=float_accuracy,
        int8_accuracy=int8_accuracy,
        qat_float_accuracy=qat_accuracy,
        model_bytes=len(tflite),
        test_samples=len(data.x_test),
        representative_samples=int(idx.size),
        weight_tensors=weight_tensor_stats(tflite),
        elapsed_s=time.perf_counter() - t0,
    )
    return tflite, result


def quantize_file(
    model_path: str | Path, data: Dataset, output: str | Path, config: QuantizeConfig, quiet: bool = False,
    trust_model_code: bool = False,
) -> QuantizeResult:
    """``toolchain quantize``: load a .keras/.h5, convert, write OUT.tflite and OUT.tflite.json."""
    out = Path(output)
    if out.suffix.lower() != ".tflite":
        raise ConfigError(f"output {out} must end in .tflite")
    if out.resolve() == Path(model_path).resolve():
        raise InputError(f"output {out} would overwrite the input model: choose another path")
    model = load_keras_model(model_path, trust_model_code)
    tflite, result = quantize_model(model, data, config, quiet=quiet)
    atomic_write_bytes(out, tflite)
    atomic_write_json(
        summary_path(out),
        {
            "stage": "quantize",
            "input_model": {"file": Path(model_path).name, "sha256": sha256_file(model_path)},
            "data": data.describe(),
            "config": config.to_dict(),
            "result": result.summary(),
            "output_model": {"file": out.name, "sha256": sha256_bytes(tflite), "bytes": len(tflite)},
            "tool_versions": tool_versions(),
        },
    )
    return result
