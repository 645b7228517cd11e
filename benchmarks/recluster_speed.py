"""Speed and optimality of the shared-palette solver against scikit-learn's weighted KMeans, like with like.

Every non-depthwise weight tensor of an int8 MobileNetV2 (3.5M parameters, converter-made)
is a weighted clustering problem: each int8 value weighted by its channel's scale squared.

1. Same input: the exact DP and KMeans both on the tensor's histogram (at most 255 distinct
   values with their summed weights). Error (centroids rounded to int8, as a palette must be)
   and time of each, so the ratio is the algorithms', not the data size's.
2. End to end per tensor: what a tool has to do from the raw weights. The DP path builds the
   histogram and solves it; KMeans clusters every raw weight (sample weights per weight).
   KMeans runs with n_init=1 here (its cheapest setting; the default n_init is 10 times more
   work), so the ratio understates the DP's lead.
3. The whole-model `recluster` per fit.

Every timing is repeated (--repeats, default 5) in this one run and reported as the median and
the spread (min-max); speed-ups are ratios of medians measured side by side. The machine is
shared and noisy: only ratios within one run are meaningful.

Run: .venv/bin/python benchmarks/recluster_speed.py [--clusters 16 32] [--repeats 5] [--max-tensors N]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import tables
from common import machine, mobilenet_v2_int8, write_result

from toolchain.algorithms.palette import (
    apply_lut,
    solve_palette,
    value_lut,
    value_weights,
)
from toolchain.rewrite.config import ReclusterConfig, ScaleFit
from toolchain.rewrite.recluster import recluster_model
from toolchain.tflite.graph import find_weight_tensors, tensor_values
from toolchain.tflite.model_io import read_model

INT8_PALETTE = (-127, 127)


def _round_palette(centers: np.ndarray) -> np.ndarray:
    return np.unique(np.clip(np.round(centers.ravel()), *INT8_PALETTE))


def _nearest(palette: np.ndarray, x: np.ndarray) -> np.ndarray:
    mids = (palette[1:] + palette[:-1]) / 2
    return palette[np.searchsorted(mids, x)]


def histogram_error(x: np.ndarray, w: np.ndarray, mapped: np.ndarray) -> float:
    d = x.astype(np.float64) - mapped.astype(np.float64)
    return float(np.sum(w * d * d))


def dp_on_histogram(x: np.ndarray, w: np.ndarray, k: int) -> np.ndarray:
    sol = solve_palette(x, w, k, keep_zero=False)
    return sol.palette[sol.point_to_entry]


def kmeans_on_histogram(x: np.ndarray, w: np.ndarray, k: int, seed: int) -> np.ndarray:
    from sklearn.cluster import KMeans

    km = KMeans(n_clusters=min(k, x.size), n_init=10, random_state=seed).fit(x.reshape(-1, 1).astype(np.float64),
                                                                               sample_weight=w)
    return _nearest(_round_palette(km.cluster_centers_), x.astype(np.float64))


def dp_from_raw(qc: np.ndarray, wc: np.ndarray, k: int) -> np.ndarray:
    x, vw = value_weights(qc, wc, 0)
    sol = solve_palette(x, vw, k, keep_zero=False)
    return apply_lut(qc, value_lut(sol, x))


def kmeans_from_raw(qc: np.ndarray, wc: np.ndarray, k: int, seed: int) -> np.ndarray:
    from sklearn.cluster import KMeans

    km = KMeans(n_clusters=k, n_init=1, random_state=seed).fit(qc.reshape(-1, 1).astype(np.float64),
                                                              sample_weight=np.repeat(wc, qc.shape[1]))
    return _nearest(_round_palette(km.cluster_centers_), qc.ravel().astype(np.float64)).reshape(qc.shape)


def _times(fn, repeats: int) -> tuple[list[float], object]:
    out, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        out.append(time.perf_counter() - t0)
    return out, result


def _spread(samples: list[float]) -> dict:
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples), "runs": len(samples)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--clusters", type=int, nargs="+", default=[16, 32])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--max-tensors", type=int, default=0, help="limit for a quick run (0 = all)")
    args = ap.parse_args()

    data = mobilenet_v2_int8().read_bytes()
    model = read_model(data)
    tensors = [w for w in find_weight_tensors(model) if w.op != "DEPTHWISE_CONV_2D"]
    tensors.sort(key=lambda w: -w.size)
    if args.max_tensors:
        tensors = tensors[: args.max_tensors]
    total = sum(w.size for w in tensors)
    print(f"MobileNetV2 int8: {len(tensors)} tensors, {total:,} weights; {args.repeats} runs per timing")

    problems = []
    for w in tensors:
        q = tensor_values(model, model.subgraphs[0].tensors[w.tensor_index])
        qc = np.moveaxis(q, w.channel_axis, 0).reshape(q.shape[w.channel_axis], -1)
        s = np.broadcast_to(w.quantization.scales.astype(np.float64), (qc.shape[0],))
        wc = s**2 / np.max(s**2)  # the same problem, normalised for KMeans' tolerances
        problems.append((w, qc, wc, *value_weights(qc, wc, 0)))

    summary, rows = [], []
    for k in args.clusters:
        hist = {"dp": [0.0] * args.repeats, "kmeans": [0.0] * args.repeats}
        raw = {"dp": [0.0] * args.repeats, "kmeans": [0.0] * args.repeats}
        dp_err_total = km_err_total = 0.0
        worse = 0
        for w, qc, wc, x, vw in problems:
            t_dp, m_dp = _times(partial(dp_on_histogram, x, vw, k), args.repeats)
            t_km, m_km = _times(partial(kmeans_on_histogram, x, vw, k, seed=0), args.repeats)
            r_dp, _ = _times(partial(dp_from_raw, qc, wc, k), args.repeats)
            r_km, _ = _times(partial(kmeans_from_raw, qc, wc, k, seed=0), args.repeats)
            for i in range(args.repeats):
                hist["dp"][i] += t_dp[i]
                hist["kmeans"][i] += t_km[i]
                raw["dp"][i] += r_dp[i]
                raw["kmeans"][i] += r_km[i]
            dp_err, km_err = histogram_error(x, vw, m_dp), histogram_error(x, vw, m_km)
            dp_err_total += dp_err
            km_err_total += km_err
            worse += dp_err > km_err * (1 + 1e-9)
            rows.append({"clusters": k, "tensor": w.name, "weights": int(qc.size), "distinct_values": int(x.size),
                         "dp_error": dp_err, "kmeans_error": km_err,
                         "histogram_dp_s": statistics.median(t_dp), "histogram_kmeans_s": statistics.median(t_km),
                         "raw_dp_s": statistics.median(r_dp), "raw_kmeans_s": statistics.median(r_km)})
        entry = {
            "clusters": k, "tensors": len(problems), "weights": total,
            "histogram": {"dp_s": _spread(hist["dp"]), "kmeans_s": _spread(hist["kmeans"]),
                          "kmeans_setting": "KMeans(n_init=10) on the histogram, sample weights"},
            "raw": {"dp_s": _spread(raw["dp"]), "kmeans_s": _spread(raw["kmeans"]),
                    "kmeans_setting": "KMeans(n_init=1) on every raw weight, sample weights"},
            "tensors_dp_worse_than_kmeans": worse,
            "dp_error_total": dp_err_total, "kmeans_error_total": km_err_total,
        }
        summary.append(entry)
        print(f"K={k}: histogram DP {entry['histogram']['dp_s']['median']:.3f} s vs KMeans "
              f"{entry['histogram']['kmeans_s']['median']:.2f} s; raw DP {entry['raw']['dp_s']['median']:.3f} s vs "
              f"KMeans {entry['raw']['kmeans_s']['median']:.1f} s; DP error / KMeans error "
              f"{dp_err_total / km_err_total:.3f}, DP worse on {worse} tensors")

    model_times = {}
    for k in args.clusters:
        for fit in ScaleFit:
            samples, _ = _times(partial(recluster_model, data, ReclusterConfig(clusters=k, fit=fit)), args.repeats)
            model_times[f"{k}/{fit.value}"] = _spread(samples)
            print(f"recluster of the whole model (K={k}, --fit {fit.value}): median {statistics.median(samples):.3f} s")
    for entry in summary:
        entry["recluster_model_s"] = {fit.value: model_times[f"{entry['clusters']}/{fit.value}"] for fit in ScaleFit}

    doc = {"machine": machine(), "repeats": args.repeats, "summary": summary, "tensors": rows}
    print("\n" + tables.recluster_speed_table(doc))
    path = write_result("recluster_speed", doc)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
