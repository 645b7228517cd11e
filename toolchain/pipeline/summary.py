"""The terminal summary ``deploy`` prints after its stages: one row per target and model variant,
then how faithful the reclustered model is to the model it came from (after vs before)."""
from __future__ import annotations

from ..core.escape import terminal_text
from ..reporting.fidelity import OUTPUT_HEADER, Fidelity, output_rows, verification_text
from ..reporting.formatting import fmt_int, fmt_pct, fmt_us, table
from ..reporting.markdown import label_of
from ..reporting.report import Variant
from ..targets.op_placement import split_label, vela_count_label
from .progress import StageStatus
from .result import DeployResult

ESTIMATE_MARK = " *"  # after a target's name: an Ethos-N78 estimate, not a compile

# ----------------------------------------------------------------------------- summary


def summary_table(result: DeployResult) -> str:
    rows = []
    for t in result.targets:
        estimate = t.report["target"]["estimate_kind"] != "vela"
        for v in Variant:
            m = t.report["models"][v.value]
            if m is None:
                continue
            first = v is Variant.PLAIN or (v is Variant.BEFORE and t.report["models"]["plain"] is None)
            rows.append([t.target + (ESTIMATE_MARK if estimate else "") if first else "", m["short_label"],
                         fmt_pct(m["accuracy"]), fmt_int(m["file_bytes"]), fmt_int(m["deflate_bytes"]),
                         fmt_int(m["encoded_weight_bytes"]), fmt_int(m["flash_bytes"]),
                         "-" if estimate else fmt_int(m["off_chip_flash_bytes"]), fmt_int(m["sram_bytes"]),
                         fmt_int(m["cycles_total"]), fmt_us(m["inference_time_s"]),
                         split_label(m["npu_operators"], m["cpu_operators"], m["init_operators"]),
                         vela_count_label(m["vela_operator_counts"]), "yes" if m["within_budget"] else "NO"])
    lines = [table(["target", "model", "accuracy", "file B", "deflate B", "encoded B", "flash: compiled file B",
                    "Vela off-chip flash B", "SRAM B", "cycles", "time us", "ops in the model", "Vela's op count",
                    "fits"], rows, right=set(range(2, 11)))]
    lines.append("flash: the firmware embeds the model file; Vela's off-chip flash counts its command stream and "
                 "weights. Ops: the model's operators per inference (NPU / CPU); Vela counts its own operations.")
    estimated = [t for t in result.targets if t.report["target"]["estimate_kind"] != "vela"]
    for label in dict.fromkeys(label_of(t.report) for t in estimated):
        lines.append(f"{ESTIMATE_MARK.strip()} Ethos-N78 {label}: estimated, not compiled")
    lines.append(fidelity_line(result))
    rows = output_rows(result.targets[0].report["recluster"].get("verification")) if result.targets else []
    if rows:
        lines.append(table(OUTPUT_HEADER, [[terminal_text(c) for c in r] for r in rows], right={3, 4, 5, 6, 7}))
    lines += target_notes(result)
    return "\n".join(lines)


def target_notes(result: DeployResult) -> list[str]:
    """The reclustered model's compile warnings per target: which operators stay on the CPU, init subgraphs."""
    out = []
    for t in result.targets:
        for w in t.report["warnings"]:
            if not w.startswith("after vs before"):  # the fidelity line says it
                out.append(terminal_text(f"{t.target}: {w}"))
    return out


def fidelity_line(result: DeployResult) -> str:
    """'after vs before: top-1 agreement 0.875, max 74 / mean 3.21 output steps, ... WARNING: ...'."""
    if not result.targets:
        return "after vs before: not verified"
    doc = result.targets[0].report  # every target reports the same LiteRT check of the same two models
    f = doc["fidelity"]
    text = verification_text(doc["recluster"].get("verification"), f["min_top1_agreement"], f["min_output_sqnr_db"])
    prefix = "WARNING: " if f["status"] in (Fidelity.NOT_INFORMATIVE.value, Fidelity.NOT_RUN.value) else ""
    return terminal_text(f"after vs before: {prefix}{text}")


def stage_summary(result: DeployResult) -> str:
    n = len(result.stages)
    ran = len(result.ran)
    total = sum(s.time_s for s in result.stages)
    if ran == 0:
        return f"nothing to do: all {n} stages up to date ({total:.1f} s)"
    skipped = sum(s.status is StageStatus.SKIPPED for s in result.stages)
    return f"{ran} of {n} stages ran, {n - ran - skipped} up to date" + (f", {skipped} skipped" if skipped else "") \
        + f" ({total:.1f} s)"
