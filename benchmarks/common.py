"""Shared helpers for the benchmarks: cached real models and result files."""
from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / "build" / "bench"
RESULTS = REPO / "benchmarks" / "results"

# The compression benchmark's targets, checked at K = 16 and recorded in its results
# (target_thresholds; benchmarks/tables reads results written before that with these).
FASHION_TARGETS = {
    "max_encoded_ratio_vs_usual": 0.55,  # this toolchain's Vela encoded weights / the usual flow's
    "max_accuracy_loss_vs_usual_points": 0.5,
    "min_zip_factor_vs_float": 8.0,  # zipped float .tflite / zipped model
    "max_accuracy_loss_vs_float_points": 1.0,
}


def progress(message: str) -> None:
    """One line per step on stderr, as it happens: a benchmark runs for minutes and its tables (stdout) come last."""
    print(f"  [{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def every(n: int, total: int, what: str):
    """A progress callback for loops of many cases: a line every ``n`` of ``total`` (and at the end)."""
    def report(done: int) -> None:
        if done % n == 0 or done == total:
            progress(f"{done:,} of {total:,} {what}")
    return report


def mobilenet_v2_int8() -> Path:
    """Keras MobileNetV2 (random weights, no download: 3.5M parameters) converted to full int8."""
    path = CACHE / "mobilenet_v2_int8.tflite"
    if path.exists():
        return path
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import numpy as np
    import tensorflow as tf
    import tf_keras as keras

    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3), classes=1000)
    rng = np.random.default_rng(0)

    def rep():
        for _ in range(4):
            yield [rng.uniform(-1, 1, (1, 224, 224, 3)).astype(np.float32)]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = rep
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    data = conv.convert()
    CACHE.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def machine() -> dict:
    return {"python": sys.version.split()[0], "machine": platform.machine(), "cpus": os.cpu_count()}


def write_result(name: str, payload: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    return path
