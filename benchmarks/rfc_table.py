"""The Keras weight clustering RFC's results table, reproduced in form on Fashion-MNIST, and the prune -> cluster ->
quantize cascade of Deep Compression.

Each RFC row (ConvNet/MNIST, MobileNetV1 and MobileNetV2/ImageNet, DS-CNN-L/Speech Commands) is a pipeline config
under benchmarks/configs/ (``[finetune]`` layer rules with ``clusters``/``skip``, linear centroid init as the RFC
used, and the matching ``[recluster]`` tensor rules), run on the Fashion-MNIST network of the same kind
(benchmarks/base_models.py: converged float models). For each config:

- the float model: LiteRT accuracy of its float .tflite on the full 10,000-image test set, and that .tflite's size
  deflated by zlib level 9 (the RFC's "zipped float .tflite");
- the usual tfmot flow (toolchain.training.finetune.finetune_model with the config's [finetune] on its [data]
  subset, stripped): as a float .tflite (what the RFC measured) and converted to int8
  (toolchain.training.quantize.quantize_model with its [quantize]);
- this toolchain: the usual flow's int8 model through ``recluster`` with the config's [recluster] section, with the
  weight-space fit (no data) and with the output-aware fit (512 seeded images of the fine-tune's training subset);

every int8 variant also through Vela 5.2.0 (toolchain.targets.compile.compile_model, budgets not enforced) on
ethos-u55-128 and ethos-u85-256: encoded weights, flash, cycles. The RFC's published figures sit beside each row as
ratios (size reduction = float zipped / clustered zipped; accuracy change in points).

The cascade runs configs cascade_k{16,32}[_prune50[_cqat]] on the ConvNet and the DS-CNN-style net: every layer
but depthwise at K, with and without 50% magnitude pruning first (``[finetune] prune = 0.5``), and with tfmot's
sparsity- and cluster-preserving QAT.

Fine-tuned and converted models are cached by a hash of the base model and the config's sections under
build/bench/rfc/<net>/<hash>/, measurements by model hash under build/bench/rfc/measure/, so a rerun only
rewrites and measures what changed.
Run: .venv/bin/python benchmarks/rfc_table.py [--only rfc|cascade] [--configs NAME ...] [--nets NET ...]
     [--remeasure] [--no-output-aware]       (writes benchmarks/results/rfc_table.json)
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import tables
from base_models import Base, ensure, float_tflite, int8_tflite, keras_path, schedule
from common import CACHE, REPO, machine, write_result
from fashion_training import cached, store

from toolchain.core.fileio import atomic_write_json, sha256_bytes, sha256_file
from toolchain.pipeline.config import PipelineConfig, load_pipeline_config
from toolchain.pipeline.inputs import load_data
from toolchain.rewrite.inspect import deflate_size, inspect_model
from toolchain.rewrite.output_aware import calibration_from_training
from toolchain.rewrite.recluster import recluster_model
from toolchain.targets.compile import compile_model
from toolchain.targets.profiles import load_profile
from toolchain.targets.vela_run import vela_version
from toolchain.tflite.accuracy import evaluate_tflite
from toolchain.tflite.graph import (
    WEIGHT_INPUT,
    BuiltinOp,
    buffer_bytes,
    op_code,
    op_name,
    tensor_name,
    tensor_values,
)
from toolchain.tflite.model_io import read_model

ROOT = CACHE / "rfc"
CONFIGS = REPO / "benchmarks" / "configs"
TARGETS = ("ethos-u55-128", "ethos-u85-256")
FLOAT, TFMOT_FLOAT, PLAIN_INT8, USUAL, RC_WEIGHTS, RC_OUTPUTS = (
    "float", "tfmot flow, float .tflite (the RFC's measurement)", "int8, not clustered", "tfmot flow, int8",
    "recluster, weight-space fit", "recluster, output-aware fit")


@dataclass(frozen=True)
class RfcRow:
    """One row of the RFC's results table and the config that runs it here."""

    config: str  # benchmarks/configs/<config>.toml
    net: Base
    rfc_model: str
    rfc_dataset: str
    rfc_configuration: str
    rfc_top1_percent: tuple[float, float]  # original, clustered
    rfc_zipped_mb: tuple[float, float]
    mapping: str  # how the RFC row maps onto the Fashion-MNIST network


# The RFC's figures (linear centroid init; top-1; zipped float .tflite).
RFC_ROWS = (
    RfcRow("rfc_convnet_full_32", Base.CONVNET, "ConvNet", "MNIST", "full model, 32 clusters", (99.40, 98.78),
           (0.57, 0.09), "the same two-conv ConvNet (no BatchNorm), every layer at 32"),
    RfcRow("rfc_mobilenet_v1_last_conv_32", Base.MOBILENET_V2, "MobileNetV1", "ImageNet", "last Conv2D at 32",
           (70.60, 69.64), (14.98, 11.90),
           "MobileNetV2-style net, its last Conv2D `head` (1x1, 64 -> 256) at 32; MobileNetV1's last Conv2D is its "
           "1x1 classifier, ours is a Dense layer and stays unclustered"),
    RfcRow("rfc_mobilenet_v1_last3_256_256_32", Base.MOBILENET_V2, "MobileNetV1", "ImageNet",
           "last 3 Conv2D at 256/256/32", (70.60, 67.41), (14.98, 8.77),
           "MobileNetV2-style net, its last three Conv2D layers `b7_expand`, `b7_project`, `head` at 256, 256, 32"),
    RfcRow("rfc_mobilenet_v1_all_but_depthwise_32", Base.MOBILENET_V2, "MobileNetV1", "ImageNet",
           "full model except DepthwiseConv2D at 32", (70.60, 64.0), (14.98, 2.17),
           "MobileNetV2-style net, every Conv2D and Dense layer at 32"),
    RfcRow("rfc_mobilenet_v2_last3_256_256_32", Base.MOBILENET_V2, "MobileNetV2", "ImageNet",
           "last 3 Conv2D at 256/256/32", (72.29, 72.31), (12.90, 7.00),
           "MobileNetV2-style net, `b7_expand`, `b7_project`, `head` at 256, 256, 32 (the same run as MobileNetV1's row)"),
    RfcRow("rfc_mobilenet_v2_all_but_depthwise_32", Base.MOBILENET_V2, "MobileNetV2", "ImageNet",
           "all but depthwise at 32", (72.29, 69.33), (12.90, 2.60),
           "MobileNetV2-style net, every Conv2D and Dense layer at 32 (the same run as MobileNetV1's row)"),
    RfcRow("rfc_ds_cnn_full_32", Base.DS_CNN, "DS-CNN-L", "Speech Commands v0.02", "full model, 32 clusters",
           (95.03, 94.71), (1.50, 0.30),
           "DS-CNN-style net (S size: 64 filters, 4 blocks) at 32; tfmot cannot cluster depthwise kernels, so "
           "'full model' leaves them, as it did for the RFC"),
)
CASCADE_NETS = (Base.CONVNET, Base.DS_CNN)
CASCADE_CONFIGS = ("cascade_k16", "cascade_k16_prune50", "cascade_k16_prune50_cqat",
                   "cascade_k32", "cascade_k32_prune50", "cascade_k32_prune50_cqat")


# --------------------------------------------------------------------------- measuring (cached by model hash)


def vela(model_bytes: bytes, work: Path) -> dict:
    path = work / "model.tflite"
    path.write_bytes(model_bytes)
    out = {}
    for target in TARGETS:
        r = compile_model(path, load_profile(target), work / target, enforce_budget=False)
        out[target] = {"encoded_weight_bytes": r.report["encoded_weight_bytes"],
                       "original_weight_bytes": r.report["original_weight_bytes"],
                       "flash_bytes": r.budget.flash_used_bytes, "sram_bytes": r.budget.sram_used_bytes,
                       "within_budget": r.budget.within_budget, "cycles_total": r.cycles_total,
                       "npu_operators": r.npu_operators, "cpu_operators": r.cpu_operators}
    return out


def float_kernels(model_bytes: bytes) -> list[dict]:
    """Distinct values of every constant float kernel (conv, depthwise, dense) of a float .tflite: what deflate sees."""
    model, out = read_model(model_bytes), []
    for sg in model.subgraphs or []:
        for op in sg.operators or []:
            code = op_code(model, op)
            if code not in WEIGHT_INPUT:
                continue
            tensor = sg.tensors[int(op.inputs[WEIGHT_INPUT[BuiltinOp(code)]])]
            if buffer_bytes(model, tensor) is None:
                continue
            values = tensor_values(model, tensor)
            if values.dtype == np.float32:
                out.append({"name": tensor_name(tensor), "op": op_name(model, op), "weights": int(values.size),
                            "distinct": int(np.unique(values).size)})
    return out


def value_entropy_bits(stats) -> float:
    """Entropy of the int8 weight values (inspect's per-tensor figure), bits per weight over every weight tensor:
    the length a code that knows each tensor's value frequencies needs (Vela's frequency-sorted palette and
    Golomb-Rice codes approach it)."""
    return sum(t.entropy_bits_per_weight * t.weights for t in stats.tensors) / max(stats.weights, 1)


def _derived(m: dict, model_bytes: bytes, is_float: bool) -> dict:
    """Figures computed from the model itself, cheap enough to add to cached measurements."""
    if is_float:
        return {} if "tensors" in m else {"tensors": float_kernels(model_bytes)}
    return {} if "entropy_bits_per_weight" in m else {
        "entropy_bits_per_weight": value_entropy_bits(inspect_model(model_bytes))}


def measure(model_bytes: bytes, data, is_float: bool, remeasure: bool) -> dict:
    """LiteRT accuracy on the test split, sizes, and (int8) weight statistics and Vela figures."""
    key = sha256_bytes(model_bytes + f"|{len(data.y_test)}|vela {vela_version()}|{','.join(TARGETS)}".encode())
    cache = ROOT / "measure" / f"{key}.json"
    if cache.is_file() and not remeasure:
        m = json.loads(cache.read_text()) | {"cached": True}
        return m | _derived(m, model_bytes, is_float)
    t0 = time.perf_counter()
    m = {"accuracy": evaluate_tflite(model_bytes, data.x_test, data.y_test), "tflite_bytes": len(model_bytes),
         "zipped_bytes": deflate_size(model_bytes), "vela": {}}
    m["evaluate_s"] = time.perf_counter() - t0
    if is_float:
        m["tensors"] = float_kernels(model_bytes)
    else:
        stats = inspect_model(model_bytes)
        m["entropy_bits_per_weight"] = value_entropy_bits(stats)
        m["weights"] = stats.weights
        m["max_distinct_values"] = stats.max_distinct_values
        m["zero_weights"] = round(sum(t.zero_fraction * t.weights for t in stats.tensors))
        m["tensors"] = [{"name": t.name, "op": t.op, "weights": t.weights, "distinct": t.distinct_values,
                         "zero_fraction": t.zero_fraction, "vela_palette_rule": t.vela_palette,
                         "vela_zero_runs_rule": t.vela_zero_runs} for t in stats.tensors]
        t1 = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="bench-rfc-") as tmp:
            m["vela"] = vela(model_bytes, Path(tmp))
        m["vela_s"] = time.perf_counter() - t1
    atomic_write_json(cache, m)
    return m | {"cached": False}


# --------------------------------------------------------------------------- models (cached by config hash)


def _keras(path: Path):
    from toolchain.training.keras_io import load_keras_model

    return load_keras_model(path)


def _digest(obj) -> str:
    return sha256_bytes(json.dumps(obj, sort_keys=True).encode())


_DATA: dict[str, object] = {}


def data_for(cfg: PipelineConfig):
    """The config's data subset, drawn by the pipeline's own code (toolchain.pipeline.inputs.load_data)."""
    key = json.dumps(cfg.data.to_dict(), sort_keys=True)
    if key not in _DATA:
        _DATA[key] = load_data("fashion-mnist", cfg)
    return _DATA[key]


def base_models(net: Base, data, remeasure: bool) -> dict:
    """The float base model's float .tflite and plain int8 model (benchmarks/base_models.py), measured."""
    t0 = time.perf_counter()
    info = ensure(net)  # trained on the whole training split when not cached
    fl, q = float_tflite(net).read_bytes(), int8_tflite(net).read_bytes()
    return {
        "keras_model": str(keras_path(net).relative_to(REPO)), "epochs": info.get("epochs"),
        "parameters": info.get("parameters"), "training_time_s": info.get("time_s"),
        "float": measure(fl, data, True, remeasure), "int8": measure(q, data, False, remeasure),
        "prepare_s": time.perf_counter() - t0,
    }


def tfmot_flow(net: Base, cfg: PipelineConfig, data) -> tuple[Path, dict]:
    """[prune,] cluster and fine-tune (the config's [finetune] on its [data]), strip; convert to float and int8."""
    from toolchain.training.clustering import FinetuneConfig
    from toolchain.training.finetune import finetune_model
    from toolchain.training.keras_io import keras_model_bytes
    from toolchain.training.quantize import (
        QuantizeConfig,
        convert_float,
        quantize_model,
    )
    from toolchain.training.tf_env import tool_versions

    ft = FinetuneConfig.from_dict(cfg.finetune, "[finetune]")
    qc = QuantizeConfig(**cfg.quantize)
    ft_key = _digest({"base": sha256_file(keras_path(net)), "finetune": ft.to_dict(), "data": cfg.data.to_dict(),
                      "versions": tool_versions()})
    d = ROOT / net.value / ft_key[:16]
    clustered = d / "clustered.keras"
    info = cached(clustered)
    ran = info is None
    if ran:
        print(f"  fine-tune: {ft.to_dict()}", flush=True)
        t0 = time.perf_counter()
        stripped, result = finetune_model(_keras(keras_path(net)), data, ft, quiet=True)
        info = {"time_s": time.perf_counter() - t0, "result": result.summary(), "config": ft.to_dict(),
                "data": cfg.data.to_dict()}
        store(clustered, keras_model_bytes(stripped), info)
    q_name = f"int8-{_digest(qc.to_dict())[:12]}.tflite"
    qinfo = cached(d / q_name)
    if qinfo is None:
        t0 = time.perf_counter()
        tfl, res = quantize_model(_keras(clustered), data, qc, quiet=True)
        qinfo = {"time_s": time.perf_counter() - t0, "config": qc.to_dict(), "int8_accuracy": res.int8_accuracy,
                 "keras_accuracy": res.float_accuracy, "qat_keras_accuracy": res.qat_float_accuracy}
        store(d / q_name, tfl, qinfo)
    if cached(d / "float.tflite") is None:
        t0 = time.perf_counter()
        store(d / "float.tflite", convert_float(_keras(clustered)), {"time_s": time.perf_counter() - t0})
    return d, {"dir": str(d.relative_to(REPO)), "int8_file": q_name, "finetune_cached": not ran,
               "finetune_time_s": info["time_s"], "quantize_time_s": qinfo["time_s"],
               "finetune": info["result"], "finetune_config": info["config"], "quantize_config": qinfo["config"],
               "qat_keras_accuracy": qinfo.get("qat_keras_accuracy")}


def run_config(net: Base, name: str, remeasure: bool, output_aware: bool, bases: dict) -> dict:
    t_run = time.perf_counter()
    path = CONFIGS / f"{name}.toml"
    cfg = load_pipeline_config(path, None)
    data = data_for(cfg)
    print(f"{net.value} / {name}", flush=True)
    if net.value not in bases:
        bases[net.value] = base_models(net, data, remeasure)
    d, flow = tfmot_flow(net, cfg, data)
    usual = (d / flow["int8_file"]).read_bytes()
    variants = []

    def add(variant: str, model_bytes: bytes, is_float: bool = False, extra: dict | None = None) -> None:
        m = measure(model_bytes, data, is_float, remeasure)
        variants.append({"variant": variant} | m | (extra or {}))
        enc = "" if is_float else f", u55 encoded {m['vela'][TARGETS[0]]['encoded_weight_bytes']:,} B"
        print(f"  {variant}: {100 * m['accuracy']:.2f}%, zipped {m['zipped_bytes']:,} B{enc}"
              + (" (measured before)" if m["cached"] else ""), flush=True)

    add(TFMOT_FLOAT, (d / "float.tflite").read_bytes(), is_float=True)
    add(USUAL, usual)

    def rewrite(variant: str, calibration) -> None:
        t0 = time.perf_counter()
        out, rep = recluster_model(usual, cfg.recluster, calibration)
        fit_s = time.perf_counter() - t0
        rewritten = [{"name": t.name, "op": t.op, "clusters": t.clusters, "before": t.distinct_before,
                      "after": t.distinct_after, "method": t.method or t.fit} for t in rep.rewritten]
        unchanged = [t.name for t in rep.tensors if t.action.value == "unchanged"]
        add(variant, out, extra={"fit_s": fit_s, "rewritten": rewritten, "unchanged_within_k": unchanged,
                                 "calibration": None if rep.calibration is None else (
                                     rep.calibration.to_json() | {"elapsed_s": rep.calibration.elapsed_s})})

    rewrite(RC_WEIGHTS, None)
    if output_aware:
        rewrite(RC_OUTPUTS, calibration_from_training(usual, data.x_train, f"{data.name} (the {len(data.x_train):,}-image fine-tune subset)",
                                                      cfg.recluster))
    keras_layers = _layer_weights(keras_path(net))
    clustered = [c["name"] for c in flow["finetune"]["clustered_layers"]]
    return {
        "config": name, "config_file": str(path.relative_to(REPO)), "net": net.value,
        "config_sha256": _digest({"finetune": flow["finetune_config"], "quantize": flow["quantize_config"],
                                  "data": cfg.data.to_dict(), "recluster": cfg.recluster_dict()}),
        "data": cfg.data.to_dict() | {"train_images": len(data.x_train), "test_images": len(data.y_test)},
        "recluster_config": cfg.recluster_dict(),
        "clustered_weight_fraction": sum(keras_layers.get(n, 0) for n in clustered) / max(sum(keras_layers.values()), 1),
        **flow, "variants": variants, "run_s": time.perf_counter() - t_run,
    }


_LAYER_WEIGHTS: dict[Path, dict[str, int]] = {}


def _layer_weights(path: Path) -> dict[str, int]:
    """Kernel weights of every Conv2D/Dense-like layer (depthwise included) of a Keras model, by layer name."""
    if path not in _LAYER_WEIGHTS:
        model = _keras(path)
        out = {}
        for layer in model.layers:
            for attr in ("depthwise_kernel", "kernel"):
                k = getattr(layer, attr, None)
                if k is not None:
                    out[layer.name] = int(np.prod(k.shape))
                    break
        _LAYER_WEIGHTS[path] = out
    return _LAYER_WEIGHTS[path]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=("rfc", "cascade"), help="run one part (the other's results are kept)")
    ap.add_argument("--configs", nargs="+", help="run only these configs (names under benchmarks/configs/)")
    ap.add_argument("--nets", nargs="+", choices=[b.value for b in Base], help="run only these networks")
    ap.add_argument("--remeasure", action="store_true", help="measure again where a model's figures are cached")
    ap.add_argument("--no-output-aware", action="store_true", help="leave out the output-aware fit")
    args = ap.parse_args()

    wall0 = time.perf_counter()
    load_start = os.getloadavg()
    previous = json.loads((REPO / "benchmarks" / "results" / "rfc_table.json").read_text()) if (
        REPO / "benchmarks" / "results" / "rfc_table.json").is_file() else {}
    bases: dict = dict(previous.get("bases", {}))
    runs: dict = dict(previous.get("runs", {}))  # "<net>/<config>" -> run

    def wanted(net: Base, name: str) -> bool:
        return (args.configs is None or name in args.configs) and (args.nets is None or net.value in args.nets)

    jobs = []
    if args.only in (None, "rfc"):
        jobs += [(r.net, r.config) for r in RFC_ROWS]
    if args.only in (None, "cascade"):
        jobs += [(n, c) for n in CASCADE_NETS for c in CASCADE_CONFIGS]
    fresh_bases: dict = {}
    for net, name in dict.fromkeys(jobs):
        if wanted(net, name):
            runs[f"{net.value}/{name}"] = run_config(net, name, args.remeasure, not args.no_output_aware, fresh_bases)
    bases |= fresh_bases
    doc = {
        "benchmark": "rfc_table",
        "command": ".venv/bin/python benchmarks/rfc_table.py",
        "description": __doc__.strip().splitlines()[0],
        "machine": machine() | {"load_average_start": list(load_start), "load_average_end": list(os.getloadavg())},
        "schedule": schedule(),
        "vela_version": vela_version(), "vela_targets": list(TARGETS), "budgets_enforced": False,
        "rfc_rows": [{**asdict(r), "net": r.net.value} for r in RFC_ROWS],
        "cascade": [{"net": n.value, "config": c} for n in CASCADE_NETS for c in CASCADE_CONFIGS],
        "bases": bases, "runs": runs,
        "wall_s": time.perf_counter() - wall0,
    }
    path = write_result("rfc_table", doc)
    for render in (tables.rfc_mapping_table, tables.rfc_results_table,
                   tables.rfc_vela_table, tables.rfc_vela_verdict, tables.cascade_table, tables.cascade_verdict):
        try:
            print("\n" + render(doc))
        except KeyError as exc:  # a part not run yet
            print(f"\n({render.__name__}: not every run is there yet: {exc})")
    print(f"\nwall time {doc['wall_s']:.0f} s; wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
