"""End-to-end time of `make deploy TARGET=ethos-u55` on the bundled example.

Runs what the Makefile runs (`toolchain deploy --clusters 16 --target ethos-u55
--build-dir DIR`, plus --json) as a subprocess, twice: into a fresh build
directory (the example is trained, then every stage runs), then again on the same
directory (every stage should be up to date). Each stage's time comes from the
command's own JSON output (`stages[].time_s`); the total is the subprocess's wall
time, Python start-up and imports included. Targets: the whole run under 3 minutes
on 2 cores, the post-processing stages under 10 s. The tables are tables.deploy_time_*.
Run: .venv/bin/python benchmarks/deploy_time.py [--target ethos-u55] [--clusters 16] [--keep DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import tables
from common import REPO, machine, progress, write_result

MAX_TOTAL_S = 180.0
MAX_POST_PROCESSING_S = 10.0


def run_deploy(build_dir: Path, target: str, clusters: int) -> dict:
    toolchain = Path(sys.executable).with_name("toolchain")
    cmd = [str(toolchain), "deploy", "--clusters", str(clusters), "--target", target,
           "--build-dir", str(build_dir), "--json"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    try:
        doc = json.loads(proc.stdout)
    except json.JSONDecodeError:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise SystemExit(f"toolchain deploy exited {proc.returncode} without its JSON document:\n" + "\n".join(tail))
    if proc.returncode != 0:
        raise SystemExit(f"toolchain deploy exited {proc.returncode}: {doc.get('error')}")
    stages = doc["stages"]
    training = sum(s["time_s"] for s in stages if tables.stage_is_training(s["name"]))
    post = sum(s["time_s"] for s in stages if not tables.stage_is_training(s["name"]))
    return {
        "command": ["toolchain", *cmd[1:]],
        "wall_s": wall,
        "stages_s": training + post,
        "training_s": training,
        "post_processing_s": post,
        "startup_and_other_s": wall - training - post,
        "stages_ran": doc["stages_ran"],
        "stages": stages,
        # key figures per target and model variant (paths left out: they name the temporary directory)
        "figures": [{k: t[k] for k in ("target", "within_budget", "models")} for t in doc["targets"]],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target", default="ethos-u55")
    ap.add_argument("--clusters", type=int, default=16)
    ap.add_argument("--keep", metavar="DIR", help="build into DIR (must not exist) and keep it; default: a temporary directory")
    args = ap.parse_args()

    if args.keep and Path(args.keep).exists():
        raise SystemExit(f"--keep {args.keep}: the directory exists; a fresh build directory is the point")
    tmp = None if args.keep else tempfile.mkdtemp(prefix="deploy-time-")
    build = Path(args.keep) if args.keep else Path(tmp) / "build"
    load_start = os.getloadavg()
    try:
        progress("deploy into a fresh build directory (trains the example: a few minutes)")
        fresh = run_deploy(build, args.target, args.clusters)
        progress("deploy again (nothing to redo)")
        again = run_deploy(build, args.target, args.clusters)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)

    total_ok = fresh["wall_s"] < MAX_TOTAL_S
    post_ok = fresh["post_processing_s"] < MAX_POST_PROCESSING_S
    noop_ok = again["stages_ran"] == 0
    doc = {
        "machine": machine() | {"load_average_start": list(load_start), "load_average_end": list(os.getloadavg())},
        "target": args.target, "clusters": args.clusters,
        "targets": {"max_total_s": MAX_TOTAL_S, "max_post_processing_s": MAX_POST_PROCESSING_S,
                    "total_pass": total_ok, "post_processing_pass": post_ok, "second_run_noop": noop_ok},
        "fresh": fresh, "second": again,
    }
    print(f"\n`make deploy TARGET={args.target}` (toolchain deploy, K = {args.clusters}), bundled example\n")
    print(tables.deploy_time_runs(doc))
    print()
    print(tables.deploy_time_stages(doc))
    print()
    print(tables.deploy_time_verdict(doc))
    path = write_result("deploy_time", doc)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
