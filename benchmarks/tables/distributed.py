"""Beyond one machine: the sweep on the default executor and on Ray (benchmarks/sweep_executors.py), the
clustering fine-tune under tf.distribute strategies (benchmarks/finetune_strategies.py)."""
from __future__ import annotations

import math
import statistics

from .markdown import Doc, machine_text, table

SCALE_POINTS = (6, 24, 96, 384)
SCALE_NODES = (2, 4, 8)


def sweep_executors_table(doc: Doc) -> str:
    """Wall time of the same sweep on `make -jN` and on Ray, and whether both wrote the same files."""
    jobs = doc["jobs"]
    rows = []
    for key, label in (("make", f"default: `make -j{jobs} sweep`"),
                       ("ray", f"Ray: `toolchain sweep --executor ray --jobs {jobs}`")):
        walls = doc["wall_s"][key]
        rows.append([label, str(len(walls)), f"{doc['median_s'][key]:.1f} s", ", ".join(f"{t:.1f}" for t in walls)])
    ratio = doc["median_s"]["ray"] / doc["median_s"]["make"]
    rows.append(["Ray / default", "", f"{ratio:.2f}x", ""])
    same = "yes" if doc["same_pareto"] else "**no**"
    same_reports = "yes" if doc["same_reports"] else "**no**"
    note = (f"{doc['points']} sweep points (K) x {len(doc['targets'])} targets ({', '.join(doc['targets'])}), the "
            f"example trained once beforehand; {jobs} points at a time on both. Same pareto.json, pareto.md and "
            f"pareto.png bytes: {same}; same report.json bytes: {same_reports}. {machine_text(doc)}.")
    return table(["executor", "runs", "median wall time", "each run (s)"], rows) + "\n\n" + note


def _costs(doc: Doc) -> dict[str, float]:
    noop = doc["ray_noop"]
    return {
        "fixed_s": statistics.median(doc["ray_connect_s"]),
        "deploy_s": statistics.median(doc["point_deploy_s"]),
        "in_task_s": statistics.mean(doc["point_in_task_overhead_s"]),
        "task_s": noop["fresh_worker_s_per_task"],
        "reused_s": noop["reused_worker_s_per_task"],
    }


def sweep_executors_costs(doc: Doc) -> str:
    """What Ray adds: once per sweep, and per point."""
    c = _costs(doc)
    per_point = c["task_s"] + c["in_task_s"]
    rows = [
        ["starting the local Ray cluster (once per sweep)", f"{c['fixed_s']:.1f} s"],
        ["Ray's cost of one task on a fresh worker (no-op task; the points run this way)", f"{c['task_s']:.2f} s"],
        ["the same on a reused worker (for comparison)", f"{c['reused_s']:.3f} s"],
        ["inside a point, besides the deploy: version and input checks, reading the reports (mean)",
         f"{c['in_task_s']:.2f} s"],
        ["**Ray's cost per point** (the two above)", f"**{per_point:.2f} s**"],
        [f"a point's deploy (median of {len(doc['point_deploy_s'])}, {doc['jobs']} at a time)", f"{c['deploy_s']:.1f} s"],
    ]
    return table(["cost", "measured"], rows)


def _make_s(points: int, cores: int, t: float) -> float:
    return math.ceil(points / cores) * t


def _ray_s(points: int, cores: int, nodes: int, t: float, fixed: float, per_point: float) -> float:
    return fixed + math.ceil(points / (cores * nodes)) * (t + per_point)


def sweep_executors_scale(doc: Doc) -> str:
    """A model from the measured figures (not a cluster measurement): a sweep of P points on one machine
    (make -jN) against Ray on M machines of the same size."""
    c = _costs(doc)
    cores, t, per_point = doc["jobs"], c["deploy_s"], c["task_s"] + c["in_task_s"]
    header = ["points", f"one machine, `make -j{cores}`"] + [f"Ray, {m} machines" for m in SCALE_NODES]
    rows = []
    for p in SCALE_POINTS:
        rows.append([str(p), f"{_make_s(p, cores, t) / 60:.1f} min"]
                    + [f"{_ray_s(p, cores, m, t, c['fixed_s'], per_point) / 60:.1f} min" for m in SCALE_NODES])
    first = next((p for p in range(1, 10_000)
                  if _ray_s(p, cores, 2, t, c["fixed_s"], per_point) < _make_s(p, cores, t)), None)
    note = (f"Predicted from the figures above (a point's deploy {t:.1f} s with {cores} points at a time on "
            f"{cores} cores, Ray {c['fixed_s']:.1f} s once and {per_point:.2f} s per point), for machines like this "
            f"one: one machine needs ceil(P/{cores}) rounds of a point's time, M machines ceil(P/({cores}M)) "
            "rounds plus Ray's costs. ")
    if first is not None:
        note += f"Ray on 2 machines is ahead from {first} points on"
        if first == cores + 1:
            note += (f": as soon as a sweep does not fit one machine's {cores} slots at once, one round saved "
                     f"({t:.0f} s) outweighs Ray's costs")
        note += ". On one machine Ray only adds its costs."
    return table(header, rows) + "\n\n" + note


def finetune_strategies_table(doc: Doc) -> str:
    """The clustering fine-tune under each tf.distribute strategy: time, accuracy, clusters; GPU rows empty."""
    rows = []
    for strategy, runs in doc["runs"].items():
        walls = [r["wall_s"] for r in runs]
        acc = [r["accuracy_after"] for r in runs]
        counts = sorted({v for r in runs for v in r["clustered_layers"].values()})
        rows.append([f"`--strategy {strategy}`", f"CPU, {runs[0]['replicas']} replica(s)", str(len(runs)),
                     f"{statistics.median(walls):.1f} s", ", ".join(f"{100 * a:.2f}%" for a in acc),
                     ", ".join(map(str, counts))])
    for strategy in doc["runs"]:
        rows.append([f"`--strategy {strategy}`", "GPU", "-", "not measured (no GPU lent to this work)", "-", "-"])
    note = (f"`toolchain finetune` of {doc['model']}, K = {doc['clusters']}, {doc['epochs']} epochs, batch 32 (the "
            f"global batch under every strategy), each run in a fresh process whose CPU is split into "
            f"{doc['logical_cpu_devices']} logical devices; wall time includes starting TensorFlow and loading the "
            f"data. {machine_text(doc)}.")
    return table(["strategy", "devices", "runs", "median wall time", "accuracy after (each run)",
                  "distinct values per clustered layer"], rows) + "\n\n" + note
