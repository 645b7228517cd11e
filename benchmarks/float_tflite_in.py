"""A float Fashion-MNIST .tflite through ``toolchain deploy --calibration``: ai-edge-quantizer's int8 and the
K=16 rewrite against the TF converter's int8 model, on the 10,000-image test set.

    .venv/bin/python benchmarks/float_tflite_in.py [mobilenet_v2 ds_cnn convnet_bn]

Per base network (benchmarks/base_models.py: trained on all 60,000 training images, cached under build/bench):
the float .tflite (TF converter, no quantization) is deployed with ``--calibration`` = 512 unlabelled training
images (seeded draw, no labels in the file) for ethos-u55-128 at K = 16: the quantize stage (ai-edge-quantizer,
static int8, min-max) makes the "before" model, the rewrite fits on the same 512 images. Accuracy of the float
model, the TF converter's int8 model (200 seeded representative images, the benchmarks' usual int8), the
ai-edge-quantizer int8 model and its K=16 rewrite, all in LiteRT on the 10,000 test images (never used to
calibrate). Goal: the K=16 model within 0.6 points of the TF converter's int8 model. Writes
benchmarks/results/float_tflite_in.json; docs/benchmarks.md shows it (tables.float_tflite_table).
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import base_models
import tables
from common import machine, write_result

CALIBRATION_IMAGES = 512
CALIBRATION_SEED = 1  # not the converter's representative draw (seed 0)
CLUSTERS = 16
TARGET = "ethos-u55-128"
GOAL_POINTS = 0.6


def measure(base: base_models.Base, data, work: Path) -> dict:
    from toolchain.cli import main as cli
    from toolchain.tflite.accuracy import evaluate_tflite
    from toolchain.training.quantize import representative_indices

    base_models.ensure(base, data)
    float_path, tf_int8 = base_models.float_tflite(base), base_models.int8_tflite(base)
    model = work / f"{base.value}.tflite"
    model.write_bytes(float_path.read_bytes())
    idx = representative_indices(len(data.x_train), CALIBRATION_IMAGES, CALIBRATION_SEED)
    cal = work / "calibration.npz"
    np.savez(cal, x=data.x_train[idx].astype(np.float32))  # images only: no labels
    t0 = time.perf_counter()
    rc = cli(["deploy", str(model), "--calibration", str(cal), "--clusters", str(CLUSTERS), "--target", TARGET,
              "--build-dir", str(work / "build"), "--no-budget", "--quiet"])
    deploy_s = time.perf_counter() - t0
    if rc != 0:
        raise SystemExit(f"deploy {model.name} exited {rc}")
    mdir = work / "build" / base.value
    aeq_int8 = (mdir / "quantize" / "model_int8.tflite").read_bytes()
    after = (mdir / "recluster" / "model.tflite").read_bytes()
    q = json.loads((mdir / "quantize" / "quantize.json").read_text())
    rep = json.loads((mdir / TARGET / "report" / "report.json").read_text())
    acc = {name: evaluate_tflite(b, data.x_test, data.y_test) for name, b in
           (("float", float_path.read_bytes()), ("tf_int8", tf_int8.read_bytes()), ("aeq_int8", aeq_int8),
            ("aeq_k16", after))}
    gap = round((acc["tf_int8"] - acc["aeq_k16"]) * 100, 2)
    return {
        "model": base.value, "accuracy": acc, "points_below_tf_int8": gap, "within_goal": gap <= GOAL_POINTS,
        "encoded_weight_bytes": {"aeq_int8": rep["models"]["before"]["encoded_weight_bytes"],
                                 "aeq_k16": rep["models"]["after"]["encoded_weight_bytes"]},
        "quantize_fidelity_sqnr_db": q["fidelity"]["sqnr_db"] if q["fidelity"] else None,
        "float_operators": q["float_operators"], "deploy_s": round(deploy_s, 1),
    }


def main() -> int:
    from toolchain.training.datasets import load_dataset

    names = sys.argv[1:] or [base_models.Base.MOBILENET_V2.value]
    data = load_dataset("fashion-mnist")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            rows.append(measure(base_models.Base(name), data, Path(tmp) / name))
            print(json.dumps(rows[-1]), flush=True)
    payload = {"benchmark": "float_tflite_in", "calibration_images": CALIBRATION_IMAGES, "clusters": CLUSTERS,
               "target": TARGET, "goal_points": GOAL_POINTS, "test_images": len(data.x_test), "rows": rows,
               "machine": machine(), "load_avg_start": list(os.getloadavg())}
    print(write_result("float_tflite_in", payload))
    print(tables.float_tflite_table(payload))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
