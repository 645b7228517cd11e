"""``toolchain sweep``: the local and the Ray executor on two tiny points (real Ray, real deploys).

Each run is a subprocess (a Ray driver and its workers are processes anyway, and Ray must not
stay in the test process). A point fails on purpose with a model that is not a .tflite: it is
retried once, named, and the other point's Pareto table is the one the local executor writes.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

import pytest
from conftest import need_system

from toolchain.pipeline.sweep_points import PointOutcome, version_mismatch
from toolchain.pipeline.sweep_runner import SweepRun

REPO = Path(__file__).resolve().parents[1]
TARGET = "ethos-u55-128"


def _sweep(*argv: str, cwd: Path, env: dict[str, str] | None = None, prelude: str = "") -> subprocess.CompletedProcess:
    environ = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
               **(env or {})}
    if "RAY_ADDRESS" not in (env or {}):
        environ.pop("RAY_ADDRESS", None)  # a cluster of the user's must not change what the test runs on
    code = f"{prelude}\nimport sys\nfrom toolchain.cli import main\nsys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, "sweep", *argv], cwd=cwd, env=environ, capture_output=True,
                          text=True, timeout=600)


def _need_ray() -> None:
    need_system("ray (the distributed extra)", find_spec("ray") is not None, "pip install -e '.[distributed]'")


@pytest.mark.slow
@pytest.mark.tf  # the input model is made with the TFLite converter
def test_ray_runs_the_points_retries_a_failure_once_and_writes_the_local_executors_pareto(conv_bn_int8, tmp_path):
    _need_ray()
    (tmp_path / "net.tflite").write_bytes(conv_bn_int8.read_bytes())
    (tmp_path / "broken.tflite").write_bytes(b"TFL3 not a model at all")
    ray = _sweep("net.tflite", "broken.tflite", "--clusters", "4", "--target", TARGET, "--executor", "ray",
                 "--jobs", "2", "--build-dir", "ray", cwd=tmp_path)
    assert ray.returncode == 2, ray.stderr  # the failed point's own exit code (a model that is not one)
    assert ray.stderr.count("\n") == 1 and ray.stderr.startswith("error: 1 of 2 sweep points failed after 2 attempts")
    assert "broken K=4 (" in ray.stderr and "net K=4" not in ray.stderr
    assert "executor: ray, a local Ray cluster on this machine (2 CPUs), shut down after; 2 point(s)" in ray.stdout
    assert "broken K=4" in ray.stdout and "(attempt 1 of 2), retrying:" in ray.stdout
    assert "(attempt 2 of 2):" in ray.stdout and "net K=4" in ray.stdout and " done on " in ray.stdout
    report = tmp_path / "ray" / "sweep" / "k4" / "net" / TARGET / "report" / "report.json"
    assert report.is_file() and not (tmp_path / "ray" / "sweep" / "k4" / "broken" / TARGET / "report").exists()

    local = _sweep("net.tflite", "--clusters", "4", "--target", TARGET, "--build-dir", "local", "--json",
                   cwd=tmp_path)
    assert local.returncode == 0, local.stderr
    doc = json.loads(local.stdout)
    assert doc["executor"] == "local" and [p["name"] for p in doc["points"]] == ["net K=4"]
    assert doc["points"][0]["reports"] == [f"k4/net/{TARGET}/report/report.json"]
    for name in ("pareto.json", "pareto.md"):
        assert (tmp_path / "ray" / "sweep" / name).read_bytes() == (tmp_path / "local" / "sweep" / name).read_bytes()
    assert report.read_bytes() == (tmp_path / "local" / "sweep" / "k4" / "net" / TARGET / "report" /
                                   "report.json").read_bytes()


@pytest.mark.slow
@pytest.mark.tf
def test_a_worker_without_the_pinned_versions_fails_its_point_naming_the_mismatch(conv_bn_int8, tmp_path):
    """The workers get another ethos-u-vela through Ray's own job runtime environment (what `ray job submit`
    sets): a node installed differently. The point fails before any work, twice, naming both versions."""
    _need_ray()
    fake = tmp_path / "other-site" / "ethos_u_vela-0.0.1.dist-info"
    fake.mkdir(parents=True)
    (fake / "METADATA").write_text("Metadata-Version: 2.1\nName: ethos-u-vela\nVersion: 0.0.1\n")
    (tmp_path / "net.tflite").write_bytes(conv_bn_int8.read_bytes())
    job = {"runtime_env": {"env_vars": {"PYTHONPATH": os.pathsep.join([str(fake.parent), str(REPO)])}}}
    run = _sweep("net.tflite", "--clusters", "4", "--target", TARGET, "--executor", "ray", "--jobs", "1",
                 "--build-dir", "b", cwd=tmp_path, env={"RAY_JOB_CONFIG_JSON_ENV_VAR": json.dumps(job)})
    assert run.returncode == 3, run.stderr
    assert run.stderr.count("\n") == 1
    assert "ethos-u-vela 0.0.1 where the driver has 5.2.0" in run.stderr and "net K=4" in run.stderr
    assert "(attempt 2 of 2)" in run.stdout
    assert not (tmp_path / "b" / "sweep" / "k4" / "net").exists()  # nothing ran


def test_without_ray_the_ray_executor_exits_2_naming_the_extra(tmp_path):
    (tmp_path / "m.tflite").write_bytes(b"x")
    run = _sweep("m.tflite", "--executor", "ray", cwd=tmp_path, prelude="import sys; sys.modules['ray'] = None")
    assert run.returncode == 2
    assert run.stderr.startswith("error: Ray is not installed: install the distributed extra") and \
        "[distributed]" in run.stderr and run.stderr.count("\n") == 1
    assert not (tmp_path / "build").exists()


def test_version_mismatch_names_every_difference():
    driver = {"ethos-u-vela": "5.2.0", "numpy": "2.4.6", "toolchain_source_sha256": "a" * 64}
    assert version_mismatch(driver, dict(driver)) is None
    worker = {"ethos-u-vela": "5.1.0", "toolchain_source_sha256": "b" * 64}
    assert version_mismatch(driver, worker) == (
        "ethos-u-vela 5.1.0 where the driver has 5.2.0; numpy not installed where the driver has 2.4.6; "
        "the toolchain's source (sha256) bbbbbbbbbbbb where the driver has aaaaaaaaaaaa")


def test_the_first_failed_points_exit_code_is_the_sweeps():
    from toolchain.core.errors import BudgetExceeded
    from toolchain.pipeline.sweep_points import Executor

    points = (PointOutcome("a K=8", "n", None, 0), PointOutcome("b K=8", "n", "over budget", 4, attempts=2),
              PointOutcome("c K=8", "n", "bad model", 2, attempts=2))
    run = SweepRun(Executor.LOCAL, "local", points, None, 1.0)
    with pytest.raises(BudgetExceeded, match=r"^2 of 3 sweep points failed after 2 attempts: b K=8 \(over budget\); "
                                             r"c K=8 \(bad model\)$"):
        run.raise_for_failures()
    SweepRun(Executor.LOCAL, "local", points[:1], None, 1.0).raise_for_failures()  # nothing failed: no error


def test_a_keras_model_without_data_is_refused_before_any_point(tmp_path):
    (tmp_path / "net.keras").write_bytes(b"PK\x03\x04")
    run = _sweep("net.keras", "--clusters", "8", cwd=tmp_path)
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr == "error: MODEL net.keras is a Keras model: fine-tuning needs DATA (--data)\n"
    assert not (tmp_path / "build").exists()
