"""Compression on Fashion-MNIST (benchmarks/compression_fashion_mnist.py) and its converged base models
(benchmarks/base_models.py)."""
from __future__ import annotations

from common import FASHION_TARGETS

from .markdown import Doc, kib, machine_text, mcycles, pct, span, table

# Variants of the compression benchmark (benchmarks/compression_fashion_mnist.py) the summaries pick.
FASHION_TOOLCHAIN, FASHION_PLAN = "this toolchain", "this toolchain, size plan"


def _fashion_layers(doc: Doc) -> list[str]:
    """Layer labels in graph order (recorded as ``layers``; older documents: the float row's keys, in order)."""
    if "layers" in doc:
        return list(doc["layers"])
    return list(doc["rows"][0]["distinct_per_tensor"])


def _fashion_rows(doc: Doc, model: str) -> list[Doc]:
    return [r for r in doc["rows"] if r["model"] == model]


def _fashion_pick(doc: Doc, model: str, clusters: int | None, variant: str) -> Doc:
    return next(r for r in _fashion_rows(doc, model) if r["clusters"] == clusters and r["variant"] == variant)


def fashion_mnist_models(doc: Doc) -> list[str]:
    return list(dict.fromkeys(r["model"] for r in doc["rows"]))


def fashion_mnist_table(doc: Doc, model: str) -> str:
    """Every variant of one model: accuracy, zipped size, distinct values per layer, Vela figures per target."""
    targets = doc["vela_targets"]
    layers = _fashion_layers(doc)
    rows = _fashion_rows(doc, model)
    float_row = _fashion_pick(doc, model, None, "float")
    header = ["K", "variant", "test accuracy", "vs float", "zipped KiB", "float zipped / zipped",
              "distinct values " + " / ".join(layers)]
    for t in targets:
        header += [f"{t} encoded weights KiB", f"{t} flash KiB", f"{t} Mcycles"]
    out = []
    for r in rows:
        cells = [str(r["clusters"] or "-"), r["variant"], f"{100 * r['accuracy']:.2f}%",
                 f"{100 * (r['accuracy'] - float_row['accuracy']):+.2f}", kib(r["zipped_bytes"]),
                 f"{float_row['zipped_bytes'] / r['zipped_bytes']:.1f}x",
                 " / ".join(str(r["distinct_per_tensor"].get(n, "-")) for n in layers)]
        for t in targets:
            v = r["vela"].get(t)
            cells += ["-"] * 3 if v is None else [kib(v["encoded_weight_bytes"]), kib(v["flash_bytes"]),
                                                  mcycles(v["cycles_total"])]
        out.append(cells)
    return table(header, out)


def fashion_mnist_targets(doc: Doc) -> str:
    """The targets (encoded weights vs the usual flow, zipped size vs float), PASS/FAIL per variant and K."""
    th = doc.get("target_thresholds", FASHION_TARGETS)
    targets = doc["vela_targets"]
    target_k = doc["targets_checked_at_clusters"]
    header = ["model", "K", "variant", f"encoded weights vs usual flow ({' / '.join(targets)})",
              "accuracy vs usual flow",
              f"target <= {th['max_encoded_ratio_vs_usual']:g}x, >= -{th['max_accuracy_loss_vs_usual_points']:g} points",
              "zipped float / zipped", "accuracy vs float",
              f"target >= {th['min_zip_factor_vs_float']:g}x, >= -{th['max_accuracy_loss_vs_float_points']:g} point"]
    rows = []
    for c in doc["targets"]:
        rows.append([
            c["model"], f"{c['clusters']}{' (target K)' if c['clusters'] == target_k else ''}", c["variant"],
            " / ".join(f"{c['encoded_ratio_vs_usual'][t]:.3f}x" for t in targets),
            f"{c['accuracy_vs_usual_points']:+.2f}", "PASS" if c["encoded_target_pass"] else "FAIL",
            f"{c['zip_factor_vs_float']:.2f}x", f"{c['accuracy_vs_float_points']:+.2f}",
            "PASS" if c["zip_target_pass"] else "FAIL"])
    return table(header, rows)


def fashion_mnist_verdict(doc: Doc) -> str:
    """Which variants meet both targets at the target K, per model, and what the plain rewrite reaches there."""
    k = doc["targets_checked_at_clusters"]
    at_k = [c for c in doc["targets"] if c["clusters"] == k]
    lines = []
    for model in fashion_mnist_models(doc):
        mine = [c for c in at_k if c["model"] == model]
        both = [c["variant"] for c in mine if c["encoded_target_pass"] and c["zip_target_pass"]]
        plain = next((c for c in mine if c["variant"] == FASHION_TOOLCHAIN), None)
        text = f"- `{model}` at K = {k}: both targets met by " + (", ".join(f"*{v}*" for v in both) or "no variant")
        if plain is not None:
            ratios = " / ".join(f"{v:.2f}x" for v in plain["encoded_ratio_vs_usual"].values())
            text += (f"; *{FASHION_TOOLCHAIN}* (exactly {k} values per tensor) reaches {ratios} of the usual flow's "
                     f"encoded weights at {plain['accuracy_vs_usual_points']:+.2f} points and "
                     f"{plain['zip_factor_vs_float']:.1f}x smaller zipped than float")
        lines.append(text + ".")
    return "\n".join(lines)


def fashion_mnist_notes(doc: Doc) -> str:
    """What every variant had in common on the Vela targets (budgets, NPU/CPU split)."""
    vela = [(t, v) for r in doc["rows"] for t, v in r["vela"].items()]
    fits = all(v["within_budget"] for _, v in vela)
    splits = sorted({(v["npu_operators"], v["cpu_operators"]) for _, v in vela})
    split = " or ".join(f"{n} NPU, {c} CPU operators" for n, c in splits)
    return (f"Every int8 variant {'fits' if fits else 'does not always fit'} the default boards of "
            f"{' and '.join(doc['vela_targets'])} (budgets recorded, not enforced) and compiles to {split}; "
            f"accuracies are on the {doc['test_samples']:,}-image test set.")


def _largest_layer(row: Doc, target: str) -> Doc:
    return max(row["vela"][target]["layers"], key=lambda la: la["original_bytes"])


def fashion_mnist_largest_layer(doc: Doc) -> str:
    """Why the encoded sizes are what they are: the largest weight tensor under Vela's encoder, per variant."""
    target = doc["vela_targets"][0]
    header = ["model", "K", "variant", "largest layer (share of weights)", "distinct values",
              "top-32 values cover", "entropy bits/weight", f"{target} encoded bits/weight",
              "encoded / int8 bytes", "whole model zipped, bits/weight"]
    rows = []
    for model in fashion_mnist_models(doc):
        int8 = _fashion_pick(doc, model, None, "int8")
        weights = int8["vela"][target]["original_weight_bytes"]  # one byte per int8 weight
        for r in _fashion_rows(doc, model):
            zipped = f"{8 * r['zipped_bytes'] / weights:.2f}"
            if not r["vela"]:  # the float model: only its zipped size compares
                rows.append([model, "-", r["variant"], "-", "-", "-", "-", "-", "-", zipped])
                continue
            layer = _largest_layer(r, target)
            tensor = next(t for t in r["tensors"] if t["layer"] == layer["layer"])
            rows.append([
                model, str(r["clusters"] or "-"), r["variant"],
                f"{layer['layer']} ({100 * layer['original_bytes'] / weights:.1f}%)", str(tensor["distinct"]),
                f"{100 * tensor['top32_fraction']:.0f}%", f"{tensor['entropy_bits_per_weight']:.2f}",
                f"{8 * layer['encoded_bytes'] / layer['original_bytes']:.2f}",
                f"{layer['encoded_bytes'] / layer['original_bytes']:.3f}x", zipped])
    return table(header, rows)


def fashion_mnist_cost(doc: Doc) -> str:
    """Where the benchmark's time goes (as first measured, also when later runs reuse cached models)."""
    t = doc["times_s"]
    steps = [("base training", "base_training_s"), ("clustering fine-tunes (tfmot)", "finetune_s"),
             ("cluster-preserving QAT", "cqat_s"), ("TFLite conversions", "conversion_s"),
             ("`recluster`, size plans included", "recluster_s"), ("bias correction", "bias_correction_s"),
             ("LiteRT accuracy on the test set", "evaluate_s"), ("Vela compiles", "vela_s")]
    rows = [[label, f"{t[key]:.0f} s"] for label, key in steps]
    rows.append(["sum of the steps (a run without caches)", f"{doc['uncached_estimate_s']:.0f} s"])
    cold = doc.get("last_cold_run")
    if cold:
        rows.append(["wall time of the last run without caches",
                     (f"{cold['wall_s']:.0f} s ({cold['wall_s'] / 60:.1f} min; load average "
                      f"{cold['load_average_start'][0]:.1f} at the start)")])
    rows.append(["wall time of the latest run", f"{doc['wall_s']:.0f} s ("
                 + ("nothing cached" if doc.get("cold_run") else "cached models reused") + ")"])
    rec = [r["recluster_s"] for r in doc["rows"] if r["variant"] == FASHION_TOOLCHAIN]
    rows.append([f"`recluster` of one model (default joint fit, {len(rec)} models)", f"{span(rec, '.1f')} s"])
    return table(["step", "time on " + machine_text(doc)], rows)


# --------------------------------------------------------------------------- converged base models


def base_models_table(doc: Doc) -> str:
    """The converged float base models (benchmarks/base_models.py): schedule, size, accuracies, training time."""
    s = doc["schedule"]
    rows = []
    for name, b in doc["models"].items():
        curve = b.get("curve") or []
        tail = curve[-4:]
        conv = (f"epochs {tail[0]['epoch']}-{tail[-1]['epoch']}: "
                + " / ".join(f"{100 * c['test_accuracy']:.2f}" for c in tail) + "%") if curve else "-"
        t = b.get("training_time_s")
        rows.append([f"`{name}`", f"`{b['trained_by']}`", f"{b['parameters']:,}", str(b["epochs"]),
                     pct(b["float_accuracy"]), pct(b["int8_accuracy"]), kib(b["float_zipped_bytes"]),
                     kib(b["int8_zipped_bytes"]), "-" if t is None else f"{t / 60:.0f} min", conv])
    note = (f"Schedule: {s['optimizer'].capitalize()}, learning rate {s['learning_rate']}, batch {s['batch']}, all "
            f"{s['train_images']:,} training images, seed {s['seed']}, no augmentation. Top-1 on the "
            f"{doc['test_images']:,}-image test set in LiteRT: the float .tflite, and the int8 model ({doc['int8']}). "
            f"Training times on {machine_text(doc).split(',')[0]} shared with other work.")
    return table(["network", "trained by", "parameters", "epochs", "float top-1", "int8 top-1", "float zipped KiB",
                  "int8 zipped KiB", "training time", "test top-1 after the last epochs"], rows) + "\n\n" + note
