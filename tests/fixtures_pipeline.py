"""Fixtures for the deploy pipeline tests: real builds, made once per session.

- ``example_deploy``: the bundled example (trained once per session by fixtures_training's
  ``example_build``) through the whole pipeline for one U55 and one U85 target, in a small
  configuration (fine-tune 1 epoch on 600 images, accuracy on 300).
- ``tflite_deploy``: conftest's ``conv_bn_int8`` through the post-training entry (no TensorFlow
  in the pipeline, no data), built twice (K=16, then K=8) so its history has two builds.

Import into a test module with ``from fixtures_pipeline import *``.
"""
from __future__ import annotations

import hashlib
import io
import json
import shutil
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import pytest
from fixtures_training import example_build, training_dir

from toolchain.cli import main

__all__ = [
    "SMALL_CONFIG",
    "TARGETS",
    "Build",
    "DeployRun",
    "copy_build",
    "deploy",
    "example_build",
    "example_deploy",
    "pipeline_dir",
    "ran_stages",
    "small_config",
    "tflite_deploy",
    "training_dir",
    "tree_digest",
]

TARGETS = ("ethos-u55-128", "ethos-u85-256")
SMALL_CONFIG = """\
schema_version = 1

[data]
train_samples = 600
test_samples = 300

[finetune]
epochs = 1

[quantize]
representative_samples = 50

[verify]
samples = 8
"""

_MEMO: dict[str, object] = {}


@dataclass(frozen=True)
class DeployRun:
    rc: int
    stdout: str
    stderr: str

    @property
    def json(self) -> dict:
        return json.loads(self.stdout)


def deploy(*argv: str) -> DeployRun:
    """``toolchain deploy ARGV`` in this process; stdout and stderr captured."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            rc = main(["deploy", *argv])
        except SystemExit as exc:  # argparse refuses bad option values itself
            rc = int(exc.code or 0)
    return DeployRun(rc, out.getvalue(), err.getvalue())


def ran_stages(run: DeployRun) -> set[str]:
    return {s["name"] for s in run.json["stages"] if s["status"] == "ran"}


def tree_digest(root: Path, pattern: str = "**/*") -> dict[str, str]:
    """sha256 of every file under ``root`` matching ``pattern`` (relative path -> hash)."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.glob(pattern)) if p.is_file()}


def copy_build(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


@pytest.fixture(scope="session")
def pipeline_dir(tmp_path_factory) -> Path:
    if "pipeline_dir" not in _MEMO:
        _MEMO["pipeline_dir"] = tmp_path_factory.mktemp("pipeline")
    return _MEMO["pipeline_dir"]  # type: ignore[return-value]


@pytest.fixture(scope="session")
def small_config(pipeline_dir) -> Path:
    path = pipeline_dir / "small.toml"
    if not path.exists():
        path.write_text(SMALL_CONFIG, encoding="utf-8")
    return path


@dataclass(frozen=True)
class Build:
    build_dir: Path  # --build-dir
    model_dir: Path  # build_dir/<model>
    args: tuple[str, ...]  # the deploy arguments that made it (without --json)
    first: DeployRun  # the --json run that built it


@pytest.fixture(scope="session")
def example_deploy(pipeline_dir, small_config, example_build) -> Build:
    if "example_deploy" not in _MEMO:
        build = pipeline_dir / "example_build"
        args = ("--example-dir", str(example_build.model_path.parent), "--config", str(small_config),
                "--clusters", "16", *[a for t in TARGETS for a in ("--target", t)], "--build-dir", str(build))
        run = deploy(*args, "--json")
        assert run.rc == 0, run.stderr
        _MEMO["example_deploy"] = Build(build, build / "example", args, run)
    return _MEMO["example_deploy"]  # type: ignore[return-value]


@pytest.fixture(scope="session")
def tflite_deploy(pipeline_dir, conv_bn_int8) -> Build:
    if "tflite_deploy" not in _MEMO:
        build = pipeline_dir / "tflite_build"
        base = (str(conv_bn_int8), *[a for t in TARGETS for a in ("--target", t)], "--build-dir", str(build))
        first = deploy(*base, "--clusters", "16", "--json")
        assert first.rc == 0, first.stderr
        second = deploy(*base, "--clusters", "8", "--json")
        assert second.rc == 0, second.stderr
        _MEMO["tflite_deploy"] = Build(build, build / Path(conv_bn_int8).stem, (*base, "--clusters", "8"), second)
    return _MEMO["tflite_deploy"]  # type: ignore[return-value]
