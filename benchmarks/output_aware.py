"""The output-aware rewriter against the weight-space fit, post-training and after tfmot, on Fashion-MNIST.

Models (benchmarks/output_aware_models.py, trained and cached under build/bench/output_aware/): a BN ConvNet,
a MobileNetV2-style and a DS-CNN-style network. For each: plain int8 (the reference), post-training K=16 and
K=8 with depthwise included, the tfmot K=16 model (clustered, converted) restored to 16 codes, and
`--clusters auto` with data; every rewrite with the weight-space fit (no data) and with the output-aware fit
(512 seeded training images, never the test split). Reported per row: accuracy on the full 10,000-image
test set, top-1 agreement with plain int8 on it, Vela 5.2 encoded weight bytes on ethos-u55-128 (and
their ratio to plain int8), the largest count of values per tensor, and the fit time. Also: what the number
of segments costs (MobileNetV2-style, K=8), and the fit time on the 224x224 int8 MobileNetV2 of
benchmarks/common.py with 512 calibration samples against the weight-space path.
Run: .venv/bin/python benchmarks/output_aware.py   (writes benchmarks/results/output_aware.json)
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine, mobilenet_v2_int8, write_result
from output_aware_models import ROOT, Net, paths, prepare, schedule
from tables import output_aware_table

from toolchain.core.fileio import atomic_write_json, sha256_bytes
from toolchain.rewrite.choose_k import config_with_plan, plan_agreement
from toolchain.rewrite.config import ReclusterConfig
from toolchain.rewrite.inspect import inspect_model
from toolchain.rewrite.output_aware import Calibration, calibration_from_training
from toolchain.rewrite.recluster import recluster_model
from toolchain.targets.compile import compile_model
from toolchain.targets.profiles import load_profile
from toolchain.targets.vela_run import vela_version
from toolchain.tflite import interpreter as rt
from toolchain.tflite.accuracy import predict_tflite
from toolchain.training.datasets import load_dataset

TARGET = "ethos-u55-128"
CALIBRATION_SAMPLES = 512
TIMING_SAMPLES = 512
MEASURE = ROOT / "measure"
RESULT = Path(__file__).resolve().parent / "results" / "output_aware.json"


def measure(model_bytes: bytes, data, reference: np.ndarray | None) -> dict:
    """Accuracy, agreement with the reference predictions, Vela encoded weights, values per tensor (cached by hash)."""
    key = sha256_bytes(model_bytes + f"|vela {vela_version()}|{TARGET}".encode())
    cache = MEASURE / f"{key}.json"
    if cache.is_file():
        m = json.loads(cache.read_text())
    else:
        logits = predict_tflite(model_bytes, data.x_test)
        with tempfile.TemporaryDirectory(prefix="bench-oa-") as tmp:
            path = Path(tmp) / "model.tflite"
            path.write_bytes(model_bytes)
            r = compile_model(path, load_profile(TARGET), Path(tmp) / "out", enforce_budget=False)
        m = {"accuracy": float(np.mean(np.argmax(logits, axis=1) == data.y_test)),
             "predictions": [int(p) for p in np.argmax(logits, axis=1)],
             "encoded_weight_bytes": int(r.report["encoded_weight_bytes"]),
             "max_values_per_tensor": max(t.distinct_values for t in inspect_model(model_bytes).tensors)}
        atomic_write_json(cache, m)
    pred = np.asarray(m["predictions"])
    out = {k: v for k, v in m.items() if k != "predictions"}
    out["top1_agreement_with_int8"] = None if reference is None else float(np.mean(pred == reference))
    return out | {"_predictions": pred}


def rewrite(model_bytes: bytes, config: ReclusterConfig, calibration: Calibration | None) -> tuple[bytes, dict]:
    t0 = time.perf_counter()
    out, rep = recluster_model(model_bytes, config, calibration)
    info = {"fit_s": round(time.perf_counter() - t0, 3), "objective": "outputs" if calibration else "weights",
            "tensors_rewritten": len(rep.rewritten),
            "depthwise_rewritten": sum(t.op == "DEPTHWISE_CONV_2D" for t in rep.rewritten),
            "methods": sorted({t.method or t.fit for t in rep.rewritten})}
    if rep.calibration is not None:
        c = rep.calibration
        info |= {"segments": c.segments, "litert_passes": c.litert_passes, "calibration_samples": c.samples,
                 "won_by_output_fit": sum((t.method or "").startswith("outputs") for t in rep.rewritten)}
    return out, info


def run_net(net: Net, data, rows: list[dict], segments_study: bool) -> None:
    print(f"{net.value}: preparing (cached after the first run)", flush=True)
    info = prepare(net, data)
    p = paths(net)
    int8 = p["int8"].read_bytes()
    base = measure(int8, data, None)
    reference = base.pop("_predictions")
    base_bytes = base["encoded_weight_bytes"]

    def add(k, variant, model_bytes, extra, ref=reference, ref_bytes=base_bytes):
        m = measure(model_bytes, data, ref)
        m.pop("_predictions")
        row = {"model": net.value, "clusters": k, "variant": variant} | m | extra
        row["encoded_ratio_vs_int8"] = round(m["encoded_weight_bytes"] / ref_bytes, 4)
        rows.append(row)
        agree = row["top1_agreement_with_int8"]
        print(f"  {net.value} K={k} {variant}: {100 * m['accuracy']:.2f}% (int8 {100 * base['accuracy']:.2f}%), "
              f"agreement {agree if agree is None else round(agree, 4)}, encoded {row['encoded_ratio_vs_int8']:.3f}x, "
              f"fit {extra.get('fit_s')} s", flush=True)

    add(None, "plain int8", int8, {"training": info["train"]})
    cal = calibration_from_training(int8, data.x_train, f"{data.name}", ReclusterConfig())
    for k, dw in ((16, None), (8, True)):
        cfg = ReclusterConfig(clusters=k, include_depthwise=dw)
        for variant, c in (("weight-space fit", None), ("output-aware fit", cal)):
            out, extra = rewrite(int8, cfg, c)
            add(k, f"post-training, {variant}" + (", depthwise included" if dw else ""), out, extra)
    plan_t0 = time.perf_counter()
    plan = plan_agreement(int8, ReclusterConfig(), cal)
    out, extra = rewrite(int8, config_with_plan(ReclusterConfig(clusters=32), plan), cal)
    extra |= {"fit_s": round(time.perf_counter() - plan_t0, 3),
              "plan_clusters": sorted({c.clusters for c in plan.choices if c.clusters}),
              "predicted_top1_agreement": plan.predicted_top1_agreement,
              "attainable_top1_agreement": plan.attainable_top1_agreement}
    add("auto", "post-training, --clusters auto with data (top-1 agreement >= 99.5% on calibration)", out, extra)

    usual = p["tfmot_int8"].read_bytes()
    usual_m = measure(usual, data, reference)
    usual_pred = usual_m.pop("_predictions")
    add(16, "tfmot K=16 flow, converted (the clustered int8 model)", usual, {"tfmot": info["tfmot"]})
    for variant, c in (("weight-space fit", None), ("output-aware fit", cal)):
        out, extra = rewrite(usual, ReclusterConfig(clusters=16), c)
        pred = measure(out, data, None)["_predictions"]
        extra |= {"top1_agreement_with_clustered_int8": float(np.mean(pred == usual_pred)),
                  "clustered_int8_accuracy": usual_m["accuracy"]}
        add(16, f"tfmot K=16 restored to 16 codes, {variant}", out, extra)
        rows[-1]["accuracy_vs_clustered_int8_points"] = round(100 * (rows[-1]["accuracy"] - usual_m["accuracy"]), 3)
    cqat = p["cqat_int8"]
    if cqat.is_file():  # tfmot's cluster-preserving QAT (needs training): made by output_aware_models.py --cqat
        add(16, "tfmot K=16 + cluster-preserving QAT, converted", cqat.read_bytes(), {})
    if net is Net.CONVNET_BN:  # fully connected layers get one row per sample: how many samples they need
        for samples in (128, 2048):
            c = calibration_from_training(int8, data.x_train, data.name, ReclusterConfig(calibration_samples=samples))
            cfg = ReclusterConfig(clusters=8, include_depthwise=True, calibration_samples=samples)
            out, extra = rewrite(int8, cfg, c)
            add(8, f"calibration study: {samples} samples, output-aware fit", out, extra)
    if segments_study:
        for segments in (1, 2, 4, None):
            cfg = ReclusterConfig(clusters=8, include_depthwise=True, segments=segments)
            out, extra = rewrite(int8, cfg, cal)
            add(8, f"segments study: {segments or 'auto'} segment(s), output-aware fit, depthwise included", out,
                extra)


def timing_mobilenet_v2_224() -> dict:
    """Fit time of both objectives on the int8 MobileNetV2 224x224 (3.5M weights), 512 calibration samples."""
    data = mobilenet_v2_int8().read_bytes()
    spec = rt.input_specs(data)[0]
    rng = np.random.default_rng(0)
    rows = [[rt.quantize_input(rng.uniform(-1, 1, spec.shape), spec)] for _ in range(TIMING_SAMPLES)]
    cal = Calibration(rows, f"{TIMING_SAMPLES} seeded uniform(-1, 1) images")
    cfg = ReclusterConfig(clusters=16)
    t0 = time.perf_counter()
    recluster_model(data, cfg)
    weights_s = time.perf_counter() - t0
    result = {"model": "MobileNetV2 224x224 int8 (benchmarks/common.py, random weights)", "clusters": 16,
              "weights": 3_504_872, "weight_space_fit_s": round(weights_s, 2)}
    for segments in (1, None):
        t0 = time.perf_counter()
        _, rep = recluster_model(data, replace(cfg, segments=segments), cal)
        c = rep.calibration
        result[f"output_aware_fit_s_segments_{segments or 'auto'}"] = round(time.perf_counter() - t0, 2)
        result[f"segments_{segments or 'auto'}"] = {"segments": c.segments, "litert_passes": c.litert_passes,
                                                   "batch": c.batch, "samples": c.samples}
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--nets", nargs="+", default=[n.value for n in Net], choices=[n.value for n in Net])
    ap.add_argument("--no-timing", action="store_true", help="keep the MobileNetV2 224x224 timing of the last run")
    args = ap.parse_args()
    load_start = os.getloadavg()
    data = load_dataset("fashion-mnist")
    previous = json.loads(RESULT.read_text()) if RESULT.is_file() else {}
    # Networks not run this time keep their rows (and the timing its figures), so one net can be re-run alone.
    rows: list[dict] = [r for r in previous.get("rows", []) if r["model"] not in args.nets]
    t0 = time.perf_counter()
    for name in args.nets:
        run_net(Net(name), data, rows, segments_study=Net(name) is Net.MOBILENET_V2)
    rows.sort(key=lambda r: [n.value for n in Net].index(r["model"]))
    timing = previous.get("timing_mobilenet_v2_224") if args.no_timing else timing_mobilenet_v2_224()
    payload = {
        "benchmark": "output_aware",
        "command": ".venv/bin/python benchmarks/output_aware.py",
        "description": __doc__.strip().splitlines()[0],
        "dataset": {"name": "fashion-mnist", "test_images": len(data.x_test),
                    "calibration": f"{CALIBRATION_SAMPLES} seeded images of the 60,000-image training split"},
        "settings": {"target": TARGET, "vela": vela_version(), "calibration_samples": CALIBRATION_SAMPLES,
                     "config_defaults": {k: (v.value if hasattr(v, "value") else v)
                                         for k, v in ReclusterConfig().__dict__.items() if k != "rules"}},
        "training": schedule(),
        "rows": rows,
        "timing_mobilenet_v2_224": timing,
        "machine": machine() | {"load_average_start": list(load_start), "load_average_end": list(os.getloadavg()),
                                "note": "shared with other work: times are upper bounds of an idle machine's"},
        "total_s": round(time.perf_counter() - t0, 1),
    }
    path = write_result("output_aware", payload)
    print(output_aware_table(payload))
    if timing:
        print(json.dumps(timing, indent=2))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
