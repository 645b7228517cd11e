"""Calibrate the Ethos-N78 analytical model against Arm's own estimator.

Measure (needs Arm's support library, built from ARM-software/ethos-n-driver-stack: see
docs/targets.md): run every grid point, a one-layer network, through Arm's estimator for each
N78 variant with the profile's SRAM size passed explicitly, and keep its figures:

    PYTHONPATH=$PWD .venv/bin/python benchmarks/ethos_n_calibration.py --library PATH

Compare (anywhere, no library): re-run the analytical model on the stored grid and rewrite
the comparison and its summary (what the profiles' labels and docs/targets.md cite):

    PYTHONPATH=$PWD .venv/bin/python benchmarks/ethos_n_calibration.py

Results: benchmarks/results/ethos_n_calibration.json (Arm's figures per grid point with the
raw passes they come from, the model's figures and the error of each).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import RESULTS, machine

from toolchain.core.errors import ToolError
from toolchain.targets.ethos_n_arm import PASS_COLUMNS, arm_estimate, pass_row
from toolchain.targets.ethos_n_calibration import CALIBRATION_FILE, compare, packaged_calibration, summarise
from toolchain.targets.ethos_n_grid import GridKind, GridPoint, network_of
from toolchain.targets.ethos_n_variants import EthosNVariant

NAME = "ethos_n_calibration"
PACKAGED = HERE.parent / "toolchain" / "targets" / CALIBRATION_FILE  # each variant's worst errors, cited at run time
DISTINCT = (2, 4, 8, 16, 32, 64, 256)
# (kind, kernel, stride, [(H = W, input channels, output channels)]): the layers of the usual mobile nets
WEIGHTED = [
    (GridKind.CONV, 1, 1, [(112, 16, 32), (56, 32, 64), (28, 64, 128), (28, 256, 64), (14, 128, 256), (7, 256, 512)]),
    (GridKind.CONV, 3, 1, [(112, 16, 32), (56, 32, 32), (28, 64, 64), (14, 128, 128), (7, 256, 256)]),
    (GridKind.CONV, 5, 1, [(56, 16, 32), (28, 32, 64), (14, 64, 64)]),
    (GridKind.CONV, 3, 2, [(112, 16, 32), (56, 32, 64), (28, 64, 128), (14, 128, 256)]),
    (GridKind.DEPTHWISE, 3, 1, [(112, 32, 32), (56, 64, 64), (28, 128, 128), (14, 256, 256), (7, 512, 512)]),
    (GridKind.DEPTHWISE, 3, 2, [(112, 32, 32), (56, 64, 64), (28, 128, 128), (14, 256, 256)]),
    (GridKind.FULLY_CONNECTED, 1, 1, [(1, 64, 64), (1, 256, 10), (1, 512, 128), (1, 1024, 1000), (1, 1280, 1000)]),
]
# Added with the rules of plan choice (issue 26's last gaps), after the rest so the others keep their seeds:
# strided convolutions that cascade or go through DRAM, depthwise layers whose depth splits are (or are not)
# worth the DMA's chunks, small weight tensors whose stripe count the metric's ties decide
ADDED = [
    (GridKind.CONV, 3, 2, [(28, 128, 128), (14, 256, 256)]),
    (GridKind.DEPTHWISE, 3, 1, [(28, 192, 192), (14, 384, 384)]),
    (GridKind.CONV, 1, 1, [(56, 24, 24), (28, 32, 16)]),
]
UNWEIGHTED = [
    (GridKind.MAX_POOL, 2, 2, [(112, 32, 32), (56, 64, 64), (28, 128, 128), (14, 256, 256)]),
    (GridKind.AVG_POOL, 3, 1, [(28, 64, 64), (14, 128, 128)]),
    (GridKind.AVG_POOL, 7, 7, [(7, 1024, 1024), (7, 1280, 1280)]),
    (GridKind.ADD, 1, 1, [(112, 16, 16), (56, 24, 24), (28, 32, 32), (14, 96, 96), (7, 160, 160)]),
]


def grid() -> list[GridPoint]:
    points = []
    for kind, k, s, shapes in WEIGHTED:
        for hw, cin, cout in shapes:
            for distinct in DISTINCT:
                points.append(GridPoint(kind, hw, hw, cin, cout, k, s, distinct, seed=len(points)))
    for kind, k, s, shapes in UNWEIGHTED:
        for hw, cin, cout in shapes:
            points.append(GridPoint(kind, hw, hw, cin, cout, k, s, 0, seed=len(points)))
    for kind, k, s, shapes in ADDED:
        for hw, cin, cout in shapes:
            for distinct in DISTINCT:
                points.append(GridPoint(kind, hw, hw, cin, cout, k, s, distinct, seed=len(points)))
    return points


def measure(library: str, out: dict) -> None:
    from toolchain.targets.ethos_n_bridge import find_support_library, run_bridge

    lib = find_support_library(library)
    out["arm"] = {
        "support_library": lib.version,
        "driver_stack": lib.driver_stack,
        "source": "ARM-software/ethos-n-driver-stack, tag 25.03 (Apache-2.0)",
        "build": "scons -j2 werror=0 support_library in driver/ (Debian scons 4.4, g++ 12)",
        "options": "EstimatePerformance with default CompilationOptions and EstimationOptions (the 'future' "
                   "estimates, no activation compression, weights encoded from their real values)",
    }
    variants, points = {}, []
    started = time.monotonic()
    for v in EthosNVariant:
        sram = v.hardware.default_sram_bytes
        variants[v.value] = {"sram_bytes": sram, "estimates": v.hardware.arm_estimates, "message": None}
        todo = grid() if v.hardware.arm_estimates else grid()[:1]  # the others refuse everything: show it once
        for p in todo:
            try:
                r = run_bridge(lib, network_of(p), v, sram)
            except ToolError as exc:
                variants[v.value]["message"] = str(exc)
                print(f"{v.value} {p.label}: {exc}", flush=True)
                continue
            a = arm_estimate(r).layers.get(0)
            if a is None:  # no pass names the layer: keep the passes, leave it out of the comparison
                print(f"{v.value} {p.label} {p.to_json()}: no pass of the layer", flush=True)
            points.append({"variant": v.value, "point": p.to_json(), "passes": [pass_row(x) for x in r["passes"]],
                           "not_supported": r["not_supported"],
                           "arm": a and {"cycles": a.cycles, "mce_cycles": a.mce_cycles, "ple_cycles": a.ple_cycles,
                                         "weight_bytes": a.weight_bytes, "dram_bytes": a.dram_bytes,
                                         "passes": a.passes}})
        print(f"{v.value}: {sum(1 for q in points if q['variant'] == v.value)} points, "
              f"{time.monotonic() - started:.0f} s", flush=True)
    out["variants"], out["pass_columns"], out["points"] = variants, list(PASS_COLUMNS), points
    out["measure_time_s"] = round(time.monotonic() - started, 1)


def write(out: dict) -> Path:
    """The results, one grid point per line (a few thousand lines rather than a hundred thousand)."""
    head = {k: v for k, v in out.items() if k != "points"}
    text = json.dumps(head, indent=1, sort_keys=True)[:-2] + ',\n "points": [\n'
    text += ",\n".join("  " + json.dumps(q, sort_keys=True) for q in out["points"]) + "\n ]\n}\n"
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{NAME}.json"
    path.write_text(text)
    return path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--library", help="Arm's support library (measure); without it, compare the stored figures")
    args = ap.parse_args()
    path = RESULTS / f"{NAME}.json"
    out = json.loads(path.read_text()) if path.exists() and not args.library else {"benchmark": NAME}
    if args.library:
        out["machine"] = machine()
        measure(args.library, out)
        write(out)  # Arm's figures are kept even if the comparison below fails
    if "points" not in out:
        print(f"no Arm figures in {path}: run with --library PATH first", file=sys.stderr)
        return 2
    for q in out["points"]:
        q["model"], q["error"] = compare(EthosNVariant(q["variant"]), GridPoint.from_json(q["point"]), q["arm"])
    out["summary"] = summarise(out["points"])
    write(out)
    PACKAGED.write_text(json.dumps(packaged_calibration(out["summary"], out["arm"]), indent=2, sort_keys=True) + "\n")
    print(json.dumps(out["summary"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
