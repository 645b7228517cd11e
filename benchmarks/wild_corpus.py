"""Third-party models through ``toolchain deploy``: the 14 .tflite files of the mediapipe 0.10.21 wheel.

    .venv/bin/python benchmarks/wild_corpus.py [--cache DIR] [MODEL_STEM ...]     (make corpus-wild)

Downloads the wheel with ``pip download --no-deps`` (nothing is installed) into the cache directory
(default build/corpus-wild), extracts its .tflite files (Apache-2.0), and deploys each float model for
ethos-u55-128 and ethos-u85-256 at K = 16 with SYNTHETIC calibration (--synthetic-calibration: 64 seeded
uniform random inputs in [-1, 1]; MediaPipe ships no calibration data, so every fidelity figure here is on
random inputs, not real images) and --no-budget (a model over a board's SRAM is recorded, not stopped).
Each deploy runs in its own process. Per model: quantized or not, rewritten or not, NPU / CPU operators and
Vela's encoded weight bytes before -> after per target, the quantization step's fidelity per output (float
vs int8 on held-out synthetic inputs), or the one-line reason deploy refused it. Writes
benchmarks/results/wild_corpus.json; docs/benchmarks.md shows it (tables.wild_corpus_table).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

MEDIAPIPE = "mediapipe==0.10.21"  # 1.x wheels ship no .tflite files
TARGETS = ("ethos-u55-128", "ethos-u85-256")
CLUSTERS = 16
DEFAULT_CACHE = REPO / "build" / "corpus-wild"
TIMEOUT_S = 1800


class FetchError(RuntimeError):
    """The wheel could not be downloaded (no network, no registry)."""


def fetch_mediapipe(cache: Path) -> list[Path]:
    """The wheel's .tflite files, extracted under cache/models (downloaded once)."""
    cache.mkdir(parents=True, exist_ok=True)
    wheels = sorted(cache.glob("mediapipe-0.10.21-*.whl"))
    if not wheels:
        r = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", MEDIAPIPE, "-d",
                            str(cache)], capture_output=True, text=True, timeout=600)
        wheels = sorted(cache.glob("mediapipe-0.10.21-*.whl"))
        if r.returncode != 0 or not wheels:
            last = (r.stderr.strip().splitlines() or ["no output"])[-1]
            raise FetchError(f"pip download {MEDIAPIPE} failed: {last}")
    out = cache / "models"
    out.mkdir(exist_ok=True)
    with zipfile.ZipFile(wheels[0]) as z:
        for info in z.infolist():
            if info.filename.endswith(".tflite"):
                target = out / Path(info.filename).name
                if not target.exists():
                    target.write_bytes(z.read(info))
    return sorted(out.glob("*.tflite"))


def deploy(model: Path, build: Path) -> tuple[int, str]:
    """Exit code and the error line (empty on success) of one deploy, in its own process."""
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    argv = [sys.executable, "-m", "toolchain", "deploy", str(model), "--synthetic-calibration", "--clusters",
            str(CLUSTERS), *[a for t in TARGETS for a in ("--target", t)], "--build-dir", str(build), "--no-budget",
            "--quiet"]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT_S, env=env)
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith(("error:", "internal error:"))]
    return r.returncode, (errors[-1].split(":", 1)[1].strip() if errors else "")


def _outcome(doc: dict) -> str:
    b = doc["budget"]
    fit = "fits" if b["within_budget"] else (f"SRAM {b['sram_bytes']:,} of {b['sram_budget_bytes']:,} B"
                                              if b["sram_bytes"] > b["sram_budget_bytes"] else
                                              f"flash {b['flash_bytes']:,} of {b['flash_budget_bytes']:,} B")
    ver = doc["recluster"].get("verification") or {}
    checked = "verified" if ver.get("samples") else f"not verified: {ver.get('reason', 'no samples')}"
    return f"deployed ({fit}; after vs before {checked})"


def record(model: Path, build: Path) -> dict:
    t0 = time.perf_counter()
    rc, error = deploy(model, build)
    row = {"model": model.stem, "source": "mediapipe 0.10.21", "file_bytes": model.stat().st_size,
           "deploy_s": round(time.perf_counter() - t0, 1)}
    if rc != 0:
        return row | {"refused": error or f"exit {rc}", "exit_code": rc}
    mdir = build / model.stem
    q = json.loads((mdir / "quantize" / "quantize.json").read_text()) if (mdir / "quantize").is_dir() else None
    targets = {}
    for t in TARGETS:
        doc = json.loads((mdir / t / "report" / "report.json").read_text())
        before, after = doc["models"]["before"], doc["models"]["after"]
        targets[t] = {"npu_operators": after["npu_operators"], "cpu_operators": after["cpu_operators"],
                      "encoded_before_bytes": before["encoded_weight_bytes"],
                      "encoded_after_bytes": after["encoded_weight_bytes"], "within_budget": doc["budget"]["within_budget"],
                      "outcome": _outcome(doc)}
    rewritten = doc["recluster"]["tensors_rewritten"]
    return row | {
        "quantized": "ai-edge-quantizer (synthetic)" if q else "no (int8 given)",
        "rewritten": f"{rewritten} tensor(s)" if rewritten else "no",
        "float_operators": q["float_operators"] if q else [],
        "fidelity": q["fidelity"] if q else None, "fidelity_not_run": q["fidelity_not_run"] if q else None,
        "targets": targets,
    }


def main() -> int:
    import tables
    from common import machine, write_result

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    p.add_argument("models", nargs="*", help="model file stems (default: all 14)")
    args = p.parse_args()
    files = fetch_mediapipe(args.cache)
    in_wheel = len(files)
    if args.models:
        by_stem = {f.stem: f for f in files}
        files = [by_stem[m] for m in args.models if m in by_stem]  # in the order given
    rows: list[dict] = []
    load = list(os.getloadavg())
    for f in files:  # written after every model: a long run interrupted keeps what it measured (and says so)
        rows.append(record(f, args.cache / "build"))
        print(json.dumps(rows[-1])[:300], flush=True)
        payload = {"benchmark": "wild_corpus", "wheel": MEDIAPIPE, "clusters": CLUSTERS, "targets": list(TARGETS),
                   "calibration": "synthetic: 64 seeded uniform random inputs in [-1, 1] (--synthetic-calibration)",
                   "models_in_wheel": in_wheel, "models": rows, "machine": machine(), "load_avg_start": load,
                   "load_avg_end": list(os.getloadavg())}
        write_result("wild_corpus", payload)
    print(tables.wild_corpus_table(payload))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
