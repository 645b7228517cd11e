"""Sweeps: many deploy builds (K x targets) gathered into a Pareto table and plot.

``make sweep`` runs ``toolchain deploy`` once per K (in parallel with ``make -j``,
each into its own build directory) and then ``toolchain report --sweep`` over
those directories. Each report.json gives up to three points per target: the
reclustered model at that K, and the plain int8 and tfmot-flow models it is
compared with (identical models, found by their sha256, count once). A point
is Pareto-optimal within its target when no other point of that target is at
least as accurate with no more flash and no more cycles, and better in one of
them (accuracy is left out when a point has none). Writes ``pareto.json``,
``pareto.md`` and ``pareto.png`` (matplotlib, when installed).
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..core.errors import InputError
from ..core.escape import markdown_cell, markdown_text
from ..core.fileio import (
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    read_input_bytes,
)
from ..core.paths import check_paths
from ..core.schemas import parse_json, validate
from .formatting import fmt_int, fmt_pct
from .report import REPORT_JSON, Variant
from .report import SCHEMA_VERSION as SCHEMA_VERSION_OF_REPORTS

PARETO_JSON = "pareto.json"
PARETO_MD = "pareto.md"
PARETO_PNG = "pareto.png"
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class SweepPoint:
    target: str
    model: str
    variant: str  # plain, before, after
    clusters: int | None  # K of the build (None for plain int8, which has no K)
    accuracy: float | None
    flash_bytes: int
    cycles_total: int
    sram_bytes: int
    encoded_weight_bytes: int
    deflate_bytes: int
    sha256: str
    report: str  # the report.json it came from
    pareto: bool = False
    label: str = ""  # the variant as the report names it, e.g. "before (input)"


def find_reports(dirs: list[str | os.PathLike[str]]) -> list[Path]:
    """Every <target>/report/report.json under the given build directories, sorted."""
    found: list[Path] = []
    for d in dirs:
        p = Path(d)
        if not p.is_dir():
            raise InputError(f"sweep directory not found: {p}")
        hits = sorted(x for x in p.rglob(REPORT_JSON) if x.parent.name == "report")
        if not hits:
            raise InputError(f"no report.json under {p}: run 'toolchain deploy --build-dir {p}' first")
        found += hits
    return found


def load_report(path: Path) -> dict[str, Any]:
    """A report.json, which may come from anywhere (a downloaded CI artifact): parsed with the checks of
    ``parse_json`` (digits, surrogates, nesting), then validated strictly against report.schema.json (names
    that become links match the profile-name pattern, labels are printable, lengths and integers bounded)."""
    doc = parse_json(read_input_bytes(path, "report"), str(path))
    if isinstance(doc, dict) and doc.get("schema_version") != SCHEMA_VERSION_OF_REPORTS:
        raise InputError(f"{path} has schema_version {doc.get('schema_version')!r}, this toolchain writes "
                         f"{SCHEMA_VERSION_OF_REPORTS}: run 'toolchain deploy' again for that build")
    validate(doc, "report", str(path))
    return doc


def collect_points(paths: list[Path], base: Path | None = None) -> list[SweepPoint]:
    points: dict[tuple[str, str, str], SweepPoint] = {}
    for path in paths:
        doc = load_report(path)
        rel = os.path.relpath(path, base) if base is not None else str(path)
        for v in Variant:
            m = doc["models"][v.value]
            if m is None:
                continue
            key = (doc["target"]["name"], v.value, m["sha256"])
            if key in points:
                continue
            points[key] = SweepPoint(
                target=doc["target"]["name"], model=doc["model"], variant=v.value, label=m["short_label"],
                clusters=_clusters_of(doc, v), accuracy=m["accuracy"],
                flash_bytes=m["flash_bytes"], cycles_total=m["cycles_total"], sram_bytes=m["sram_bytes"],
                encoded_weight_bytes=m["encoded_weight_bytes"], deflate_bytes=m["deflate_bytes"], sha256=m["sha256"],
                report=rel,
            )
    order = {v.value: i for i, v in enumerate(Variant)}
    return sorted(points.values(), key=lambda p: (p.target, order[p.variant], p.clusters or 0, p.sha256))


def _clusters_of(doc: dict[str, Any], v: Variant) -> int | None:
    """K of a model: the recluster K for after, the fine-tune K for before; none for plain int8 or a given .tflite."""
    if v is Variant.AFTER:
        return doc["clusters"]
    if v is Variant.BEFORE and doc["finetune"] is not None:
        return doc["finetune"]["clusters"]
    return None


def _dominates(a: SweepPoint, b: SweepPoint, use_accuracy: bool) -> bool:
    ge = [a.flash_bytes <= b.flash_bytes, a.cycles_total <= b.cycles_total]
    gt = [a.flash_bytes < b.flash_bytes, a.cycles_total < b.cycles_total]
    if use_accuracy:
        ge.append(a.accuracy >= b.accuracy)  # type: ignore[operator]
        gt.append(a.accuracy > b.accuracy)  # type: ignore[operator]
    return all(ge) and any(gt)


def mark_pareto(points: list[SweepPoint]) -> list[SweepPoint]:
    from dataclasses import replace

    out = []
    for p in points:
        same = [q for q in points if q.target == p.target]
        use_acc = all(q.accuracy is not None for q in same)
        dominated = any(_dominates(q, p, use_acc) for q in same if q is not p)
        out.append(replace(p, pareto=not dominated))
    return out


def pareto_document(points: list[SweepPoint]) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "objectives": {"accuracy": "max (when every point of the target has one)", "flash_bytes": "min",
                       "cycles_total": "min"},
        "points": [asdict(p) for p in points],
    }


def pareto_markdown(points: list[SweepPoint]) -> str:
    lines = ["# Sweep: accuracy against flash and cycles", "",
             ("Pareto-optimal points (per target: no other point is at least as accurate with no more flash and no "
              "more cycles, and better in one) are marked **yes**."), ""]
    for target in sorted({p.target for p in points}):
        lines += [f"## {markdown_text(target)}", "",
                  ("| model | K | accuracy | flash: compiled model file (bytes) | cycles | SRAM (bytes) | "
                   "encoded weights (bytes) | deflate size (bytes) | Pareto |"), "|---|---|---|---|---|---|---|---|---|"]
        for p in (q for q in points if q.target == target):
            lines.append(f"| {markdown_cell(p.label)} | {p.clusters if p.clusters is not None else '-'} | "
                         f"{fmt_pct(p.accuracy)} | {fmt_int(p.flash_bytes)} | {fmt_int(p.cycles_total)} | "
                         f"{fmt_int(p.sram_bytes)} | {fmt_int(p.encoded_weight_bytes)} | {fmt_int(p.deflate_bytes)} | "
                         f"{'**yes**' if p.pareto else 'no'} |")
        lines.append("")
    return "\n".join(lines)


def pareto_png(points: list[SweepPoint]) -> bytes | None:
    """Accuracy against flash and against cycles (cycles against flash without accuracy); None without matplotlib."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import io

    import matplotlib.pyplot as plt

    has_acc = any(p.accuracy is not None for p in points)
    targets = sorted({p.target for p in points})
    colors = plt.get_cmap("tab10")
    markers = {"plain": "^", "before": "s", "after": "o"}
    flash = ("flash_bytes", "flash: compiled model file (bytes)")
    axes_spec = [flash, ("cycles_total", "cycles per inference")] if has_acc else [flash]
    fig, axes = plt.subplots(1, len(axes_spec), figsize=(6.0 * len(axes_spec), 4.6), squeeze=False)
    for ax, (xkey, xlabel) in zip(axes[0], axes_spec):
        for ti, target in enumerate(targets):
            color = colors(ti % 10)
            mine = [p for p in points if p.target == target and (not has_acc or p.accuracy is not None)]
            for variant, marker in markers.items():
                pts = [p for p in mine if p.variant == variant]
                if not pts:
                    continue
                xs = [getattr(p, xkey) for p in pts]
                ys = [p.accuracy * 100 if has_acc else p.cycles_total for p in pts]  # type: ignore[operator]
                ax.scatter(xs, ys, marker=marker, color=color, s=40, zorder=3,
                           label=f"{target}, {pts[0].label}")
                for p, x, y in zip(pts, xs, ys):
                    if p.pareto:
                        ax.scatter([x], [y], marker="o", s=160, facecolors="none", edgecolors="black", zorder=4)
                    if p.clusters is not None and variant == "after":
                        ax.annotate(f"K={p.clusters}", (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
            front = sorted((p for p in mine if p.pareto and p.variant == "after"), key=lambda p: getattr(p, xkey))
            if len(front) > 1:
                ax.plot([getattr(p, xkey) for p in front],
                        [p.accuracy * 100 if has_acc else p.cycles_total for p in front],  # type: ignore[operator]
                        color=color, linewidth=1, alpha=0.6)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("accuracy (top-1, %)" if has_acc else "cycles per inference")
        ax.grid(True, alpha=0.3)
    axes[0][0].legend(fontsize=7, loc="best")
    fig.suptitle("Sweep: Pareto-optimal points circled")
    fig.tight_layout()
    buf = io.BytesIO()
    # no "Software" entry: the PNG stays byte-identical for the same figures
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


@dataclass(frozen=True)
class SweepOutcome:
    points: tuple[SweepPoint, ...]
    files: tuple[Path, ...]
    plot_note: str | None


def write_sweep(dirs: list[str | os.PathLike[str]], out_dir: str | os.PathLike[str]) -> SweepOutcome:
    """The Pareto files of every report.json under the build directories ``dirs``."""
    return write_pareto(find_reports(dirs), out_dir)


def write_pareto(reports: list[Path], out_dir: str | os.PathLike[str]) -> SweepOutcome:
    """The Pareto files of exactly these report.json files (a sweep driver knows which points it ran).

    Order matters: a model found in several reports (the same plain int8 at every K) names the first."""
    out = Path(out_dir)
    check_paths(inputs=reports, outputs=[out / PARETO_JSON, out / PARETO_MD, out / PARETO_PNG], output_dirs=[out])
    points = mark_pareto(collect_points(reports, base=out))
    files = [atomic_write_json(out / PARETO_JSON, pareto_document(points)),
             atomic_write_text(out / PARETO_MD, pareto_markdown(points))]
    png = pareto_png(points)
    note = None
    if png is None:
        note = "matplotlib is not installed (pip install -e '.[report]'): pareto.png not written"
    else:
        files.append(atomic_write_bytes(out / PARETO_PNG, png))
    return SweepOutcome(tuple(points), tuple(files), note)
