"""Restoring the cluster count of a tfmot-clustered model: joint codes + scales against the other fits.

The bundled example (ConvNet with BatchNorm on the 5,000 real MNIST digits) is clustered
with tfmot (K clusters, short fine-tune), converted to per-channel int8 (the usual flow,
"before"), then rewritten by `recluster` with each fit. Reported per K and fit: distinct
int8 values per tensor, squared error of the dequantized weights against the clustered
model's float weights (BN folded, from the float .tflite), int8 test accuracy (LiteRT),
with and without bias correction, and Vela's encoded weight bytes on ethos-u55-128.
Run: .venv/bin/python benchmarks/restore_clusters.py [--clusters 16 32] [--epochs 2]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import tables
from common import CACHE, machine, progress, write_result

from toolchain.rewrite.bias_correction import correct_biases
from toolchain.rewrite.config import ReclusterConfig, ScaleFit
from toolchain.rewrite.recluster import recluster_model
from toolchain.targets.compile import compile_model
from toolchain.targets.profiles import load_profile
from toolchain.tflite.accuracy import evaluate_tflite
from toolchain.tflite.model_io import read_model
from toolchain.training.datasets import load_dataset


def float_tflite(keras_path: Path) -> bytes:
    from toolchain.training.keras_io import load_keras_model
    from toolchain.training.quantize import convert_float

    return convert_float(load_keras_model(keras_path))


def weights_by_order(data: bytes, dtype_float: bool) -> list[tuple[str, np.ndarray, np.ndarray | None]]:
    """(op, weights, scales) of each weight-consuming op in graph order."""
    m = read_model(data)
    sg = m.subgraphs[0]
    out = []
    for op in sg.operators:
        code = m.operatorCodes[op.opcodeIndex]
        name = max(code.builtinCode, code.deprecatedBuiltinCode)
        if name not in (3, 4, 9):  # CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED
            continue
        t = sg.tensors[op.inputs[1]]
        vals = np.frombuffer(bytes(m.buffers[t.buffer].data), np.float32 if dtype_float else np.int8).reshape(t.shape)
        scales = None if dtype_float else np.asarray(t.quantization.scale, np.float64)
        axis = 3 if name == 4 else 0
        out.append((("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")[(3, 4, 9).index(name)], vals, scales, axis))
    return out


def float_error(ref, q: np.ndarray, scales: np.ndarray, axis: int) -> float:
    shape = [1] * q.ndim
    shape[axis] = -1
    s = scales.reshape(shape) if scales.size > 1 else scales
    return float(np.sum((ref.astype(np.float64) - s * q.astype(np.float64)) ** 2))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--clusters", type=int, nargs="+", default=[16, 32])
    ap.add_argument("--epochs", type=int, default=2)
    args = ap.parse_args()

    from toolchain.training.clustering import FinetuneConfig
    from toolchain.training.example import build_example
    from toolchain.training.finetune import finetune_file
    from toolchain.training.quantize import QuantizeConfig, quantize_file

    data = load_dataset("mnist")
    example = build_example(quiet=True)
    profile = load_profile("ethos-u55-128")
    rows = []
    for k in args.clusters:
        progress(f"K={k}: fine-tune and quantize (cached in build/bench), then the fits")
        work = CACHE / "restore" / f"k{k}_e{args.epochs}"
        work.mkdir(parents=True, exist_ok=True)
        clustered = work / "clustered.keras"
        if not clustered.exists():
            finetune_file(example.model_path, data, clustered, FinetuneConfig(clusters=k, epochs=args.epochs), quiet=True)
        before_path = work / "before.tflite"
        if not before_path.exists():
            quantize_file(clustered, data, before_path, QuantizeConfig(), quiet=True)
        before = before_path.read_bytes()
        ref = weights_by_order(float_tflite(clustered), dtype_float=True)

        acc_before = evaluate_tflite(before, data.x_test, data.y_test)
        # calibration rows for bias correction: 64 training images, quantized like the model input
        from toolchain.tflite import interpreter as rt

        spec = rt.input_specs(before)[0]
        cal = [[np.clip(np.round(x / spec.scale + spec.zero_point), -128, 127).astype(np.int8).reshape(spec.shape)]
               for x in data.x_train[:64]]
        variants = [("before (tfmot flow)", before)]
        for fit in (ScaleFit.KEEP, ScaleFit.REFIT, ScaleFit.JOINT):
            out, _ = recluster_model(before, ReclusterConfig(clusters=k, fit=fit))
            variants.append((f"recluster --fit {fit.value}", out))
            if fit is ScaleFit.JOINT:
                bc, _ = correct_biases(before, out, cal)
                variants.append(("recluster --fit joint --bias-correction", bc))
        with tempfile.TemporaryDirectory() as tmp:
            for label, model in variants:
                progress(f"K={k}: {label}: accuracy and compile")
                after = weights_by_order(model, dtype_float=False)
                distinct = [int(np.unique(q).size) for _, q, _, _ in after]
                err = sum(float_error(r[1], a[1], a[2], a[3]) for r, a in zip(ref, after))
                signal = sum(float(np.sum(r[1].astype(np.float64) ** 2)) for r in ref)
                p = Path(tmp) / f"{len(rows)}.tflite"
                p.write_bytes(model)
                comp = compile_model(p, profile, Path(tmp) / f"c{len(rows)}", enforce_budget=False)
                row = {
                    "clusters": k, "variant": label, "distinct_per_tensor": distinct,
                    "ops": [op for op, _, _, _ in after],
                    "squared_error_vs_float": err, "relative_error_vs_float": err / signal,
                    "int8_accuracy": evaluate_tflite(model, data.x_test, data.y_test),
                    "accuracy_delta_points": None,
                    "vela_encoded_weight_bytes": comp.report["encoded_weight_bytes"],
                    "vela_flash_bytes": comp.budget.flash_used_bytes,
                    "cycles_total": comp.cycles_total,
                }
                row["accuracy_delta_points"] = round(100 * (row["int8_accuracy"] - acc_before), 2)
                rows.append(row)
    doc = {"machine": machine(), "epochs": args.epochs, "test_samples": len(data.y_test), "rows": rows}
    print("\n" + tables.restore_clusters_table(doc))
    path = write_result("restore_clusters", doc)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
