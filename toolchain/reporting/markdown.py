"""report.md: the human-readable report of one target, rendered from report.json."""
from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

from ..core.escape import markdown_cell, markdown_text
from ..targets.op_placement import split_label, vela_count_label
from .fidelity import OUTPUT_HEADER, output_rows, verification_text
from .formatting import fmt_int, fmt_pct, fmt_ratio, fmt_us
from .report import Variant

# The short mark after an estimated figure, by compile.json's estimate_kind (Vela compiles carry none)
ESTIMATE_TAGS = {"analytical": "analytical estimate", "arm": "Arm estimate"}
# The firmware embeds the whole compiled model file; Vela's "off-chip flash used" counts its command stream and
# weights only. Both are right; each row says which it is.
FLASH_ROW = "flash: compiled model file (bytes)"
VELA_FLASH_ROW = "flash: Vela's off-chip flash used (bytes)"
LABELS_NOTE = ("Flash: the firmware embeds the whole compiled model file; Vela's off-chip flash used counts its "
               "command stream and weights only. Operators: the model's own, per inference; Vela counts its own "
               "operations (it splits some operators and adds others), for the last subgraph it compiles.")
OPERATORS_ROW = "operators in the model: NPU / CPU per inference"
VELA_OPERATORS_ROW = "Vela's operator count (its own operations): NPU / CPU"


def estimate_tag(doc: dict[str, Any]) -> str | None:
    return ESTIMATE_TAGS.get(doc["target"]["estimate_kind"])


def label_of(doc: dict[str, Any]) -> str:
    """compile.json's estimate_label (reports written before it was carried: the short tag)."""
    t = doc["target"]
    return t.get("estimate_label") or ESTIMATE_TAGS.get(t["estimate_kind"], "Vela compile")


RATIO_OF_ROW = {
    "file size (bytes)": "file_bytes_ratio", "deflate size (bytes)": "deflate_bytes_ratio",
    "Vela encoded weights (bytes)": "encoded_weight_bytes_ratio", "SRAM (bytes)": "sram_bytes_ratio",
    FLASH_ROW: "flash_bytes_ratio", VELA_FLASH_ROW: "off_chip_flash_bytes_ratio", "cycles": "cycles_total_ratio",
    "inference time (us)": "inference_time_s_ratio",
}


def _layer_cell(models: dict[str, Any], variant: str, key: str) -> str:
    """One layer's figure for one model of the per-layer table; "-" where that model or figure is absent."""
    x = models.get(variant)
    if x is None or x[key] is None:
        return "-"
    return fmt_int(x[key]) if isinstance(x[key], int) else str(x[key])


def summary_rows(doc: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """(label with unit, one cell per model plain/before/after) rows shared by report.md and the dashboard."""
    ms = [doc["models"][v.value] for v in Variant]

    def row(label: str, f) -> tuple[str, list[str]]:
        return label, ["-" if m is None else f(m) for m in ms]

    def compression(m: dict[str, Any]) -> str:
        c = m["compression_vs_float"]
        if c is None:
            return "-"
        return f"{fmt_ratio(c['file_ratio'])} / {fmt_ratio(c['deflate_ratio'])}"

    tag = estimate_tag(doc)
    estimate = f" ({tag})" if tag else ""
    return [
        row("accuracy (top-1)", lambda m: fmt_pct(m["accuracy"])),
        row("file size (bytes)", lambda m: fmt_int(m["file_bytes"])),
        row("deflate size (bytes)", lambda m: fmt_int(m["deflate_bytes"])),
        row("compression vs float (file / deflate, x)", compression),
        row("max distinct values per tensor", lambda m: str(m["max_distinct_values"])),
        row("Vela encoded weights (bytes)", lambda m: fmt_int(m["encoded_weight_bytes"])),
        row("encoded / original weights", lambda m: fmt_ratio(m["encoded_weight_ratio"])),
        row("SRAM (bytes)", lambda m: fmt_int(m["sram_bytes"])),
        row(FLASH_ROW + estimate, lambda m: fmt_int(m["flash_bytes"])),
        row(VELA_FLASH_ROW, lambda m: "-" if estimate else fmt_int(m["off_chip_flash_bytes"])),
        row("cycles" + estimate, lambda m: fmt_int(m["cycles_total"])),
        row("inference time (us)" + estimate, lambda m: fmt_us(m["inference_time_s"])),
        row(OPERATORS_ROW, lambda m: split_label(m["npu_operators"], m["cpu_operators"], m["init_operators"])),
        row(VELA_OPERATORS_ROW, lambda m: vela_count_label(m["vela_operator_counts"])),
        row("within budget", lambda m: "yes" if m["within_budget"] else "NO"),
    ]


def summary_table_rows(doc: dict[str, Any], shown: Sequence[Variant]) -> list[list[str]]:
    """The summary table's rows (label, one cell per shown model, after/before): Markdown and HTML share them."""
    ab = doc["comparison"]["after_vs_before"]
    rows = []
    for label, cells in summary_rows(doc):
        key = label
        for tag in ESTIMATE_TAGS.values():
            key = key.replace(f" ({tag})", "")
        extra = fmt_ratio(ab[RATIO_OF_ROW[key]]) if key in RATIO_OF_ROW else ""
        if label == "accuracy (top-1)" and ab["accuracy_change"] is not None:
            extra = f"{ab['accuracy_change'] * 100:+.2f} points"
        rows.append([label, *[c for v, c in zip(Variant, cells) if v in shown], extra])
    return rows

def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    esc = markdown_cell  # names come from the model: one cell each, whatever they hold
    out = ["| " + " | ".join(esc(h) for h in header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(esc(c) for c in r) + " |" for r in rows]
    return out


def fidelity_markdown(doc: dict[str, Any]) -> str:
    """The verdict first (a warning in bold when low or not informative), then the figures per output."""
    f = doc["fidelity"]
    ver = doc["recluster"].get("verification")
    head = markdown_text(f["text"])
    if f["status"] in ("low", "not_informative", "not_run"):
        head = f"**WARNING**: {head}"
    elif f["status"] == "weak_evidence":
        head = f"**Weak evidence** (not a measure on real data): {head}"
    lines = [head]
    rows = output_rows(ver)
    if rows:
        lines += ["", "Per output, each by the measure of its kind (SQNR and errors in the output's own units):", "",
                  *_md_table(OUTPUT_HEADER, rows)]
    return "\n".join(lines)


def title(doc: dict[str, Any]) -> str:
    t = doc["target"]
    how = f"{t['system_config']}, {t['memory_mode']}, " if t["system_config"] else f"{label_of(doc)}, "
    return f"{doc['model']} on {t['name']} ({how}{t['clock_hz'] / 1e6:g} MHz)"


def quantization_markdown(q: dict[str, Any]) -> list[str]:
    """The quantize stage of a float .tflite: how it was calibrated and its own fidelity, per output."""
    head = "**SYNTHETIC CALIBRATION** (not real data): " if q["synthetic_calibration"] else "Calibration: "
    lines = [markdown_text(f"{head}{q['calibration']['label']}. Quantized by {q['tool']} {q['tool_version']} "
                           f"({q['recipe']}), {q['io']} inputs and outputs."), ""]
    if q["float_operators"]:
        lines += [markdown_text(f"Left float (CPU): {', '.join(q['float_operators'])}."), ""]
    f = q["fidelity"]
    if f is None:
        return [*lines, markdown_text(f"Float vs int8: not run: {q['fidelity_not_run']}.")]
    lines += [markdown_text(f"Float vs int8 on {f['samples']} {f['inputs']}, per output, in int8 output steps:"), ""]
    rows = [[o["name"], "identical" if o["sqnr_db"] is None else f"{o['sqnr_db']:.1f}",
             f"{o['max_abs_diff_steps']:.1f}", f"{o['mean_abs_diff_steps']:.2f}"] for o in f["outputs"]]
    return lines + _md_table(["output", "SQNR dB", "max abs diff", "mean abs diff"], rows)


def report_markdown(doc: dict[str, Any]) -> str:
    t = doc["target"]
    lines = [f"# {markdown_text(title(doc))}", ""]
    data = doc["data"]
    facts = [f"K = {doc['clusters']} clusters", f"entry: {doc['entry']}"]
    facts.append(f"data: {data['name']} ({data['test_samples']} test samples)" if data else "data: none (no accuracy)")
    if t["estimate_kind"] == "vela":
        facts.append(f"Vela {t['vela_version']}")
    else:
        facts.append(f"ESTIMATE, not a Vela compile: {label_of(doc)}")
    lines += [markdown_text("; ".join(facts) + "."), ""]
    fm = doc["float_model"]
    if fm:
        lines += [(f"Float model: {fmt_int(fm['file_bytes'])} bytes ({fmt_int(fm['deflate_bytes'])} deflated), "
                   f"accuracy {fmt_pct(fm['accuracy'])}."), ""]
    if doc.get("quantization"):
        lines += ["## Quantization: float vs int8", "", *quantization_markdown(doc["quantization"]), ""]
    lines += ["## Summary", ""]
    shown = [v for v in Variant if doc["models"][v.value] is not None]
    header = ["", *[doc["models"][v.value]["short_label"] for v in shown], "after / before"]
    rows = summary_table_rows(doc, shown)
    lines += _md_table(header, rows)
    if t["estimate_kind"] == "vela":
        lines += ["", LABELS_NOTE]
    b = doc["budget"]
    lines += ["", f"Budget of {markdown_text(t['name'])}: SRAM {fmt_int(b['sram_bytes'])} of {fmt_int(b['sram_budget_bytes'])} bytes, "
              f"flash (compiled model file) {fmt_int(b['flash_bytes'])} of {fmt_int(b['flash_budget_bytes'])} bytes: "
              + ("within budget." if b["within_budget"] else "**OVER BUDGET**."), ""]
    lines += ["## Fidelity: after vs before", "", fidelity_markdown(doc), ""]

    no_cycles = any(m is not None and m["cycles"] is None for la in doc["layers"] for m in la["models"].values())
    lines += ["## Per layer", "", "Vela encoded weight bytes and cycles per input operator (after = reclustered)."
              + (" Cycles `-`: a subgraph Vela writes no per-layer figures for (encoded bytes from its weight encoder)."
                 if no_cycles else ""), ""]
    header = ["layer", "op", "target", "encoded bytes plain", "before", "after", "distinct values before", "after",
              "cycles before", "after"]
    if doc["models"]["plain"] is None:
        header = header[:3] + ["encoded bytes before"] + header[5:]
    rows = []
    for la in doc["layers"]:
        m = la["models"]
        get = partial(_layer_cell, m)
        row = [la["label"], la["op"], m["after"]["target"], get("plain", "encoded_weight_bytes"),
               get("before", "encoded_weight_bytes"), get("after", "encoded_weight_bytes"),
               get("before", "distinct_weight_values"), get("after", "distinct_weight_values"),
               get("before", "cycles"), get("after", "cycles")]
        if doc["models"]["plain"] is None:
            del row[3]
        rows.append(row)
    lines += _md_table(header, rows)

    lines += ["", "## Distinct int8 values per weight tensor", ""]
    names = [t_["name"] for t_ in doc["models"]["after"]["tensors"]]
    per = {v: {t_["name"]: t_ for t_ in (doc["models"][v] or {}).get("tensors", [])} for v in ("plain", "before", "after")}
    rows = []
    for n in names:
        a = per["after"][n]
        rows.append([n, a["op"], fmt_int(a["weights"]),
                     *[str(per[v.value][n]["distinct_values"]) if n in per[v.value] else "-" for v in shown]])
    lines += _md_table(["tensor", "op", "weights", *[v.value for v in shown]], rows)

    recluster = doc["recluster"]
    ver = recluster.get("verification")
    lines += ["", "## Stages", ""]
    lines.append(f"- recluster (K = {doc['clusters']}): {markdown_text(recluster['summary'])}"
                 + (f"; LiteRT check: {markdown_text(verification_text(ver))}" if ver else ""))
    ft = doc["finetune"]
    if ft:
        lines.append(f"- finetune: {ft['clustered_layers']} layer(s) clustered to {ft['clusters']} values, "
                     f"{ft['epochs']} epoch(s) on {ft['train_samples']} samples; float accuracy "
                     f"{fmt_pct(ft['accuracy_before'])} -> {fmt_pct(ft['accuracy_after'])}")
    pal = doc["palettise"]
    if pal:
        lines.append(f"- palettise: {pal['tensors']} tensor(s), {fmt_int(pal['raw_bytes'])} -> "
                     f"{fmt_int(pal['palettised_bytes'])} bytes of weights; TFLM model: {markdown_text(pal['tflm'])}")
    fw = doc["firmware"]
    if fw:
        lines.append("- " + markdown_text(f"firmware: {fw['dir']} ({fw['model_symbol']}, {fmt_int(fw['model_bytes'])} "
                                          f"bytes, tensor arena {fmt_int(fw['arena_bytes'])} bytes)"))
    else:
        lines.append("- firmware: not generated (no Vela model for this target)")
    if doc["warnings"]:
        lines += ["", "## Warnings", ""] + [f"- {markdown_text(w)}" for w in doc["warnings"]]
    return "\n".join(lines) + "\n"
