"""The long fuzzing campaign: >= 10,000 mutated models through every in-process stage.

Seeds are the small real int8 models of the test suite (conv+BN, depthwise, dense;
made with the TFLite converter, cached in build/bench/fuzz_seeds). Each case is one
seeded mutation plan (tests/fuzz_mutators.py: structural site overwrites, bit flips,
truncations, insertions...) run through read_model, inspect, palettise's tables,
compile's in-process path (validation, model facts, report; the Ethos-N78 target so
Vela is not involved) and recluster + LiteRT verification, in a worker process that
is replaced when it crashes or stalls.

Then the inputs that are not model bytes (tests/fuzz_inputs.py): tensor names and operator codes through
every sink, command-line paths through the real CLI, hostile values in hardware profiles and configs
(--input-cases, in-process, each under a time limit).

Run: .venv/bin/python benchmarks/fuzz_models.py [--cases 12000] [--input-cases 4000] [--first-seed 0] [--time-limit-s 900] [--write-doc]
Writes benchmarks/results/fuzz_models.json and prints a summary and the table of docs/robustness.md
(tables.fuzz_figures; --write-doc also re-renders the docs' generated blocks); exits 1 on any finding.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE))

import fuzz_inputs as fi
import fuzz_mutators as fm
import render_docs
import tables
from common import CACHE, every, machine, write_result

SEEDS_DIR = CACHE / "fuzz_seeds"


def seed_models() -> Path:
    """Build (once) the three seed models with the TFLite converter, as tests/conftest.py does."""
    missing = [n for n in fm.SEED_NAMES if not (SEEDS_DIR / f"{n}.tflite").exists()]
    if missing:
        import model_factory as mf

        builders = {"conv_bn_int8": mf.conv_bn_model, "depthwise_int8": mf.depthwise_model, "dense_int8": mf.dense_model}
        SEEDS_DIR.mkdir(parents=True, exist_ok=True)
        for name in missing:
            (SEEDS_DIR / f"{name}.tflite").write_bytes(mf.convert_int8(builders[name]()))
    return SEEDS_DIR


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=12000, help="mutated cases (default 12000)")
    ap.add_argument("--first-seed", type=int, default=0, help="case seeds are first-seed .. first-seed+cases-1")
    ap.add_argument("--time-limit-s", type=float, default=900.0, help="stop starting new cases after this long")
    ap.add_argument("--case-timeout-s", type=float, default=10.0, help="a case taking longer is a hang")
    ap.add_argument("--input-cases", type=int, default=4000,
                    help="cases of names, paths, profiles and configs, after the model cases (default 4000)")
    ap.add_argument("--input-time-limit-s", type=float, default=900.0, help="stop starting input cases after this long")
    ap.add_argument("--no-write", action="store_true", help="print only, do not write the JSON result")
    ap.add_argument("--write-doc", action="store_true", help="re-render the docs' generated blocks from the new JSON")
    args = ap.parse_args(argv)

    seeds = seed_models()
    t0 = time.monotonic()
    cases = fm.case_list(args.cases, args.first_seed)
    results = fm.run_cases(cases, seeds, case_timeout_s=args.case_timeout_s, deadline_s=args.time_limit_s,
                           on_result=every(500, len(cases), "model cases"))
    elapsed = time.monotonic() - t0
    summary = fm.summarise(results, elapsed)
    t1 = time.monotonic()
    input_results = fi.run_input_cases(args.input_cases, fi.input_seeds((seeds / "dense_int8.tflite").read_bytes()),
                                       args.first_seed, args.input_time_limit_s,
                                       on_result=every(500, args.input_cases, "input cases"))
    inputs = fi.summarise_inputs(input_results, time.monotonic() - t1) if input_results else None
    mutated = [r for r in results if r.case.case_seed >= 0]
    times = sorted(r.time_s for r in mutated)
    payload = summary.to_json() | {
        "mutated_cases": len(mutated),
        "requested_cases": args.cases,
        "first_seed": args.first_seed,
        "completed": len(mutated) == args.cases,
        "case_time_s": {
            "median": round(times[len(times) // 2], 5) if times else None,
            "p99": round(times[int(len(times) * 0.99)], 5) if times else None,
            "max": round(times[-1], 5) if times else None,
        },
        "cases_per_s": round(len(results) / elapsed, 1) if elapsed else None,
        "seeds": {n: (seeds / f"{n}.tflite").stat().st_size for n in fm.SEED_NAMES},
        "stages": list(fm.STAGES),
        "limits": {"case_timeout_s": args.case_timeout_s, "time_limit_s": args.time_limit_s,
                   "worker_address_space_bytes": 4 << 30},
        "inputs": inputs,
        "machine": machine(),
        "command": "python benchmarks/fuzz_models.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    print(f"{summary.cases} cases ({len(mutated)} mutated) in {elapsed:.0f} s, {payload['cases_per_s']} cases/s")
    for outcome, n in sorted(summary.outcomes.items(), key=lambda kv: -kv[1]):
        print(f"  {outcome:<24} {n:>7}")
    print("ended at stage: " + ", ".join(f"{k} {v}" for k, v in sorted(summary.by_stage.items())))
    s = summary.slowest
    print(f"slowest case: {s['seed']} #{s['case_seed']} {s['time_s']:.3f} s ({s['outcome']} at {s['stage']})")
    print(f"peak RSS of a worker: {summary.peak_rss_bytes / 2**20:.0f} MiB")
    print(f"findings: {len(summary.findings)}")
    for f in summary.findings[:10]:
        print(f"  {f['seed']} #{f['case_seed']}: {f['outcome']} at {f['stage']}: {f['detail'].strip().splitlines()[-1:]}")
    if inputs is not None:
        print(f"{inputs['cases']} input cases ({', '.join(f'{k} {v}' for k, v in inputs['by_family'].items())}) in "
              f"{inputs['elapsed_s']:.0f} s; outcomes: " + ", ".join(f"{k} {v}" for k, v in inputs["outcomes"].items()))
        for f in inputs["findings"][:10]:
            print(f"  {f['family']} #{f['case_seed']}: {f['outcome']}: {f['detail'].strip().splitlines()[-1:]}")
    if not args.no_write:
        print(f"wrote {write_result('fuzz_models', payload)}")
    print(tables.fuzz_figures(payload))
    print(tables.fuzz_input_figures(payload))
    if args.write_doc and not args.no_write:
        for s in render_docs.render_files():
            print(f"re-rendered {s}")
    return 1 if summary.findings or (inputs and inputs["findings"]) else 0


if __name__ == "__main__":
    sys.exit(main())
