"""Inline SVG charts for the dashboards: horizontal bars, grouped bars, lines.

Drawn here as text (no JavaScript, no library, nothing fetched), with fixed
number formatting, so a page is self-contained and byte-identical for the same
figures. Every mark carries a ``<title>`` (the browser's tooltip) with its value.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

# SVG is XML: names from models reach it through the XML sink only
from ..core.escape import xml_text as escape

FONT = "font-family:system-ui,-apple-system,'Segoe UI',Helvetica,Arial,sans-serif"
LABEL_W = 170
VALUE_W = 110
BAR_H = 18
GAP = 6


def fmt_number(x: float | None) -> str:
    if x is None:
        return "n/a"
    if float(x).is_integer() and abs(x) >= 1:
        return f"{int(x):,}"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.4g}"


def _px(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".")


@dataclass(frozen=True)
class Series:
    name: str
    key: str  # CSS-safe identifier (data-series)
    color: str
    values: tuple[float | None, ...]
    dashed: bool = False


def _header(width: float, height: float, title: str, unit: str) -> list[str]:
    return [
        (f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{_px(width)}" height="{_px(height)}" '
         f'viewBox="0 0 {_px(width)} {_px(height)}" role="img" aria-label="{escape(title)}" style="{FONT}">'),
        f'<text x="0" y="16" font-size="14" font-weight="600" fill="#222">{escape(title)}'
        + (f' <tspan font-weight="400" fill="#666">({escape(unit)})</tspan>' if unit else "") + "</text>",
    ]


def bar_chart(title: str, unit: str, bars: Sequence[tuple[str, str, str, float | None]], width: float = 520,
              fmt: Callable[[float | None], str] = fmt_number) -> str:
    """One horizontal bar per (label, key, color, value); missing values are marked, not drawn."""
    top = 28
    height = top + len(bars) * (BAR_H + GAP) + 4
    plot_w = width - LABEL_W - VALUE_W
    vmax = max((v for *_, v in bars if v is not None), default=0) or 1
    out = _header(width, height, title, unit)
    for i, (label, key, color, value) in enumerate(bars):
        y = top + i * (BAR_H + GAP)
        out.append(f'<text x="{LABEL_W - 8}" y="{_px(y + BAR_H - 5)}" font-size="12" text-anchor="end" fill="#333">'
                   f"{escape(label)}</text>")
        if value is None:
            out.append(f'<text x="{LABEL_W}" y="{_px(y + BAR_H - 5)}" font-size="12" fill="#999">n/a</text>')
            continue
        w = plot_w * value / vmax
        out.append(f'<rect class="bar" data-series="{escape(key)}" data-value="{escape(fmt(value))}" x="{LABEL_W}" '
                   f'y="{_px(y)}" width="{_px(w)}" height="{BAR_H}" fill="{color}">'
                   f"<title>{escape(label)}: {escape(fmt(value))} {escape(unit)}</title></rect>")
        out.append(f'<text x="{_px(LABEL_W + w + 6)}" y="{_px(y + BAR_H - 5)}" font-size="12" fill="#222">'
                   f"{escape(fmt(value))}</text>")
    out.append("</svg>")
    return "\n".join(out)


def grouped_bar_chart(title: str, unit: str, categories: Sequence[str], series: Sequence[Series],
                      width: float = 760, fmt: Callable[[float | None], str] = fmt_number) -> str:
    """Per category, one horizontal bar per series (e.g. per layer: plain, before, after)."""
    top = 28 + 20  # title, legend
    group_h = len(series) * (BAR_H - 4) + GAP * 2
    height = top + len(categories) * group_h + 4
    plot_w = width - LABEL_W - VALUE_W
    vmax = max((v for s in series for v in s.values if v is not None), default=0) or 1
    out = _header(width, height, title, unit)
    out += _legend(series, y=32)
    bh = BAR_H - 4
    for c, cat in enumerate(categories):
        y0 = top + c * group_h
        out.append(f'<text x="{LABEL_W - 8}" y="{_px(y0 + group_h / 2 + 2)}" font-size="12" text-anchor="end" '
                   f'fill="#333">{escape(_clip(cat, 26))}<title>{escape(cat)}</title></text>')
        for j, s in enumerate(series):
            v = s.values[c] if c < len(s.values) else None
            y = y0 + GAP + j * bh
            if v is None:
                continue
            w = plot_w * v / vmax
            out.append(f'<rect class="bar" data-series="{escape(s.key)}" data-value="{escape(fmt(v))}" '
                       f'x="{LABEL_W}" y="{_px(y)}" width="{_px(w)}" height="{bh - 1}" fill="{s.color}">'
                       f"<title>{escape(cat)}, {escape(s.name)}: {escape(fmt(v))} {escape(unit)}</title></rect>")
            out.append(f'<text x="{_px(LABEL_W + w + 4)}" y="{_px(y + bh - 4)}" font-size="10" fill="#444">'
                       f"{escape(fmt(v))}</text>")
    out.append("</svg>")
    return "\n".join(out)


def line_chart(title: str, unit: str, x_labels: Sequence[str], series: Sequence[Series], width: float = 760,
               height: float = 240, x_titles: Sequence[str] | None = None,
               fmt: Callable[[float | None], str] = fmt_number) -> str:
    """Values over builds; a single build shows as points."""
    left, right, top, bottom = 80, 20, 52, 36
    plot_w, plot_h = width - left - right, height - top - bottom
    vals = [v for s in series for v in s.values if v is not None]
    ticks = nice_ticks(min(vals, default=0.0), max(vals, default=1.0))
    lo, hi = ticks[0], ticks[-1]
    n = len(x_labels)

    def xy(i: int, v: float) -> tuple[float, float]:
        x = left + (plot_w * (i + 0.5) / n if n else 0)
        y = top + plot_h * (1 - (v - lo) / ((hi - lo) or 1))
        return x, y

    out = _header(width, height, title, unit)
    out += _legend(series, y=32)
    out.append(f'<rect x="{left}" y="{top}" width="{_px(plot_w)}" height="{_px(plot_h)}" fill="#fafafa" '
               'stroke="#ddd"/>')
    for v in ticks:
        _, y = xy(0, v)
        out.append(f'<line x1="{left}" x2="{_px(left + plot_w)}" y1="{_px(y)}" y2="{_px(y)}" stroke="#eee"/>')
        out.append(f'<text x="{left - 6}" y="{_px(y + 4)}" font-size="10" text-anchor="end" fill="#666">'
                   f"{escape(fmt(v))}</text>")
    step = max(1, n // 12)
    for i, lab in enumerate(x_labels):
        if i % step == 0 or i == n - 1:
            x, _ = xy(i, lo)
            out.append(f'<text x="{_px(x)}" y="{_px(top + plot_h + 16)}" font-size="10" text-anchor="middle" '
                       f'fill="#666">{escape(lab)}</text>')
    for s in series:
        pts = [(i, v) for i, v in enumerate(s.values) if v is not None]
        runs: list[list[tuple[int, float]]] = []  # a build without the figure breaks the line
        for i, v in pts:
            if runs and runs[-1][-1][0] == i - 1:
                runs[-1].append((i, v))
            else:
                runs.append([(i, v)])
        for run in runs:
            if len(run) < 2:
                continue
            path = " ".join(f"{_px(xy(i, v)[0])},{_px(xy(i, v)[1])}" for i, v in run)
            dash = ' stroke-dasharray="6 4"' if s.dashed else ""
            out.append(f'<polyline class="line" data-series="{escape(s.key)}" points="{path}" fill="none" '
                       f'stroke="{s.color}" stroke-width="2"{dash}/>')
        for i, v in pts:
            x, y = xy(i, v)
            when = x_titles[i] if x_titles else x_labels[i]
            out.append(f'<circle class="point" data-series="{escape(s.key)}" cx="{_px(x)}" cy="{_px(y)}" r="4" '
                       f'fill="{s.color}"><title>{escape(s.name)}, {escape(when)}: {escape(fmt(v))} '
                       f"{escape(unit)}</title></circle>")
    out.append("</svg>")
    return "\n".join(out)


def nice_ticks(vmin: float, vmax: float, count: int = 5) -> list[float]:
    """Round axis ticks (steps of 1, 2, 2.5 or 5 x 10^n) covering [vmin, vmax]; from 0 when that wastes little."""
    if vmin >= 0 and vmin < 0.5 * vmax:
        vmin = 0.0
    span = vmax - vmin
    if span <= 0:
        span = abs(vmax) * 0.1 or 1.0
        vmin, vmax = vmin - span / 2, vmax + span / 2
    raw = span / (count - 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw * (1 - 1e-9))
    start = math.floor(vmin / step + 1e-9) * step
    ticks = [start]
    while ticks[-1] < vmax - 1e-9 * step:
        ticks.append(start + len(ticks) * step)
    return [round(t, 10) for t in ticks]


def _legend(series: Sequence[Series], y: float) -> list[str]:
    out, x = [], 0.0
    for s in series:
        out.append(f'<rect x="{_px(x)}" y="{_px(y)}" width="12" height="12" fill="{s.color}"/>')
        out.append(f'<text x="{_px(x + 16)}" y="{_px(y + 10)}" font-size="12" fill="#333">{escape(s.name)}</text>')
        x += 28 + 7 * len(s.name)
    return out


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else "…" + text[-(n - 1):]
