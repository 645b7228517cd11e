"""compile.json for Ethos-N78 targets: the analytical estimate in the same shape as a Vela compile."""
from __future__ import annotations

from pathlib import Path

from . import ethos_n
from .compile_result import EstimateKind
from .model_facts import ModelFacts
from .op_placement import placement_analytical
from .profile import HardwareProfile


def analytical_report(model_path: Path, model, data: bytes, profile: HardwareProfile, facts: ModelFacts, out_dir: Path):
    est = ethos_n.estimate(facts, len(data), profile)
    placement = placement_analytical(model, facts, lambda o: not o.float_activations)
    t = est.inference_time_s
    layers = [
        {
            "index": la.index,
            "name": la.name,
            "op": la.op,
            "original_op": la.op,
            "target": "npu" if la.on_npu else "cpu",
            "cycles": la.cycles,
            "compute_cycles": la.compute_cycles,
            "weight_cycles": la.weight_cycles,
            "spill_cycles": la.spill_cycles,
            "macs": la.macs,
            "activation_bytes": la.activation_bytes,
            "source_operator": facts.operators[la.index].index,  # layers follow facts.operators
            "subgraph": facts.operators[la.index].subgraph,
            "weight_bytes": la.weight_bytes,
            "encoded_weight_bytes": la.palettised_weight_bytes,
            "weight_format": ("palette" if la.palettised else "raw") if la.weight_bytes else None,
            "distinct_weight_values": la.distinct_weight_values,
        }
        for la in est.layers
    ]
    report = {
        "estimate_kind": EstimateKind.ANALYTICAL.value,
        "estimate_label": "analytical estimate",
        "vela_model": None,
        "vela_model_bytes": None,
        "files": {},
        "sram_bytes": est.sram_bytes,
        "on_chip_flash_bytes": 0,
        "off_chip_flash_bytes": 0,
        "dram_bytes": est.model_bytes_estimate,
        "constants_in_sram": False,
        "cycles_npu": est.cycles_total,
        "cycles_total": est.cycles_total,
        "cycles_by_memory": {"sram": 0, "dram": est.cycles_dram, "on_chip_flash": 0, "off_chip_flash": 0},
        "inference_time_s": t,
        "inferences_per_second": (1.0 / t) if t > 0 else None,
        "clock_hz": est.clock_hz,
        "macs": est.macs,
        "original_weight_bytes": facts.weight_bytes,
        "encoded_weight_bytes": est.palettised_weight_bytes,
        "npu_operators": placement.npu_operators,
        "cpu_operators": placement.cpu_operators,
        "init_operators": placement.init_operators,
        "placement": placement.to_json(),
        "vela_operator_counts": None,  # no Vela run
        "cpu_fallback": [
            {"op": la.op, "name": la.name, "reason": "float activations (analytical model: CPU)"}
            for la in est.layers
            if not la.on_npu
        ],
        "layers": layers,
        "vela_version": None,
        "command": ["toolchain", "compile", model_path.name, "--target", profile.name],  # the same wherever it runs
        "assumptions": list(est.assumptions),
    }
    return report, est.sram_bytes, est.model_bytes_estimate, placement
