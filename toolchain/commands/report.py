"""``toolchain report DIR`` (a build's reports) and ``toolchain report --sweep DIR... -o DIR`` (a sweep's Pareto table)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..core.escape import terminal_text
from .common import add_output_options, say

HELP = "show and re-render a deploy build's reports and dashboards, or summarise a sweep (--sweep)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dirs", nargs="+", metavar="DIR",
                   help="a model's build directory (build/<model>), or with --sweep the build directories of the cells")
    p.add_argument("--sweep", action="store_true",
                   help="gather every report.json under DIR... into pareto.json, pareto.md and pareto.png")
    p.add_argument("-o", "--output-dir", metavar="DIR", help="with --sweep: where the Pareto files go (default: the first DIR's parent)")
    add_output_options(p, "print JSON instead of tables")


def _show_build(directory: Path, args: argparse.Namespace) -> int:
    from ..core.errors import InputError
    from ..core.fileio import atomic_write_text
    from ..core.paths import refuse_links
    from ..reporting.dashboard import (
        INDEX_HTML,
        render_combined_page,
        render_target_page,
    )
    from ..reporting.formatting import fmt_int, fmt_pct, fmt_us, table
    from ..reporting.history import HISTORY, read_history
    from ..reporting.markdown import report_markdown
    from ..reporting.report import REPORT_MD, Variant
    from ..reporting.sweep import find_reports, load_report

    if not directory.is_dir():
        raise InputError(f"build directory not found: {directory}")
    refuse_links(directory, "toolchain report", include_root=False)  # its pages are rewritten below DIR
    paths = find_reports([directory])
    docs = [load_report(p) for p in paths]
    models = {d["model"] for d in docs}
    if len(models) != 1:
        raise InputError(f"{directory} holds reports of several models ({', '.join(sorted(models))}): "
                         "give one model's directory, build/<model>")
    history = read_history(directory / HISTORY)
    # Re-render from report.json and the history: the same bytes as the deploy that wrote them,
    # or the current renderer's output after an upgrade.
    for path, doc in zip(paths, docs):
        atomic_write_text(path.parent / REPORT_MD, report_markdown(doc))
        atomic_write_text(path.parent / INDEX_HTML, render_target_page(doc, history))
    atomic_write_text(directory / INDEX_HTML, render_combined_page(docs[0]["model"], docs, history))
    if args.json:
        print(json.dumps({"model": docs[0]["model"], "reports": docs, "builds": len(history)}, indent=2, sort_keys=True))
        return 0
    rows = []
    for d in docs:
        estimate = d["target"]["estimate_kind"] != "vela"
        for v in Variant:
            m = d["models"][v.value]
            if m is not None:
                rows.append([d["target"]["name"] + (" *" if estimate else ""), str(d["clusters"]), m["short_label"],
                             fmt_pct(m["accuracy"]), fmt_int(m["deflate_bytes"]), fmt_int(m["flash_bytes"]),
                             fmt_int(m["sram_bytes"]), fmt_int(m["cycles_total"]), fmt_us(m["inference_time_s"]),
                             "yes" if m["within_budget"] else "NO"])
    lines = [table(["target", "K", "model", "accuracy", "deflate B", "flash: compiled file B", "SRAM B", "cycles", "time us", "fits"],
                   rows, right={1, 3, 4, 5, 6, 7, 8})]
    from ..reporting.markdown import label_of

    for label in dict.fromkeys(label_of(d) for d in docs if d["target"]["estimate_kind"] != "vela"):
        lines.append(f"* Ethos-N78 {label}: not a compile")
    lines.append(terminal_text(f"{len(history)} build(s) in {directory / HISTORY}; dashboard: {directory / INDEX_HTML}"))
    say(args, "\n".join(lines))
    return 0


def run(args: argparse.Namespace) -> int:
    from ..core.errors import InputError

    if not args.sweep:
        if args.output_dir:
            raise InputError("-o/--output-dir goes with --sweep")
        if len(args.dirs) != 1:
            raise InputError("give one build directory (build/<model>), or use --sweep for several")
        return _show_build(Path(args.dirs[0]), args)

    from ..reporting.formatting import fmt_int, fmt_pct
    from ..reporting.sweep import pareto_document, write_sweep

    out = Path(args.output_dir) if args.output_dir else Path(args.dirs[0]).resolve().parent
    outcome = write_sweep(args.dirs, out)
    if args.json:
        print(json.dumps(pareto_document(list(outcome.points)), indent=2, sort_keys=True))
    else:
        from ..reporting.formatting import table

        rows = [[p.target, p.label, "-" if p.clusters is None else str(p.clusters), fmt_pct(p.accuracy),
                 fmt_int(p.flash_bytes), fmt_int(p.cycles_total), "yes" if p.pareto else ""] for p in outcome.points]
        say(args, table(["target", "model", "K", "accuracy", "flash: compiled file B", "cycles", "Pareto"], rows, right={2, 3, 4, 5})
            + "\n" + terminal_text("wrote " + ", ".join(str(f) for f in outcome.files)))
    if outcome.plot_note and not args.quiet:
        import sys

        print(f"note: {outcome.plot_note}", file=sys.stderr)
    return 0
