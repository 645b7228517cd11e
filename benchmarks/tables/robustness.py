"""Fuzzing (benchmarks/fuzz_models.py) and the bad-input cases (benchmarks/bad_inputs_table.py)."""
from __future__ import annotations

from .markdown import Doc, cell, table

# --------------------------------------------------------------------------- fuzzing


def fuzz_figures(doc: Doc) -> str:
    """The long fuzzing campaign in one row."""
    outcomes = ", ".join(f"{'accepted by every stage' if k == 'ok' else k} {v:,}"
                         for k, v in sorted(doc["outcomes"].items(), key=lambda kv: -kv[1]))
    order = {s: i for i, s in enumerate(doc["stages"])}
    stages = ", ".join(f"{k} {v:,}"
                       for k, v in sorted(doc["ended_at_stage"].items(), key=lambda kv: order.get(kv[0], len(order))))
    s = doc["slowest_case"]
    slowest = f"{s['time_s']:.2f} s ({'accepted' if s['outcome'] == 'ok' else s['outcome']}, at {s['stage']})"
    seeds = doc["cases"] - doc["mutated_cases"]
    return table(
        ["cases", "outcomes", "ended at stage", "slowest case", "peak RSS", "findings", "time"],
        [[f"{doc['mutated_cases']:,} mutated + {seeds} seeds", outcomes, stages, slowest,
          f"{doc['peak_rss_bytes'] / 2**20:.0f} MiB", str(len(doc["findings"])),
          f"{doc['elapsed_s']:.0f} s ({doc['cases_per_s']} cases/s)"]])


def fuzz_input_figures(doc: Doc) -> str:
    """The campaign's second part: names, paths, profiles and configs (results written before it: a note)."""
    inputs = doc.get("inputs")
    if not inputs:
        return "_Not in the latest results: rerun `benchmarks/fuzz_models.py`._"
    outcomes = ", ".join(f"{'accepted' if k == 'ok' else k} {v:,}"
                         for k, v in sorted(inputs["outcomes"].items(), key=lambda kv: -kv[1]))
    s = inputs["slowest_case"]
    return table(
        ["cases", "families", "outcomes", "slowest case", "findings", "time"],
        [[f"{inputs['cases']:,}", ", ".join(f"{k} {v:,}" for k, v in inputs["by_family"].items()), outcomes,
          f"{s['time_s']:.2f} s ({s['family']})", str(len(inputs["findings"])), f"{inputs['elapsed_s']:.0f} s"]])


def fuzz_summary_line(doc: Doc) -> str:
    """The README's robustness line: how the campaign's cases ended, stage by stage, and its findings.

    Every case (the unmutated seeds too) counts once in ``ended_at_stage``; an accepted case counts at
    the last stage, so the typed-error stops there are that count less the accepted ones.
    """
    stages, accepted = doc["stages"], doc["outcomes"].get("ok", 0)
    stopped = dict(doc["ended_at_stage"])
    stopped[stages[-1]] = stopped.get(stages[-1], 0) - accepted
    for f in doc["findings"]:
        stopped[f["stage"]] -= 1
    findings = {f["outcome"] for f in doc["findings"]}
    errors = sorted(((k, v) for k, v in doc["outcomes"].items() if k != "ok" and k not in findings),
                    key=lambda kv: -kv[1])
    where = ", ".join(f"{s} {stopped[s]:,}" for s in stages if stopped.get(s))
    typed = ", ".join(f"{k} {v:,}" for k, v in errors)
    seeds = doc["cases"] - doc["mutated_cases"]
    return (f"- **Robustness:** {doc['cases']:,} fuzzing cases ({doc['mutated_cases']:,} mutated models and the "
            f"{seeds} unmutated seeds) through {', '.join(stages[:-1])} and {stages[-1]}: {accepted:,} accepted by "
            f"every stage, {sum(v for _, v in errors):,} stopped by a typed error ({typed}; at {where}), "
            f"{len(doc['findings'])} crashes, hangs or untyped errors ([robustness](docs/robustness.md)).")


# --------------------------------------------------------------------------- bad inputs


def bad_inputs_table(doc: Doc) -> str:
    """Each case of tests/test_bad_inputs.py as run by benchmarks/bad_inputs_table.py: command, exit, message."""
    rows = []
    for c in doc["cases"]:
        if c["exit_code"] == 0:
            seen = f"accepted: {c['note']}" if c["note"] else "accepted"
        else:
            seen = f"`{cell(c['error_line'])}`" + (f" ({cell(c['note'])})" if c["note"] else "")
        rows.append([f"`{c['id']}`", cell(c["what"]), f"`{cell(c['command'])}`", str(c["exit_code"]), seen])
    return table(["case", "input", "command", "exit", "what the user sees"], rows)
