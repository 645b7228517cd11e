"""compile.json for Vela targets: Vela's summary and per-layer figures, checked against the profile."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..core.errors import ToolError
from ..tflite.model_io import read_model
from . import vela_csv
from .compile_result import EstimateKind
from .model_facts import ModelFacts
from .op_placement import placement_from_vela
from .profile import HardwareProfile
from .vela_memory import vela_memory
from .vela_run import VelaRun, run_vela


def _vela_layers(run: VelaRun, out_dir: Path, facts: ModelFacts, subgraph_sizes: tuple[int, ...]) -> list[dict[str, Any]]:
    """Vela's per-layer rows. Vela 5.2 writes them for the last subgraph it compiles only: each row
    names its subgraph (from the debug database), so a row is never matched to another subgraph's operator."""
    if run.per_layer_csv is None:
        return []
    rows = vela_csv.parse_per_layer_csv(out_dir / run.per_layer_csv)
    debug = vela_csv.parse_debug_db(out_dir / run.debug_db, subgraph_sizes) if run.debug_db else []
    if debug and [(d.name, d.op) for d in debug] != [(r.name, r.op) for r in rows]:
        raise ToolError(
            f"Vela's per-layer CSV and debug database list different operations ({len(rows)} vs {len(debug)} rows)"
        )
    ops_by_key = {(o.subgraph, o.index): o for o in facts.operators}
    single = len(subgraph_sizes) == 1

    def key(d: vela_csv.DebugOp) -> tuple[int, int] | None:
        sub = 0 if single else d.source_subgraph
        return None if d.source_operator is None or sub is None else (sub, d.source_operator)

    # The input operator's weights are reported once, on the first Vela operation that encodes weights.
    carrier: dict[tuple[int, int], int] = {}
    for i, d in enumerate(debug):
        k = key(d)
        if k is not None and k not in carrier and d.encoded_weight_bytes > 0:
            carrier[k] = i
    for i, d in enumerate(debug):
        k = key(d)
        if k is not None:
            carrier.setdefault(k, i)
    layers = []
    for i, r in enumerate(rows):
        d = debug[i] if debug else None
        k = key(d) if d else None
        source = k[1] if k else None
        weights = facts.weights_of(ops_by_key[k]) if k in ops_by_key and carrier.get(k) == i else []
        layers.append(
            {
                "index": r.index,
                "subgraph": k[0] if k else (0 if single else None),
                "name": run.names.original(r.name),
                "op": r.op,
                "original_op": r.original_op,
                "target": "npu" if r.on_npu else "cpu",
                "cycles": r.cycles,
                "npu_cycles": r.npu_cycles,
                "access_cycles": r.access_cycles,
                "macs": r.macs,
                "staging_bytes": r.staging_bytes,
                "source_operator": source,
                "weight_bytes": sum(w.bytes for w in weights),
                "encoded_weight_bytes": d.encoded_weight_bytes if d else None,
                "weight_format": (d.weight_format or None) if d else None,
                "distinct_weight_values": max((w.distinct_values for w in weights), default=None),
            }
        )
    return layers


def _weight_layers_elsewhere(model, facts: ModelFacts, placement, covered: set[int | None],
                             first_index: int) -> list[dict[str, Any]]:
    """Rows for the weight-holding operators of subgraphs Vela wrote no per-layer figures for (it writes them for
    the last subgraph it compiles only: a stateful model's init subgraph). Weight sizes and distinct values come
    from the model, encoded weight bytes from Vela's own weight encoder (tensor by tensor, the U55 stream); no
    cycles (``cycles`` null)."""
    from ..tflite.graph import tensor_values
    from .weight_encoding import encoded_bytes

    on_npu = {(sg.index, p.index) for sg in placement.subgraphs for p in sg.npu}
    rows = []
    for o in facts.operators:
        weights = facts.weights_of(o)
        if o.subgraph in covered or not weights:
            continue
        sg = model.subgraphs[o.subgraph]
        encoded = sum(encoded_bytes(tensor_values(model, sg.tensors[w.tensor_index]), o.op) for w in weights)
        rows.append({
            "index": first_index + len(rows), "subgraph": o.subgraph, "name": o.name, "op": o.op, "original_op": o.op,
            "target": "npu" if (o.subgraph, o.index) in on_npu else "cpu", "cycles": None,
            "macs": o.macs, "source_operator": o.index, "weight_bytes": sum(w.bytes for w in weights),
            "encoded_weight_bytes": encoded, "weight_format": None,
            "distinct_weight_values": max(w.distinct_values for w in weights),
        })
    return rows


def _same_accelerator(vela_name: str, accelerator: str) -> bool:
    return vela_name.lower().replace("_", "-") == accelerator.lower()


def vela_compile_report(model_path: Path, model, profile: HardwareProfile, out_dir: Path, facts: ModelFacts,
                        timeout_s: float):
    """compile.json's body for a Vela target, the SRAM and flash it uses, and where each operator runs."""
    run = run_vela(model_path, profile, out_dir, timeout_s, vela_memory(model, model_path.name))
    s = vela_csv.parse_summary_csv(out_dir / run.summary_csv)
    # Vela's own NPU/CPU counts are of its own operations (it splits and adds some) and describe the last
    # subgraph it compiles only (see op_placement): reported beside the model's counts, never instead of them.
    counts = vela_csv.parse_operator_counts(run.stdout)
    placement = placement_from_vela(model, facts, read_model((out_dir / run.vela_model).read_bytes()))
    if not _same_accelerator(s.accelerator_configuration, profile.accelerator):
        raise ToolError(f"Vela compiled for {s.accelerator_configuration}, not {profile.accelerator}")
    if (s.system_config, s.memory_mode) != (profile.system_config_name, profile.memory_mode_name):
        raise ToolError(
            f"Vela used {s.system_config}/{s.memory_mode}, not {profile.system_config_name}/{profile.memory_mode_name}"
        )
    if s.core_clock_hz != profile.clock_hz:
        raise ToolError(f"Vela ran at {s.core_clock_hz} Hz, the profile says {profile.clock_hz} Hz")
    vela_model_bytes = (out_dir / run.vela_model).stat().st_size
    mem = s.memory_used_bytes
    layers = _vela_layers(run, out_dir, facts, tuple(len(sg.operators or []) for sg in model.subgraphs or []))
    if len(model.subgraphs or []) > 1 and layers:
        layers += _weight_layers_elsewhere(model, facts, placement, {la["subgraph"] for la in layers}, len(layers))
    report = {
        "estimate_kind": EstimateKind.VELA.value,
        "estimate_label": "Vela compile",
        "vela_model": run.vela_model,
        "vela_model_bytes": vela_model_bytes,
        "files": {
            "vela_model": run.vela_model,
            "summary_csv": run.summary_csv,
            "per_layer_csv": run.per_layer_csv,
            "debug_db": run.debug_db,
            "log": run.log,
            "vela_ini": run.vela_ini,
        },
        "sram_bytes": mem["sram"],
        "on_chip_flash_bytes": mem["on_chip_flash"],
        "off_chip_flash_bytes": mem["off_chip_flash"],
        "dram_bytes": mem["dram"],
        "constants_in_sram": profile.constants_in_sram,
        "arena_cache_size_bytes": s.arena_cache_size_bytes,
        "weights_storage_area": s.weights_storage_area,
        "feature_map_storage_area": s.feature_map_storage_area,
        "cycles_npu": s.cycles_npu,
        "cycles_total": s.cycles_total,
        "cycles_by_memory": s.access_cycles,
        "traffic_bytes_by_memory": s.traffic_bytes,
        "bandwidth_bytes_per_s": s.bandwidth_bytes_per_s,
        "inference_time_s": s.inference_time_s,
        "inferences_per_second": s.inferences_per_second,
        "clock_hz": s.core_clock_hz,
        "macs": s.macs,
        "original_weight_bytes": s.total_original_weight_bytes,
        "encoded_weight_bytes": s.total_encoded_weight_bytes,
        "npu_operators": placement.npu_operators,
        "cpu_operators": placement.cpu_operators,
        "init_operators": placement.init_operators,
        "placement": placement.to_json(),
        "vela_operator_counts": {"npu": counts.npu, "cpu": counts.cpu,
                                 "last_subgraph_only": len(model.subgraphs or []) > 1},
        "cpu_fallback": [{"op": op, "name": run.names.original(name), "reason": why}
                         for op, name, why in counts.cpu_fallback],
        "layers": layers,
        "vela_version": run.vela_version,
        "command": list(run.command),
        "assumptions": [],
    }
    # In SRAM-only modes Vela reports the weights as "on-chip flash": they occupy SRAM.
    sram_used = mem["sram"] + (mem["on_chip_flash"] if profile.constants_in_sram else 0)
    # What the firmware stores: the whole Vela model (weights, command stream, CPU operators' data).
    return report, sram_used, vela_model_bytes, placement
