"""``toolchain recluster``'s terminal summary: a row per tensor, the K plan, the fit used, the verification."""
from __future__ import annotations

from ..core.escape import terminal_text
from ..rewrite.choose_k import PlanGoal
from ..rewrite.config import Objective
from ..rewrite.flash_plan import FlashFit
from ..rewrite.outcome_text import rewrite_summary
from ..rewrite.result import ReclusterReport
from .fidelity import OUTPUT_HEADER, output_rows, verification_text
from .formatting import table

NAME_CHARS = 40


def _objective_line(report: ReclusterReport) -> str:
    c = report.calibration
    if c is None:
        return "objective: weights (weight-space fit; accuracy was not checked on calibration data)"
    won = sum(1 for t in report.rewritten if (t.method or "").startswith("outputs"))
    return (f"objective: outputs on {c.samples} calibration samples ({c.source}), {c.segments} segment(s), "
            f"{c.litert_passes} LiteRT passes; the output-aware fit won on {won} of {len(report.rewritten)} "
            "rewritten tensors, the weight-space fit on the rest")


def _rate_plan_line(plan) -> str:
    """A plan sized by Vela's encoder (rewrite.rate_goals): what it kept and what it measured on the result."""
    on = f" on {plan.target_name}" if plan.target_name else ""
    if plan.mode is PlanGoal.BUDGET:
        return (f"K and rate price chosen per tensor for encoded weights <= {int(plan.target)} bytes{on}: Vela's figure "
                f"for the result {plan.actual_encoded_bytes} bytes (planned {plan.predicted_encoded_bytes}, smallest "
                f"reachable about {plan.smallest_encoded_bytes}, {plan.attempts} plan(s) tried)")
    what = "top-1 agreement" if plan.mode is PlanGoal.AGREEMENT else "output SQNR (dB)"
    where = (f"{plan.check_samples} held-back calibration samples" if plan.held_out
             else f"the {plan.check_samples} calibration samples the fit used (too few to hold some back)")
    k16 = " and no more output noise than K=16 everywhere" if plan.no_noisier_than_k16 else ""
    line = (f"K and rate price chosen per tensor for the fewest encoded bytes{on} keeping {what} >= {plan.target:g}"
            f"{k16} on {where}: measured {plan.checked_fidelity:.4f}, Vela's figure {plan.actual_encoded_bytes} bytes")
    if plan.attainable_top1_agreement is not None:
        line += (f"; {plan.target:g} is out of reach on these samples (every tensor at its least noisy option, each "
                 f"fitted alone, reached {plan.attainable_top1_agreement:.4f}), so that was the floor")
    return line


def _plan_line(plan) -> str:
    if isinstance(plan, FlashFit):
        return (f"K chosen per tensor for {plan.flash_budget_bytes} bytes of flash on {plan.target}: predicted "
                f"{plan.predicted_flash_bytes}, compiled by Vela {plan.actual_flash_bytes} bytes "
                f"(encoded weights {plan.actual_encoded_weight_bytes} bytes)")
    if plan.target_name is not None or plan.mode is PlanGoal.OUTPUT_SQNR:
        return _rate_plan_line(plan)
    what = {PlanGoal.SQNR: f"SQNR >= {plan.target:g} dB",
            PlanGoal.AGREEMENT: f"top-1 agreement >= {plan.target:g} on the fit's calibration samples"}.get(
        plan.mode, f"encoded weights <= {int(plan.target)} bytes")
    pred = f", predicted encoded weights {plan.predicted_encoded_bytes} bytes" if plan.mode is PlanGoal.BUDGET else ""
    if plan.mode is PlanGoal.AGREEMENT:
        pred = f" (in-sample, with the planned fits: {plan.predicted_top1_agreement:.4f}; the check below is not)"
        if plan.attainable_top1_agreement is not None:
            pred += (f"; {plan.target:g} is not reachable on these samples even with every tensor at the largest K "
                     f"(near-ties of the original flip under any rewrite), so the floor was that agreement, "
                     f"{plan.attainable_top1_agreement:.4f}")
    elif plan.error_measure is Objective.OUTPUTS:
        pred += ", errors measured on the layers' outputs"
    return f"K chosen per tensor for {what}{pred}"


def recluster_text(report: ReclusterReport, output, report_path, min_top1: float | None = None,
                   bias_correction: bool = False, min_sqnr_db: float | None = None) -> str:
    lines = [f"{'tensor':{NAME_CHARS}}  {'op':18}  {'before':>6}  {'after':>5}  {'SQNR dB':>8}  action"]
    for t in report.tensors:
        name = terminal_text(t.name)
        name = name if len(name) <= NAME_CHARS else "..." + name[-(NAME_CHARS - 3):]
        sq = "lossless" if t.sqnr_db is None else f"{t.sqnr_db:.1f}"
        action = (t.action.value + (f" ({terminal_text(t.reason)})" if t.reason else "")
                  + (" +scales" if t.scales_refit else ""))
        lines.append(f"{name:{NAME_CHARS}}  {terminal_text(t.op):18}  {t.distinct_before:6d}  {t.distinct_after:5d}  "
                     f"{sq:>8}  {action}")
    if report.plan is not None:
        lines.append(_plan_line(report.plan))
    if report.bias_corrections is not None:
        done = sum(b.corrected for b in report.bias_corrections)
        lines.append(f"bias correction applied to {done} of {len(report.bias_corrections)} changed layers")
    elif report.calibration is not None and bias_correction:
        lines.append("bias correction not applied: the output-aware fit already refits each bias by least squares")
    lines.append(rewrite_summary(report.tensors))
    lines.append(_objective_line(report))
    lines += [terminal_text(f"data: {n}") for n in (*report.data_notes, *report.data_warnings)]
    v = report.verification
    lines.append(terminal_text(f"verification: {verification_text(None if v is None else v.to_json(), min_top1, min_sqnr_db)}"))
    rows = output_rows(None if v is None else v.to_json())
    if rows:
        lines.append(table(OUTPUT_HEADER, [[terminal_text(c) for c in r] for r in rows], right={3, 4, 5, 6, 7}))
    lines.append(terminal_text(f"wrote {output} and {report_path}"))
    return "\n".join(lines)
