"""The same sweep on the default executor (`make -j2 sweep`) and on Ray (`toolchain sweep --executor ray`).

Trains the bundled example once, then runs the sweep of benchmarks/sweep_scaling.py (K = 8 16 32
x two targets, each point a fine-tune, int8 conversion, rewrite, palettes, compiles, firmware and
reports) with `make -j2 sweep` and with `toolchain sweep --executor ray --jobs 2 --json` (what
`make sweep EXECUTOR=ray JOBS=2` runs: a local Ray cluster of 2 CPUs, one task per point), each
run into a fresh build directory that starts from a copy of the trained example. Runs alternate
so a change in the machine's load hits both alike. Records the wall times, whether both wrote
the same pareto.json/pareto.md/pareto.png and report.json bytes, Ray's fixed cost (starting the
local cluster), the time inside each task that is not the deploy (version and input checks,
reading the reports), and Ray's own cost per task measured with no-op tasks on a fresh worker
each (as the points run) and on reused workers.

Run: .venv/bin/python benchmarks/sweep_executors.py [--repeats 2] [--clusters 8 16 32]
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import tables
from common import REPO, machine, write_result

TARGETS = ("ethos-u55-128", "ethos-u85-256")
NOOP_TASKS = 40


def _run(cmd: list[str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return time.perf_counter() - t0, proc.stdout


def _noop() -> int:
    return os.getpid()


def ray_task_cost(cpus: int) -> dict:
    """Ray's own cost: start and stop a local cluster; no-op tasks on fresh and on reused workers."""
    import ray

    t0 = time.perf_counter()
    ray.init(num_cpus=cpus, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False,
             object_store_memory=128 * 1024 * 1024)
    init_s = time.perf_counter() - t0
    out = {"init_s": init_s, "tasks": NOOP_TASKS, "cpus": cpus}
    for label, opts in (("fresh_worker", {"max_calls": 1}), ("reused_worker", {})):
        task = ray.remote(num_cpus=1, **opts)(_noop)
        ray.get([task.remote() for _ in range(cpus)])  # warm: the first workers' start is the init's cost
        t0 = time.perf_counter()
        pids = ray.get([task.remote() for _ in range(NOOP_TASKS)])
        wall = time.perf_counter() - t0
        # a task holds one of the cpus slots for this long, on average
        out[f"{label}_s_per_task"] = wall * cpus / NOOP_TASKS
        out[f"{label}_processes"] = len(set(pids))
    t0 = time.perf_counter()
    ray.shutdown()
    out["shutdown_s"] = time.perf_counter() - t0
    return out


def _files(root: Path, names: tuple[str, ...]) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for n in names for p in sorted(root.rglob(n))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--clusters", type=int, nargs="+", default=[8, 16, 32])
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    toolchain = str(Path(sys.executable).with_name("toolchain"))
    clusters = " ".join(map(str, args.clusters))
    load_start = os.getloadavg()
    noop = ray_task_cost(args.jobs)
    print(f"Ray: init {noop['init_s']:.1f} s, no-op task {noop['fresh_worker_s_per_task']:.3f} s (fresh worker), "
          f"{noop['reused_worker_s_per_task']:.4f} s (reused)", flush=True)
    walls: dict[str, list[float]] = {"make": [], "ray": []}
    points: list[dict] = []
    connect: list[float] = []
    same = {"pareto": True, "reports": True}
    with tempfile.TemporaryDirectory(prefix="sweep-executors-") as tmp:
        example = Path(tmp) / "example"
        example_s, _ = _run([toolchain, "example", "-o", str(example), "--quiet"])
        for rep in range(args.repeats):
            outputs = {}
            for executor in ("make", "ray"):
                build = Path(tmp) / f"{executor}{rep}"
                shutil.rmtree(build, ignore_errors=True)
                shutil.copytree(example, build / "example")
                if executor == "make":
                    # this interpreter's venv, taken as installed (make must not set up another one)
                    venv = Path(sys.executable).parent.parent
                    wall, _ = _run(["make", f"-j{args.jobs}", "-o", str(venv / ".installed"), "sweep", f"VENV={venv}",
                                    f"BUILD={build}", f"CLUSTERS={clusters}", f"TARGETS={' '.join(TARGETS)}"])
                else:
                    wall, out = _run([toolchain, "sweep", "--clusters", *map(str, args.clusters),
                                      *[a for t in TARGETS for a in ("--target", t)], "--build-dir", str(build),
                                      "--executor", "ray", "--jobs", str(args.jobs), "--json"])
                    doc = json.loads(out)
                    connect.append(doc["connect_s"])
                    points += doc["points"]
                walls[executor].append(wall)
                outputs[executor] = build / "sweep"
                print(f"{executor}: {wall:.1f} s", flush=True)
            pareto = ("pareto.json", "pareto.md", "pareto.png")
            same["pareto"] &= _files(outputs["make"], pareto) == _files(outputs["ray"], pareto)
            same["reports"] &= _files(outputs["make"], ("report.json",)) == _files(outputs["ray"], ("report.json",))
    deploy_s = [p["deploy_s"] for p in points]
    doc = {
        "machine": machine() | {"load_average_start": list(load_start), "load_average_end": list(os.getloadavg())},
        "commands": {"make": f"make -j{args.jobs} sweep CLUSTERS=\"{clusters}\" TARGETS=\"{' '.join(TARGETS)}\"",
                     "ray": f"toolchain sweep --clusters {clusters} --target {' --target '.join(TARGETS)} "
                            f"--executor ray --jobs {args.jobs}"},
        "jobs": args.jobs,
        "points": len(args.clusters),
        "targets": list(TARGETS),
        "example_training_s": example_s,
        "wall_s": walls,
        "median_s": {k: statistics.median(v) for k, v in walls.items()},
        "ray_connect_s": connect,
        "point_deploy_s": deploy_s,
        "point_in_task_overhead_s": [p["task_s"] - p["deploy_s"] for p in points],
        "ray_noop": noop,
        "same_pareto": same["pareto"],
        "same_reports": same["reports"],
    }
    print("\n" + tables.sweep_executors_table(doc) + "\n\n" + tables.sweep_executors_scale(doc))
    print(f"wrote {write_result('sweep_executors', doc)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
