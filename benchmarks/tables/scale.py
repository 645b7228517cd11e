"""The output-aware fit at MobileNet scale, before and after (benchmarks/fit_speed.py)."""
from __future__ import annotations

from .markdown import Doc, machine_text, table

TARGET_WALL_S = 25.0  # the output-aware fit of MobileNetV2-224 with 512 samples, on 2 cores
TARGET_RSS_MIB = 1024.0
TARGET_WEIGHT_FIT_S = 1.0

_PHASES = (("output-aware fit, wall s", "total_s"), ("of which: reading and quantising the calibration file", "load_s"),
           ("statistics (LiteRT and Hessians)", "statistics_s"), ("LiteRT invokes (any thread)", "litert_s"),
           ("per-layer fits", "fits_s"), ("CPU s (all threads)", "cpu_s"), ("peak RSS MiB", "peak_rss_mib"))


def _num(x: float | None, fmt: str = ".1f") -> str:
    return "-" if x is None else format(x, fmt)


def _ratio(before: float | None, after: float | None) -> str:
    return "-" if not before or not after else f"{before / after:.1f}x"


def fit_speed_table(doc: Doc) -> str:
    """Medians per phase for the baseline commit and this version, their ratio; then the K=8 accuracy check."""
    b, a = doc["output_aware"]["before"], doc["output_aware"]["after"]
    rows = []
    for label, key in _PHASES:
        fmt = ".0f" if key == "peak_rss_mib" else ".1f"
        rows.append([label, _num(b["median"][key], fmt), _num(a["median"][key], fmt),
                     _ratio(b["median"][key], a["median"][key])])
    w = doc["weight_space_fit_s"]
    rows.append([f"weight-space fit s (median of {w['after']['runs']})", _num(w["before"]["median"], ".2f"),
                 _num(w["after"]["median"], ".2f"), _ratio(w["before"]["median"], w["after"]["median"])])
    cpu = [w[v].get("cpu_median") for v in ("before", "after")]
    rows.append(["weight-space fit, CPU s", _num(cpu[0], ".2f"), _num(cpu[1], ".2f"), _ratio(*cpu)])
    same = doc["thread_settings"]
    rows.append(["same bytes in every run / with OPENBLAS_NUM_THREADS=1 and 2",
                 *[f"{'yes' if len(doc['output_aware'][v]['output_sha256']) == 1 else 'no'} / "
                   f"{'yes' if same[v]['same'] else 'no'}" for v in ("before", "after")], ""])
    text = table(["MobileNetV2 224x224, K=16, 512 samples", "before", "after", "before / after"], rows)
    text += (f"\n\nMedians of {a['runs']} runs per version, alternating in one session, each in its own process; "
             f"before: commit {doc['baseline_commit'][:10]}. {a['segments']} segment, {a['litert_passes']} LiteRT "
             f"pass, batches of {a['batch']}. Machine: {machine_text(doc)}.")
    acc = doc.get("accuracy")
    if acc:
        arows = [[r["model"], str(r["clusters"]), f"{100 * r['int8_accuracy']:.2f}%",
                  f"{100 * r['before']['accuracy']:.2f}%", f"{100 * r['after']['accuracy']:.2f}%",
                  f"{r['accuracy_change_points']:+.2f}", f"{r['top1_agreement_before_after']:.4f}",
                  f"{r['before']['fit_s']:.1f}", f"{r['after']['fit_s']:.1f}"] for r in acc]
        text += "\n\n" + table(["net", "K", "int8", "before", "after", "change (points)", "top-1 agreement before/after",
                                "fit s before", "fit s after"], arows)
        text += (f"\n\nFashion-MNIST nets of benchmarks/output_aware_models.py, depthwise included, "
                 f"{acc[0]['calibration_samples']} seeded training images, accuracy on the "
                 f"{acc[0]['test_images']:,} test images; one run per version.")
    return text


def fit_speed_verdict(doc: Doc) -> str:
    """The scale targets against this version's medians, and the accuracy check in one line per net."""
    b, a = doc["output_aware"]["before"]["median"], doc["output_aware"]["after"]["median"]
    w = doc["weight_space_fit_s"]

    def met(ok: bool) -> str:
        return "met" if ok else "not met"

    wall = (f"- Output-aware fit: {b['total_s']:.1f} s -> {a['total_s']:.1f} s wall "
            f"({_ratio(b['total_s'], a['total_s'])} faster), {b['cpu_s']:.1f} -> {a['cpu_s']:.1f} s CPU, peak "
            f"{b['peak_rss_mib']:.0f} -> {a['peak_rss_mib']:.0f} MiB; target < {TARGET_WALL_S:.0f} s "
            f"{met(a['total_s'] < TARGET_WALL_S)}, < {TARGET_RSS_MIB / 1024:.0f} GB "
            f"{met(a['peak_rss_mib'] < TARGET_RSS_MIB)} on this machine.")
    weights = (f"- Weight-space fit: {w['before']['median']:.2f} s -> {w['after']['median']:.2f} s; target "
               f"< {TARGET_WEIGHT_FIT_S:.0f} s {met(w['after']['median'] < TARGET_WEIGHT_FIT_S)}.")
    lines = [wall, weights]
    for r in doc.get("accuracy") or []:
        lines.append(f"- `{r['model']}` K={r['clusters']}: {100 * r['before']['accuracy']:.2f}% before, "
                     f"{100 * r['after']['accuracy']:.2f}% after ({r['accuracy_change_points']:+.2f} points), fit "
                     f"{r['before']['fit_s']:.1f} s -> {r['after']['fit_s']:.1f} s.")
    return "\n".join(lines)
