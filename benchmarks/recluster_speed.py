"""Speed and optimality of the shared-palette solver against scikit-learn KMeans.

For every non-depthwise weight tensor of an int8 MobileNetV2 (3.5M parameters,
converter-made), solve the weighted problem (each weight weighted by its channel
scale squared) with the exact DP and with KMeans(n_init=10) on the same weighted
weights, centroids rounded to int8 as a palette requires. Also times the whole
`recluster` of the model. Run: .venv/bin/python benchmarks/recluster_speed.py [--clusters 16 32]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import tables  # noqa: E402
from common import machine, mobilenet_v2_int8, write_result  # noqa: E402

from toolchain.algorithms.palette import (  # noqa: E402
    apply_lut,
    solve_palette,
    value_lut,
    value_weights,
)
from toolchain.rewrite.config import ReclusterConfig, ScaleFit
from toolchain.rewrite.recluster import recluster_model
from toolchain.tflite.graph import find_weight_tensors, tensor_values  # noqa: E402
from toolchain.tflite.model_io import read_model  # noqa: E402


def weighted_error(q: np.ndarray, codes: np.ndarray, w_channel: np.ndarray) -> float:
    d = q.astype(np.float64) - codes.astype(np.float64)
    return float(np.sum(w_channel[:, None] * d * d))


def kmeans_palette(q: np.ndarray, w_channel: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, float]:
    from sklearn.cluster import KMeans

    x = q.reshape(-1, 1).astype(np.float64)
    sw = np.repeat(w_channel, q.shape[1])
    km = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(x, sample_weight=sw)
    pal = np.unique(np.clip(np.round(km.cluster_centers_.ravel()), -127, 127))
    mids = (pal[1:] + pal[:-1]) / 2
    codes = pal[np.searchsorted(mids, q.ravel())].reshape(q.shape)
    return codes, float(km.inertia_)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--clusters", type=int, nargs="+", default=[16, 32])
    ap.add_argument("--max-tensors", type=int, default=0, help="limit for a quick run (0 = all)")
    args = ap.parse_args()

    data = mobilenet_v2_int8().read_bytes()
    model = read_model(data)
    tensors = [w for w in find_weight_tensors(model) if w.op != "DEPTHWISE_CONV_2D"]
    tensors.sort(key=lambda w: -w.size)
    if args.max_tensors:
        tensors = tensors[: args.max_tensors]
    total = sum(w.size for w in tensors)
    print(f"MobileNetV2 int8: {len(tensors)} tensors, {total:,} weights")

    rows = []
    for k in args.clusters:
        dp_time = km_time = 0.0
        worse = 0
        for w in tensors:
            q = tensor_values(model, model.subgraphs[0].tensors[w.tensor_index])
            qc = np.moveaxis(q, w.channel_axis, 0).reshape(q.shape[w.channel_axis], -1)
            s = np.broadcast_to(w.quantization.scales.astype(np.float64), (qc.shape[0],))
            wc = s**2 / np.max(s**2)  # same problem, normalised for KMeans' tolerances
            t0 = time.perf_counter()
            x, vw = value_weights(qc, wc, 0)
            sol = solve_palette(x, vw, k, keep_zero=False)
            codes = apply_lut(qc, value_lut(sol, x))
            t1 = time.perf_counter()
            km_codes, km_inertia = kmeans_palette(qc, wc, k, seed=0)
            t2 = time.perf_counter()
            dp_err = weighted_error(qc, codes, wc)
            km_err = weighted_error(qc, km_codes, wc)
            dp_time += t1 - t0
            km_time += t2 - t1
            worse += dp_err > km_err * (1 + 1e-9)
            rows.append({
                "clusters": k, "tensor": w.name, "weights": w.size, "distinct_before": int(x.size),
                "dp_s": t1 - t0, "kmeans_s": t2 - t1, "dp_error": dp_err,
                "kmeans_int8_error": km_err, "kmeans_float_inertia": km_inertia,
            })
        print(f"K={k:3d}: DP {dp_time:.3f} s ({dp_time / total * 1e6:.3f} s per million weights), "
              f"KMeans(n_init=10) {km_time:.1f} s -> DP {km_time / dp_time:.0f}x faster; "
              f"DP error > KMeans error on {worse} of {len(tensors)} tensors")

    # Whole-model rewrite time (read, solve every tensor, write), best of 3, for every fit.
    model_times = {}
    for k in args.clusters:
        for fit in ScaleFit:
            best = min(_timed(lambda: recluster_model(data, ReclusterConfig(clusters=k, fit=fit))) for _ in range(3))
            model_times[(k, fit.value)] = best
            print(f"recluster of the whole model (K={k}, --fit {fit.value}): {best:.3f} s")

    summary = []
    for k in args.clusters:
        rk = [r for r in rows if r["clusters"] == k]
        dp = sum(r["dp_s"] for r in rk)
        km = sum(r["kmeans_s"] for r in rk)
        summary.append({
            "clusters": k, "tensors": len(rk), "weights": total,
            "dp_s_per_million_weights": dp / total * 1e6, "kmeans_s_per_million_weights": km / total * 1e6,
            "speedup": km / dp,
            "tensors_dp_worse_than_kmeans": sum(r["dp_error"] > r["kmeans_int8_error"] * (1 + 1e-9) for r in rk),
            "dp_error_total": sum(r["dp_error"] for r in rk),
            "kmeans_int8_error_total": sum(r["kmeans_int8_error"] for r in rk),
            "recluster_model_s": {fit.value: model_times[(k, fit.value)] for fit in ScaleFit},
        })
    doc = {"machine": machine(), "summary": summary, "tensors": rows}
    print("\n" + tables.recluster_speed_table(doc))
    path = write_result("recluster_speed", doc)
    print(f"wrote {path}")
    return 0


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


if __name__ == "__main__":
    sys.exit(main())
