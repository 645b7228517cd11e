"""The terminal summary ``deploy`` prints after its stages: one row per target and model variant."""
from __future__ import annotations

from ..reporting.formatting import fmt_int, fmt_pct, table
from ..reporting.report import Variant
from .progress import StageStatus
from .result import DeployResult

# ----------------------------------------------------------------------------- summary


def summary_table(result: DeployResult) -> str:
    rows = []
    for t in result.targets:
        for v in Variant:
            m = t.report["models"][v.value]
            if m is None:
                continue
            rows.append([t.target if v is Variant.PLAIN or (v is Variant.BEFORE and t.report["models"]["plain"] is None)
                         else "", v.short, fmt_pct(m["accuracy"]), fmt_int(m["file_bytes"]), fmt_int(m["deflate_bytes"]),
                         fmt_int(m["encoded_weight_bytes"]), fmt_int(m["flash_bytes"]), fmt_int(m["sram_bytes"]),
                         fmt_int(m["cycles_total"]), f"{m['npu_operators']}/{m['cpu_operators']}",
                         "yes" if m["within_budget"] else "NO"])
    return table(["target", "model", "accuracy", "file B", "deflate B", "encoded B", "flash B", "SRAM B", "cycles",
                  "NPU/CPU ops", "fits"], rows, right={2, 3, 4, 5, 6, 7, 8, 9})


def stage_summary(result: DeployResult) -> str:
    n = len(result.stages)
    ran = len(result.ran)
    total = sum(s.time_s for s in result.stages)
    if ran == 0:
        return f"nothing to do: all {n} stages up to date ({total:.1f} s)"
    skipped = sum(s.status is StageStatus.SKIPPED for s in result.stages)
    return f"{ran} of {n} stages ran, {n - ran - skipped} up to date" + (f", {skipped} skipped" if skipped else "") \
        + f" ({total:.1f} s)"
