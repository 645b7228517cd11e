"""Time and memory of the output-aware fit at MobileNet scale, this checkout against a baseline commit.

The output-aware fit (`recluster --calibration`) of keras.applications MobileNetV2 224x224 int8
(benchmarks/common.py: random weights, 3.5M weights), K=16, with 512 calibration samples read from an .npz
(512 seeded uniform(-1, 1) float32 images, 308 MB: random data is fine for timing, not for accuracy), and the
weight-space fit (no data) of the same model. Both code versions run in this one invocation, alternating, each
measurement in a fresh subprocess (its own peak RSS, VmHWM): the baseline is the toolchain package of
--baseline (a git commit, extracted with `git archive` under build/bench/fit_speed/), the candidate this
checkout. Reported: medians of --repeats runs and their ratios (before / after), the time per phase (calibration
load, statistics, per-layer fits; LiteRT's own time in any thread), CPU time, peak RSS, whether the output bytes
are the same across runs and under OPENBLAS_NUM_THREADS=1 and 2. With --accuracy (trained nets of
benchmarks/output_aware_models.py, cached under build/bench/output_aware/): K=8, depthwise included, 512 seeded
training images, both versions; test accuracy on the 10,000 Fashion-MNIST test images and the fit time.
The machine is shared: compare the ratios; absolute seconds are upper bounds of a quiet machine's.
Run: .venv/bin/python benchmarks/fit_speed.py [--repeats 3] [--accuracy ds_cnn mobilenet_v2] [--baseline COMMIT]
"""
from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
# The last commit before the fit was made faster and leaner at this scale.
BASELINE_COMMIT = "1f493e96bd20f073ed208e45be8460aed32cc8ff"
CLUSTERS = 16
ACCURACY_CLUSTERS = 8
SAMPLES = 512
WEIGHT_FIT_RUNS = 5


# --------------------------------------------------------------------------- the child: one measurement


def _phase_timers(ns: dict) -> dict:
    """Wrap the phase functions of whichever toolchain version is imported; seconds are added to ``ns``."""
    import toolchain.rewrite.output_aware as oa
    from toolchain.tflite.activations import ActivationCapture

    def timed(owner, name: str, key: str) -> None:
        fn = getattr(owner, name, None)
        if fn is None:
            return

        def add(t0: float) -> None:
            ns[key] = ns.get(key, 0.0) + time.perf_counter() - t0

        def timed_items(gen):
            # a generator (this checkout's fit_layers yields each fit in layer order): the time spent
            # waiting for its items, not the caller's work between them
            with closing(gen):
                while True:
                    t0 = time.perf_counter()
                    try:
                        item = next(gen)
                    except StopIteration:
                        return
                    finally:
                        add(t0)
                    yield item

        def wrapper(*a, **k):
            t0 = time.perf_counter()
            try:
                out = fn(*a, **k)
            finally:
                add(t0)
            return timed_items(out) if inspect.isgenerator(out) else out
        setattr(owner, name, wrapper)

    timed(oa, "collect_statistics", "statistics_s")
    timed(oa, "original_activations", "statistics_s")
    # this checkout fits a segment's layers together (fit_layers); the baseline one at a time (fit_layer)
    timed(oa, "fit_layers" if hasattr(oa, "fit_layers") else "fit_layer", "fits_s")
    timed(ActivationCapture, "run", "litert_s")  # inside LiteRT, whichever thread runs it
    return ns


def child(args: argparse.Namespace) -> dict:
    import numpy as np

    from toolchain.rewrite.config import ReclusterConfig
    from toolchain.rewrite.recluster import recluster_model

    model = Path(args.model).read_bytes()
    out: dict = {}
    if args.child == "fit":
        from toolchain.rewrite.output_aware import calibration_from_file

        cfg = ReclusterConfig(clusters=CLUSTERS)
        _phase_timers(out)
        c0, t0 = time.process_time(), time.perf_counter()
        cal = calibration_from_file(model, args.calibration, cfg)
        out["load_s"] = time.perf_counter() - t0
        rewritten, report = recluster_model(model, cfg, cal)
        out |= {"total_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0,
                "segments": report.calibration.segments, "litert_passes": report.calibration.litert_passes,
                "batch": report.calibration.batch}
    elif args.child == "weights":
        cfg = ReclusterConfig(clusters=CLUSTERS)
        recluster_model(model, cfg)  # warm: imports, first-call costs
        runs, cpu = [], []
        for _ in range(WEIGHT_FIT_RUNS):
            c0, t0 = time.process_time(), time.perf_counter()
            rewritten, _ = recluster_model(model, cfg)
            runs.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        out |= {"runs_s": runs, "cpu_s": cpu}
    else:  # accuracy: the K=8 fit of a small net on given calibration rows, written for the parent to measure
        from toolchain.rewrite.output_aware import Calibration

        x = np.load(args.calibration)["x"]
        cal = Calibration([[x[i]] for i in range(len(x))], f"{len(x)} seeded training images")
        t0 = time.perf_counter()
        rewritten, _ = recluster_model(model, ReclusterConfig(clusters=ACCURACY_CLUSTERS, include_depthwise=True), cal)
        out["fit_s"] = time.perf_counter() - t0
        Path(args.output).write_bytes(rewritten)
    out["sha256"] = hashlib.sha256(rewritten).hexdigest()
    out["peak_rss_mib"] = peak_rss_mib()
    return out


def peak_rss_mib() -> float:
    """This process's own peak RSS (VmHWM of its address space). Not getrusage's ru_maxrss: a child started with
    vfork keeps its parent's high-water mark across exec in that figure."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --------------------------------------------------------------------------- the parent


def baseline_tree(commit: str) -> Path:
    """The baseline's toolchain package, extracted once under build/bench/fit_speed/."""
    sha = subprocess.run(["git", "-C", str(REPO), "rev-parse", commit], capture_output=True, text=True,
                         check=True).stdout.strip()
    root = REPO / "build" / "bench" / "fit_speed" / f"baseline-{sha[:12]}"
    if not (root / "toolchain" / "__init__.py").is_file():
        root.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "-C", str(REPO), "archive", sha, "toolchain"], capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(root)], input=archive.stdout, check=True)
    return root


def run_child(tree: Path, mode: str, model: Path, calibration: Path | None = None, output: Path | None = None,
              threads: str | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")}
    env["PYTHONPATH"] = str(tree)
    if threads is not None:
        env["OPENBLAS_NUM_THREADS"] = env["OMP_NUM_THREADS"] = threads
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", mode, "--model", str(model)]
    cmd += ["--calibration", str(calibration)] if calibration else []
    cmd += ["--output", str(output)] if output else []
    r = subprocess.run(cmd, env=env, cwd=str(REPO), capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"{mode} run of {tree} failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def calibration_file(path: Path) -> Path:
    """512 seeded uniform(-1, 1) float32 images of 224x224x3 (the timing's calibration data)."""
    if not path.is_file():
        import numpy as np

        x = np.random.default_rng(0).uniform(-1.0, 1.0, (SAMPLES, 224, 224, 3)).astype(np.float32)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp.npz")
        np.savez(tmp, x=x)
        tmp.replace(path)
    return path


def _median(runs: list[dict], key: str) -> float | None:
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else None


def summarise(runs: list[dict]) -> dict:
    keys = ("total_s", "load_s", "statistics_s", "litert_s", "fits_s", "cpu_s", "peak_rss_mib")
    return {"runs": len(runs), "median": {k: _median(runs, k) for k in keys},
            "min_total_s": min(r["total_s"] for r in runs), "max_total_s": max(r["total_s"] for r in runs),
            "segments": runs[0]["segments"], "litert_passes": runs[0]["litert_passes"], "batch": runs[0]["batch"],
            "output_sha256": sorted({r["sha256"] for r in runs})}


def accuracy_rows(nets: list[str], trees: dict[str, Path]) -> list[dict]:
    """K=8 on each trained Fashion-MNIST net with 512 seeded training images, both versions, one run each."""
    import numpy as np
    from output_aware_models import Net, paths, prepare

    from toolchain.rewrite.config import ReclusterConfig
    from toolchain.rewrite.output_aware import calibration_from_training
    from toolchain.tflite.accuracy import predict_tflite
    from toolchain.training.datasets import load_dataset

    data = load_dataset("fashion-mnist")
    rows = []
    for name in nets:
        net = Net(name)
        prepare(net, data, with_tfmot=False)
        int8 = paths(net)["int8"]
        cal = calibration_from_training(int8.read_bytes(), data.x_train, data.name, ReclusterConfig())
        base_acc = float(np.mean(np.argmax(predict_tflite(int8.read_bytes(), data.x_test), axis=1) == data.y_test))
        row = {"model": name, "clusters": ACCURACY_CLUSTERS, "calibration_samples": cal.samples,
               "test_images": len(data.x_test), "int8_accuracy": base_acc}
        with tempfile.TemporaryDirectory(prefix="fit-speed-") as tmp:
            cal_path = Path(tmp) / "calibration.npz"
            np.savez(cal_path, x=np.stack([r[0] for r in cal.rows]))
            predictions = {}
            for label, tree in trees.items():
                out = Path(tmp) / f"{label}.tflite"
                r = run_child(tree, "accuracy", int8, cal_path, out)
                logits = predict_tflite(out.read_bytes(), data.x_test)
                predictions[label] = np.argmax(logits, axis=1)
                row[label] = {"accuracy": float(np.mean(predictions[label] == data.y_test)), "fit_s": r["fit_s"],
                              "sha256": r["sha256"]}
            row["top1_agreement_before_after"] = float(np.mean(predictions["before"] == predictions["after"]))
        row["accuracy_change_points"] = round(100 * (row["after"]["accuracy"] - row["before"]["accuracy"]), 3)
        rows.append(row)
        print(f"  {name} K={ACCURACY_CLUSTERS}: before {100 * row['before']['accuracy']:.2f}% "
              f"({row['before']['fit_s']:.1f} s), after {100 * row['after']['accuracy']:.2f}% "
              f"({row['after']['fit_s']:.1f} s)", flush=True)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3, help="timed fits per version (alternating)")
    ap.add_argument("--baseline", default=BASELINE_COMMIT, help="git commit whose toolchain package is 'before'")
    ap.add_argument("--accuracy", nargs="*", default=None, metavar="NET",
                    help="also the K=8 accuracy check on these trained nets (default when given alone: ds_cnn)")
    ap.add_argument("--child", choices=("fit", "weights", "accuracy"), help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    ap.add_argument("--calibration", help=argparse.SUPPRESS)
    ap.add_argument("--output", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:  # runs with PYTHONPATH set to the version under test: nothing of this checkout on the path
        print(json.dumps(child(args)))
        return 0

    sys.path.insert(0, str(REPO))
    sys.path.insert(0, str(HERE))
    import tables
    from common import CACHE, machine, mobilenet_v2_int8, write_result

    load_start = os.getloadavg()
    t_start = time.perf_counter()
    model = mobilenet_v2_int8()
    calibration = calibration_file(CACHE / "fit_speed" / "mobilenet_v2_224_calibration_512.npz")
    trees = {"before": baseline_tree(args.baseline), "after": REPO}
    runs: dict[str, list[dict]] = {"before": [], "after": []}
    for i in range(args.repeats):
        for label in ("before", "after") if i % 2 == 0 else ("after", "before"):
            r = run_child(trees[label], "fit", model, calibration)
            runs[label].append(r)
            print(f"  {label} run {i + 1}: {r['total_s']:.1f} s wall, {r['cpu_s']:.1f} s CPU, "
                  f"{r['peak_rss_mib']:.0f} MiB peak", flush=True)
    # Thread settings: the same bytes with one or two BLAS threads (the runs above inherit the environment's).
    threads = {label: {n: run_child(trees[label], "fit", model, calibration, threads=n)["sha256"] for n in ("1", "2")}
               for label in trees}
    weights = {label: run_child(trees[label], "weights", model) for label in trees}
    doc = {
        "benchmark": "fit_speed",
        "command": ".venv/bin/python benchmarks/fit_speed.py",
        "description": __doc__.strip().splitlines()[0],
        "baseline_commit": subprocess.run(["git", "-C", str(REPO), "rev-parse", args.baseline], capture_output=True,
                                          text=True, check=True).stdout.strip(),
        "model": "MobileNetV2 224x224 int8 (keras.applications, weights=None; benchmarks/common.py), 3,504,872 weights",
        "clusters": CLUSTERS,
        "calibration": f"{SAMPLES} seeded uniform(-1, 1) float32 images in an .npz (308 MB), read by "
                       "calibration_from_file",
        "output_aware": {label: summarise(rs) for label, rs in runs.items()},
        "thread_settings": {label: {"openblas_1": t["1"], "openblas_2": t["2"], "same": t["1"] == t["2"]}
                            for label, t in threads.items()},
        "weight_space_fit_s": {label: {"median": statistics.median(w["runs_s"]), "min": min(w["runs_s"]),
                                       "max": max(w["runs_s"]), "runs": len(w["runs_s"]),
                                       "cpu_median": statistics.median(w["cpu_s"])}
                               for label, w in weights.items()},
    }
    if args.accuracy is not None:
        doc["accuracy"] = accuracy_rows(args.accuracy or ["ds_cnn"], trees)
    doc["machine"] = machine() | {"load_average_start": list(load_start), "load_average_end": list(os.getloadavg()),
                                  "note": "shared with other work: ratios within this run, seconds are upper bounds"}
    doc["total_s"] = round(time.perf_counter() - t_start, 1)
    path = write_result("fit_speed", doc)
    print("\n" + tables.fit_speed_table(doc) + "\n\n" + tables.fit_speed_verdict(doc))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
