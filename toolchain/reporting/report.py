"""The per-target report: three int8 models side by side (report.json, report.md).

- plain int8: the float model converted without clustering;
- before: the usual tfmot flow (clustered in Keras, then converted), or the user's own int8
  .tflite as given (the post-training entry: labelled "before (input)", never "tfmot");
- after: this toolchain's output (the before model reclustered).

Everything comes from files the earlier stages wrote (the models, each one's
compile.json) and their manifests' results (accuracies), so a report can be
rebuilt without running anything. Units are in the field names: ``_bytes``,
``_s``, ``cycles_``; accuracies are top-1 fractions 0..1; ratios are plain
numbers (``after / before``). The document holds no times or absolute paths,
so an unchanged build gives a byte-identical report.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from ..core.errors import ConfigError, ToolError
from ..core.fileio import sha256_bytes
from ..core.schemas import validate
from ..rewrite.inspect import inspect_model
from .fidelity import fidelity_section, fidelity_warning

# 2: fidelity, variant short labels, NPU/CPU/init placement counts, recluster summary; 3: Vela's operator counts,
# the check's evidence and fidelity per output by kind, not-run verifications, data notes, a float model's quantization
SCHEMA_VERSION = 3
REPORT_JSON = "report.json"
REPORT_MD = "report.md"
SCHEMA = "report"


class Variant(Enum):
    PLAIN = "plain"
    BEFORE = "before"
    AFTER = "after"

    def label(self, finetuned: bool) -> str:
        """What the model is; the before model came from tfmot only when the finetune stage ran."""
        if self is Variant.BEFORE and not finetuned:
            return "the input model, as given"
        return {
            Variant.PLAIN: "plain int8 (no clustering)",
            Variant.BEFORE: "tfmot flow (clustered, converted)",
            Variant.AFTER: "reclustered (this toolchain)",
        }[self]

    def short(self, finetuned: bool) -> str:
        if self is Variant.BEFORE:
            return "before (tfmot)" if finetuned else "before (input)"
        return {Variant.PLAIN: "plain int8", Variant.AFTER: "after (reclustered)"}[self]


@dataclass(frozen=True)
class VariantInput:
    variant: Variant
    file: str  # relative to the model's build directory (or the user's file name)
    model_bytes: bytes = field(repr=False)
    accuracy: float | None  # top-1 on the test split, 0..1; None without data
    compile_report: dict[str, Any] = field(repr=False)  # the variant's compile.json
    compile_dir: str  # relative to the model's build directory


@dataclass(frozen=True)
class ReportInput:
    model: str
    entry: str  # "example", "keras" or "tflite"
    clusters: int
    variants: tuple[VariantInput, ...]
    data: dict[str, Any] | None = None  # {"name", "test_samples"}
    float_model: dict[str, Any] | None = None  # {"file", "file_bytes", "deflate_bytes", "accuracy"}
    finetune: dict[str, Any] | None = None
    recluster: dict[str, Any] = field(default_factory=dict)
    palettise: dict[str, Any] | None = None
    firmware: dict[str, Any] | None = None
    enforce_budget: bool = True
    min_top1_agreement: float | None = None  # the gate on after vs before ([verify] / --min-top1-agreement)
    min_output_sqnr_db: float | None = None  # the SQNR gate ([verify] / --min-output-sqnr)
    quantization: dict[str, Any] | None = None  # a float .tflite's quantize stage (pipeline.ptq_stage)


# ----------------------------------------------------------------------------- models


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return round(a / b, 6)


def _model_entry(v: VariantInput, float_model: dict[str, Any] | None, finetuned: bool) -> dict[str, Any]:
    stats = inspect_model(v.model_bytes)
    c = v.compile_report
    b = c["budget"]
    compression = None
    if float_model is not None:
        compression = {
            "file_ratio": _ratio(float_model["file_bytes"], stats.model_bytes),
            "deflate_ratio": _ratio(float_model["deflate_bytes"], stats.deflate_bytes),
        }
    return {
        "variant": v.variant.value,
        "label": v.variant.label(finetuned),
        "short_label": v.variant.short(finetuned),
        "file": v.file,
        "sha256": sha256_bytes(v.model_bytes),
        "accuracy": v.accuracy,
        "file_bytes": stats.model_bytes,
        "deflate_bytes": stats.deflate_bytes,
        "compression_vs_float": compression,
        "weights": stats.weights,
        "weight_tensors": stats.weight_tensors,
        "max_distinct_values": stats.max_distinct_values,
        "tensors": [
            {
                "name": t.name,
                "op": t.op,
                "weights": t.weights,
                "distinct_values": t.distinct_values,
                "max_distinct_per_channel": t.max_distinct_per_channel,
                "vela_palette": t.vela_palette,
            }
            for t in stats.tensors
        ],
        "compile_dir": v.compile_dir,
        "estimate_kind": c["estimate_kind"],
        "status": c["status"],
        "original_weight_bytes": c["original_weight_bytes"],
        "encoded_weight_bytes": c["encoded_weight_bytes"],
        "encoded_weight_ratio": c["encoded_weight_ratio"],
        "sram_bytes": b["sram_used_bytes"],
        "flash_bytes": b["flash_used_bytes"],
        "off_chip_flash_bytes": c["off_chip_flash_bytes"],
        "on_chip_flash_bytes": c["on_chip_flash_bytes"],
        "dram_bytes": c["dram_bytes"],
        "cycles_total": c["cycles_total"],
        "cycles_npu": c["cycles_npu"],
        "inference_time_s": c["inference_time_s"],
        "inferences_per_second": c["inferences_per_second"],
        "npu_operators": c["npu_operators"],
        "cpu_operators": c["cpu_operators"],
        "cpu_compute_operators": c["placement"]["cpu_compute_operators"],
        "init_operators": c["init_operators"],
        "vela_operator_counts": c["vela_operator_counts"],  # Vela's own operations: beside the model's, labelled
        "within_budget": b["within_budget"],
    }


COMPARED = ("file_bytes", "deflate_bytes", "encoded_weight_bytes", "flash_bytes", "off_chip_flash_bytes", "sram_bytes",
            "cycles_total", "inference_time_s")


def _comparison(after: dict[str, Any], other: dict[str, Any] | None) -> dict[str, Any] | None:
    if other is None:
        return None
    out: dict[str, Any] = {f"{k}_ratio": _ratio(after[k], other[k]) for k in COMPARED}
    acc = None
    if after["accuracy"] is not None and other["accuracy"] is not None:
        acc = round(after["accuracy"] - other["accuracy"], 6)
    out["accuracy_change"] = acc
    return out


# ----------------------------------------------------------------------------- layers


def _operator_groups(compile_report: dict[str, Any]) -> list[dict[str, Any]]:
    """Vela's operations grouped by the TFLite operator they came from (one row per input operator)."""
    labels: dict[tuple[int, int], str] = {}
    for w in compile_report.get("weight_tensors", []):
        for op in w.get("operators", []):
            labels.setdefault((w.get("subgraph", 0), op), w["name"])
    groups: dict[Any, dict[str, Any]] = {}
    for la in compile_report.get("layers", []):
        src = la.get("source_operator")
        key = (la.get("subgraph", 0), src) if src is not None else f"vela-{la['index']}"
        g = groups.get(key)
        if g is None:
            g = groups[key] = {
                "index": src,
                "name": labels.get(key, la["name"]) if src is not None else la["name"],
                "op": la.get("original_op") or la["op"],
                "target": la["target"],
                "weight_bytes": 0,
                "encoded_weight_bytes": 0,
                "distinct_weight_values": None,
                "cycles": 0,
            }
        g["weight_bytes"] += la.get("weight_bytes") or 0
        g["encoded_weight_bytes"] += la.get("encoded_weight_bytes") or 0
        dv = la.get("distinct_weight_values")
        if dv is not None:
            g["distinct_weight_values"] = max(g["distinct_weight_values"] or 0, dv)
        # no cycles: a subgraph Vela wrote no per-layer figures for (targets.vela_report)
        g["cycles"] = None if la.get("cycles") is None or g["cycles"] is None else g["cycles"] + la["cycles"]
        if la["target"] != g["target"]:
            g["target"] = "mixed"
    return list(groups.values())


def _short_labels(names: list[str]) -> list[str]:
    """Readable layer labels: the last ';' part of fused names, minus a path prefix every name shares."""
    parts = [n.split(";")[-1].split("/") for n in names]
    common = 0
    if len(parts) > 1:
        while all(len(p) > common + 1 for p in parts) and len({p[common] for p in parts}) == 1:
            common += 1
    return ["/".join(p[common:]) for p in parts]


def _layers(variants: dict[Variant, dict[str, Any]]) -> list[dict[str, Any]]:
    after = _operator_groups(variants[Variant.AFTER])
    aligned: dict[Variant, list[dict[str, Any] | None]] = {}
    for v, c in variants.items():
        groups = _operator_groups(c)
        if [g["op"] for g in groups] == [g["op"] for g in after]:
            aligned[v] = list(groups)  # same graph: match by position
        else:
            by_name = {g["name"]: g for g in groups}
            aligned[v] = [by_name.get(g["name"]) for g in after]
    labels = _short_labels([g["name"] for g in after])
    rows = []
    for i, g in enumerate(after):
        per = {}
        for v in Variant:
            if v not in aligned:
                per[v.value] = None
                continue
            m = aligned[v][i]
            per[v.value] = None if m is None else {
                k: m[k] for k in ("target", "weight_bytes", "encoded_weight_bytes", "distinct_weight_values", "cycles")
            }
        rows.append({"index": g["index"], "label": labels[i], "name": g["name"], "op": g["op"], "models": per})
    return rows


# ----------------------------------------------------------------------------- the document


def _target(c: dict[str, Any]) -> dict[str, Any]:
    p = c["profile"]
    return {
        "name": c["target"],
        "family": c["family"],
        "accelerator": c["accelerator"],
        "system_config": c["system_config"],
        "memory_mode": c["memory_mode"],
        "clock_hz": c["clock_hz"],
        "estimate_kind": c["estimate_kind"],
        "estimate_label": c["estimate_label"],
        "vela_version": c.get("vela_version"),
        "sram_budget_bytes": p["budget"]["sram_bytes"],
        "flash_budget_bytes": p["budget"]["flash_bytes"],
        "palette_limit": c["palette_limit"],
    }


def build_report(inp: ReportInput) -> dict[str, Any]:
    by_variant = {v.variant: v for v in inp.variants}
    if Variant.AFTER not in by_variant or Variant.BEFORE not in by_variant:
        raise ToolError("internal: a report needs the before and after models")
    models: dict[str, Any] = {v.value: None for v in Variant}
    finetuned = inp.finetune is not None
    for v in inp.variants:
        models[v.variant.value] = _model_entry(v, inp.float_model, finetuned)
    ver = inp.recluster.get("verification")
    fidelity = fidelity_section(ver, inp.min_top1_agreement, inp.min_output_sqnr_db)
    warning = fidelity_warning(ver, inp.min_top1_agreement, inp.min_output_sqnr_db)
    after_c = by_variant[Variant.AFTER].compile_report
    after = models["after"]
    doc = {
        "schema_version": SCHEMA_VERSION,
        "model": inp.model,
        "entry": inp.entry,
        "clusters": inp.clusters,
        "target": _target(after_c),
        "data": inp.data,
        "float_model": inp.float_model,
        "models": models,
        "comparison": {
            "after_vs_before": _comparison(after, models["before"]),
            "after_vs_plain": _comparison(after, models["plain"]),
        },
        "fidelity": fidelity,
        "layers": _layers({v.variant: v.compile_report for v in inp.variants}),
        "finetune": inp.finetune,
        "recluster": inp.recluster,
        "palettise": inp.palettise,
        "firmware": inp.firmware,
        "budget": {
            "sram_budget_bytes": after_c["budget"]["sram_bytes"],
            "flash_budget_bytes": after_c["budget"]["flash_bytes"],
            "sram_bytes": after["sram_bytes"],
            "flash_bytes": after["flash_bytes"],
            "within_budget": after["within_budget"],
            "enforced": inp.enforce_budget,
        },
        "warnings": (_quantization_warnings(inp.quantization) + ([f"after vs before: {warning}"] if warning else [])
                     + [f"data: {n}" for n in inp.recluster.get("data_notes", [])] + list(after_c.get("warnings", []))),
    }
    if inp.quantization is not None:
        doc["quantization"] = inp.quantization
    try:
        validate(doc, SCHEMA, REPORT_JSON)
    except ConfigError as exc:  # our own output: a bug, not bad user input
        raise ToolError(f"refusing to write an invalid {REPORT_JSON}: {exc}") from None
    return doc


def _quantization_warnings(q: dict[str, Any] | None) -> list[str]:
    if q is None:
        return []
    out = []
    if q["synthetic_calibration"]:
        out.append(f"SYNTHETIC CALIBRATION: the float model was quantized on {q['calibration']['label']}")
    if q["float_operators"]:
        out.append(f"{q['tool']} left these operators float (they run on the CPU): {', '.join(q['float_operators'])}")
    return out


def key_metrics(doc: dict[str, Any]) -> dict[str, Any]:
    """The few figures per model that history entries and sweeps keep."""
    keys = ("accuracy", "file_bytes", "deflate_bytes", "encoded_weight_bytes", "flash_bytes", "sram_bytes",
            "cycles_total", "inference_time_s", "max_distinct_values", "npu_operators", "cpu_operators",
            "init_operators")
    return {v: (None if m is None else {k: m[k] for k in keys}) for v, m in doc["models"].items()}



