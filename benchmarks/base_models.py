"""The converged float base models the Fashion-MNIST benchmarks share (compression, RFC table, cascade).

Four networks (28x28x1 input, 10 classes), all trained on the 60,000 Fashion-MNIST training images with one
schedule: Adam, cosine decay of the learning rate from 2e-3 to 0, batch 128, seed 0.

- ``convnet_bn``, ``mobilenet_v2``, ``ds_cnn``: the output-aware benchmark's models, defined, trained and cached
  by benchmarks/output_aware_models.py (build/bench/output_aware/<net>-e<epochs>-s0/float.keras); used as they are.
- ``convnet``: the plain two-conv ConvNet of the clustering paper's MNIST row (benchmarks/fashion_training.py,
  ``Arch.CONVNET``, no BatchNorm), trained here with the same schedule for CONVNET_EPOCHS epochs and cached under
  build/bench/base/convnet-e<epochs>-s0/. Its float test accuracy after every epoch is recorded in the cache's
  sidecar (a convergence record: the schedule is fixed, nothing is chosen by it).

Each base model's float .tflite and plain int8 model (the toolchain's converter: per-channel int8, batch 1,
calibrated on 200 seeded training images) are cached next to it under build/bench/base/<net>-<sha256 prefix>/.

Run: .venv/bin/python benchmarks/base_models.py [convnet convnet_bn mobilenet_v2 ds_cnn]
     (trains what is missing, measures every model on the 10,000-image test set in LiteRT and writes
     benchmarks/results/base_models.json)
"""
from __future__ import annotations

import os
import sys
import time
from enum import Enum
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import output_aware_models as oam
from common import CACHE, REPO, machine, write_result
from fashion_training import Arch, build_model, cached, store

ROOT = CACHE / "base"
CONVNET_EPOCHS = 6


class Base(Enum):
    CONVNET = "convnet"
    CONVNET_BN = "convnet_bn"
    MOBILENET_V2 = "mobilenet_v2"
    DS_CNN = "ds_cnn"


SHARED = {Base.CONVNET_BN: oam.Net.CONVNET_BN, Base.MOBILENET_V2: oam.Net.MOBILENET_V2, Base.DS_CNN: oam.Net.DS_CNN}


def epochs(base: Base) -> int:
    return CONVNET_EPOCHS if base is Base.CONVNET else oam.EPOCHS[SHARED[base]]


def keras_path(base: Base) -> Path:
    if base in SHARED:
        return oam.paths(SHARED[base])["keras"]
    return ROOT / f"{base.value}-e{CONVNET_EPOCHS}-s{oam.SEED}" / "float.keras"


def schedule() -> dict:
    """The training schedule, as stated in the results (every base model shares it; epochs per network)."""
    return {"optimizer": "adam", "learning_rate": f"cosine decay {oam.PEAK_LEARNING_RATE:g} -> 0 over all steps",
            "batch": oam.BATCH, "train_images": 60_000, "seed": oam.SEED,
            "epochs": {b.value: epochs(b) for b in Base},
            "trained_by": {b.value: ("benchmarks/output_aware_models.py" if b in SHARED else "benchmarks/base_models.py")
                           for b in Base}}


def _train_convnet(data, path: Path) -> dict:
    from toolchain.training.keras_io import keras_accuracy, keras_model_bytes
    from toolchain.training.keras_training import (
        compile_for_training,
        epoch_line_callback,
    )
    from toolchain.training.tf_env import import_keras, seed_everything

    keras = import_keras()
    seed_everything(oam.SEED)
    model = build_model(Arch.CONVNET)
    steps = CONVNET_EPOCHS * int(np.ceil(len(data.x_train) / oam.BATCH))
    compile_for_training(model, keras.optimizers.schedules.CosineDecay(oam.PEAK_LEARNING_RATE, steps))
    curve: list[dict] = []

    class Curve(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            acc = keras_accuracy(self.model, data.x_test, data.y_test)
            curve.append({"epoch": epoch + 1, "train_loss": float(logs.get("loss")),
                          "train_accuracy": float(logs.get("accuracy")), "test_accuracy": acc})
            print(f"  test accuracy after epoch {epoch + 1}: {100 * acc:.2f}%", flush=True)

    t0 = time.perf_counter()
    model.fit(data.x_train, data.y_train, epochs=CONVNET_EPOCHS, batch_size=oam.BATCH, shuffle=True, verbose=0,
              callbacks=[epoch_line_callback(CONVNET_EPOCHS), Curve()])
    info = {"time_s": time.perf_counter() - t0, "parameters": int(model.count_params()), "epochs": CONVNET_EPOCHS,
            "curve": curve}
    store(path, keras_model_bytes(model), info)
    return info


def ensure(base: Base, data=None) -> dict:
    """The base model's training record (its sidecar), training it first when it is not cached.

    ``data``: the whole Fashion-MNIST dataset (loaded when None and training is needed; never a subset).
    A shared model that is missing is trained by output_aware_models.train (the same code and cache the
    output-aware benchmark uses), so two benchmarks never train the same network twice.
    """
    path = keras_path(base)
    info = cached(path)
    if info is not None:
        return info | {"cached": True}
    if data is None:
        from toolchain.training.datasets import load_dataset

        data = load_dataset("fashion-mnist")
    if len(data.x_train) != 60_000:
        raise ValueError(f"base models train on all 60,000 training images, not {len(data.x_train):,}")
    if base in SHARED:
        print(f"{base.value}: training the shared base model ({epochs(base)} epochs; benchmarks/output_aware_models.py)",
              flush=True)
        return oam.train(SHARED[base], data)
    print(f"{base.value}: training the base model ({CONVNET_EPOCHS} epochs on {len(data.x_train):,} images)", flush=True)
    return _train_convnet(data, path) | {"cached": False}


def _converted(base: Base, kind: str) -> Path:
    """The cached float or int8 .tflite of a base model (made on first use)."""
    from toolchain.core.fileio import sha256_file

    path = keras_path(base)
    out = ROOT / f"{base.value}-{sha256_file(path)[:16]}" / f"{kind}.tflite"
    if cached(out) is not None:
        return out
    from toolchain.training.keras_io import load_keras_model
    from toolchain.training.quantize import (
        convert_float,
        convert_int8,
        representative_indices,
    )

    t0 = time.perf_counter()
    model = load_keras_model(path)
    if kind == "float":
        data = convert_float(model)
    else:
        from toolchain.training.datasets import load_dataset

        x = load_dataset("fashion-mnist").x_train
        data = convert_int8(model, x[representative_indices(len(x), oam.REPRESENTATIVE_IMAGES, oam.SEED)])
    store(out, data, {"time_s": time.perf_counter() - t0})
    return out


def float_tflite(base: Base) -> Path:
    return _converted(base, "float")


def int8_tflite(base: Base) -> Path:
    """Per-channel int8, batch 1, calibrated on 200 seeded images of the whole training split."""
    return _converted(base, "int8")


def main() -> int:
    from toolchain.core.fileio import sha256_file
    from toolchain.rewrite.inspect import deflate_size
    from toolchain.tflite.accuracy import evaluate_tflite
    from toolchain.training.datasets import load_dataset

    load_start = os.getloadavg()
    data = load_dataset("fashion-mnist")
    models = {}
    for name in sys.argv[1:] or [b.value for b in Base]:
        base = Base(name)
        info = ensure(base, data)
        fl, q = float_tflite(base).read_bytes(), int8_tflite(base).read_bytes()
        models[name] = {
            "keras_model": str(keras_path(base).relative_to(REPO)), "sha256": sha256_file(keras_path(base)),
            "trained_by": schedule()["trained_by"][name], "epochs": info.get("epochs"),
            "parameters": info.get("parameters"), "training_time_s": info.get("time_s"), "curve": info.get("curve"),
            "float_accuracy": evaluate_tflite(fl, data.x_test, data.y_test), "float_zipped_bytes": deflate_size(fl),
            "int8_accuracy": evaluate_tflite(q, data.x_test, data.y_test), "int8_zipped_bytes": deflate_size(q)}
        print(name, {k: v for k, v in models[name].items() if k != "curve"}, flush=True)
    doc = {"benchmark": "base_models", "command": ".venv/bin/python benchmarks/base_models.py",
           "schedule": schedule(), "test_images": len(data.y_test), "models": models,
           "int8": f"per-channel, batch 1, {oam.REPRESENTATIVE_IMAGES} seeded calibration images of the training split",
           "machine": machine() | {"load_average_start": list(load_start), "load_average_end": list(os.getloadavg())}}
    import tables

    print("\n" + tables.base_models_table(doc))
    print(f"wrote {write_result('base_models', doc)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
