"""The clustering fine-tune under the default strategy and under MirroredStrategy, on this machine's CPU.

`toolchain finetune` of the bundled example (ConvNet with BatchNorm, MNIST 4,000/1,000, K = 16,
2 epochs, batch 32) with `--strategy default` and `--strategy mirrored`, each run in a fresh process
whose CPU is split into two logical devices (so mirrored trains two replicas, the way the test
does; default uses one of them). Runs alternate. Records wall time, accuracy and the distinct
values per clustered layer. No GPU is lent to this work: the GPU rows stay empty ("not measured").

Run: .venv/bin/python benchmarks/finetune_strategies.py [--repeats 2] [--epochs 2]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import tables
from common import CACHE, REPO, machine, write_result

STRATEGIES = ("default", "mirrored")
CLUSTERS = 16

_RUN = """
import os, sys
os.environ["TF_USE_LEGACY_KERAS"] = "1"
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from toolchain.cli import main
sys.exit(main(["finetune", *sys.argv[1:]]))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=2)
    args = ap.parse_args()
    from toolchain.training.example import build_example

    example = build_example(CACHE / "example", quiet=True).model_path
    load_start = os.getloadavg()
    runs: dict[str, list[dict]] = {s: [] for s in STRATEGIES}
    out_dir = CACHE / "finetune_strategies"
    out_dir.mkdir(parents=True, exist_ok=True)
    for _ in range(args.repeats):
        for strategy in STRATEGIES:
            out = out_dir / f"{strategy}.keras"
            t0 = time.perf_counter()
            proc = subprocess.run([sys.executable, "-c", _RUN, str(example), "--data", "mnist", "-o", str(out),
                                   "--clusters", str(CLUSTERS), "--epochs", str(args.epochs), "--strategy", strategy,
                                   "--quiet"], cwd=REPO, capture_output=True, text=True)
            wall = time.perf_counter() - t0
            if proc.returncode != 0:
                raise SystemExit(f"finetune --strategy {strategy} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
            result = json.loads(Path(f"{out}.json").read_text())["result"]
            runs[strategy].append({"wall_s": wall, "accuracy_after": result["accuracy_after"],
                                   "accuracy_before": result["accuracy_before"], "replicas": result["replicas"],
                                   "clustered_layers": {r["name"]: r["distinct_values"]
                                                        for r in result["clustered_layers"]}})
            print(f"{strategy}: {wall:.1f} s, accuracy {result['accuracy_after']:.4f}", flush=True)
    doc = {
        "machine": machine() | {"load_average_start": list(load_start), "load_average_end": list(os.getloadavg())},
        "model": "the bundled example (ConvNet with BatchNorm, MNIST 4,000 train / 1,000 test)",
        "clusters": CLUSTERS,
        "epochs": args.epochs,
        "logical_cpu_devices": 2,
        "runs": runs,
        "gpu": None,  # no GPU lent to this work: nothing measured
    }
    print("\n" + tables.finetune_strategies_table(doc))
    print(f"wrote {write_result('finetune_strategies', doc)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
