"""Compile an int8 .tflite for a hardware profile and write a normalised ``compile.json``.

Ethos-U targets go through the real Vela compiler (in a subprocess, see vela_run);
Ethos-N78 targets get an estimate (see ethos_n_report): Arm's, when its support library is given,
else the calibrated analytical model's, marked as such. The
model is validated first, so bad input fails with a one-line error before Vela
sees it. Success is never inferred from Vela's exit code alone: the NPU/CPU split
is read from its output, because CPU operators count 0 cycles and would make a
model that falls back to the CPU look fast. Where each operator runs is counted per
subgraph from Vela's output model (see op_placement), and "mostly on the CPU" is judged
by the compute work left there per inference, never by state operators or init subgraphs.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..core.errors import BudgetExceeded, ConfigError, ModelFormatError, ToolError
from ..core.fileio import atomic_write_json, sha256_bytes
from ..core.schemas import validate
from .compile_result import Budget, CompileResult, CompileStatus, EstimateKind
from .ethos_n_bridge import SupportLibrary
from .ethos_n_report import ethos_n_report
from .model_facts import ModelFacts, model_facts
from .npu_model import load_npu_model
from .op_placement import Placement, describe_cpu_work, describe_init
from .profile import HardwareProfile
from .vela_report import vela_compile_report

# 2: placement (NPU/CPU/init operators per subgraph), layers name their subgraph; 3: vela_operator_counts
SCHEMA_VERSION = 3
COMPILE_JSON = "compile.json"
DEFAULT_TIMEOUT_S = 600.0


# --------------------------------------------------------------------------- the report


def _weight_tensor_entries(facts: ModelFacts, limit: int) -> list[dict[str, Any]]:
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
    ethosn_library: SupportLibrary | None = None,
) -> CompileResult:
    """Compile (or estimate) ``model_path`` for ``profile`` into ``out_dir``; writes ``out_dir/compile.json``.

    Raises ModelFormatError/InputError (exit 2) for unusable input and for a model that runs
    mostly on the CPU (unless ``allow_cpu``), ToolError (exit 3) when Vela fails, and
    BudgetExceeded (exit 4) when SRAM or flash exceed the profile's budget (unless not
    ``enforce_budget``). compile.json is written before the last two are raised. ``ethosn_library``:
    Arm's Ethos-N support library (``ethos_n_bridge.find_support_library``), whose estimator then prices
    an Ethos-N78 target; ToolError (exit 3) when it refuses the network.
    """
    model_path, out_dir = Path(model_path), Path(out_dir)
    data, model = load_npu_model(model_path)
    facts = model_facts(model)
    if profile.family.compiled_by_vela:
        body, sram_used, flash_used, placement = vela_compile_report(model_path, model, profile, out_dir, facts,
                                                                     timeout_s)
    else:
        body, sram_used, flash_used, placement = ethos_n_report(model_path, model, data, profile, facts,
                                                                ethosn_library, timeout_s)

    budget = Budget(profile.sram_budget_bytes, profile.flash_budget_bytes, int(sram_used), int(flash_used))
    status = placement.status()
    warnings = _warnings(profile, body, facts, placement)
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
        "weight_tensors": _weight_tensor_entries(facts, profile.palette_limit),
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
        init_operators=report["init_operators"],
        placement=placement,
        budget=budget,
        warnings=warnings,
        report=report,
    )
    if status is CompileStatus.MOSTLY_CPU and not allow_cpu:
        raise ModelFormatError(_mostly_cpu_message(model_path, profile, report, placement))
    if enforce_budget and not budget.within_budget:
        raise BudgetExceeded(
            f"{model_path.name} does not fit {profile.name}: {budget.describe()} "
            f"(figures in {out_dir / COMPILE_JSON}; --no-budget to accept)"
        )
    return result


def _first_reason(report: dict[str, Any], placement: Placement) -> str:
    """Vela's reason for the first CPU compute operator (state operators' reasons explain nothing)."""
    compute = {o.name for o in placement.cpu_compute}
    fallback = report["cpu_fallback"]
    reasons = [c["reason"] for c in fallback if c.get("reason") and c["name"] in compute]
    reasons += [c["reason"] for c in fallback if c.get("reason")]
    return reasons[0] if reasons else "no reason given"


def _mostly_cpu_message(model_path: Path, profile: HardwareProfile, report: dict[str, Any], placement: Placement) -> str:
    reason = _first_reason(report, placement)
    compute = placement.cpu_compute
    npu = placement.npu_operators
    macs = placement.cpu_macs + placement.npu_macs
    share = f", {placement.cpu_macs / macs:.0%} of the MACs" if macs else ""
    hint = ""
    if "float" in reason.lower():
        hint = " The model has float activations: quantize it to full int8 with a representative dataset ('toolchain quantize')."
    return (
        f"{model_path.name} runs mostly on the CPU on {profile.name}: {len(compute)} of {len(compute) + npu} compute "
        f"operations per inference are not supported by the NPU{share} (first reason: {reason}); CPU work counts "
        f"0 cycles, so the figures would flatter it.{hint} Status mostly_cpu written to compile.json; --allow-cpu "
        "(or [compile] allow_cpu = true in a deploy config) accepts it."
    )


def _warnings(profile: HardwareProfile, body: dict, facts: ModelFacts, placement: Placement) -> tuple[str, ...]:
    out = []
    if placement.cpu_operators:
        out.append(f"{describe_cpu_work(placement)}; their time is not in cycles_total")
    init = describe_init(placement)
    if init:
        out.append(init)
    if len(placement.subgraphs) > 1 and body["estimate_kind"] == EstimateKind.VELA.value and body["layers"]:
        vela_rows = {la.get("subgraph") for la in body["layers"] if la.get("cycles") is not None}
        added = sorted({la["subgraph"] for la in body["layers"] if la.get("cycles") is None})
        which = ", ".join("?" if s is None else str(s) for s in sorted(vela_rows, key=lambda s: (s is None, s)))
        more = (f"; the weight-holding operators of subgraph {', '.join(map(str, added))} are listed with their "
                "weights and encoded sizes from Vela's weight encoder, without cycles") if added else ""
        out.append(f"the model has {len(placement.subgraphs)} subgraphs and Vela writes per-layer figures for the last "
                   f"one it compiles only (subgraph {which}){more}")
    if EstimateKind(body["estimate_kind"]).estimate:
        out.append(f"{body['estimate_label']} for {profile.name}: not a compile; see 'assumptions'")
        for n in body["ethos_n"]["not_supported"]:
            out.append(f"{n['op']} '{n['name']}' does not run on the NPU ({n['source']}: {n['reason']})")
        over = [w for w in facts.weights if not w.within_palette(profile.palette_limit)]
        if over:
            worst = max(w.distinct_values for w in over)
            out.append(
                f"{len(over)} of {len(facts.weights)} weight tensors have more than {profile.palette_limit} distinct "
                f"values (up to {worst}); the Ethos-N encoder keeps a palette per output channel of its "
                f"{profile.palette_limit} most frequent values and codes the rest apart: 'toolchain recluster' "
                "reduces them"
            )
    return tuple(out)
