"""The Ethos-N78 model against Arm's own estimator (benchmarks/ethos_n_calibration.py)."""
from __future__ import annotations

from .markdown import Doc, table

LAYER_ORDER = ("conv 1x1", "conv 3x3", "conv 5x5", "conv 3x3 /2", "depthwise 3x3", "depthwise 3x3 /2",
               "fully connected", "max pool 2x2 /2", "avg pool 3x3 /1", "avg pool 7x7 /7", "add")


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _errors(s: Doc, key: str) -> list[str]:
    if f"max_{key}_error" not in s:
        return ["-", "-", "-"]
    within, points = s[f"{key}_within_tolerance"], s.get(f"{key}_points", s["points"])
    return [_pct(s[f"max_{key}_error"]), _pct(s[f"mean_{key}_error"]), f"{within} of {points}"]


def _order(label: str) -> tuple[int, str]:
    return (LAYER_ORDER.index(label) if label in LAYER_ORDER else len(LAYER_ORDER), label)


def ethos_n_calibration_table(doc: Doc) -> str:
    """Per layer type, over the four variants Arm's library estimates: the model's error against Arm's figures."""
    by_label = doc["summary"]["all"]
    rows = []
    for label in sorted((k for k in by_label if k != "all"), key=_order) + ["all"]:
        s = by_label[label]
        name = "**all layers**" if label == "all" else label
        rows.append([name, str(s["points"]), *_errors(s, "cycles"), *_errors(s, "weight_bytes")])
    return table(["layer type", "grid points", "cycles: max error", "mean", "within 15%",
                  "weight bytes: max error", "mean", "within 5%"], rows)


def ethos_n_variants_table(doc: Doc) -> str:
    """Per variant: the grid's size, the worst errors and Arm's library's answer where it estimates nothing."""
    rows = []
    for variant, info in doc["variants"].items():
        s = doc["summary"].get(variant, {}).get("all")
        if s is None:
            reason = info["message"].rsplit(": ", 1)[-1]
            rows.append([f"`{variant}`", f"{info['sram_bytes'] // 1024:,} KiB", "0",
                         f"Arm's library estimates nothing (\"{reason}\")", "", "", "", "", ""])
            continue
        rows.append([f"`{variant}`", f"{info['sram_bytes'] // 1024:,} KiB", str(s["points"]),
                     *_errors(s, "cycles"), *_errors(s, "weight_bytes")])
    return table(["variant", "SRAM", "grid points", "cycles: max error", "mean", "within 15%",
                  "weight bytes: max error", "mean", "within 5%"], rows)


def ethos_n_calibration_verdict(doc: Doc) -> str:
    """The calibration in two sentences: how much of the grid meets the goals, and where it does not."""
    s = doc["summary"]["all"]["all"]
    worst_cycles = sorted(((k, v["max_cycles_error"]) for k, v in doc["summary"]["all"].items() if k != "all"),
                          key=lambda kv: -kv[1])[:2]
    worst_weights = sorted(((k, v["max_weight_bytes_error"]) for k, v in doc["summary"]["all"].items()
                            if k != "all" and "max_weight_bytes_error" in v), key=lambda kv: -kv[1])[:2]
    weighted = s["weight_bytes_points"]
    return (f"On {s['points']} grid points (layers standing alone, {doc['arm']['support_library']} of Arm's support "
            f"library, driver stack {doc['arm']['driver_stack']}) the model's cycles are within 15% of Arm's on "
            f"{s['cycles_within_tolerance']} ({_pct(s['cycles_within_tolerance'] / s['points'])}) and its weight bytes "
            f"within 5% on {s['weight_bytes_within_tolerance']} of the {weighted} layers with weights "
            f"({_pct(s['weight_bytes_within_tolerance'] / weighted)}); mean errors {_pct(s['mean_cycles_error'])} and "
            f"{_pct(s['mean_weight_bytes_error'])}. The largest: cycles "
            f"{', '.join(f'{k} {_pct(v)}' for k, v in worst_cycles)}; weight bytes "
            f"{', '.join(f'{k} {_pct(v)}' for k, v in worst_weights)}.")


def ethos_n_networks_table(doc: Doc) -> str:
    """Whole networks (benchmarks/ethos_n_networks.py): Arm's cycles and weights against the model's, over the
    layers both run on the NPU, with the model's cascade and with every layer standing alone."""
    def ratio(model: int, arm: int) -> str:
        return f"{model:,} ({model / arm:.2f}x)" if arm else f"{model:,}"

    rows = [[f"`{r['network']}`", f"`{r['variant']}`", f"{r['layers_compared']} of {r['layers']}",
             f"{r['arm_cycles']:,}", ratio(r["model_cycles"], r["arm_cycles"]),
             ratio(r["model_standalone_cycles"], r["arm_cycles"]), f"{r['arm_weight_bytes']:,}",
             ratio(r["model_weight_bytes"], r["arm_weight_bytes"])] for r in doc["rows"]]
    return table(["network", "variant", "layers compared", "Arm: cycles", "model: cycles",
                  "model, layers standing alone", "Arm: weight bytes", "model: weight bytes"], rows)
