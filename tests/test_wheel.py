"""The wheel: built from this checkout, installed without extras into a fresh venv (no TensorFlow), used there.

The core must work from a wheel alone: profiles and schemas come from package data, not the
source tree. Runs from a directory outside the checkout so nothing can fall back on it.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
from conftest import IN_CI, REPO

pytestmark = pytest.mark.slow


def _run(argv: list[str], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    proc = _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out), str(REPO)], out)
    if proc.returncode != 0 and not IN_CI and "Could not" in proc.stderr:
        pytest.skip(f"cannot build the wheel here (no package index?): {proc.stderr.strip().splitlines()[-1]}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    (whl,) = out.glob("ethos_palette_toolchain-*.whl")
    return whl


@pytest.fixture(scope="module")
def core_venv(tmp_path_factory, wheel) -> Path:
    """A fresh venv with the wheel and its core dependencies only (pinned by constraints.txt)."""
    venv = tmp_path_factory.mktemp("core_venv") / "venv"
    assert _run([sys.executable, "-m", "venv", str(venv)], venv.parent).returncode == 0
    py = venv / "bin" / "python"
    proc = _run([str(py), "-m", "pip", "install", "--quiet", "-c", str(REPO / "constraints.txt"), str(wheel)], venv.parent)
    if proc.returncode != 0 and not IN_CI and "Could not" in proc.stderr:
        pytest.skip(f"cannot install the core dependencies here (no package index?): {proc.stderr.strip().splitlines()[-1]}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return venv


def test_wheel_carries_schemas_and_profiles(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for path in (REPO / "schemas").glob("*.schema.json"):
        assert f"toolchain/schemas/{path.name}" in names
    for path in (REPO / "hw_profiles").glob("*.toml"):
        assert f"toolchain/hw_profiles/{path.name}" in names
    # the Ethos-N bridge's source (built against a user's Arm library) and the calibration's worst errors
    assert {"toolchain/targets/ethos_n_bridge.cpp", "toolchain/targets/ethos_n_calibration.json"} <= names
    for path in (REPO / "toolchain" / "firmware" / "m55_check").iterdir():  # toolchain firmware-check's program
        assert f"toolchain/firmware/m55_check/{path.name}" in names
    assert not any(n.startswith(("tests/", "benchmarks/")) for n in names)


def test_train_extra_names_the_training_stack(wheel):
    with zipfile.ZipFile(wheel) as zf:
        meta = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        msg = Parser().parsestr(zf.read(meta).decode())
    requires = msg.get_all("Requires-Dist")
    core = [r for r in requires if "extra ==" not in r]
    train = [r for r in requires if 'extra == "train"' in r]
    assert not any(r.startswith(("tensorflow", "tf-keras", "tf_keras")) for r in core)
    assert {r.split("==")[0] for r in train} >= {"tensorflow", "tf-keras", "tensorflow-model-optimization"}


def test_core_wheel_runs_every_post_training_verb(core_venv, core_dense_int8, tmp_path):
    """The model is written with the flatbuffer API: this file needs no TensorFlow on either side."""
    toolchain = core_venv / "bin" / "toolchain"
    py = core_venv / "bin" / "python"
    # no TensorFlow, and the package is the installed one, not this checkout
    probe = _run([str(py), "-c", ("import importlib.util as u, toolchain; "
                                  "print(u.find_spec('tensorflow') is None, toolchain.__file__)")], tmp_path)
    has_no_tf, location = probe.stdout.split()
    assert has_no_tf == "True" and str(core_venv) in location

    profiles = _run([str(toolchain), "profiles", "--json"], tmp_path)
    assert profiles.returncode == 0, profiles.stderr
    assert {p["name"] for p in json.loads(profiles.stdout)} >= {"ethos-u55-128", "ethos-u85-256", "ethos-n78-1tops-4ple"}

    model = tmp_path / "m.tflite"
    model.write_bytes(core_dense_int8.read_bytes())
    steps = [
        ["recluster", str(model), "-o", "m_k16.tflite", "--samples", "4"],
        ["palettise", "m_k16.tflite", "-o", "pal"],
        ["compile", "m_k16.tflite", "--target", "ethos-u55", "-o", "u55"],
        ["deploy", str(model), "--target", "ethos-u55", "-o", "build", "--quiet"],
    ]
    if shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm"):  # the check's C files are package data
        steps.append(["firmware-check", str(model), "--build-dir", "build", "--quiet"])
    for argv in steps:
        proc = _run([str(toolchain), *argv], tmp_path)
        assert proc.returncode == 0, (argv, proc.stderr[-2000:])
    assert json.loads((tmp_path / "u55" / "compile.json").read_text())["target"] == "ethos-u55-128"
    assert (tmp_path / "pal" / "palettes.json").is_file()
    assert (tmp_path / "build" / "m" / "ethos-u55-128" / "report" / "report.json").is_file()


def test_core_wheel_says_how_to_get_the_training_verbs(core_venv, tmp_path):
    keras = tmp_path / "m.keras"
    keras.write_bytes(b"PK\x03\x04" + b"\0" * 64)
    proc = _run([str(core_venv / "bin" / "toolchain"), "finetune", str(keras), "--data", "digits", "-o", "o.keras"],
                tmp_path)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error:") and "[train]" in proc.stderr


# The "not tf" part of the suite that depends on what is installed: the palette solver, profiles against the
# installed Vela, the contracts and the rewriter's CLI on a model written without TensorFlow, the CLI grammar,
# paths and escaping. Not all of it: the rest is pure numpy or repeats these parts, and CI time matters
# (this run adds about a minute; tests/test_wild_corpus.py downloads, this file would recurse).
CORE_SUITE = ("test_palette_solver.py", "test_profiles.py", "test_layering.py", "test_cli_consistency.py",
              "test_fidelity.py", "test_escape.py", "test_paths.py")


def test_not_tf_suite_passes_in_the_core_venv(core_venv, wheel, tmp_path):
    """pytest -m "not tf" in the venv without the training extra (plus the dev extra, to run pytest): what the
    marker promises. CI is unset there: that venv is a user's machine, where a missing extra skips."""
    py = core_venv / "bin" / "python"
    proc = _run([str(py), "-m", "pip", "install", "--quiet", "-c", str(REPO / "constraints.txt"), f"{wheel}[dev]"],
                tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    env_ci = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "CI")}
    # the pytest program, not `python -m pytest`, and a directory outside the checkout: the wheel's toolchain is
    # the one imported, not the checkout's
    argv = [str(core_venv / "bin" / "pytest"), "-q", "-m", "not tf", "-p", "no:cacheprovider",
            "-c", str(REPO / "pyproject.toml"), "--rootdir", str(REPO), *(str(REPO / "tests" / f) for f in CORE_SUITE)]
    proc = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=900, env=env_ci)
    tail = proc.stdout[-3000:] + proc.stderr[-1000:]
    assert proc.returncode == 0, tail
    assert " passed" in proc.stdout.splitlines()[-1] and "error" not in proc.stdout.splitlines()[-1], tail
