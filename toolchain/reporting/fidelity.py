"""How faithful the reclustered model is to the model it came from, in words: one wording for the
recluster command, the deploy summary, report.json, report.md and the dashboards.

Works on the verification as JSON (``Verification.to_json``): what the check ran on and what that
is worth as evidence, and per output its kind, its kind's agreement, SQNR and errors. A check that
proves little is never shown as success: random or in-sample inputs are "weak evidence", a measure
whose reference answer never changed is "not measurable", a model LiteRT cannot run "not run".
"""
from __future__ import annotations

from enum import Enum
from typing import Any

from .formatting import fmt_ratio

WARN_BELOW_TOP1 = 0.99  # below this top-1 agreement, every view warns (and the dashboard marks it red)
DATA_DOC = "docs/data.md"
HINT = (f"give representative inputs: --calibration FILE.npz (one in eight held back for the check) or "
        f"--verify-data FILE.npz (the check alone); format: {DATA_DOC}")
STREAM_HINT = ("give a stream of real feature frames: --calibration FRAMES.npz (or --verify-data) whose array x "
               f"holds consecutive frames in time order, one per invocation; format: {DATA_DOC}")
WEAK = {"random": "random inputs: weak evidence",
        "in_sample": "in-sample (the fit saw these samples): weak evidence"}


class Fidelity(Enum):
    OK = "ok"
    LOW = "low"  # top-1 agreement below WARN_BELOW_TOP1 (or a gate), or SQNR below its gate
    WEAK_EVIDENCE = "weak_evidence"  # random or in-sample inputs: measured, but proves little
    NOT_INFORMATIVE = "not_informative"  # an output's measure could not be measured on these inputs
    NOT_RUN = "not_run"  # LiteRT cannot run the model (a custom operator)
    UNCHECKED = "unchecked"  # no verification ran


def _low(ver: dict[str, Any], min_top1: float | None, min_sqnr_db: float | None) -> bool:
    top1 = ver.get("top1_agreement")
    limit = max(WARN_BELOW_TOP1, min_top1) if min_top1 is not None else WARN_BELOW_TOP1
    sqnr = ver.get("sqnr_db")
    return (top1 is not None and top1 < limit) or (min_sqnr_db is not None and sqnr is not None and sqnr < min_sqnr_db)


def fidelity_of(ver: dict[str, Any] | None, min_top1: float | None = None,
                min_sqnr_db: float | None = None) -> Fidelity:
    if ver is None:
        return Fidelity.UNCHECKED
    if ver.get("not_run"):
        return Fidelity.NOT_RUN
    if not ver.get("informative", True):
        return Fidelity.NOT_INFORMATIVE
    if _low(ver, min_top1, min_sqnr_db):
        return Fidelity.LOW
    if ver.get("evidence") in WEAK:
        return Fidelity.WEAK_EVIDENCE
    return Fidelity.OK


def _inputs(ver: dict[str, Any]) -> str:
    if ver.get("stateful"):
        return f"{ver['inputs']}, invoked in order, state carried"
    return ver["inputs"]


def _sqnr(o: dict[str, Any]) -> str:
    if o.get("identical"):
        return "identical"
    return "not measurable" if o.get("sqnr_db") is None else f"{o['sqnr_db']:.1f} dB"


def figures_text(ver: dict[str, Any]) -> str:
    """'top-1 agreement 0.875, max 74 / mean 3.21 output steps, SQNR 18.3 dB' (no verdict)."""
    top1 = ver.get("top1_agreement")
    parts = [] if top1 is None else [f"top-1 agreement {fmt_ratio(top1)}"]
    for o in ver.get("outputs", []):
        if o.get("kind") in ("detection_scores", "mask") and o.get("agreement") is not None:
            parts.append(f"{o['metric']} {fmt_ratio(o['agreement'])} ('{o['name']}')")
    if ver.get("max_abs_diff_steps") is not None:
        parts.append(f"max {ver['max_abs_diff_steps']:g} / mean {ver['mean_abs_diff_steps']:.2f} output steps")
    sqnr = ver.get("sqnr_db")
    identical = all(o.get("identical") for o in ver.get("outputs", []))
    parts.append("identical outputs" if identical else f"SQNR {'not measurable' if sqnr is None else f'{sqnr:.1f} dB'}")
    return ", ".join(parts)


def hint(ver: dict[str, Any]) -> str:
    return STREAM_HINT if ver.get("stateful") else HINT


def not_measurable_text(ver: dict[str, Any]) -> str:
    bad = [o for o in ver.get("outputs", []) if o.get("not_measurable")]
    what = "; ".join(f"{o['metric']} of output '{o['name']}' is not measurable: {o['not_measurable']}" for o in bad) \
        or "nothing could be measured"
    return f"not informative: {what} (on {_inputs(ver)}); {hint(ver)}"


def verification_text(ver: dict[str, Any] | None, min_top1: float | None = None,
                      min_sqnr_db: float | None = None) -> str:
    """One line for a person: the figures and the inputs, or why they mean little, plus a warning when low."""
    if ver is None:
        return "not verified (skipped)"
    state = fidelity_of(ver, min_top1, min_sqnr_db)
    if state is Fidelity.NOT_RUN:
        return f"not run: {ver['not_run']} (LiteRT has no kernel for it), so nothing was compared"
    if state is Fidelity.NOT_INFORMATIVE:
        return not_measurable_text(ver)
    text = f"{figures_text(ver)} on {_inputs(ver)}"
    if ver.get("accuracy_before") is not None:
        text += (f"; accuracy on their labels {fmt_ratio(ver['accuracy_before'])} before, "
                 f"{fmt_ratio(ver['accuracy_after'])} after")
    weak = WEAK.get(ver.get("evidence", ""))
    if weak:
        text = f"{weak}: {text}; {hint(ver)}"
    warning = fidelity_warning(ver, min_top1, min_sqnr_db)
    return f"{text}. WARNING: {warning}" if state is Fidelity.LOW and warning else text


def fidelity_warning(ver: dict[str, Any] | None, min_top1: float | None = None,
                     min_sqnr_db: float | None = None) -> str | None:
    """What a report's warnings list says about the check, or None when it proves what it shows."""
    state = fidelity_of(ver, min_top1, min_sqnr_db)
    if state in (Fidelity.NOT_RUN, Fidelity.NOT_INFORMATIVE):
        return verification_text(ver, min_top1, min_sqnr_db)
    if state is Fidelity.WEAK_EVIDENCE:
        return f"{WEAK[ver['evidence']]}: the figures are not a measure of the model on real data; {hint(ver)}"  # type: ignore[index]
    if state is Fidelity.LOW:
        assert ver is not None
        top1, sqnr = ver.get("top1_agreement"), ver.get("sqnr_db")
        if top1 is not None and top1 < max(WARN_BELOW_TOP1, min_top1 or 0.0):
            gate = f" (gate: {min_top1:g})" if min_top1 is not None and top1 < min_top1 else ""
            return (f"the reclustered model agrees with the model it came from on only {fmt_ratio(top1)} of top-1 "
                    f"answers (below {WARN_BELOW_TOP1:g}){gate}; max difference {ver['max_abs_diff_steps']:g} "
                    "output steps: check accuracy with data, or raise K")
        return f"output SQNR {sqnr:.1f} dB is below the gate {min_sqnr_db:g} dB: raise K"
    return None


def output_rows(ver: dict[str, Any] | None) -> list[list[str]]:
    """One row per output (name, kind, metric, its value, SQNR, max / mean abs error in the output's units,
    max diff in steps): the same in the terminal, report.md and the dashboards."""
    if not ver:
        return []
    rows = []
    for o in ver.get("outputs", []):
        if o["kind"] == "values":
            value = _sqnr(o)
        else:
            value = "not measurable" if o["agreement"] is None else fmt_ratio(o["agreement"])
        rows.append([o["name"], o["kind"].replace("_", " "), o["metric"], value, _sqnr(o), f"{o['max_abs_error']:.4g}",
                     f"{o['mean_abs_error']:.4g}", f"{o['max_abs_diff_steps']:g}"])
    return rows


OUTPUT_HEADER = ["output", "kind", "metric", "value", "SQNR", "max abs error", "mean abs error", "max diff (steps)"]


def fidelity_section(ver: dict[str, Any] | None, min_top1: float | None,
                     min_sqnr_db: float | None = None) -> dict[str, Any]:
    """report.json's ``fidelity``: after vs before in one place, with the verdict and the gates."""
    return {
        "status": fidelity_of(ver, min_top1, min_sqnr_db).value,
        "evidence": None if ver is None else ver.get("evidence"),
        "inputs": None if ver is None else ver.get("inputs"),
        "warn_below_top1": WARN_BELOW_TOP1,
        "min_top1_agreement": min_top1,
        "min_output_sqnr_db": min_sqnr_db,
        "top1_agreement": None if ver is None else ver.get("top1_agreement"),
        "max_abs_diff_steps": None if ver is None else ver.get("max_abs_diff_steps"),
        "mean_abs_diff_steps": None if ver is None else ver.get("mean_abs_diff_steps"),
        "sqnr_db": None if ver is None else ver.get("sqnr_db"),
        "informative": None if ver is None else ver.get("informative", True),
        "not_run": None if ver is None else ver.get("not_run"),
        "text": verification_text(ver, min_top1, min_sqnr_db),
    }


def check_gates(ver: dict[str, Any] | None, min_top1: float | None, min_sqnr_db: float | None,
                what_top1: str, what_sqnr: str) -> None:
    """VerificationError (exit 5) unless the verification shows what the gates ask for.

    A gate that cannot be checked fails too: a skipped or not run verification, no output with class
    scores, a top-1 class that never changed over the check inputs, a constant reference output.
    """
    from ..core.errors import VerificationError

    for limit, what in ((min_top1, what_top1), (min_sqnr_db, what_sqnr)):
        if limit is None:
            continue
        if ver is None:
            raise VerificationError(f"{what} {limit:g} needs the LiteRT verification, which was skipped")
        if ver.get("not_run"):
            raise VerificationError(f"cannot check {what} {limit:g}: verification not run: {ver['not_run']} "
                                    "(LiteRT has no kernel for it)")
    if min_top1 is not None:
        assert ver is not None
        top1 = ver.get("top1_agreement")
        if top1 is None or ver.get("top1_not_measurable"):
            raise VerificationError(f"cannot check {what_top1} {min_top1:g}: top-1 agreement is not measurable: "
                                    f"{ver.get('top1_not_measurable')} (on {_inputs(ver)})")
        if top1 < min_top1:
            raise VerificationError(f"top-1 agreement {top1:.3f} of the reclustered model with the model it came from "
                                    f"is below {what_top1} {min_top1:g} ({figures_text(ver)} on {_inputs(ver)})")
    if min_sqnr_db is not None:
        assert ver is not None
        flat = [o for o in ver.get("outputs", []) if not o.get("informative")]
        if flat or not ver.get("outputs"):
            names = ", ".join(f"'{o['name']}'" for o in flat) or "-"
            raise VerificationError(f"cannot check {what_sqnr} {min_sqnr_db:g}: the SQNR of output(s) {names} is not "
                                    f"measurable: the reference output did not vary (on {_inputs(ver)})")
        sqnr = ver.get("sqnr_db")
        if sqnr is not None and sqnr < min_sqnr_db:
            raise VerificationError(f"output SQNR {sqnr:.1f} dB of the reclustered model is below {what_sqnr} "
                                    f"{min_sqnr_db:g} dB ({figures_text(ver)} on {_inputs(ver)})")
