"""The rewriter's own benchmarks: solver speed (benchmarks/recluster_speed.py), restoring the cluster
count (benchmarks/restore_clusters.py) and the output-aware fit (benchmarks/output_aware.py)."""
from __future__ import annotations

from .markdown import Doc, cell, machine_text, pct, span, table

# --------------------------------------------------------------------------- rewriter speed


def recluster_speed_table(doc: Doc) -> str:
    """The exact palette DP against scikit-learn's weighted KMeans on MobileNetV2's tensors: on the same
    histogram, end to end from the raw weights, and the whole-model rewrite; medians (min-max) of repeated runs."""

    def t(x: dict, fmt: str) -> str:
        return f"{x['median']:{fmt}} ({x['min']:{fmt}}-{x['max']:{fmt}})"

    header = ["K", "tensors", "weights", "same histogram: DP s", "KMeans s", "ratio", "from raw weights: DP s",
              "KMeans s", "ratio", "DP error / KMeans error", "DP worse on", "whole model keep / refit / joint s"]
    rows = []
    for s in doc["summary"]:
        h, r, fits = s["histogram"], s["raw"], s["recluster_model_s"]
        rows.append([str(s["clusters"]), str(s["tensors"]), f"{s['weights']:,}",
                     t(h["dp_s"], ".3f"), t(h["kmeans_s"], ".2f"), f"{h['kmeans_s']['median'] / h['dp_s']['median']:.0f}x",
                     t(r["dp_s"], ".3f"), t(r["kmeans_s"], ".1f"), f"{r['kmeans_s']['median'] / r['dp_s']['median']:.0f}x",
                     f"{s['dp_error_total'] / s['kmeans_error_total']:.3f}", str(s["tensors_dp_worse_than_kmeans"]),
                     " / ".join(f"{fits[f]['median']:.2f}" for f in ("keep", "refit", "joint"))])
    first = doc["summary"][0]
    note = (f"Medians of {doc['repeats']} runs in one session, (min-max) in brackets. Same histogram: "
            f"{first['histogram']['kmeans_setting']}; from raw weights: {first['raw']['kmeans_setting']}.")
    return table(header, rows) + "\n\n" + note


# --------------------------------------------------------------------------- restoring the cluster count


def restore_clusters_table(doc: Doc) -> str:
    header = ["K", "model", "distinct int8 values per tensor", "squared error vs float weights", "int8 accuracy",
              "vs before", "Vela encoded weights"]
    rows = [[str(r["clusters"]), r["variant"], ", ".join(map(str, r["distinct_per_tensor"])),
             f"{r['squared_error_vs_float']:.3g}", f"{100 * r['int8_accuracy']:.1f}%",
             f"{r['accuracy_delta_points']:+.1f}", f"{r['vela_encoded_weight_bytes']:,} B"] for r in doc["rows"]]
    return table(header, rows)


def restore_clusters_verdict(doc: Doc) -> str:
    """Per K: the joint fit against keeping the scales and against the usual flow it rewrites."""
    lines = []
    for k in dict.fromkeys(r["clusters"] for r in doc["rows"]):
        rows = {r["variant"]: r for r in doc["rows"] if r["clusters"] == k}
        before = next(r for v, r in rows.items() if v.startswith("before"))
        joint, keep = rows["recluster --fit joint"], rows["recluster --fit keep"]
        deltas = [r["accuracy_delta_points"] for v, r in rows.items() if v.startswith("recluster --fit joint")]
        lines.append(
            f"- K = {k}: the joint fit has {keep['squared_error_vs_float'] / joint['squared_error_vs_float']:.0f}x less "
            f"weight error than keeping the scales ({joint['squared_error_vs_float']:.3g} against the usual flow's own "
            f"{before['squared_error_vs_float']:.3g}), accuracy {span(deltas, '+.1f')} points against before, and "
            f"takes {100 * (1 - joint['vela_encoded_weight_bytes'] / before['vela_encoded_weight_bytes']):.0f}% off "
            f"the encoded weights, where the usual flow left up to {max(before['distinct_per_tensor'])} values per tensor.")
    return "\n".join(lines)


# --------------------------------------------------------------------------- the output-aware fit


def output_aware_table(doc: Doc) -> str:
    """Every row of benchmarks/output_aware.py: accuracy, agreement, encoded weights, values per tensor, fit time."""
    rows = []
    for r in doc["rows"]:
        agree = "-" if r.get("top1_agreement_with_int8") is None else f"{r['top1_agreement_with_int8']:.4f}"
        fit = "-" if r.get("fit_s") is None else f"{r['fit_s']:.1f}"
        rows.append([r["model"], str(r["clusters"] or "-"), cell(r["variant"]), f"{100 * r['accuracy']:.2f}%", agree,
                     f"{r['encoded_ratio_vs_int8']:.3f}x", str(r["max_values_per_tensor"]), fit])
    text = table(["model", "K", "variant", "accuracy", "top-1 agreement with int8", "encoded weights vs int8",
                  "max values per tensor", "fit s"], rows)
    t = doc.get("timing_mobilenet_v2_224")
    if t:
        text += (f"\n\nFit time on {t['model']}, K={t['clusters']}, {t['segments_1']['samples']} calibration samples: "
                 f"weight-space {t['weight_space_fit_s']:.1f} s; output-aware {t['output_aware_fit_s_segments_1']:.1f} s "
                 f"(1 segment), {t['output_aware_fit_s_segments_auto']:.1f} s (automatic: "
                 f"{t['segments_auto']['segments']} segment(s)).")
    return text + f"\n\nMachine: {machine_text(doc)}; {doc['dataset']['calibration']}; Vela {doc['settings']['vela']}, " \
                  f"{doc['settings']['target']}."


def output_aware_row(doc: Doc, model: str, variant: str) -> Doc | None:
    return next((r for r in doc["rows"] if r["model"] == model and r["variant"] == variant), None)


def output_aware_summary(doc: Doc) -> str:
    """One line per network: post-training K=8 (depthwise included) and K=16, weight-space against output-aware."""
    lines = []
    for model in dict.fromkeys(r["model"] for r in doc["rows"]):
        base = output_aware_row(doc, model, "plain int8")
        parts = []
        for k, suffix in ((8, ", depthwise included"), (16, "")):
            w = output_aware_row(doc, model, f"post-training, weight-space fit{suffix}")
            o = output_aware_row(doc, model, f"post-training, output-aware fit{suffix}")
            if w and o:
                parts.append(f"K={k}: {pct(w['accuracy'])} with the weight-space fit, {pct(o['accuracy'])} output-aware "
                             f"(encoded weights {o['encoded_ratio_vs_int8']:.2f}x int8)")
        auto = output_aware_row(doc, model, "post-training, --clusters auto with data (top-1 agreement >= 99.5% on calibration)")
        if auto:
            parts.append(f"`--clusters auto`: {pct(auto['accuracy'])}, agreement {auto['top1_agreement_with_int8']:.3f}, "
                         f"{auto['encoded_ratio_vs_int8']:.2f}x")
        if base and parts:
            lines.append(f"- `{model}` (plain int8 {pct(base['accuracy'])}): " + "; ".join(parts) + ".")
    return "\n".join(lines) + f"\n\nFull test set ({doc['dataset']['test_images']:,} images); " \
                              f"{doc['dataset']['calibration']}."


# --------------------------------------------------------------------------- the verdict: held-back check vs test split


def verdict_table(doc: Doc) -> str:
    """benchmarks/verdict.py: the agreement the toolchain prints (held-back calibration samples) against the test
    split, what the old in-sample check printed, and what random inputs show; then the target's verdict."""
    def ratio(x: float | None) -> str:
        return "not measurable" if x is None else f"{x:.3f}"

    rows, met = [], 0
    for r in doc["rows"]:
        met += r["gap"] <= doc["target_gap"]
        rows.append([f"`{r['model']}`", str(r["clusters"]), f"{r['printed_top1_agreement']:.4f} ({r['printed_samples']:,})",
                     f"{r['test_top1_agreement']:.4f} ({r['test_samples']:,})", f"{r['gap']:.4f}",
                     f"{r['in_sample_top1_agreement']:.3f} ({r['in_sample_samples']})",
                     ratio(r["random_top1_agreement"]),
                     f"{pct(r['accuracy_int8'])} -> {pct(r['accuracy_after'])}"])
    text = table(["model", "K", "printed: held-back samples (n)", "test split (n)", "gap",
                  "old check: in-sample (n)", "random inputs", "accuracy int8 -> after"], rows)
    largest = max((r["gap"] for r in doc["rows"]), default=0.0)
    above = sum(r["printed_top1_agreement"] > r["test_top1_agreement"] for r in doc["rows"])
    return (text + f"\n\nTarget, printed agreement within {doc['target_gap']:g} of the test split's: met on {met} of "
            f"{len(doc['rows'])} rewrites (largest gap {largest:.4f}). The held-back figure is above the test split's "
            f"on {above} of {len(doc['rows'])}: held-back calibration samples come from the training split, which a "
            "network fits better than images it never saw (`--verify-data` with unseen images measures those). "
            f"Calibration: {doc['dataset']['calibration']}, the output-aware fit on 512, the rest held back; machine: "
            f"{machine_text(doc)}.")
