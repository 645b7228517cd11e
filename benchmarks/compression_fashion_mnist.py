"""Compression and accuracy on Fashion-MNIST: the usual flow against this toolchain.

Two models (the clustering paper's two-conv ConvNet, 3.3M parameters, and the same
with BatchNorm after each conv; converged float models of benchmarks/base_models.py,
trained on all 60,000 training images), for each K: float .tflite; plain int8; the usual
flow (tfmot clustering fine-tune, then per-channel int8 conversion); the usual flow
with cluster-preserving QAT; this toolchain (the usual flow's int8 model rewritten
by `recluster`, default joint fit), also with bias correction from 64 training
images. Every accuracy is LiteRT on the full 10,000-image test set; sizes are the
.tflite deflated with zlib level 9, and Vela 5.2.0's encoded weights, flash and
cycles on ethos-u55-128 and ethos-u85-256 (budgets not enforced: this measures,
it does not gate; whether each variant fits the profile's default board is recorded
as within_budget). Fine-tuned and converted models are cached under
build/bench/fashion_mnist/<recipe>/<model>-<base model hash>/, measurements by model hash.
Run: .venv/bin/python benchmarks/compression_fashion_mnist.py [--clusters 8 16 32]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import tables
from base_models import Base, ensure, keras_path, schedule
from common import FASHION_TARGETS, REPO, machine, write_result
from fashion_training import ROOT, Arch, Recipe, cached, store, subsets

from toolchain.core.fileio import atomic_write_json, sha256_bytes, sha256_file
from toolchain.rewrite.bias_correction import correct_biases
from toolchain.rewrite.choose_k import config_with_plan, plan_weight_budget
from toolchain.rewrite.config import ReclusterConfig
from toolchain.rewrite.inspect import deflate_size, inspect_model
from toolchain.rewrite.recluster import recluster_model
from toolchain.targets.compile import compile_model
from toolchain.targets.profiles import load_profile
from toolchain.targets.vela_run import vela_version
from toolchain.targets.weight_encoding import encoded_bytes
from toolchain.tflite.accuracy import evaluate_tflite
from toolchain.tflite.graph import (
    WEIGHT_INPUT,
    buffer_bytes,
    find_weight_tensors,
    op_code,
    tensor_values,
)
from toolchain.tflite.model_io import read_model
from toolchain.training.datasets import load_dataset

TARGETS = ("ethos-u55-128", "ethos-u85-256")
LAYERS = ("conv1", "conv2", "fc1", "logits")  # layer names of fashion_training.build_model, in graph order
CALIBRATION_IMAGES = 64  # bias correction
# The targets (common.FASHION_TARGETS), checked at K = 16.
TARGET_K = 16
MAX_ENCODED_RATIO = FASHION_TARGETS["max_encoded_ratio_vs_usual"]
MAX_ACCURACY_LOSS_VS_USUAL = FASHION_TARGETS["max_accuracy_loss_vs_usual_points"] / 100
MIN_ZIP_FACTOR = FASHION_TARGETS["min_zip_factor_vs_float"]
MAX_ACCURACY_LOSS_VS_FLOAT = FASHION_TARGETS["max_accuracy_loss_vs_float_points"] / 100

FLOAT, INT8, USUAL, CQAT, TOOLCHAIN, TOOLCHAIN_BC, TOOLCHAIN_PLAN = (
    "float", "int8", "usual flow", "usual + CQAT", "this toolchain", "this toolchain + bias corr.",
    "this toolchain, size plan")
PLAN_MARGIN = 0.97  # the size plan aims 3% under the target: U85 streams come out 1-3% larger than U55's


# --------------------------------------------------------------------------- model making (cached)


def _keras(path: Path):
    from toolchain.training.keras_io import load_keras_model

    return load_keras_model(path)


def float_tflite(keras_path: Path, out: Path) -> dict:
    info = cached(out)
    if info is not None:
        return info | {"cached": True}
    from toolchain.training.quantize import convert_float

    t0 = time.perf_counter()
    data = convert_float(_keras(keras_path))
    info = {"time_s": time.perf_counter() - t0}
    store(out, data, info)
    return info | {"cached": False}


def int8_tflite(keras_path: Path, data, out: Path, recipe: Recipe, qat: bool = False) -> dict:
    """toolchain.training.quantize: per-channel int8, batch 1, calibrated on 200 seeded samples of ``data``.

    With ``qat``, tfmot's cluster-preserving QAT first (on ``data``). The stage's own
    Keras accuracies are skipped: every accuracy here is LiteRT's, measured later.
    """
    info = cached(out)
    if info is not None:
        return info | {"cached": True}
    from toolchain.training.quantize import (
        QuantizeConfig,
        cluster_preserving_qat,
        convert_int8,
        representative_indices,
    )
    from toolchain.training.tf_env import seed_everything

    cfg = QuantizeConfig(cluster_preserving_qat=qat, qat_epochs=recipe.qat_epochs, batch_size=recipe.qat_batch,
                         seed=recipe.seed) if qat else QuantizeConfig(seed=recipe.seed)
    t0 = time.perf_counter()
    seed_everything(cfg.seed)
    model = _keras(keras_path)
    if qat:
        model = cluster_preserving_qat(model, data, cfg, quiet=True)
    idx = representative_indices(len(data.x_train), cfg.representative_samples, cfg.seed)
    tflite = convert_int8(model, data.x_train[idx])
    info = {"time_s": time.perf_counter() - t0, "qat_train_samples": len(data.x_train) if qat else 0}
    store(out, tflite, info)
    return info | {"cached": False}


def clustered_keras(keras_path: Path, data, k: int, recipe: Recipe, out: Path) -> dict:
    """toolchain.training.finetune: tfmot clustering (K per layer, k-means++ init), fine-tuned, stripped.

    The stage's pieces without its two Keras accuracy passes (LiteRT measures every model later).
    """
    info = cached(out)
    if info is not None:
        return info | {"cached": True}
    from toolchain.training.clustering import FinetuneConfig, cluster_model, strip_model
    from toolchain.training.keras_io import keras_model_bytes
    from toolchain.training.keras_training import compile_for_training, fit
    from toolchain.training.tf_env import seed_everything

    cfg = FinetuneConfig(clusters=k, epochs=recipe.finetune_epochs, batch_size=recipe.finetune_batch, seed=recipe.seed)
    t0 = time.perf_counter()
    seed_everything(cfg.seed)
    clustered, plan = cluster_model(_keras(keras_path), cfg)
    compile_for_training(clustered, cfg.learning_rate)
    fit(clustered, data, cfg.epochs, cfg.batch_size, quiet=True)
    stripped = strip_model(clustered)
    info = {"time_s": time.perf_counter() - t0, "train_samples": len(data.x_train),
            "clustered_layers": sorted(plan.clustered), "skipped_layers": [s.name for s in plan.skipped]}
    store(out, keras_model_bytes(stripped), info)
    return info | {"cached": False}


def calibration_rows(model: bytes, x: np.ndarray) -> list[list[np.ndarray]]:
    from toolchain.tflite import interpreter as rt

    spec = rt.input_specs(model)[0]
    return [[np.clip(np.round(s / spec.scale + spec.zero_point), -128, 127).astype(np.int8).reshape(spec.shape)]
            for s in x]


# --------------------------------------------------------------------------- measuring


def weight_ops(model_bytes: bytes) -> dict[int, tuple[str, str]]:
    """op index -> (layer label, weight tensor name) of each CONV_2D/FULLY_CONNECTED, labelled in graph order.

    By position, not by name: a QAT model's tensors carry FakeQuant names, not the layers'.
    """
    m = read_model(model_bytes)
    sg = m.subgraphs[0]
    found = {}
    for o, op in enumerate(sg.operators):
        code = op_code(m, op)
        if code in WEIGHT_INPUT:
            t = sg.tensors[op.inputs[WEIGHT_INPUT[code]]]
            name = t.name.decode() if isinstance(t.name, bytes) else str(t.name)
            found[o] = (LAYERS[len(found)] if len(found) < len(LAYERS) else name, name)
    return found


def distinct_per_layer(model_bytes: bytes) -> dict[str, int]:
    """Distinct values of each CONV_2D/FULLY_CONNECTED weight tensor (int8 or float32)."""
    m = read_model(model_bytes)
    sg = m.subgraphs[0]
    out = {}
    for o, (label, _) in weight_ops(model_bytes).items():
        op = sg.operators[o]
        t = sg.tensors[op.inputs[WEIGHT_INPUT[op_code(m, op)]]]
        raw = buffer_bytes(m, t)
        if raw is None:
            continue
        dtype = np.int8 if raw.size == int(np.prod(t.shape)) else np.float32
        out[label] = int(np.unique(raw.view(dtype)).size)
    return out


def vela_figures(model_bytes: bytes, target: str, work: Path, labels: dict[int, tuple[str, str]]) -> dict:
    model = work / "model.tflite"
    model.write_bytes(model_bytes)
    r = compile_model(model, load_profile(target), work / target, enforce_budget=False)
    layers = [
        {"layer": labels.get(la["source_operator"], (la["name"],))[0], "distinct_values": la["distinct_weight_values"],
         "original_bytes": la["weight_bytes"], "encoded_bytes": la["encoded_weight_bytes"],
         "weight_format": la.get("weight_format")}
        for la in r.report["layers"] if la.get("encoded_weight_bytes")
    ]
    return {
        "encoded_weight_bytes": r.report["encoded_weight_bytes"],
        "original_weight_bytes": r.report["original_weight_bytes"],
        "flash_bytes": r.budget.flash_used_bytes,
        "flash_budget_bytes": r.budget.flash_budget_bytes,
        "sram_bytes": r.budget.sram_used_bytes,
        "within_budget": r.budget.within_budget,
        "cycles_total": r.cycles_total,
        "cycles_npu": r.cycles_npu,
        "inference_time_s": r.inference_time_s,
        "npu_operators": r.npu_operators,
        "cpu_operators": r.cpu_operators,
        "layers": layers,
    }


def measure(model_bytes: bytes, data, is_float: bool, remeasure: bool) -> dict:
    """Accuracy, sizes, distinct values and (int8 only) Vela figures; cached by the model's hash."""
    key = sha256_bytes(model_bytes + f"|vela {vela_version()}|{','.join(TARGETS)}".encode())
    cache = ROOT / "measure" / f"{key}.json"
    if cache.is_file() and not remeasure:
        return json.loads(cache.read_text()) | {"cached": True}
    t0 = time.perf_counter()
    acc = evaluate_tflite(model_bytes, data.x_test, data.y_test)
    eval_s = time.perf_counter() - t0
    m = {
        "accuracy": acc,
        "tflite_bytes": len(model_bytes),
        "zipped_bytes": deflate_size(model_bytes),
        "distinct_per_tensor": distinct_per_layer(model_bytes),
        "evaluate_s": eval_s,
        "vela": {},
    }
    if not is_float:
        labels = weight_ops(model_bytes)
        by_name = {name: label for label, name in labels.values()}
        m["tensors"] = [
            {"layer": by_name.get(t.name, t.name), "distinct": t.distinct_values, "max_per_channel": t.max_distinct_per_channel,
             "top32_fraction": t.top32_fraction, "vela_palette_rule": t.vela_palette,
             "entropy_bits_per_weight": t.entropy_bits_per_weight}
            for t in inspect_model(model_bytes).tensors
        ]
        t1 = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="bench-vela-") as tmp:
            for target in TARGETS:
                m["vela"][target] = vela_figures(model_bytes, target, Path(tmp), labels)
        m["vela_s"] = time.perf_counter() - t1
    atomic_write_json(cache, m)
    return m | {"cached": False}


# --------------------------------------------------------------------------- one model


def run_arch(arch: Arch, data, subs, recipe: Recipe, clusters: list[int], remeasure: bool, times: dict) -> list[dict]:
    base_path = keras_path(Base(arch.value))
    base_info = ensure(Base(arch.value), data)  # the converged base model (trained only when not cached)
    d = ROOT / recipe.tag / f"{arch.value}-{sha256_file(base_path)[:12]}"
    rows: list[dict] = []

    def add(k, variant, model_bytes, is_float=False, extra=None):
        m = measure(model_bytes, data, is_float, remeasure)
        times["evaluate_s"] += m["evaluate_s"]  # as first measured, also when taken from the cache
        times["vela_s"] += m.get("vela_s", 0.0)
        rows.append({"model": arch.value, "clusters": k, "variant": variant} | m | (extra or {}))
        print(f"  {arch.value} K={k or '-'} {variant}: accuracy {100 * m['accuracy']:.2f}%, "
              f"zipped {m['zipped_bytes']:,} B" + (" (measured before)" if m["cached"] else ""), flush=True)
        return m

    def account(what: str, info: dict) -> None:
        times[f"{what}_s"] += info["time_s"]
        times[f"{what}_cached_s"] += info["time_s"] if info["cached"] else 0.0

    print(f"{arch.value}: converged base model {base_path.relative_to(REPO)} "
          f"({base_info['epochs']} epochs on all 60,000 training images)", flush=True)
    account("base_training", base_info)
    fl = float_tflite(base_path, d / "float.tflite")
    account("conversion", fl)
    add(None, FLOAT, (d / "float.tflite").read_bytes(), is_float=True)
    account("conversion", int8_tflite(base_path, subs["finetune"], d / "int8.tflite", recipe))
    add(None, INT8, (d / "int8.tflite").read_bytes())

    cal_x = subs["finetune"].x_train[:CALIBRATION_IMAGES]
    for k in clusters:
        print(f"{arch.value} K={k}: clustering fine-tune ({recipe.finetune_epochs} epoch on "
              f"{recipe.finetune_train:,} images)", flush=True)
        ck = d / f"k{k}" / "clustered.keras"
        cl = clustered_keras(base_path, subs["finetune"], k, recipe, ck)
        account("finetune", cl)
        account("conversion", int8_tflite(ck, subs["finetune"], d / f"k{k}" / "usual.tflite", recipe))
        usual = (d / f"k{k}" / "usual.tflite").read_bytes()
        usual_m = add(k, USUAL, usual)
        print(f"{arch.value} K={k}: cluster-preserving QAT ({recipe.qat_epochs} epoch on {recipe.qat_train:,} images)",
              flush=True)
        account("cqat", int8_tflite(ck, subs["qat"], d / f"k{k}" / "cqat.tflite", recipe, qat=True))
        add(k, CQAT, (d / f"k{k}" / "cqat.tflite").read_bytes())

        t0 = time.perf_counter()
        rewritten, report = recluster_model(usual, ReclusterConfig(clusters=k))
        t_rc = time.perf_counter() - t0
        times["recluster_s"] += t_rc
        by_name = {name: label for label, name in weight_ops(usual).values()}
        fits = {by_name.get(t.name, t.name): t.fit for t in report.rewritten}
        add(k, TOOLCHAIN, rewritten, extra={"recluster_s": t_rc, "fits": fits})
        t0 = time.perf_counter()
        corrected, _ = correct_biases(usual, rewritten, calibration_rows(usual, cal_x))
        t_bc = time.perf_counter() - t0
        times["bias_correction_s"] += t_bc
        add(k, TOOLCHAIN_BC, corrected, extra={"bias_correction_s": t_bc})

        # `recluster --weight-budget`: K per tensor (<= the clustering K) chosen to minimise the
        # error with encoded weights at the target ratio of the usual flow's. Vela's figure also
        # holds the bias/scale streams, which the plan does not touch: take them out of the budget.
        t0 = time.perf_counter()
        um = read_model(usual)
        mine = sum(encoded_bytes(tensor_values(um, um.subgraphs[0].tensors[w.tensor_index]), w.op)
                   for w in find_weight_tensors(um))
        usual_vela = usual_m["vela"][TARGETS[0]]["encoded_weight_bytes"]
        budget = int(PLAN_MARGIN * MAX_ENCODED_RATIO * usual_vela) - (usual_vela - mine)
        cfg = ReclusterConfig(clusters=min(k, 64))
        plan = plan_weight_budget(usual, cfg, budget, encoded_bytes)
        planned, _ = recluster_model(usual, config_with_plan(cfg, plan))
        t_plan = time.perf_counter() - t0
        times["recluster_s"] += t_plan
        by_name = {name: label for label, name in weight_ops(usual).values()}
        add(k, TOOLCHAIN_PLAN, planned, extra={
            "recluster_s": t_plan, "weight_budget_bytes": budget,
            "plan_clusters": {by_name.get(c.name, c.name): c.clusters for c in plan.choices}})
    return rows


# --------------------------------------------------------------------------- report


def check_targets(rows: list[dict], k: int) -> list[dict]:
    out = []
    for arch in sorted({r["model"] for r in rows}):
        pick = {r["variant"]: r for r in rows if r["model"] == arch and r["clusters"] in (None, k)}
        if USUAL not in pick:
            continue
        usual, fl = pick[USUAL], pick[FLOAT]
        for variant in (TOOLCHAIN, TOOLCHAIN_BC, TOOLCHAIN_PLAN):
            if variant not in pick:
                continue
            r = pick[variant]
            ratios = {t: r["vela"][t]["encoded_weight_bytes"] / usual["vela"][t]["encoded_weight_bytes"] for t in TARGETS}
            vs_usual = r["accuracy"] - usual["accuracy"]
            zip_factor = fl["zipped_bytes"] / r["zipped_bytes"]
            vs_float = r["accuracy"] - fl["accuracy"]
            out.append({
                "model": arch, "clusters": k, "variant": variant,
                "encoded_ratio_vs_usual": ratios,
                "accuracy_vs_usual_points": 100 * vs_usual,
                "encoded_target_pass": all(v <= MAX_ENCODED_RATIO for v in ratios.values())
                and vs_usual >= -MAX_ACCURACY_LOSS_VS_USUAL - 1e-12,
                "zip_factor_vs_float": zip_factor,
                "accuracy_vs_float_points": 100 * vs_float,
                "zip_target_pass": zip_factor >= MIN_ZIP_FACTOR and vs_float >= -MAX_ACCURACY_LOSS_VS_FLOAT - 1e-12,
            })
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clusters", type=int, nargs="+", default=[8, 16, 32])
    ap.add_argument("--models", nargs="+", default=[a.value for a in Arch], choices=[a.value for a in Arch])
    ap.add_argument("--remeasure", action="store_true", help="measure again even where a model's figures are cached")
    defaults = Recipe()
    for field_name, value in defaults.to_dict().items():
        ap.add_argument("--" + field_name.replace("_", "-"), type=type(value), default=value)
    args = ap.parse_args()
    recipe = Recipe(**{f: getattr(args, f) for f in defaults.to_dict()})

    wall0 = time.perf_counter()
    load_start = os.getloadavg()
    data = load_dataset("fashion-mnist")
    subs = subsets(data, recipe)
    times = {k: 0.0 for k in ("base_training_s", "base_training_cached_s", "finetune_s", "finetune_cached_s",
                              "cqat_s", "cqat_cached_s", "conversion_s", "conversion_cached_s", "recluster_s",
                              "bias_correction_s", "evaluate_s", "vela_s")}
    rows = []
    for arch in args.models:
        rows += run_arch(Arch(arch), data, subs, recipe, args.clusters, args.remeasure, times)
    wall = time.perf_counter() - wall0
    # The targets are stated at K = 16; the same comparison at the other K is shown for context.
    checks = [c for k in args.clusters for c in check_targets(rows, k)]
    # (the base models are shared and trained once, by benchmarks/base_models.py: not part of a cold run)
    cold = all(not r["cached"] for r in rows) and not any(
        times[k] for k in times if k.endswith("_cached_s") and k != "base_training_cached_s")

    # The wall time of the last run that trained and measured everything (kept with the cache).
    cold_record = ROOT / recipe.tag / "cold_run.json"
    if cold and set(args.models) == {a.value for a in Arch} and args.clusters == [8, 16, 32]:
        atomic_write_json(cold_record, {"wall_s": wall, "load_average_start": list(load_start),
                                        "load_average_end": list(os.getloadavg())})
    last_cold = json.loads(cold_record.read_text()) if cold_record.is_file() else None
    uncached = sum(times[k] for k in ("base_training_s", "finetune_s", "cqat_s", "conversion_s", "recluster_s",
                                  "bias_correction_s", "evaluate_s", "vela_s"))
    doc = {
        "machine": machine() | {"load_average_start": list(load_start), "load_average_end": list(os.getloadavg())},
        "recipe": recipe.to_dict(), "base_schedule": schedule(),
        "base_models": {a: {"keras_model": str(keras_path(Base(a)).relative_to(REPO)),
                            "sha256": sha256_file(keras_path(Base(a)))} for a in args.models},
        "targets_checked_at_clusters": TARGET_K, "target_thresholds": FASHION_TARGETS,
        "test_samples": len(data.y_test), "layers": list(LAYERS),
        "vela_version": vela_version(), "vela_targets": list(TARGETS), "budgets_enforced": False,
        "wall_s": wall, "cold_run": cold, "last_cold_run": last_cold, "uncached_estimate_s": uncached, "times_s": times,
        "rows": rows, "targets": checks,
    }
    print(f"\nFashion-MNIST, full 10,000-image test set. Converged base models (benchmarks/base_models.py: "
          f"{', '.join(f'{a} {e} epochs' for a, e in schedule()['epochs'].items() if a in args.models)} on all 60,000 "
          f"images); tfmot clustering fine-tune {recipe.finetune_epochs} epochs on {recipe.finetune_train:,} (batch {recipe.finetune_batch}); CQAT {recipe.qat_epochs} epoch on "
          f"{recipe.qat_train:,} (batch {recipe.qat_batch}); int8 per-channel, batch 1; Vela {vela_version()}, "
          "budgets not enforced (" + ("every variant fits the default boards" if all(
              v["within_budget"] for r in rows for v in r["vela"].values()) else "some variants exceed the default boards")
          + ").")
    for arch in args.models:
        print(f"\n{arch}\n")
        print(tables.fashion_mnist_table(doc, arch))
    if checks:
        print("\n" + tables.fashion_mnist_targets(doc))
        print("\n" + tables.fashion_mnist_largest_layer(doc))
    print("\n" + tables.fashion_mnist_cost(doc))
    print(f"\nwall time of this run {wall:.0f} s ({'nothing cached' if cold else 'cached models/figures reused'}); "
          f"load average {load_start[0]:.1f} at the start, {os.getloadavg()[0]:.1f} at the end"
          + (f"; the last full run without caches took {last_cold['wall_s']:.0f} s" if last_cold else ""))
    path = write_result("compression_fashion_mnist", doc)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
