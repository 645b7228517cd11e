"""How faithful the reclustered model is to the model it came from, in words: one wording for the
recluster command, the deploy summary, report.json, report.md and the dashboards.

Works on the verification as JSON (``Verification.to_json``): agreement, output difference in
output steps and SQNR per output, and whether the reference outputs varied at all. A check whose
reference outputs did not vary is "not informative" and never shown as a lossless-looking figure.
"""
from __future__ import annotations

from enum import Enum
from typing import Any

from .formatting import fmt_ratio

WARN_BELOW_TOP1 = 0.99  # below this top-1 agreement, every view warns (and the dashboard marks it red)
NOT_INFORMATIVE_HINT = ("give representative inputs so the check compares something: recluster --calibration "
                        "FILE.npz, deploy --data DATA")


class Fidelity(Enum):
    OK = "ok"
    LOW = "low"  # top-1 agreement below WARN_BELOW_TOP1 (or below the gate)
    NOT_INFORMATIVE = "not_informative"  # the reference outputs did not vary: nothing was compared
    UNCHECKED = "unchecked"  # no verification ran


def fidelity_of(ver: dict[str, Any] | None, min_top1: float | None = None) -> Fidelity:
    if ver is None:
        return Fidelity.UNCHECKED
    if not ver.get("informative", True):
        return Fidelity.NOT_INFORMATIVE
    top1 = ver.get("top1_agreement")
    limit = max(WARN_BELOW_TOP1, min_top1) if min_top1 is not None else WARN_BELOW_TOP1
    if top1 is not None and top1 < limit:
        return Fidelity.LOW
    return Fidelity.OK


def _inputs(ver: dict[str, Any]) -> str:
    n = ver["samples"]
    if ver.get("stateful"):
        return f"a stream of {n} invocations ({ver['inputs']}), state carried"
    return f"{n} inputs ({ver['inputs']})"


def _sqnr(x: float | None) -> str:
    return "identical" if x is None else f"{x:.1f} dB"


def figures_text(ver: dict[str, Any]) -> str:
    """'top-1 agreement 0.875, max 74 / mean 3.21 output steps, SQNR 18.3 dB' (no verdict)."""
    top1 = ver.get("top1_agreement")
    parts = [] if top1 is None else [f"top-1 agreement {fmt_ratio(top1)}"]
    parts.append(f"max {ver['max_abs_diff_steps']:g} / mean {ver['mean_abs_diff_steps']:.2f} output steps")
    if "sqnr_db" in ver:
        parts.append(f"SQNR {_sqnr(ver['sqnr_db'])}")
    return ", ".join(parts)


def not_informative_text(ver: dict[str, Any]) -> str:
    names = [o["name"] for o in ver.get("outputs", []) if not o.get("informative", True)]
    which = f"output(s) {', '.join(repr(n) for n in names)}" if names else "the outputs"
    return (f"not informative: {which} of the original model did not vary on {_inputs(ver)}, so no difference "
            f"could show; {NOT_INFORMATIVE_HINT}")


def verification_text(ver: dict[str, Any] | None, min_top1: float | None = None) -> str:
    """One line for a person: the figures and the inputs, or why they mean nothing, plus a warning when low."""
    if ver is None:
        return "not verified"
    state = fidelity_of(ver, min_top1)
    if state is Fidelity.NOT_INFORMATIVE:
        return not_informative_text(ver)
    text = f"{figures_text(ver)} on {_inputs(ver)}"
    warning = fidelity_warning(ver, min_top1)
    return f"{text}. WARNING: {warning}" if warning else text


def fidelity_warning(ver: dict[str, Any] | None, min_top1: float | None = None) -> str | None:
    state = fidelity_of(ver, min_top1)
    if state is Fidelity.NOT_INFORMATIVE:
        return not_informative_text(ver)  # type: ignore[arg-type]
    if state is Fidelity.LOW:
        top1 = ver["top1_agreement"]  # type: ignore[index]
        gate = f" (gate: {min_top1:g})" if min_top1 is not None and top1 < min_top1 else ""
        return (f"the reclustered model agrees with the model it came from on only {fmt_ratio(top1)} of top-1 "
                f"answers (below {WARN_BELOW_TOP1:g}){gate}; max difference {ver['max_abs_diff_steps']:g} "  # type: ignore[index]
                "output steps: check accuracy with data, or raise K")
    return None


def fidelity_section(ver: dict[str, Any] | None, min_top1: float | None) -> dict[str, Any]:
    """report.json's ``fidelity``: after vs before in one place, with the verdict and the gate."""
    return {
        "status": fidelity_of(ver, min_top1).value,
        "warn_below_top1": WARN_BELOW_TOP1,
        "min_top1_agreement": min_top1,
        "top1_agreement": None if ver is None else ver.get("top1_agreement"),
        "max_abs_diff_steps": None if ver is None else ver.get("max_abs_diff_steps"),
        "mean_abs_diff_steps": None if ver is None else ver.get("mean_abs_diff_steps"),
        "sqnr_db": None if ver is None else ver.get("sqnr_db"),
        "informative": None if ver is None else ver.get("informative", True),
        "text": verification_text(ver, min_top1),
    }


def check_top1_gate(ver: dict[str, Any] | None, min_top1: float | None, what: str) -> None:
    """VerificationError (exit 5) unless the verification shows top-1 agreement >= ``min_top1``.

    A gate that cannot be checked fails too: a skipped or not informative verification, or a model
    without a class axis, proves nothing about agreement.
    """
    from ..core.errors import VerificationError

    if min_top1 is None:
        return
    if ver is None:
        raise VerificationError(f"{what} {min_top1:g} needs the LiteRT verification, which was skipped")
    if not ver.get("informative", True):
        raise VerificationError(f"cannot check {what} {min_top1:g}: the verification is {not_informative_text(ver)}")
    top1 = ver.get("top1_agreement")
    if top1 is None:
        raise VerificationError(f"cannot check {what} {min_top1:g}: no output of the model has a class axis "
                                f"({figures_text(ver)})")
    if top1 < min_top1:
        raise VerificationError(f"top-1 agreement {top1:.3f} of the reclustered model with the model it came from is "
                                f"below {what} {min_top1:g} ({figures_text(ver)} on {_inputs(ver)})")
