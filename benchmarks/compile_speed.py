"""Time ``toolchain compile`` on a small model: one Vela target per Ethos-U family and one Ethos-N78 estimate.

    .venv/bin/python benchmarks/compile_speed.py [--model M.tflite] [--mobilenet] [--repeats 5]

Prints a table of wall-clock seconds per compile (validation, Vela subprocess, CSV
parsing, compile.json; the table is tables.compile_speed_table) and writes
benchmarks/results/compile_speed.json. Without --model it builds the test suite's small
conv+BN model with the TFLite converter; --mobilenet adds an int8 MobileNetV2 (3.5M
parameters, random weights) for scale. The goal: a small model compiles in under 2 s.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "benchmarks"))

import tables
from common import machine, mobilenet_v2_int8, progress, write_result

TARGETS = ("ethos-u55-128", "ethos-u65-256", "ethos-u85-256", "ethos-n78-4tops-2ple")
GOAL_S = 2.0


def small_model(directory: Path) -> Path:
    import model_factory as mf  # TensorFlow, only to make the input

    path = directory / "conv_bn_int8.tflite"
    path.write_bytes(mf.convert_int8(mf.conv_bn_model()))
    return path


def time_target(model: Path, target: str, repeats: int, work: Path) -> dict:
    """Median/min/max seconds of ``compile_model`` (everything a user waits for, TensorFlow not involved)."""
    from toolchain.targets.compile import compile_model
    from toolchain.targets.profiles import load_profile

    profile = load_profile(target)
    progress(f"compile {model.name} for {target}, {repeats} runs")
    times = []
    result = None
    for i in range(repeats):
        t0 = time.perf_counter()
        result = compile_model(model, profile, work / model.stem / target / str(i), enforce_budget=False)
        times.append(time.perf_counter() - t0)
    return {
        "model": model.name,
        "model_bytes": model.stat().st_size,
        "target": target,
        "estimate_kind": result.estimate_kind.value,
        "repeats": repeats,
        "median_s": statistics.median(times),
        "min_s": min(times),
        "max_s": max(times),
        "cycles_total": result.cycles_total,
        "sram_bytes": result.sram_bytes,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, help="an int8 .tflite (default: a small conv+BN model built now)")
    ap.add_argument("--mobilenet", action="store_true", help="also time an int8 MobileNetV2 (built once, cached in build/bench)")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)

    from toolchain.targets.vela_run import vela_version

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        models = [args.model or small_model(work)]
        if args.mobilenet:
            models.append(mobilenet_v2_int8())
        rows = [time_target(m, t, args.repeats, work) for m in models for t in TARGETS]

    small = [r for r in rows if r["model"] == rows[0]["model"]]
    ok = all(r["max_s"] < GOAL_S for r in small)
    doc = {
        "benchmark": "compile_speed",
        "goal_s": GOAL_S,
        "small_model_under_goal": ok,
        "results": rows,
        "machine": {**machine(), "vela": vela_version()},
    }
    print(f"compile time, {args.repeats} runs each, wall-clock seconds\n")
    print(tables.compile_speed_table(doc))
    print(f"\nsmall model under {GOAL_S:g} s on every target: {'yes' if ok else 'NO'}")
    path = write_result("compile_speed", doc)
    print(f"written {path.relative_to(REPO)}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
