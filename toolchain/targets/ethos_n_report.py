"""compile.json for Ethos-N78 targets: Arm's estimate or the calibrated model's, in the shape of a Vela compile.

Both read the model as ``ethos_n_from_tflite`` maps it. With Arm's support library
(``--ethosn-support-library`` or ETHOSN_SUPPORT_LIBRARY) its estimator prices the network
through the bridge and its figures are reported; the calibrated model still runs beside it and
its total is kept for comparison (``ethos_n.model_cycles_total``). Without the library the
calibrated model's figures are reported. Every layer that does not run on the NPU is named with
the reason: the library's own (``source: "support library"``), or the toolchain's when it maps
the operator to no library operation or the tensors are not int8.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .compile_result import EstimateKind
from .ethos_n import OpEstimate, estimate_network, unsupported_reason
from .ethos_n_arm import ArmEstimate, arm_estimate
from .ethos_n_bridge import SupportLibrary, run_bridge
from .ethos_n_calibration import estimate_label
from .ethos_n_from_tflite import network_from_tflite
from .ethos_n_network import Layer
from .model_facts import ModelFacts
from .op_placement import placement_analytical
from .profile import HardwareProfile

SOURCE_LIBRARY = "support library"
SOURCE_TOOLCHAIN = "toolchain"


def _assumptions(profile: HardwareProfile, arm: ArmEstimate | None, label: str) -> list[str]:
    variant = profile.ethos_n.variant  # type: ignore[union-attr]
    common = [
        f"{variant.value} with {profile.sram_budget_bytes:,} bytes of SRAM (budget.sram_bytes, given to the estimator)",
        f"cycles to time at {profile.clock_hz / 1e9:g} GHz, an assumption (Arm states no clock)",
        ("cycles per pass by Arm's own cost model (CalculateMetric): DMA at 16 bytes per cycle with 100 cycles per "
         "stripe and at least 2,500, MAC engine, PLE and DMA in parallel, DRAM traffic that cannot overlap added"),
    ]
    if arm is not None:
        return [f"{label}: the library's figures for the whole network", *common]
    return [
        (f"{label}: each layer priced as the passes Arm's compiler makes of it; the tensors between NPU layers stay "
         "in SRAM where Arm's section search (the cheapest split into sections that fit the SRAM) keeps them"),
        ("weights sized by Arm's encoder's own choices (palette of up to 32 values per output channel, Golomb-Rice "
         "or raw, zero runs), streams padded as the encoder pads them"),
        *common,
    ]


def _layer_entry(facts: ModelFacts, i: int, layer: Layer | None, est: OpEstimate | None,
                 arm: ArmEstimate | None, refused: set[int]) -> dict[str, Any]:
    o = facts.operators[i]
    ws = facts.weights_of(o)
    figures = arm.layers.get(layer.index) if (arm is not None and layer is not None) else None
    if arm is None:
        on_npu = est is not None
    else:  # what the library took; a layer without a pass of its own was fused into another's
        on_npu = layer is not None and layer.mapped and layer.index not in refused
    cycles = mce = ple = dram = encoded = 0
    if on_npu and arm is not None and figures is not None:
        cycles, mce, ple, encoded, dram = (figures.cycles, figures.mce_cycles, figures.ple_cycles,
                                           figures.weight_bytes, figures.dram_bytes)
    elif on_npu and arm is None and est is not None:
        cycles, mce, ple, encoded, dram = est.cycles, est.mce_cycles, est.ple_cycles, est.encoded_weight_bytes, \
            est.dram_bytes
    return {
        "index": i,
        "name": o.name,
        "op": o.op,
        "original_op": o.op,
        "target": "npu" if on_npu else "cpu",
        "cycles": cycles,
        "mce_cycles": mce,
        "ple_cycles": ple,
        "dram_bytes": dram,
        "macs": o.macs,
        "activation_bytes": o.activation_in_bytes + o.activation_out_bytes,
        "source_operator": o.index,
        "subgraph": o.subgraph,
        "weight_bytes": sum(w.bytes for w in ws),
        "encoded_weight_bytes": encoded if on_npu else None,
        "weight_format": "Ethos-N encoded" if ws and on_npu else None,
        "distinct_weight_values": max((w.distinct_values for w in ws), default=None),
        **({"fused_with": list(figures.fused_with)} if on_npu and figures is not None and figures.fused_with else {}),
    }


def ethos_n_report(model_path: Path, model, data: bytes, profile: HardwareProfile, facts: ModelFacts,
                   library: SupportLibrary | None = None, timeout_s: float = 600.0):
    """(compile.json body, SRAM used, flash used, placement) for an Ethos-N78 profile."""
    variant = profile.ethos_n.variant  # type: ignore[union-attr]
    sram = profile.sram_budget_bytes
    net, cpu_reasons = network_from_tflite(model)
    facts_by_index = {o.index: o for o in facts.operators if o.subgraph == 0}
    by_index = {layer.index: layer for layer in net.layers}
    estimates = estimate_network(net, variant, sram)
    arm = arm_estimate(run_bridge(library, net, variant, sram, timeout_s)) if library is not None else None
    label = library.label if library is not None else estimate_label(variant)

    not_supported: list[dict[str, Any]] = []
    for layer in net.layers:
        reason, source = None, SOURCE_LIBRARY
        if not layer.mapped:
            reason, source = layer.main.reason, SOURCE_TOOLCHAIN
        elif arm is None:
            reason = unsupported_reason(layer)
        if reason:
            not_supported.append({"index": layer.index, "name": layer.name, "op": layer.op, "reason": reason,
                                  "source": source})
    if arm is not None:  # the library's reasons: refused operations, and those it estimates only (at zero cost)
        named = {n["index"] for n in not_supported}
        for index, reason in arm.not_supported + arm.issues:
            if index in by_index and index not in named:
                layer = by_index[index]
                not_supported.append({"index": index, "name": layer.name, "op": layer.op, "reason": reason,
                                      "source": SOURCE_LIBRARY})
                named.add(index)
    for i, reason in cpu_reasons.items():  # operators on tensors the library cannot hold
        o = facts_by_index.get(i)
        not_supported.append({"index": i, "name": o.name if o else "", "op": o.op if o else "", "reason": reason,
                              "source": SOURCE_TOOLCHAIN})
    not_supported.sort(key=lambda n: n["index"])

    refused = {n["index"] for n in not_supported}
    layers = []
    for i, o in enumerate(facts.operators):
        layer = by_index.get(o.index) if o.subgraph == 0 else None
        est = estimates.get(o.index) if layer is not None else None
        layers.append(_layer_entry(facts, i, layer, est, arm, refused))
    npu_names = {(la["subgraph"], la["source_operator"]) for la in layers if la["target"] == "npu"}
    placement = placement_analytical(model, facts, lambda f: (f.subgraph, f.index) in npu_names)

    model_total = sum(e.cycles for e in estimates.values() if e is not None)
    cycles_total = sum(la["cycles"] for la in layers) + (arm.other_cycles if arm is not None else 0)
    # the encoder's output includes the one-weight-per-channel identities of pooling passes
    encoded = sum(la["encoded_weight_bytes"] or 0 for la in layers if la["target"] == "npu")
    raw_on_npu = sum(la["weight_bytes"] for la in layers if la["target"] == "npu")
    dram_model_bytes = len(data) - raw_on_npu + encoded
    sram_used = max((e.sram_bytes for e in estimates.values() if e is not None), default=0)
    t = cycles_total / profile.clock_hz
    cpu_fallback = [{"op": n["op"], "name": n["name"], "reason": n["reason"]} for n in not_supported]
    report = {
        "estimate_kind": (EstimateKind.ARM if arm is not None else EstimateKind.ANALYTICAL).value,
        "estimate_label": label,
        "vela_model": None,
        "vela_model_bytes": None,
        "files": {},
        "sram_bytes": sram_used,
        "on_chip_flash_bytes": 0,
        "off_chip_flash_bytes": 0,
        "dram_bytes": dram_model_bytes,
        "constants_in_sram": False,
        "cycles_npu": cycles_total,
        "cycles_total": cycles_total,
        "cycles_by_memory": {"sram": 0, "dram": 0, "on_chip_flash": 0, "off_chip_flash": 0},
        "inference_time_s": t,
        "inferences_per_second": (1.0 / t) if t > 0 else None,
        "clock_hz": profile.clock_hz,
        "macs": sum(o.macs for o in facts.operators),
        "original_weight_bytes": raw_on_npu,
        "encoded_weight_bytes": encoded,
        "npu_operators": placement.npu_operators,
        "cpu_operators": placement.cpu_operators,
        "init_operators": placement.init_operators,
        "placement": placement.to_json(),
        "vela_operator_counts": None,  # no Vela run
        "cpu_fallback": cpu_fallback,
        "layers": layers,
        "vela_version": None,
        "command": ["toolchain", "compile", model_path.name, "--target", profile.name],  # the same wherever it runs
        "assumptions": _assumptions(profile, arm, label),
        "ethos_n": {
            "variant": variant.value,
            "sram_bytes": sram,
            "estimator": "arm_support_library" if arm is not None else "calibrated_model",
            "support_library_version": library.version if library is not None else None,
            "model_cycles_total": model_total,
            "network_io_cycles": arm.other_cycles if arm is not None else 0,
            "not_supported": not_supported,
        },
    }
    return report, sram_used, dram_model_bytes, placement
