"""How `make sweep` scales from 1 to 2 parallel jobs on this machine.

Trains the bundled example once, then runs `make sweep CLUSTERS="8 16 32"` over two targets
with `-j1` and with `-j2`, each into a fresh build directory that starts from a copy of the
trained example (so both measure the same work: per K a fine-tune, int8 conversion, rewrite,
palettes, three compiles per target, firmware and reports, then the Pareto table). Runs
alternate (-j1, -j2, -j1, -j2, ...) so a change in the machine's load hits both alike; the
result is the ratio of median wall times.

Run: .venv/bin/python benchmarks/sweep_scaling.py [--repeats 2] [--clusters 8 16 32]
"""
from __future__ import annotations

import argparse
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


def _run(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr[-2000:]}")
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--clusters", type=int, nargs="+", default=[8, 16, 32])
    args = ap.parse_args()
    toolchain = Path(sys.executable).with_name("toolchain")
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="sweep-scaling-") as tmp:
        example = Path(tmp) / "example"
        example_s = _run([str(toolchain), "example", "-o", str(example), "--quiet"])
        times: dict[int, list[float]] = {1: [], 2: []}
        for _ in range(args.repeats):
            for jobs in (1, 2):
                build = Path(tmp) / f"j{jobs}"
                shutil.rmtree(build, ignore_errors=True)
                shutil.copytree(example, build / "example")
                cmd = ["make", f"-j{jobs}", "sweep", f"BUILD={build}", f"CLUSTERS={' '.join(map(str, args.clusters))}",
                       f"TARGETS={' '.join(TARGETS)}"]
                times[jobs].append(_run(cmd))
                print(f"-j{jobs}: {times[jobs][-1]:.1f} s", flush=True)
    doc = {
        "machine": machine() | {"load_average_start": list(load_start), "load_average_end": list(os.getloadavg())},
        "command": ["make", "-jN", "sweep", f"CLUSTERS={' '.join(map(str, args.clusters))}", f"TARGETS={' '.join(TARGETS)}"],
        "points": len(args.clusters),
        "targets": list(TARGETS),
        "example_training_s": example_s,
        "wall_s": {str(j): t for j, t in times.items()},
        "median_s": {str(j): statistics.median(t) for j, t in times.items()},
        "speedup_2_jobs": statistics.median(times[1]) / statistics.median(times[2]),
        "cpus": os.cpu_count(),
    }
    print("\n" + tables.sweep_scaling_table(doc))
    print(f"wrote {write_result('sweep_scaling', doc)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
