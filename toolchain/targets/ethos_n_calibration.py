"""How close the analytical Ethos-N78 model comes to Arm's estimator on the calibration grid.

``compare`` re-runs the model on one grid point and gives its figures and relative errors
against Arm's; ``summarise`` groups them by variant and layer type. The summary is what
``benchmarks/results/ethos_n_calibration.json`` holds and what every Ethos-N estimate cites:
``calibration_label`` reads it back for a profile's variant ("calibrated analytical estimate
(max error X% on the grid)").
"""
from __future__ import annotations

import json
from collections import defaultdict
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
        }
    return out


def load_summary(text: str) -> dict[str, Any]:
    return json.loads(text)["summary"]
