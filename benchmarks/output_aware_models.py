"""Models of the output-aware benchmark, trained on Fashion-MNIST and cached under build/bench/output_aware/.

Three networks (28x28x1 input, 10 classes):
- ``convnet_bn``: the project's BN ConvNet (benchmarks/fashion_training.build_model, conv 32@5x5 + BN,
  pool, conv 64@5x5 + BN, pool, dense 1024, dense 10; 3.3M parameters);
- ``mobilenet_v2``: MobileNetV2-style (stem conv 3x3 16 + BN + ReLU6, 8 inverted residual blocks
  with expansion 6, depthwise 3x3, BN, ReLU6, linear bottlenecks, residuals; 1x1 conv 256; pool; dense);
- ``ds_cnn``: DS-CNN-style (the keyword-spotting network of Zhang et al., "Hello Edge", S size: conv 10x4
  stride 2, 64 filters, BN, ReLU; 4 x [depthwise 3x3 + BN + ReLU, pointwise 64 + BN + ReLU]; pool; dense).

Training schedule (stated, not tuned to convergence on 2 cores): Adam, cosine decay of the learning rate
from 2e-3 to 0, batch 128, all 60,000 training images, EPOCHS[arch] epochs, seed 0. The int8 model
is the toolchain's converter (per-channel int8, batch 1) calibrated on 200 seeded training images.
The tfmot flow (for the restore rows): tfmot clustering, K=16, kmeans++, 2 epochs on 20,000 training
images at 1e-4 (toolchain.training.clustering), stripped, then the same int8 conversion; and tfmot's
cluster-preserving QAT of that model (1 epoch on 10,000 other training images, lr 1e-5), converted.
Run directly to train everything: .venv/bin/python benchmarks/output_aware_models.py
"""
from __future__ import annotations

import sys
import time
from enum import Enum
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import CACHE
from fashion_training import Arch as FashionArch
from fashion_training import build_model as build_fashion_convnet
from fashion_training import cached, store

ROOT = CACHE / "output_aware"
SEED = 0
BATCH = 128
PEAK_LEARNING_RATE = 2e-3
REPRESENTATIVE_IMAGES = 200
TFMOT_CLUSTERS = 16
TFMOT_EPOCHS = 2
TFMOT_TRAIN_IMAGES = 20_000
CQAT_TRAIN_IMAGES = 10_000


class Net(Enum):
    CONVNET_BN = "convnet_bn"
    MOBILENET_V2 = "mobilenet_v2"
    DS_CNN = "ds_cnn"


EPOCHS = {Net.CONVNET_BN: 4, Net.MOBILENET_V2: 5, Net.DS_CNN: 10}


def schedule() -> dict:
    return {"optimizer": "adam", "learning_rate": f"cosine {PEAK_LEARNING_RATE} -> 0", "batch": BATCH,
            "train_images": 60_000, "epochs": {n.value: e for n, e in EPOCHS.items()}, "seed": SEED,
            "int8_representative_images": REPRESENTATIVE_IMAGES,
            "tfmot": {"clusters": TFMOT_CLUSTERS, "epochs": TFMOT_EPOCHS, "train_images": TFMOT_TRAIN_IMAGES,
                      "learning_rate": 1e-4, "centroid_init": "kmeans++"},
            "cqat": {"epochs": 1, "train_images": CQAT_TRAIN_IMAGES, "learning_rate": 1e-5, "batch": 32}}


def _bn_relu(keras, x, name: str, relu6: bool):
    x = keras.layers.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)
    return keras.layers.ReLU(6.0 if relu6 else None, name=f"{name}_relu")(x)


def mobilenet_v2_style(keras):
    inp = keras.Input((28, 28, 1), name="image")
    x = keras.layers.Conv2D(16, 3, padding="same", use_bias=False, name="stem")(inp)
    x = _bn_relu(keras, x, "stem", relu6=True)
    blocks = [(1, 16, 1), (6, 24, 2), (6, 24, 1), (6, 32, 2), (6, 32, 1), (6, 32, 1), (6, 64, 1), (6, 64, 1)]
    for i, (t, c, s) in enumerate(blocks):
        y = x
        cin = int(x.shape[-1])
        if t != 1:
            y = keras.layers.Conv2D(cin * t, 1, use_bias=False, name=f"b{i}_expand")(y)
            y = _bn_relu(keras, y, f"b{i}_expand", relu6=True)
        y = keras.layers.DepthwiseConv2D(3, strides=s, padding="same", use_bias=False, name=f"b{i}_dw")(y)
        y = _bn_relu(keras, y, f"b{i}_dw", relu6=True)
        y = keras.layers.Conv2D(c, 1, use_bias=False, name=f"b{i}_project")(y)
        y = keras.layers.BatchNormalization(momentum=0.9, name=f"b{i}_project_bn")(y)
        x = keras.layers.Add(name=f"b{i}_add")([x, y]) if s == 1 and cin == c else y
    x = keras.layers.Conv2D(256, 1, use_bias=False, name="head")(x)
    x = _bn_relu(keras, x, "head", relu6=True)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    out = keras.layers.Dense(10, name="logits")(x)
    return keras.Model(inp, out, name=Net.MOBILENET_V2.value)


def ds_cnn_style(keras, filters: int = 64, blocks: int = 4):
    inp = keras.Input((28, 28, 1), name="image")
    x = keras.layers.Conv2D(filters, (10, 4), strides=2, padding="same", use_bias=False, name="conv")(inp)
    x = _bn_relu(keras, x, "conv", relu6=False)
    for i in range(blocks):
        x = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False, name=f"ds{i}_dw")(x)
        x = _bn_relu(keras, x, f"ds{i}_dw", relu6=False)
        x = keras.layers.Conv2D(filters, 1, use_bias=False, name=f"ds{i}_pw")(x)
        x = _bn_relu(keras, x, f"ds{i}_pw", relu6=False)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    out = keras.layers.Dense(10, name="logits")(x)
    return keras.Model(inp, out, name=Net.DS_CNN.value)


def build(net: Net):
    from toolchain.training.tf_env import import_keras

    keras = import_keras()
    if net is Net.CONVNET_BN:
        return build_fashion_convnet(FashionArch.CONVNET_BN)
    return mobilenet_v2_style(keras) if net is Net.MOBILENET_V2 else ds_cnn_style(keras)


def paths(net: Net) -> dict[str, Path]:
    d = ROOT / f"{net.value}-e{EPOCHS[net]}-s{SEED}"
    return {"keras": d / "float.keras", "int8": d / "int8.tflite", "tfmot_keras": d / f"tfmot_k{TFMOT_CLUSTERS}.keras",
            "tfmot_int8": d / f"tfmot_k{TFMOT_CLUSTERS}_int8.tflite",
            "cqat_int8": d / f"tfmot_k{TFMOT_CLUSTERS}_cqat_int8.tflite"}


def train(net: Net, data) -> dict:
    path = paths(net)["keras"]
    info = cached(path)
    if info is not None:
        return info | {"cached": True}
    from toolchain.training.keras_io import keras_model_bytes
    from toolchain.training.keras_training import (
        compile_for_training,
        epoch_line_callback,
    )
    from toolchain.training.tf_env import import_keras, seed_everything

    keras = import_keras()
    seed_everything(SEED)
    model = build(net)
    steps = EPOCHS[net] * int(np.ceil(len(data.x_train) / BATCH))
    compile_for_training(model, keras.optimizers.schedules.CosineDecay(PEAK_LEARNING_RATE, steps))
    t0 = time.perf_counter()
    model.fit(data.x_train, data.y_train, epochs=EPOCHS[net], batch_size=BATCH, shuffle=True, verbose=0,
              callbacks=[epoch_line_callback(EPOCHS[net])])
    info = {"time_s": time.perf_counter() - t0, "parameters": int(model.count_params()), "epochs": EPOCHS[net]}
    store(path, keras_model_bytes(model), info)
    return info | {"cached": False}


def int8(net: Net, data, tfmot: bool = False) -> dict:
    p = paths(net)
    out = p["tfmot_int8" if tfmot else "int8"]
    info = cached(out)
    if info is not None:
        return info | {"cached": True}
    from toolchain.training.keras_io import load_keras_model
    from toolchain.training.quantize import convert_int8, representative_indices

    t0 = time.perf_counter()
    model = load_keras_model(p["tfmot_keras" if tfmot else "keras"])
    idx = representative_indices(len(data.x_train), REPRESENTATIVE_IMAGES, SEED)
    tfl = convert_int8(model, data.x_train[idx])
    info = {"time_s": time.perf_counter() - t0}
    store(out, tfl, info)
    return info | {"cached": False}


def tfmot_cluster(net: Net, data) -> dict:
    """tfmot clustering fine-tune of the trained float model (the usual flow), stripped."""
    out = paths(net)["tfmot_keras"]
    info = cached(out)
    if info is not None:
        return info | {"cached": True}
    from toolchain.training.clustering import FinetuneConfig, cluster_model, strip_model
    from toolchain.training.datasets import validate_dataset
    from toolchain.training.keras_io import keras_model_bytes, load_keras_model
    from toolchain.training.keras_training import compile_for_training, fit
    from toolchain.training.tf_env import seed_everything

    cfg = FinetuneConfig(clusters=TFMOT_CLUSTERS, epochs=TFMOT_EPOCHS, seed=SEED)
    idx = np.sort(np.random.default_rng(SEED).permutation(len(data.x_train))[:TFMOT_TRAIN_IMAGES])
    sub = validate_dataset(f"{data.name}[tfmot]", data.x_train[idx], data.y_train[idx], data.x_test, data.y_test)
    t0 = time.perf_counter()
    seed_everything(SEED)
    clustered, plan = cluster_model(load_keras_model(paths(net)["keras"]), cfg)
    compile_for_training(clustered, cfg.learning_rate)
    fit(clustered, sub, cfg.epochs, cfg.batch_size, quiet=True)
    stripped = strip_model(clustered)
    info = {"time_s": time.perf_counter() - t0, "clustered_layers": sorted(plan.clustered),
            "skipped_layers": [s.name for s in plan.skipped]}
    store(out, keras_model_bytes(stripped), info)
    return info | {"cached": False}


def cqat_int8(net: Net, data) -> dict:
    """tfmot's cluster-preserving QAT of the tfmot K=16 model (1 epoch on CQAT_TRAIN_IMAGES images, lr 1e-5,
    batch 32, QuantizeConfig's defaults), converted to int8 like the others."""
    out = paths(net)["cqat_int8"]
    info = cached(out)
    if info is not None:
        return info | {"cached": True}
    from toolchain.training.datasets import validate_dataset
    from toolchain.training.keras_io import load_keras_model
    from toolchain.training.quantize import (
        QuantizeConfig,
        cluster_preserving_qat,
        convert_int8,
        representative_indices,
    )
    from toolchain.training.tf_env import seed_everything

    cfg = QuantizeConfig(cluster_preserving_qat=True, seed=SEED)
    idx = np.sort(np.random.default_rng(SEED + 1).permutation(len(data.x_train))[:CQAT_TRAIN_IMAGES])
    sub = validate_dataset(f"{data.name}[cqat]", data.x_train[idx], data.y_train[idx], data.x_test, data.y_test)
    t0 = time.perf_counter()
    seed_everything(SEED)
    qat = cluster_preserving_qat(load_keras_model(paths(net)["tfmot_keras"]), sub, cfg, quiet=True)
    rep = representative_indices(len(data.x_train), REPRESENTATIVE_IMAGES, SEED)
    tfl = convert_int8(qat, data.x_train[rep])
    info = {"time_s": time.perf_counter() - t0, "train_images": CQAT_TRAIN_IMAGES, "epochs": cfg.qat_epochs}
    store(out, tfl, info)
    return info | {"cached": False}


def prepare(net: Net, data, with_tfmot: bool = True) -> dict:
    info = {"train": train(net, data), "int8": int8(net, data)}
    if with_tfmot:
        info["tfmot"] = tfmot_cluster(net, data)
        info["tfmot_int8"] = int8(net, data, tfmot=True)
    return info


def main() -> int:
    from toolchain.training.datasets import load_dataset

    data = load_dataset("fashion-mnist")
    nets = [Net(a) for a in sys.argv[1:] if a != "--cqat"] or [Net.DS_CNN, Net.MOBILENET_V2, Net.CONVNET_BN]
    for net in nets:
        print(net.value, prepare(net, data), flush=True)
    if "--cqat" in sys.argv:
        for net in nets:
            print(net.value, "cqat", cqat_int8(net, data), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
