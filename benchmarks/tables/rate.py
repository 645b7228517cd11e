"""Rate-distortion: accuracy against Vela's encoded weight bytes (benchmarks/rate_distortion.py)."""
from __future__ import annotations

from .markdown import Doc, pct, span, table

NET_NAMES = {"convnet_bn": "BN ConvNet", "mobilenet_v2": "MobileNetV2-style", "ds_cnn": "DS-CNN-style"}
TARGETS = ((0.40, 0.5), (0.50, 0.2))  # (encoded ratio at most, accuracy loss in points at most)


def _nets(doc: Doc) -> list[str]:
    return list(dict.fromkeys(r["model"] for r in doc["rows"]))


def _rows(doc: Doc, net: str, target: str, series: str | None = None) -> list[dict]:
    return [r for r in doc["rows"] if r["model"] == net and r["target"] == target
            and (series is None or r["series"] == series)]


def best_within(doc: Doc, net: str, target: str, max_loss_points: float) -> dict | None:
    """The planner's smallest encoded weights losing at most ``max_loss_points`` against plain int8."""
    ok = [r for r in _rows(doc, net, target) if r["series"].startswith("planner") and r.get("accuracy") is not None
          and r["accuracy_change_points"] >= -max_loss_points]
    return min(ok, key=lambda r: r["encoded_ratio_vs_int8"], default=None)


def rate_distortion_table(doc: Doc, net: str) -> str:
    """Every point of one network, both targets: series, Vela's bytes, accuracy, agreement with int8."""
    rows = []
    for target in doc["settings"]["targets"]:
        for r in _rows(doc, net, target):
            if "error" in r:
                rows.append([target, r["series"], f"budget {r['budget_fraction']:.2f}x", "not met", "-", "-", "-"])
                continue
            acc = "-" if r.get("accuracy") is None else pct(r["accuracy"])
            change = "-" if r.get("accuracy") is None else f"{r['accuracy_change_points']:+.2f}"
            agree = "-" if r.get("top1_agreement_with_int8") is None else f"{r['top1_agreement_with_int8']:.4f}"
            rows.append([target, r["series"], r.get("label", ""), f"{r['encoded_weight_bytes']:,}",
                         f"{r['encoded_ratio_vs_int8']:.3f}x", f"{acc} ({change})", agree])
    return table(["target", "series", "point", "Vela encoded B", "of int8", "accuracy (points)", "agreement"], rows)


def _why_not(doc: Doc, net: str, target: str, ratio: float) -> str:
    """A target missed: what the planner's least lossy point within the ratio loses (the frontier there)."""
    within = [r for r in _rows(doc, net, target) if r["series"].startswith("planner") and r.get("accuracy") is not None
              and r["encoded_ratio_vs_int8"] <= ratio]
    if not within:
        return f"not met: no planner point at or below {ratio:.2f}x"
    best = max(within, key=lambda r: r["accuracy_change_points"])
    return (f"not met: at or below {ratio:.2f}x the least loss is {-best['accuracy_change_points']:.2f} points "
            f"({best['encoded_ratio_vs_int8']:.3f}x)")


def rate_distortion_targets(doc: Doc) -> str:
    """The issue's targets per network and target, and the floor that bounds them."""
    rows = []
    for net in _nets(doc):
        for target in doc["settings"]["targets"]:
            cells = [NET_NAMES.get(net, net), target]
            for ratio, loss in TARGETS:
                best = best_within(doc, net, target, loss)
                if best is None:
                    cells.append(f"none within {loss} points")
                else:
                    verdict = "met" if best["encoded_ratio_vs_int8"] <= ratio else _why_not(doc, net, target, ratio)
                    cells.append(f"{best['encoded_ratio_vs_int8']:.3f}x ({best['accuracy_change_points']:+.2f}): "
                                 f"{verdict}")
            floor = next(iter(_rows(doc, net, target, "floor")), None)
            cells.append("-" if floor is None else f"{floor['encoded_ratio_vs_int8']:.3f}x "
                                                   f"({floor.get('vela_own_weight_bytes', 0):,} B Vela's own)")
            rows.append(cells)
    return table(["network", "target", "<= 0.40x at -0.5 points", "<= 0.50x at -0.2 points", "floor"], rows)


def rate_distortion_timing(doc: Doc) -> str:
    """`--clusters auto` and the door's weight budget against one fixed K=16 fit, per network."""
    rows = []
    for net, t in doc.get("timing", {}).items():
        k16 = t.get("fit16_s") or t["fixed_fit_s"]["16"]
        auto = next(iter(r for r in doc["rows"] if r["model"] == net and r["series"] == "auto"), None)
        fixed = None if auto is None else next(iter(
            r for r in _rows(doc, net, auto["target"], "fixed K") if r.get("clusters") == 16), None)
        rows.append([NET_NAMES.get(net, net), f"{k16:.1f}", f"{t['auto_s']:.1f} ({t['auto_s'] / k16:.2f}x)",
                     "-" if auto is None else f"{auto['encoded_ratio_vs_int8']:.3f}x, {pct(auto['accuracy'])}, "
                                              f"largest K {auto['max_clusters']}",
                     "-" if fixed is None else f"{fixed['encoded_ratio_vs_int8']:.3f}x, {pct(fixed['accuracy'])}",
                     f"{t['door_s']:.1f}"])
    return table(["network", "fixed K=16 fit (s)", "--clusters auto (s)", "auto's result", "K=16's result",
                  "--weight-budget 0.40x (s)"], rows)


def rate_distortion_summary(doc: Doc) -> str:
    """The README's line: the planner's smallest bytes within 0.5 and 0.2 points, per target."""
    parts = []
    for target in doc["settings"]["targets"]:
        half = [best_within(doc, n, target, 0.5) for n in _nets(doc)]
        fifth = [best_within(doc, n, target, 0.2) for n in _nets(doc)]
        if all(half) and all(fifth):
            parts.append(f"{target} {span([r['encoded_ratio_vs_int8'] for r in half], '.2f')}x within 0.5 points "
                         f"and {span([r['encoded_ratio_vs_int8'] for r in fifth], '.2f')}x within 0.2")
    nets = ", ".join(NET_NAMES.get(n, n) for n in _nets(doc))
    return (f"- **Flash as the objective ({nets}; Vela's own encoder, 512 calibration images, 10,000 test images):** "
            f"`recluster --weight-budget` keeps plain int8's accuracy with these multiples of its encoded weights: "
            f"{'; '.join(parts)} "
            "([rate-distortion](docs/benchmarks.md#rate-distortion-accuracy-against-velas-encoded-weights)).")
