"""Rate-distortion curves: test accuracy against Vela's encoded weight bytes, per network and target.

Networks (benchmarks/output_aware_models.py, trained and cached under build/bench/output_aware/): the BN
ConvNet, the MobileNetV2-style and the DS-CNN-style net on Fashion-MNIST. Calibration: 512 seeded
images of the training split (the same for every row; never the test split); accuracy and top-1
agreement with plain int8 on all 10,000 test images. Bytes: Vela 5.2's encoded weights
(``total_npu_encoded_weights``, the figure of its summary) for ethos-u55-128 and ethos-u85-256, from
the toolchain's rate model (a compile of the whole model by Vela's compiler core: the command line's
figure, checked by tests/test_weight_encoding.py).

Series, per net and target:
- plain int8 and the tfmot flow (K=16 clustering fine-tune, converted): one point each;
- fixed K (4, 6, 8, 12, 16; the output-aware fit, depthwise by its default verdict), and fixed K with a rate
  price (K=8 at rate_lambda 1 and 3, K=16 at 3): one rewrite each, measured on both targets;
- the planner (K and rate price per tensor by measured sensitivity, a weight budget of a fraction of plain
  int8's bytes on that target, checked by Vela's figure of the result): the options are measured once per
  net and target and every budget planned from them (what `recluster --weight-budget B --target T
  --calibration C` does per budget; the 0.40x point on ethos-u55-128 is also run through that door,
  toolchain.rewrite_model, and recorded with its time);
- the floor: the smallest bytes the planner's options reach (every tensor at its smallest option, and
  what Vela adds on its own, e.g. an average pool turned into a convolution);
- `--clusters auto` (top-1 agreement >= 99.5% on held-back calibration samples) on ethos-u55-128, timed
  against one fixed K=16 fit.
Run: .venv/bin/python benchmarks/rate_distortion.py [--nets ds_cnn ...]   (writes
benchmarks/results/rate_distortion.json; then benchmarks/plot_rate_distortion.py draws docs/images/)
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine, write_result
from output_aware_models import ROOT, Net, paths, prepare, schedule

from toolchain.core.errors import BudgetExceeded
from toolchain.core.fileio import sha256_bytes
from toolchain.rewrite.config import ReclusterConfig
from toolchain.rewrite.output_aware import calibration_from_training
from toolchain.rewrite.rate_goals import fit_budget
from toolchain.rewrite.rate_options import measure_options
from toolchain.rewrite.recluster import recluster_model
from toolchain.targets.profiles import load_profile
from toolchain.targets.vela_run import vela_version
from toolchain.targets.weight_encoding import encoder_for
from toolchain.tflite.accuracy import predict_tflite
from toolchain.training.datasets import load_dataset

TARGETS = ("ethos-u55-128", "ethos-u85-256")
FIXED_K = (4, 6, 8, 12, 16)
RATE_K = ((8, 1.0), (8, 3.0), (16, 3.0))
BUDGETS = (0.30, 0.35, 0.40, 0.45, 0.50)
DOOR_BUDGET = 0.40  # also run through toolchain.rewrite_model on the first target
PLAN_MAX_CLUSTERS = 32
CALIBRATION_SAMPLES = 512
PREDICTIONS = ROOT / "rd_predictions"
REWRITES = ROOT / "rd_models"  # fixed-K rewrites, cached by model, config and calibration (the fit is deterministic)
RESULT = Path(__file__).resolve().parent / "results" / "rate_distortion.json"


def predictions(model_bytes: bytes, data) -> np.ndarray:
    """Top-1 predictions on the test split, cached by the model's hash."""
    path = PREDICTIONS / f"{sha256_bytes(model_bytes)}.npy"
    if path.is_file():
        return np.load(path)
    pred = np.argmax(predict_tflite(model_bytes, data.x_test), axis=1).astype(np.int16)
    PREDICTIONS.mkdir(parents=True, exist_ok=True)
    np.save(path, pred)
    return pred


class NetRun:
    """One network's measurements: the reference predictions, the encoders, rows."""

    def __init__(self, net: Net, data, rows: list[dict]) -> None:
        self.net, self.data, self.rows = net, data, rows
        prepare(net, data, with_tfmot=False)  # the tfmot flow's row is added when its model is cached
        self.int8 = paths(net)["int8"].read_bytes()
        self.ref = predictions(self.int8, data)
        self.encoders = {t: encoder_for(load_profile(t)) for t in TARGETS}
        self.rates = {t: e.model_rate(self.int8) for t, e in self.encoders.items()}
        self.base = {t: r.model_total_bytes for t, r in self.rates.items()}
        self.int8_accuracy = self.accuracy(self.ref)

    def rewrite(self, config: ReclusterConfig, cal) -> tuple[bytes, float]:
        """recluster_model's output (cached) and the fit's time (of the run that made it)."""
        from toolchain.rewrite.result import ReclusterReport

        cfg = ReclusterReport(config=config, tensors=()).to_json()["config"]
        key = sha256_bytes(self.int8 + json.dumps([cfg, cal.source, len(cal.rows)], sort_keys=True).encode())
        path = REWRITES / f"{key}.tflite"
        if path.is_file():
            return path.read_bytes(), json.loads(path.with_suffix(".json").read_text())["fit_s"]
        t0 = time.perf_counter()
        out, _ = recluster_model(self.int8, config, cal)
        fit_s = round(time.perf_counter() - t0, 2)
        REWRITES.mkdir(parents=True, exist_ok=True)
        path.write_bytes(out)
        path.with_suffix(".json").write_text(json.dumps({"fit_s": fit_s}))
        return out, fit_s

    def accuracy(self, pred: np.ndarray) -> float:
        return float(np.mean(pred == self.data.y_test))

    def add(self, series: str, model: bytes | None, targets, extra: dict, sizes: dict | None = None) -> None:
        pred = predictions(model, self.data) if model is not None else None
        for t in targets:
            b = sizes[t] if sizes is not None else self.encoders[t].model_bytes(model)
            row = {"model": self.net.value, "target": t, "series": series, "encoded_weight_bytes": int(b),
                   "encoded_ratio_vs_int8": round(b / self.base[t], 4),
                   "accuracy": None if pred is None else self.accuracy(pred),
                   "top1_agreement_with_int8": None if pred is None else float(np.mean(pred == self.ref))} | extra
            if row["accuracy"] is not None:
                row["accuracy_change_points"] = round(100 * (row["accuracy"] - self.int8_accuracy), 3)
            self.rows.append(row)
            acc = "" if pred is None else f"{100 * row['accuracy']:.2f}% ({row['accuracy_change_points']:+.2f})"
            print(f"  {self.net.value} {t} {series} {extra.get('label', '')}: {row['encoded_ratio_vs_int8']:.3f}x "
                  f"{acc}", flush=True)


def run_net(net: Net, data, rows: list[dict], timing: dict) -> None:
    print(f"{net.value}: preparing (cached after the first run)", flush=True)
    n = NetRun(net, data, rows)
    n.add("plain int8", n.int8, TARGETS, {"label": "int8"})
    add_tfmot(n)
    cal = calibration_from_training(n.int8, data.x_train, data.name, ReclusterConfig())
    fit_s = {}
    for k in FIXED_K:
        out, fit_s[k] = n.rewrite(ReclusterConfig(clusters=k), cal)
        n.add("fixed K", out, TARGETS, {"label": f"K={k}", "clusters": k, "fit_s": fit_s[k]})
    for k, lam in RATE_K:
        out, _ = n.rewrite(ReclusterConfig(clusters=k, rate_lambda=lam), cal)
        n.add("fixed K, rate price", out, TARGETS, {"label": f"K={k}, rate_lambda={lam:g}", "clusters": k,
                                                     "rate_lambda": lam})
    cfg = ReclusterConfig(clusters=PLAN_MAX_CLUSTERS)
    for t in TARGETS:
        rate = n.rates[t]
        t0 = time.perf_counter()
        options = measure_options(n.int8, cfg, cal, rate)
        options_s = round(time.perf_counter() - t0, 2)
        n.add("floor", None, (t,), {"label": "smallest the planner reaches", "vela_own_weight_bytes": rate.fixed_bytes},
              {t: options.smallest_bytes})
        for frac in BUDGETS:
            budget = int(frac * n.base[t])
            t0 = time.perf_counter()
            try:
                out, _, plan = fit_budget(n.int8, cfg, options, budget, rate.model_bytes_of, cal, rate)
                print(f"    budget {frac:.2f}x met after {plan.attempts} plan(s)", flush=True)
            except BudgetExceeded as exc:
                print(f"    budget {frac:.2f}x: {exc}", flush=True)
                n.rows.append({"model": net.value, "target": t, "series": "planner", "budget_fraction": frac,
                               "budget_bytes": budget, "error": str(exc)})
                continue
            n.add("planner", out, (t,), {"label": f"budget {frac:.2f}x", "budget_fraction": frac,
                                         "budget_bytes": budget, "attempts": plan.attempts,
                                         "plan_s": round(time.perf_counter() - t0, 2), "options_s": options_s,
                                         "choices": sorted({(c.clusters or 0, c.rate_lambda) for c in plan.choices})})
    timing[net.value] = {"fixed_fit_s": fit_s} | door_and_auto(n, cal)


def timing_only(nets: list[str]) -> int:
    """Redo the timed runs (one fixed K=16 fit, the 0.40x budget through the door, --clusters auto) of ``nets``."""
    data = load_dataset("fashion-mnist")
    doc = json.loads(RESULT.read_text())
    for name in nets:
        doc["rows"] = [r for r in doc["rows"]
                       if not (r["model"] == name and r["series"] in ("planner via recluster", "auto"))]
        n = NetRun(Net(name), data, [])
        cal = calibration_from_training(n.int8, data.x_train, data.name, ReclusterConfig())
        doc["timing"][name] = doc["timing"].get(name, {}) | door_and_auto(n, cal)
        doc["rows"] += n.rows
    order = [n.value for n in Net]
    doc["rows"].sort(key=lambda r: (order.index(r["model"]), TARGETS.index(r["target"])))
    doc["machine"] |= {"timing_load_average": list(os.getloadavg())}
    print(f"wrote {write_result('rate_distortion', doc)}")
    return 0


def add_tfmot(n: NetRun) -> None:
    """The tfmot flow's point (K=16 clustering fine-tune, converted), when benchmarks/output_aware_models.py made it."""
    path = paths(n.net)["tfmot_int8"]
    if path.is_file():
        n.add("tfmot flow", path.read_bytes(), TARGETS, {"label": "tfmot K=16, converted"})
    else:
        print(f"  {n.net.value}: no tfmot model cached ({path.name}): the tfmot flow's point is left out", flush=True)


def door_and_auto(n: NetRun, cal) -> dict:
    """The 0.40x budget through toolchain.rewrite_model (the CLI's job), and --clusters auto, both timed."""
    import toolchain
    from toolchain.pipeline.target_sizer import sizer_for
    from toolchain.rewrite.calibration_set import CalibrationSet
    from toolchain.rewrite.planner import PlanRequest, SizeGoal, rewrite_with_plan

    t = TARGETS[0]
    t0 = time.perf_counter()
    recluster_model(n.int8, ReclusterConfig(clusters=16), cal)  # one fit, timed beside the planner (same load)
    fit16_s = round(time.perf_counter() - t0, 2)
    # The fit learns from all 512 rows, as every other point does: a calibration file would have one in eight
    # held back for the check (rewrite.calibration_set), which this run does not make (verification off).
    job = toolchain.ReclusterJob(ReclusterConfig(clusters=PLAN_MAX_CLUSTERS),
                                 PlanRequest(SizeGoal.WEIGHT_BUDGET, weight_budget_bytes=int(DOOR_BUDGET * n.base[t])),
                                 verify=toolchain.VerifyOptions(enabled=False), data=CalibrationSet(fit=cal))
    t0 = time.perf_counter()
    out, rep = toolchain.rewrite_model(n.int8, job, t)
    door_s = round(time.perf_counter() - t0, 2)
    n.add("planner via recluster", out, (t,), {"label": f"budget {DOOR_BUDGET:.2f}x, toolchain.rewrite_model",
                                               "budget_fraction": DOOR_BUDGET, "time_s": door_s,
                                               "attempts": rep.plan.attempts})
    t0 = time.perf_counter()
    out, rep = rewrite_with_plan(n.int8, ReclusterConfig(), PlanRequest(SizeGoal.AUTO), cal, sizer_for(load_profile(t)))
    auto_s = round(time.perf_counter() - t0, 2)
    p = rep.plan
    n.add("auto", out, (t,), {"label": "--clusters auto", "time_s": auto_s, "checked_fidelity": p.checked_fidelity,
                              "attainable": p.attainable_top1_agreement, "check_samples": p.check_samples,
                              "max_clusters": max((c.clusters or 0) for c in p.choices)})
    return {"door_s": door_s, "auto_s": auto_s, "fit16_s": fit16_s}


def tfmot_only(nets: list[str]) -> int:
    data = load_dataset("fashion-mnist")
    doc = json.loads(RESULT.read_text())
    for name in nets:
        rows = [r for r in doc["rows"] if not (r["model"] == name and r["series"] == "tfmot flow")]
        n = NetRun(Net(name), data, [])
        add_tfmot(n)
        doc["rows"] = rows + n.rows
    order = [n.value for n in Net]
    doc["rows"].sort(key=lambda r: (order.index(r["model"]), TARGETS.index(r["target"])))
    print(f"wrote {write_result('rate_distortion', doc)}")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--nets", nargs="+", default=[n.value for n in Net], choices=[n.value for n in Net])
    ap.add_argument("--tfmot-only", action="store_true",
                    help="add the tfmot flow's points of --nets to the results (their models made since)")
    ap.add_argument("--timing-only", action="store_true",
                    help="redo the timed runs of --nets (a K=16 fit, the 0.40x budget's door, --clusters auto)")
    args = ap.parse_args()
    if args.tfmot_only:
        return tfmot_only(args.nets)
    if args.timing_only:
        return timing_only(args.nets)
    load_start = os.getloadavg()
    data = load_dataset("fashion-mnist")
    previous = json.loads(RESULT.read_text()) if RESULT.is_file() else {}
    rows = [r for r in previous.get("rows", []) if r["model"] not in args.nets]
    timing = {k: v for k, v in previous.get("timing", {}).items() if k not in args.nets}
    t0 = time.perf_counter()
    for name in args.nets:
        run_net(Net(name), data, rows, timing)
    # Another run (another net) may have written meanwhile: keep its rows, not the ones read at the start.
    latest = json.loads(RESULT.read_text()) if RESULT.is_file() else {}
    rows = [r for r in latest.get("rows", []) if r["model"] not in args.nets] + \
        [r for r in rows if r["model"] in args.nets]
    timing = {k: v for k, v in latest.get("timing", {}).items() if k not in args.nets} | \
        {k: v for k, v in timing.items() if k in args.nets}
    order = [n.value for n in Net]
    rows.sort(key=lambda r: (order.index(r["model"]), TARGETS.index(r["target"])))
    payload = {
        "benchmark": "rate_distortion",
        "command": ".venv/bin/python benchmarks/rate_distortion.py",
        "description": __doc__.strip().splitlines()[0],
        "dataset": {"name": "fashion-mnist", "test_images": len(data.x_test),
                    "calibration": f"{CALIBRATION_SAMPLES} seeded images of the 60,000-image training split"},
        "settings": {"targets": list(TARGETS), "vela": vela_version(), "fixed_k": list(FIXED_K),
                     "budgets": list(BUDGETS), "plan_max_clusters": PLAN_MAX_CLUSTERS,
                     "config_defaults": {k: (v.value if hasattr(v, "value") else v)
                                         for k, v in replace(ReclusterConfig()).__dict__.items() if k != "rules"}},
        "training": schedule(),
        "rows": rows,
        "timing": timing,
        "machine": machine() | {"load_average_start": list(load_start), "load_average_end": list(os.getloadavg()),
                                "note": "shared with other work: times are upper bounds of an idle machine's"},
        "total_s": round(time.perf_counter() - t0, 1),
    }
    print(f"wrote {write_result('rate_distortion', payload)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
