"""How close the analytical Ethos-N78 model comes to Arm's estimator on the calibration grid.

``compare`` re-runs the model on one grid point and gives its figures and relative errors
against Arm's; ``summarise`` groups them by variant and layer type
(``benchmarks/results/ethos_n_calibration.json`` holds both). Each variant's worst errors are
also package data (``ethos_n_calibration.json`` beside this module, written by the same
benchmark; a test keeps the two equal): ``estimate_label`` cites them in every report.
"""
from __future__ import annotations

import json
from collections import defaultdict
from importlib.resources import files
from typing import Any

from .ethos_n import estimate_layer
from .ethos_n_grid import GridPoint, network_of
from .ethos_n_variants import EthosNVariant

WEIGHT_TOLERANCE = 0.05  # the calibration's goals: weight bytes within 5%, cycles within 15%
CYCLE_TOLERANCE = 0.15


def _rel(model: float, arm: float) -> float:
    return round((model - arm) / arm, 4) if arm else 0.0


def compare(variant: EthosNVariant, point: GridPoint, arm: dict[str, Any] | None,
            sram_bytes: int | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the model's figures, its relative errors against Arm's) for one grid point."""
    net = network_of(point)
    est = estimate_layer(net.layers[0], net, variant, sram_bytes or variant.hardware.default_sram_bytes)
    assert est is not None  # every grid layer maps to a library operation
    model = {"cycles": est.cycles, "mce_cycles": est.mce_cycles, "ple_cycles": est.ple_cycles,
             "weight_bytes": est.encoded_weight_bytes}
    if arm is None:
        return model, {}
    error = {"cycles": _rel(est.cycles, arm["cycles"])}
    if point.kind.has_weights:
        error["weight_bytes"] = _rel(est.encoded_weight_bytes, arm["weight_bytes"])
    return model, error


def _worst(errors: list[float]) -> float:
    return round(max((abs(e) for e in errors), default=0.0), 4)


def summarise(points: list[dict[str, Any]]) -> dict[str, Any]:
    """Per variant and per layer type: points, max and mean absolute error of cycles and weight bytes."""
    groups: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for q in points:
        if not q.get("error"):
            continue
        label = GridPoint.from_json(q["point"]).label
        for key, value in q["error"].items():
            groups[(q["variant"], label)][key].append(value)
            groups[(q["variant"], "all")][key].append(value)
            groups[("all", label)][key].append(value)
            groups[("all", "all")][key].append(value)
    out: dict[str, Any] = {}
    for (variant, label), errs in sorted(groups.items()):
        out.setdefault(variant, {})[label] = {
            "points": len(errs["cycles"]),
            **{f"max_{k}_error": _worst(v) for k, v in sorted(errs.items())},
            **{f"mean_{k}_error": round(sum(abs(e) for e in v) / len(v), 4) for k, v in sorted(errs.items())},
            **{f"{k}_within_tolerance": sum(abs(e) <= (WEIGHT_TOLERANCE if k == "weight_bytes" else CYCLE_TOLERANCE)
                                              for e in v) for k, v in sorted(errs.items())},
            **({"weight_bytes_points": len(errs["weight_bytes"])} if "weight_bytes" in errs else {}),
        }
    return out


CALIBRATION_FILE = "ethos_n_calibration.json"


def packaged_calibration(summary: dict[str, Any], arm: dict[str, Any]) -> dict[str, Any]:
    """What the package carries: per variant the grid's size and worst errors (None: Arm estimates nothing)."""
    variants = {}
    for v in EthosNVariant:
        s = summary.get(v.value, {}).get("all")
        variants[v.value] = None if s is None else {
            "points": s["points"],
            "max_cycles_error": s["max_cycles_error"],
            "max_weight_bytes_error": s.get("max_weight_bytes_error"),
        }
    return {"support_library": arm["support_library"], "driver_stack": arm["driver_stack"], "variants": variants}


def calibration() -> dict[str, Any]:
    return json.loads(files("toolchain.targets").joinpath(CALIBRATION_FILE).read_text(encoding="utf-8"))


def estimate_label(variant: EthosNVariant) -> str:
    """'calibrated analytical estimate (max error on the grid: 11% cycles, 5% weight bytes)', or why uncalibrated."""
    cal = calibration()
    v = cal["variants"].get(variant.value)
    if v is None:
        return (f"analytical estimate, uncalibrated: Arm's support library {cal['support_library']} estimates "
                f"nothing for {variant.value}")
    return (f"calibrated analytical estimate (max error on the grid: {v['max_cycles_error']:.0%} cycles, "
            f"{v['max_weight_bytes_error']:.0%} weight bytes)")
