"""Real third-party architectures through ``toolchain deploy``: where their operators run and how faithful
the reclustered model is.

    .venv/bin/python benchmarks/corpus_deploy.py [--clusters 16]

Builds the test suite's corpus (tests/corpus_models.py: MobileNetV2 0.35 at 96x96, a residual net,
a streaming keyword model with resource variables and a CALL_ONCE initialiser, a 16x8 model, a model
with a GATHER Vela leaves to the CPU, a WHILE loop) with the real converter, deploys each for
Ethos-U55 and Ethos-U85 (post-training entry, no data), and records per model and target the NPU /
CPU / init operators of the reclustered model (counted from Vela's output model), its status, cycles
and time, flash before and after, and the after-vs-before verification. Writes
benchmarks/results/corpus_deploy.json; docs/targets.md shows it (tables.corpus_table).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "benchmarks"))

import tables
from common import machine, progress, write_result

TARGETS = ("ethos-u55-128", "ethos-u85-256")
VERIFY_SAMPLES = 32


def _deploy(model: Path, build: Path, clusters: int) -> None:
    from toolchain.cli import main

    argv = ["deploy", str(model), *[a for t in TARGETS for a in ("--target", t)], "--build-dir", str(build),
            "--clusters", str(clusters), "--verify-samples", str(VERIFY_SAMPLES), "--quiet"]
    rc = main(argv)
    if rc != 0:
        raise SystemExit(f"deploy {model.name} exited {rc}")


def measure(name: str, work: Path, clusters: int) -> dict:
    progress(f"{name}: convert, then deploy for {', '.join(TARGETS)}")
    import corpus_models

    t0 = time.perf_counter()
    model = work / f"{name}.tflite"
    model.write_bytes(corpus_models.BUILDERS[name]())
    convert_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    _deploy(model, work / "build", clusters)
    deploy_s = time.perf_counter() - t0
    mdir = work / "build" / name
    targets = {}
    for t in TARGETS:
        doc = json.loads((mdir / t / "report" / "report.json").read_text())
        c = json.loads((mdir / t / "compile" / "after" / "compile.json").read_text())
        p = c["placement"]
        targets[t] = {
            "status": c["status"],
            "npu_operators": p["npu_operators"], "cpu_operators": p["cpu_operators"],
            "cpu_compute_operators": p["cpu_compute_operators"], "init_operators": p["init_operators"],
            "subgraphs": len(p["subgraphs"]), "ethos_u_operators": sum(s["ethos_u_operators"] for s in p["subgraphs"]),
            "cpu_ops": sorted({o["op"] for s in p["subgraphs"] if s["role"] == "per_inference" for o in s["cpu"]}),
            "cycles_total": c["cycles_total"], "inference_time_s": c["inference_time_s"],
            "flash_before_bytes": doc["models"]["before"]["flash_bytes"],
            "flash_after_bytes": doc["models"]["after"]["flash_bytes"],
        }
    ver = doc["recluster"]["verification"]
    return {
        "model": name, "input_bytes": model.stat().st_size, "convert_s": round(convert_s, 1),
        "deploy_s": round(deploy_s, 1), "recluster": doc["recluster"]["summary"],
        "verification": {k: ver[k] for k in ("inputs", "samples", "stateful", "informative", "top1_agreement",
                                              "max_abs_diff_steps", "mean_abs_diff_steps", "sqnr_db")},
        "targets": targets,
    }


def main() -> int:
    import corpus_models

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clusters", type=int, default=16)
    args = ap.parse_args()
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [measure(name, Path(tmp), args.clusters) for name in corpus_models.BUILDERS]
    doc = {"clusters": args.clusters, "targets": list(TARGETS), "verify_samples": VERIFY_SAMPLES, "results": rows,
           "machine": machine() | {"load_average_start": list(load_start), "load_average_end": list(os.getloadavg())}}
    print(tables.corpus_table(doc))
    print(f"wrote {write_result('corpus_deploy', doc)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
