"""Determinism, atomicity and untouched inputs, through ``python -m toolchain`` as a user runs it.

* Every artifact of inspect --json, recluster, palettise, compile (Vela and analytical)
  and firmware is byte-identical across two runs in different directories and when
  run again in place, and holds no absolute path of the run.
* A run killed with SIGKILL at any point leaves, under each final name, either
  nothing or the complete file (what a full run writes); temporaries are dot-named.
* Every verb leaves its input files byte-identical (sha256 before and after).
"""
from __future__ import annotations

import hashlib
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TARGET = "ethos-u55-128"

pytestmark = [pytest.mark.tf, pytest.mark.slow]  # converter-made input; compile runs Vela

# (verb arguments, input paths whose bytes must not change, file to save stdout to)
PIPELINE: tuple[tuple[tuple[str, ...], tuple[str, ...], str | None], ...] = (
    (("inspect", "model.tflite", "--json"), ("model.tflite",), "inspect.json"),
    (("recluster", "model.tflite", "-o", "rec/model.tflite", "-k", "16"), ("model.tflite",), None),
    (("palettise", "rec/model.tflite", "-o", "pal"), ("rec/model.tflite",), None),
    (("compile", "rec/model.tflite", "--target", TARGET, "-o", "cmp"), ("rec/model.tflite",), None),
    (("compile", "rec/model.tflite", "--target", "ethos-n78-1tops-4ple", "-o", "cmp_n78"), ("rec/model.tflite",), None),
    (("firmware", "--target", TARGET, "--compile-dir", "cmp", "-o", "fw", "--palettes", "pal"), ("cmp", "pal"), None),
    (("profiles", "board.toml", "--json"), ("board.toml",), "profiles.json"),
)
BOARD = 'schema_version = 1\nname = "my-board"\nbase = "ethos-u55-128"\n\n[budget]\nsram_bytes = 524288\nflash_bytes = 2097152\n'
INPUTS = ("model.tflite", "board.toml")


def _env() -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("TOOLCHAIN_DEBUG", None)
    return env


def toolchain(argv, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "toolchain", *argv], cwd=cwd, capture_output=True, env=_env(),
                          stdin=subprocess.DEVNULL, timeout=300)


def _hashes(root: Path, rel: str) -> dict[str, str]:
    p = root / rel
    files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
    return {str(f.relative_to(root)): hashlib.sha256(f.read_bytes()).hexdigest() for f in files}


def _files(root: Path) -> dict[str, bytes]:
    return {str(f.relative_to(root)): f.read_bytes() for f in sorted(root.rglob("*")) if f.is_file()}


def run_pipeline(root: Path, model: Path) -> dict[str, bytes]:
    """Every verb in ``root`` with relative paths; the artifacts (files written, saved stdout) by path."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(model, root / "model.tflite")
    (root / "board.toml").write_text(BOARD)
    for argv, inputs, stdout_file in PIPELINE:
        before = {k: v for rel in inputs for k, v in _hashes(root, rel).items()}
        proc = toolchain(argv, root)
        assert proc.returncode == 0, (argv, proc.stderr.decode()[-2000:])
        after = {k: v for rel in inputs for k, v in _hashes(root, rel).items()}
        assert after == before, f"'toolchain {argv[0]}' modified its input"
        if stdout_file:
            (root / stdout_file).write_bytes(proc.stdout)
    return {k: v for k, v in _files(root).items() if k not in INPUTS}


@pytest.fixture(scope="module")
def reference(tmp_path_factory, conv_bn_int8) -> tuple[Path, dict[str, bytes]]:
    root = tmp_path_factory.mktemp("determinism") / "run_a"
    return root, run_pipeline(root, conv_bn_int8)


def test_every_artifact_is_byte_identical_across_runs(reference, conv_bn_int8, tmp_path):
    root_a, first = reference
    expected_outputs = {"inspect.json", "rec/model.tflite", "rec/model.json", "pal/palettes.json", "pal/palettes.npz",
                        "pal/model_tflm.tflite", "cmp/compile.json", "cmp/model_vela.tflite", "cmp_n78/compile.json",
                        "profiles.json"}
    assert expected_outputs <= set(first)
    assert any(k.startswith("fw/") and k.endswith(".c") for k in first)
    second = run_pipeline(tmp_path / "run_b", conv_bn_int8)  # another directory
    assert sorted(second) == sorted(first)
    different = [k for k in first if first[k] != second[k]]
    assert different == [], f"artifacts differ between runs: {different}"
    again = run_pipeline(root_a, conv_bn_int8)  # the same directory, over the first run's files
    assert [k for k in first if again.get(k) != first[k]] == []
    for rel, data in first.items():
        for root in (str(root_a), str(tmp_path), str(root_a.parent)):
            assert root.encode() not in data, f"{rel} holds the absolute path {root}"


def test_no_temporaries_left_by_complete_runs(reference):
    root, _ = reference
    leftovers = [str(p.relative_to(root)) for p in root.rglob(".*")]
    assert leftovers == []


# --------------------------------------------------------------------------- killed runs


def _run_killed(argv, cwd: Path, when: float | str, limit_s: float = 60.0) -> bool:
    """Run ``toolchain argv`` in its own process group and SIGKILL the group (toolchain and Vela) either
    after ``when`` seconds or as soon as a path matching the glob ``when`` exists under ``cwd``.
    True when the kill came while the run was still going."""
    proc = subprocess.Popen([sys.executable, "-m", "toolchain", *argv], cwd=cwd, env=_env(), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + limit_s
    if isinstance(when, str):
        while proc.poll() is None and not any(cwd.glob(when)) and time.monotonic() < deadline:
            time.sleep(0.0005)
    else:
        time.sleep(when)
    alive = proc.poll() is None
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
    return alive


def _check_killed_dir(root: Path, reference: dict[str, bytes], inputs: dict[str, str]) -> tuple[int, list[str]]:
    """Final names hold complete reference files; other names are dot-named temporaries. (complete files, temps)"""
    complete, temps = 0, []
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if any(part.startswith(".") for part in Path(rel).parts):
            temps.append(rel)
            continue
        if path.is_dir() or rel in inputs:
            continue
        assert rel in reference, f"unexpected file {rel} after a killed run"
        assert path.read_bytes() == reference[rel], f"{rel} is partial or different after a killed run"
        complete += 1
    assert {r: hashlib.sha256((root / r).read_bytes()).hexdigest() for r in inputs} == inputs, "input modified"
    return complete, temps


# Kill points: a time, or the first moment a path exists (the run's own milestones).
RECLUSTER_KILLS = (0.05, 0.3, "rec", "rec/.model.tflite.*.tmp", "rec/model.tflite", "rec/.model.json.*.tmp")
COMPILE_KILLS = (0.05, "cmp", "cmp/.vela-*", "cmp/.vela-*/model_vela.tflite", "cmp/model_*", "cmp/model_vela.tflite",
                 "cmp/.compile.json.*.tmp")


@pytest.mark.parametrize(
    "argv, prefix, kills",
    [
        (("recluster", "model.tflite", "-o", "rec/model.tflite", "-k", "16"), "rec/", RECLUSTER_KILLS),
        (("compile", "model.tflite", "--target", TARGET, "-o", "cmp"), "cmp/", COMPILE_KILLS),
    ],
    ids=["recluster", "compile"],
)
def test_killed_run_leaves_no_partial_output(argv, prefix, kills, reference, tmp_path):
    root_a, _ = reference
    model = root_a / ("rec/model.tflite" if argv[0] == "compile" else "model.tflite")
    ref_dir = tmp_path / "ref"  # the complete outputs of this exact command
    ref_dir.mkdir()
    shutil.copyfile(model, ref_dir / "model.tflite")
    assert toolchain(argv, ref_dir).returncode == 0
    ref = {k: v for k, v in _files(ref_dir).items() if k.startswith(prefix)}
    assert ref
    states = []
    for i, when in enumerate(kills):
        d = tmp_path / f"kill{i}"
        d.mkdir()
        shutil.copyfile(model, d / "model.tflite")
        inputs = {"model.tflite": hashlib.sha256((d / "model.tflite").read_bytes()).hexdigest()}
        alive = _run_killed(argv, d, when)
        complete, temps = _check_killed_dir(d, ref, inputs)
        for t in temps:  # atomic_write's ".NAME.XXXX.tmp" or Vela's work directory ".vela-XXXX/"
            assert re.fullmatch(r"(.*/)?\.vela-[^/]+(/.*)?", t) or re.fullmatch(r"(.*/)?\.[^/]+\.tmp", t), t
        states.append((when, alive, complete))
    assert any(alive and complete == 0 for _, alive, complete in states), states  # killed before any output
    # Kills between two renames (some final files, not all) are races the milestones usually win;
    # whichever state a kill hits, every file under a final name was checked complete above.
    if argv[0] == "compile":  # Vela runs long enough to be killed while it works
        assert any(alive for when, alive, _ in states if when == "cmp/.vela-*"), states


def test_atomic_write_killed_mid_write_of_a_large_file(tmp_path):
    """SIGKILL while 32 MiB outputs are being written: the final name holds all of one version or nothing."""
    size = 32 << 20
    target = tmp_path / "big.bin"
    script = (
        "import sys; from toolchain.core.fileio import atomic_write_bytes\n"
        f"a = b'A' * {size}; b = b'B' * ({size} - 4096)\n"
        "i = 0\n"
        "while True:\n"
        f"    atomic_write_bytes({str(target)!r}, a if i % 2 == 0 else b); i += 1\n"
        "    print(i, flush=True)\n"
    )
    rng = random.Random(1)
    versions = {size: b"A", size - 4096: b"B"}
    for _ in range(6):
        proc = subprocess.Popen([sys.executable, "-c", script], env=_env(), stdout=subprocess.PIPE, start_new_session=True)
        time.sleep(rng.uniform(0.3, 1.5))
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        if target.exists():
            data = target.read_bytes()
            assert len(data) in versions and data == versions[len(data)] * len(data), "partial file under the final name"
        others = [p.name for p in tmp_path.iterdir() if p != target]
        assert all(n.startswith(".big.bin.") and n.endswith(".tmp") for n in others), others
        for p in tmp_path.iterdir():  # the next round starts from a clean directory
            if p != target:
                p.unlink()
