"""The Markdown pieces every table module shares: the table itself, cell escaping, number formats."""
from __future__ import annotations

from typing import Any

Doc = dict[str, Any]  # a results JSON document (or a part of one)


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def kib(n: int | None) -> str:
    return "-" if n is None else f"{n / 1024:,.1f}"


def mcycles(n: int | None) -> str:
    return "-" if n is None else f"{n / 1e6:.3f}"


def span(values: list[float], fmt: str) -> str:
    """'a' or 'a-b' for the smallest and largest value ('a to b' when signs are shown)."""
    lo, hi = format(min(values), fmt), format(max(values), fmt)
    sep = " to " if fmt.startswith("+") or min(values) < 0 else "-"
    return lo if lo == hi else f"{lo}{sep}{hi}"


def machine_text(doc: Doc) -> str:
    m = doc.get("machine", {})
    text = f"{m.get('cpus', '?')} cores, Python {m.get('python', '?')}"
    if "load_average_start" in m:
        text += f", load average {m['load_average_start'][0]:.1f} at the start"
    return text


def pct(x: float) -> str:
    return f"{100 * x:.2f}%"
