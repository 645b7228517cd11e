"""Compile an int8 .tflite for a hardware profile and write a normalised ``compile.json``.

Ethos-U targets go through the real Vela compiler (in a subprocess, see vela_run);
Ethos-N78 targets get an analytical estimate (see ethos_n), marked as such. The
model is validated first, so bad input fails with a one-line error before Vela
sees it. Success is never inferred from Vela's exit code alone: the NPU/CPU split
is read from its output, because CPU operators count 0 cycles and would make a
model that falls back to the CPU look fast.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from ..core.errors import BudgetExceeded, ConfigError, ModelFormatError, ToolError
from ..core.fileio import atomic_write_json, read_input_bytes, sha256_bytes
from ..core.schemas import validate
from ..tflite.graph import BuiltinOp, require_int8_model
from ..tflite.model_io import read_model
from . import ethos_n, vela_csv
from .model_facts import ModelFacts, model_facts
from .profiles import HardwareProfile
from .vela_run import VelaRun, run_vela

SCHEMA_VERSION = 1
COMPILE_JSON = "compile.json"
DEFAULT_TIMEOUT_S = 600.0
VELA_CUSTOM_OP = "ethos-u"  # what Vela leaves in a compiled model
TFLM_DECODE_OP = "TFLM_DECODE"  # TFLM's LUT decompression: CPU-only models


class EstimateKind(Enum):
    VELA = "vela"
    ANALYTICAL = "analytical"


class CompileStatus(Enum):
    OK = "ok"  # every operator on the NPU
    PARTIAL_CPU = "partial_cpu"  # some operators on the CPU (warned)
    MOSTLY_CPU = "mostly_cpu"  # most (or all) on the CPU: refused unless allowed


@dataclass(frozen=True)
class Budget:
    sram_budget_bytes: int
    flash_budget_bytes: int
    sram_used_bytes: int
    flash_used_bytes: int

    @property
    def sram_ok(self) -> bool:
        return self.sram_used_bytes <= self.sram_budget_bytes

    @property
    def flash_ok(self) -> bool:
        return self.flash_used_bytes <= self.flash_budget_bytes

    @property
    def within_budget(self) -> bool:
        return self.sram_ok and self.flash_ok

    def describe(self) -> str:
        def part(what: str, used: int, budget: int) -> str:
            rel = "<=" if used <= budget else ">"
            return f"{what} {used:,} B {rel} budget {budget:,} B"

        return "; ".join(
            (
                part("SRAM", self.sram_used_bytes, self.sram_budget_bytes),
                part("flash", self.flash_used_bytes, self.flash_budget_bytes),
            )
        )

    def to_dict(self, enforced: bool) -> dict[str, Any]:
        return {
            "sram_bytes": self.sram_budget_bytes,
            "flash_bytes": self.flash_budget_bytes,
            "sram_used_bytes": self.sram_used_bytes,
            "flash_used_bytes": self.flash_used_bytes,
            "within_budget": self.within_budget,
            "enforced": enforced,
        }


@dataclass(frozen=True)
class CompileResult:
    target: str
    estimate_kind: EstimateKind
    status: CompileStatus
    out_dir: Path
    compile_json: Path
    vela_model: Path | None  # None for analytical estimates
    sram_bytes: int
    dram_bytes: int
    on_chip_flash_bytes: int
    off_chip_flash_bytes: int
    cycles_npu: int
    cycles_total: int
    inference_time_s: float
    npu_operators: int
    cpu_operators: int
    budget: Budget
    warnings: tuple[str, ...]
    report: dict = field(compare=False, repr=False)  # what compile.json holds

    @property
    def within_budget(self) -> bool:
        return self.budget.within_budget


# --------------------------------------------------------------------------- validation


def load_npu_model(model_path: Path):
    """Read and check a model before any compiler sees it; returns (bytes, ModelT)."""
    data = read_input_bytes(model_path, "model")
    try:
        model = read_model(data)
    except ModelFormatError as exc:
        raise ModelFormatError(f"{model_path.name}: {exc}") from None
    require_int8_model(model, model_path.name)
    for oc in model.operatorCodes or []:
        if max(int(oc.builtinCode), int(oc.deprecatedBuiltinCode)) != BuiltinOp.CUSTOM:
            continue
        custom = oc.customCode.decode(errors="replace") if isinstance(oc.customCode, bytes) else str(oc.customCode)
        if custom == VELA_CUSTOM_OP:
            raise ModelFormatError(
                f"{model_path.name} is already compiled by Vela (it holds an '{VELA_CUSTOM_OP}' operator); "
                "compile the int8 model it came from"
            )
        if custom == TFLM_DECODE_OP:
            raise ModelFormatError(
                f"{model_path.name} is a TFLM LUT-compressed model (for CPU targets); Vela needs the reclustered "
                "int8 model instead"
            )
    return data, model


# --------------------------------------------------------------------------- the report


def _status(npu: int, cpu: int) -> CompileStatus:
    if cpu == 0:
        return CompileStatus.OK
    if npu == 0 or cpu > npu:
        return CompileStatus.MOSTLY_CPU
    return CompileStatus.PARTIAL_CPU


def _weight_tensors(facts: ModelFacts, limit: int) -> list[dict[str, Any]]:
    return [
        {
            "name": w.name,
            "op": w.op,
            "subgraph": w.subgraph,
            "operators": list(w.operators),
            "weights": w.weights,
            "bytes": w.bytes,
            "distinct_values": w.distinct_values,
            "within_palette_limit": w.within_palette(limit),
            "palettised_bytes": w.palettised_bytes(limit),
        }
        for w in facts.weights
    ]


def _vela_layers(run: VelaRun, out_dir: Path, facts: ModelFacts) -> list[dict[str, Any]]:
    if run.per_layer_csv is None:
        return []
    rows = vela_csv.parse_per_layer_csv(out_dir / run.per_layer_csv)
    debug = vela_csv.parse_debug_db(out_dir / run.debug_db) if run.debug_db else []
    if debug and [(d.name, d.op) for d in debug] != [(r.name, r.op) for r in rows]:
        raise ToolError(
            f"Vela's per-layer CSV and debug database list different operations ({len(rows)} vs {len(debug)} rows)"
        )
    ops_by_index = {o.index: o for o in facts.operators if o.subgraph == 0}
    # The input operator's weights are reported once, on the first Vela operation that encodes weights.
    carrier: dict[int, int] = {}
    for i, d in enumerate(debug):
        if d.source_operator is not None and d.source_operator not in carrier and d.encoded_weight_bytes > 0:
            carrier[d.source_operator] = i
    for i, d in enumerate(debug):
        if d.source_operator is not None:
            carrier.setdefault(d.source_operator, i)
    layers = []
    for i, r in enumerate(rows):
        d = debug[i] if debug else None
        source = d.source_operator if d else None
        weights = facts.weights_of(ops_by_index[source]) if source in ops_by_index and carrier.get(source) == i else []
        layers.append(
            {
                "index": r.index,
                "name": r.name,
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


def _same_accelerator(vela_name: str, accelerator: str) -> bool:
    return vela_name.lower().replace("_", "-") == accelerator.lower()


def _vela_report(model_path: Path, profile: HardwareProfile, out_dir: Path, facts: ModelFacts, timeout_s: float):
    run = run_vela(model_path, profile, out_dir, timeout_s)
    s = vela_csv.parse_summary_csv(out_dir / run.summary_csv)
    counts = vela_csv.parse_operator_counts(run.stdout)
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
        "npu_operators": counts.npu,
        "cpu_operators": counts.cpu,
        "cpu_fallback": [{"op": op, "name": name, "reason": why} for op, name, why in counts.cpu_fallback],
        "layers": _vela_layers(run, out_dir, facts),
        "vela_version": run.vela_version,
        "command": list(run.command),
        "assumptions": [],
    }
    # In SRAM-only modes Vela reports the weights as "on-chip flash": they occupy SRAM.
    sram_used = mem["sram"] + (mem["on_chip_flash"] if profile.constants_in_sram else 0)
    # What the firmware stores: the whole Vela model (weights, command stream, CPU operators' data).
    return report, sram_used, vela_model_bytes


def _analytical_report(model_path: Path, data: bytes, profile: HardwareProfile, facts: ModelFacts, out_dir: Path):
    est = ethos_n.estimate(facts, len(data), profile)
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
            "source_operator": la.index,
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
        "npu_operators": est.npu_operators,
        "cpu_operators": est.cpu_operators,
        "cpu_fallback": [
            {"op": la.op, "name": la.name, "reason": "float activations (analytical model: CPU)"}
            for la in est.layers
            if not la.on_npu
        ],
        "layers": layers,
        "vela_version": None,
        "command": ["toolchain", "compile", os.path.relpath(model_path.resolve(), out_dir.resolve()), "--target", profile.name],
        "assumptions": list(est.assumptions),
    }
    return report, est.sram_bytes, est.model_bytes_estimate


def _validate_report(report: dict[str, Any]) -> None:
    try:
        validate(report, "compile", COMPILE_JSON)
    except ConfigError as exc:  # our own output: a bug or an unexpected Vela output, not bad user input
        raise ToolError(f"refusing to write an invalid {COMPILE_JSON}: {exc}") from None


def compile_model(
    model_path: Path,
    profile: HardwareProfile,
    out_dir: Path,
    enforce_budget: bool = True,
    *,
    allow_cpu: bool = False,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> CompileResult:
    """Compile (or estimate) ``model_path`` for ``profile`` into ``out_dir``; writes ``out_dir/compile.json``.

    Raises ModelFormatError/InputError (exit 2) for unusable input and for a model that runs
    mostly on the CPU (unless ``allow_cpu``), ToolError (exit 3) when Vela fails, and
    BudgetExceeded (exit 4) when SRAM or flash exceed the profile's budget (unless not
    ``enforce_budget``). compile.json is written before the last two are raised.
    """
    model_path, out_dir = Path(model_path), Path(out_dir)
    data, model = load_npu_model(model_path)
    facts = model_facts(model)
    if profile.family.compiled_by_vela:
        body, sram_used, flash_used = _vela_report(model_path, profile, out_dir, facts, timeout_s)
    else:
        body, sram_used, flash_used = _analytical_report(model_path, data, profile, facts, out_dir)

    budget = Budget(profile.sram_budget_bytes, profile.flash_budget_bytes, int(sram_used), int(flash_used))
    status = _status(body["npu_operators"], body["cpu_operators"])
    warnings = _warnings(model_path, profile, body, facts, status)
    orig, enc = body["original_weight_bytes"], body["encoded_weight_bytes"]
    report = {
        "schema_version": SCHEMA_VERSION,
        "target": profile.name,
        "family": profile.family.value,
        "accelerator": profile.accelerator,
        "system_config": profile.system_config_name,
        "memory_mode": profile.memory_mode_name,
        "status": status.value,
        "model": {"file": model_path.name, "bytes": len(data), "sha256": sha256_bytes(data)},
        "profile": profile.to_dict(),
        "input_operators": len(facts.operators),
        "encoded_weight_ratio": round(enc / orig, 6) if orig else None,
        "palette_limit": profile.palette_limit,
        "weight_tensors": _weight_tensors(facts, profile.palette_limit),
        "tensors_over_palette_limit": sum(1 for w in facts.weights if not w.within_palette(profile.palette_limit)),
        "budget": budget.to_dict(enforce_budget),
        "warnings": list(warnings),
        **body,
    }
    _validate_report(report)
    written = atomic_write_json(out_dir / COMPILE_JSON, report)
    result = CompileResult(
        target=profile.name,
        estimate_kind=EstimateKind(report["estimate_kind"]),
        status=status,
        out_dir=out_dir,
        compile_json=written,
        vela_model=(out_dir / report["vela_model"]) if report["vela_model"] else None,
        sram_bytes=report["sram_bytes"],
        dram_bytes=report["dram_bytes"],
        on_chip_flash_bytes=report["on_chip_flash_bytes"],
        off_chip_flash_bytes=report["off_chip_flash_bytes"],
        cycles_npu=report["cycles_npu"],
        cycles_total=report["cycles_total"],
        inference_time_s=report["inference_time_s"],
        npu_operators=report["npu_operators"],
        cpu_operators=report["cpu_operators"],
        budget=budget,
        warnings=warnings,
        report=report,
    )
    if status is CompileStatus.MOSTLY_CPU and not allow_cpu:
        raise ModelFormatError(_mostly_cpu_message(model_path, profile, report))
    if enforce_budget and not budget.within_budget:
        raise BudgetExceeded(
            f"{model_path.name} does not fit {profile.name}: {budget.describe()} "
            f"(figures in {out_dir / COMPILE_JSON}; --no-budget to accept)"
        )
    return result


def _first_reason(report: dict[str, Any]) -> str:
    reasons = [c["reason"] for c in report["cpu_fallback"] if c.get("reason")]
    return reasons[0] if reasons else "no reason given"


def _mostly_cpu_message(model_path: Path, profile: HardwareProfile, report: dict[str, Any]) -> str:
    cpu, npu = report["cpu_operators"], report["npu_operators"]
    reason = _first_reason(report)
    hint = ""
    if "float" in reason.lower():
        hint = " The model has float activations: quantize it to full int8 with a representative dataset ('toolchain quantize')."
    return (
        f"{model_path.name} runs mostly on the CPU on {profile.name}: {cpu} of {cpu + npu} operations are not "
        f"supported by the NPU (first reason: {reason}); CPU work counts 0 cycles, so the figures would flatter it."
        f"{hint} Status mostly_cpu written to compile.json; --allow-cpu accepts it."
    )


def _warnings(model_path: Path, profile: HardwareProfile, body: dict, facts: ModelFacts, status: CompileStatus) -> tuple[str, ...]:
    out = []
    cpu, npu = body["cpu_operators"], body["npu_operators"]
    if status is not CompileStatus.OK:
        names = ", ".join(sorted({c["op"] for c in body["cpu_fallback"]})) or "see the Vela log"
        out.append(
            f"{cpu} of {cpu + npu} operations run on the CPU ({names}); their time is not in cycles_total"
        )
    if body["estimate_kind"] == EstimateKind.ANALYTICAL.value:
        out.append(f"analytical estimate for {profile.name}: not a compile; see 'assumptions'")
        over = [w for w in facts.weights if not w.within_palette(profile.palette_limit)]
        if over:
            worst = max(w.distinct_values for w in over)
            out.append(
                f"{len(over)} of {len(facts.weights)} weight tensors have more than {profile.palette_limit} distinct "
                f"values (up to {worst}) and are counted unpalettised; 'toolchain recluster' reduces them"
            )
    return tuple(out)

