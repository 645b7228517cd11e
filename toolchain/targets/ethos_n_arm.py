"""Arm's Ethos-N figures per model layer, from the passes its support library estimates.

The library returns, per pass, DRAM bytes (parallel with compute or not) and stripe counts for
the input, output and weights, MAC-engine (MCE) cycles and programmable-layer-engine (PLE)
cycles, but no time. A pass's cycles here are the library's own cost model
(``CalculateMetric`` in ``driver/support_library/src/EstimationUtils.cpp``, the figure its
compiler minimises): the DMA moves 16 bytes per cycle with 100 cycles per stripe and at
least 2,500 per stripe; DMA reads, DMA writes, MCE and PLE run in parallel, and the DRAM
traffic that cannot overlap is added. Its MCE and PLE per-stripe overheads need stripe counts
the library does not return and are left out.

A pass that joins several layers (a convolution and the pooling after it) is counted under the
first of them; ``fused_with`` names the others.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

DMA_BYTES_PER_CYCLE = 16.0
STRIPE_OVERHEAD_CYCLES = 100.0
DMA_STRIPE_MIN_CYCLES = 2500.0
STRIPE_MIN_CYCLES = 2500.0  # of the MCE and the PLE, in the metric only


@dataclass(frozen=True)
class PassCost:
    cycles: float
    mce_cycles: float
    ple_cycles: float
    dma_read_cycles: float
    dma_write_cycles: float
    non_parallel_cycles: float


def stream_cycles(total_bytes: float, non_parallel_bytes: float, stripes: int) -> tuple[float, float]:
    """(parallel, non-parallel) DMA cycles of one stream (input, weights or output) in ``stripes`` stripes."""
    if total_bytes <= 0:
        return 0.0, 0.0
    cycles = max(total_bytes / DMA_BYTES_PER_CYCLE + stripes * STRIPE_OVERHEAD_CYCLES, DMA_STRIPE_MIN_CYCLES * stripes)
    non = cycles * non_parallel_bytes / total_bytes
    return cycles - non, non


def _dma(stats: dict[str, Any]) -> tuple[float, float]:
    par, non = float(stats["dram_parallel_bytes"]), float(stats["dram_non_parallel_bytes"])
    return stream_cycles(par + non, non, stats["central_stripes"] * (stats["reloads"] + 1))


def pass_cost(p: dict[str, Any]) -> PassCost:
    in_par, in_non = _dma(p["input"])
    w_par, w_non = _dma(p["weights"])
    out_par, out_non = _dma(p["output"])
    mce, ple = float(p["mce"]["cycles"]), float(p["ple"]["cycles"])
    read, write = in_par + w_par, out_par
    non = in_non + w_non + out_non
    return PassCost(non + max(read, write, mce, ple), mce, ple, in_par + in_non + w_par + w_non, out_par + out_non, non)


# A pass as one row of numbers (how benchmarks/results/ethos_n_calibration.json keeps Arm's passes)
_STREAM_KEYS = ("dram_parallel_bytes", "dram_non_parallel_bytes", "sram_bytes", "central_stripes", "boundary_stripes",
                "reloads")
PASS_COLUMNS = ("layers", *(f"{s}.{k}" for s in ("input", "output", "weights") for k in _STREAM_KEYS),
                "weights.compression_savings", "mce.operations", "mce.cycles", "ple.operation", "ple.patches",
                "ple.cycles")


def pass_row(p: dict[str, Any]) -> list[Any]:
    row: list[Any] = [list(p["layers"])]
    for s in ("input", "output", "weights"):
        row += [p[s][k] for k in _STREAM_KEYS]
    return row + [p["weights"]["compression_savings"], p["mce"]["operations"], p["mce"]["cycles"],
                  p["ple"]["operation"], p["ple"]["patches"], p["ple"]["cycles"]]


def pass_from_row(row: list[Any]) -> dict[str, Any]:
    p: dict[str, Any] = {"layers": row[0]}
    for i, s in enumerate(("input", "output", "weights")):
        p[s] = dict(zip(_STREAM_KEYS, row[1 + 6 * i:7 + 6 * i]))
    p["weights"]["compression_savings"] = row[19]
    p["mce"] = {"operations": row[20], "cycles": row[21]}
    p["ple"] = {"operation": row[22], "patches": row[23], "cycles": row[24]}
    return p


def encoded_weight_bytes(p: dict[str, Any]) -> int:
    """The pass's encoded weights: its weight DRAM traffic over the times they are loaded."""
    w = p["weights"]
    return (w["dram_parallel_bytes"] + w["dram_non_parallel_bytes"]) // (w["reloads"] + 1)


def dram_bytes(p: dict[str, Any]) -> int:
    return sum(p[s]["dram_parallel_bytes"] + p[s]["dram_non_parallel_bytes"] for s in ("input", "weights", "output"))


@dataclass(frozen=True)
class ArmLayer:
    index: int
    cycles: int
    mce_cycles: int
    ple_cycles: int
    weight_bytes: int  # encoded, as loaded once
    dram_bytes: int  # all DRAM traffic of its passes
    passes: int
    fused_with: tuple[int, ...]


@dataclass(frozen=True)
class ArmEstimate:
    library_version: str
    variant: str
    sram_bytes: int
    layers: dict[int, ArmLayer]
    other_cycles: int  # passes of no model layer: the copies of the network's inputs and outputs
    not_supported: tuple[tuple[int, str], ...]  # (layer, the library's reason): estimated as "estimate only"
    issues: tuple[tuple[int, str], ...]  # the library's per-operation notes

    @property
    def cycles_total(self) -> int:
        return sum(la.cycles for la in self.layers.values()) + self.other_cycles


def arm_estimate(result: dict[str, Any]) -> ArmEstimate:
    """The bridge's JSON as per-layer figures."""
    acc: dict[int, dict[str, Any]] = {}
    other = 0.0
    for p in result["passes"]:
        cost = pass_cost(p)
        layers = sorted(p["layers"])
        if not layers:
            other += cost.cycles
            continue
        a = acc.setdefault(layers[0], {"cycles": 0.0, "mce": 0.0, "ple": 0.0, "w": 0, "dram": 0, "n": 0, "with": set()})
        a["cycles"] += cost.cycles
        a["mce"] += cost.mce_cycles
        a["ple"] += cost.ple_cycles
        a["w"] += encoded_weight_bytes(p)
        a["dram"] += dram_bytes(p)
        a["n"] += 1
        a["with"].update(layers[1:])
    layers_out = {
        i: ArmLayer(i, round(a["cycles"]), round(a["mce"]), round(a["ple"]), a["w"], a["dram"], a["n"],
                    tuple(sorted(a["with"])))
        for i, a in sorted(acc.items())
    }
    return ArmEstimate(
        library_version=result["library_version"],
        variant=result["variant"],
        sram_bytes=result["sram_bytes"],
        layers=layers_out,
        other_cycles=round(other),
        not_supported=tuple((n["layer"], n["reason"]) for n in result["not_supported"]),
        issues=tuple((n["layer"], n["reason"]) for n in result["issues"]),
    )
