"""Number formatting and plain-text tables shared by the terminal summary, report.md and the dashboards."""
from __future__ import annotations

from ..core.escape import terminal_text

# ----------------------------------------------------------------------------- formatting


def fmt_int(n: int | None) -> str:
    return "-" if n is None else f"{n:,}"


def fmt_pct(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:.2f}%"


def fmt_ratio(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def fmt_us(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1e6:,.1f}"



def table(header: list[str], rows: list[list[str]], right: set[int] | None = None) -> str:
    """A plain-text table for the terminal; columns in ``right`` are right-aligned. Every cell goes through
    the terminal escaper: cells may come from a report.json written anywhere (an ESC in a label)."""
    right = right or set()
    header = [terminal_text(h) for h in header]
    rows = [[terminal_text(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]

    def fmt(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return "\n".join([fmt(header), "  ".join("-" * w for w in widths), *(fmt(r) for r in rows)])
