"""A sweep's points and the code that runs one, on whichever executor: model x K, each a ``deploy``.

A point is one model at one K over every target of the sweep, deployed into its own
directory ``BUILD/sweep/k<K>/<model>/`` (the layout of ``make sweep``). Targets share a point
because the training stages (fine-tune, QAT, int8 conversion) and the rewrite are per model
and K: a task per target would repeat them. ``run_point`` is what a worker runs, in a fresh
process: it first compares the worker's versions and input files with the driver's (a node
with another Vela would give other cycle counts, silently), then runs
``toolchain.pipeline.runner.run_pipeline`` and returns every report.json it wrote, so a driver
on another machine can build the Pareto table without the worker's disk.
"""
from __future__ import annotations

import os
import platform
import sys
import time
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path

from ..core.errors import InputError, ToolchainError, ToolError
from ..core.fileio import sha256_file
from ..reporting.report import REPORT_JSON
from .manifest import POST_TRAINING_STAGE_CODE, TRAINING_STAGE_CODE, package_versions
from .result import DeployOptions

SWEEP_DIR = "sweep"
DEFAULT_SWEEP_CLUSTERS = (8, 16, 32)
# What must match on every node: a point's figures depend on all of them (Vela's cycle model, the
# converter's rounding, LiteRT's kernels), and the toolchain's own source digest covers the rest.
PINNED_DISTS = ("ethos-u-vela", "ai-edge-litert", "numpy", "flatbuffers", "tensorflow", "tf-keras",
                "tensorflow-model-optimization", "tflite-micro")
POINT_ATTEMPTS = 2  # a failed point is tried once more, then reported


class Executor(Enum):
    LOCAL = "local"  # a pool of fresh processes on this machine
    RAY = "ray"  # Ray tasks: a local Ray cluster, or the one at --ray-address / RAY_ADDRESS


@dataclass(frozen=True)
class SweepOptions:
    """``toolchain sweep`` / ``make sweep EXECUTOR=...``: model(s) x K over the targets."""

    models: tuple[Path, ...] = ()  # empty: the bundled example (trained once, before the points)
    data: str | None = None
    clusters: tuple[int, ...] = DEFAULT_SWEEP_CLUSTERS
    targets: tuple[str, ...] = ()
    profile: Path | None = None
    config: Path | None = None
    build_dir: Path = Path("build")
    executor: Executor = Executor.LOCAL
    jobs: int = 1  # local: points at a time; ray: CPUs of a local cluster (0: every core)
    ray_address: str | None = None  # None: RAY_ADDRESS, else a local cluster
    trust_model_code: bool = False  # Keras models holding Lambda layers or custom objects load (their code runs)
    replace_builtin: bool = False  # a PROFILE named like a built-in target may replace it

    @property
    def sweep_dir(self) -> Path:
        return self.build_dir / SWEEP_DIR

    @property
    def example_dir(self) -> Path:
        return self.build_dir / "example"


@dataclass(frozen=True)
class PointSpec:
    """One deploy: its options (absolute paths) and the inputs a worker must hold, as (path, sha256)."""

    name: str  # "<model> K=<k>", how logs and failures name the point
    options: DeployOptions
    inputs: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class PointOutcome:
    name: str
    node: str  # the host that ran the (last) attempt
    error: str | None  # one line; None when the point succeeded
    exit_code: int  # 0, or the exit code the error maps to
    reports: tuple[tuple[str, bytes], ...] = ()  # (path relative to the sweep directory, report.json bytes)
    deploy_s: float = 0.0  # run_pipeline alone
    task_s: float = 0.0  # the whole task on the worker: checks, deploy, reading the reports
    started_unix_s: float = 0.0
    attempts: int = 1
    errors: tuple[str, ...] = field(default=())  # every attempt's error, in order

    @property
    def ok(self) -> bool:
        return self.error is None


def plan_points(options: SweepOptions, model_files: tuple[Path, ...]) -> list[PointSpec]:
    """The points in sweep order (model, then K); ``model_files`` are the models as workers will read them."""
    from .inputs import model_name

    names = [model_name(m) for m in model_files] or ["example"]
    seen: dict[str, Path] = {}
    for name, path in zip(names, model_files):
        if name in seen:
            raise InputError(f"two models of the sweep would share build directory '{name}': {seen[name]} and {path} "
                             "(rename one)")
        seen[name] = path
    shared = [p for p in (options.profile, options.config) if p is not None]
    if options.data and Path(options.data).suffix.lower() == ".npz":
        shared.append(Path(options.data))
    points = []
    for name, model in zip(names, model_files or (None,)):
        files = [*shared, model if model is not None else _example_model(options)]
        inputs = tuple((str(f), sha256_file(f)) for f in files)
        for k in options.clusters:
            deploy = DeployOptions(
                model=model, data=options.data, clusters=k, targets=options.targets, profile=options.profile,
                config=options.config, build_dir=options.sweep_dir / f"k{k}", example_dir=options.example_dir,
                trust_model_code=options.trust_model_code, replace_builtin=options.replace_builtin)
            points.append(PointSpec(f"{name} K={k}", _absolute(deploy), inputs))
    return points


def _example_model(options: SweepOptions) -> Path:
    from ..training.example import MODEL_FILE

    return options.example_dir / MODEL_FILE


def _absolute(o: DeployOptions) -> DeployOptions:
    """A worker's current directory is not the driver's: every path absolute."""
    def a(p: Path | None) -> Path | None:
        return None if p is None else Path(os.path.abspath(p))

    data = o.data
    if data and Path(data).suffix.lower() == ".npz":
        data = str(a(Path(data)))
    return replace(o, model=a(o.model), profile=a(o.profile), config=a(o.config), build_dir=a(o.build_dir),
                   example_dir=a(o.example_dir), data=data)


def node_versions() -> dict[str, str]:
    """This process's versions of what a point's figures depend on (package metadata: nothing imported)."""
    out = package_versions(*PINNED_DISTS, code=POST_TRAINING_STAGE_CODE + TRAINING_STAGE_CODE)
    out["python"] = f"{sys.version_info.major}.{sys.version_info.minor}"
    return out


def version_mismatch(expected: dict[str, str], actual: dict[str, str]) -> str | None:
    """One line naming every difference, or None."""
    diffs = []
    for key in sorted(expected):
        mine, theirs = actual.get(key, "not installed"), expected[key]
        if mine != theirs:
            label = "the toolchain's source (sha256)" if key == "toolchain_source_sha256" else key
            shown = (mine[:12], theirs[:12]) if key == "toolchain_source_sha256" else (mine, theirs)
            diffs.append(f"{label} {shown[0]} where the driver has {shown[1]}")
    return "; ".join(diffs) or None


def check_node(point: PointSpec, expected: dict[str, str]) -> None:
    """Refuse to run on a node whose versions or input files differ from the driver's."""
    host = platform.node()
    diff = version_mismatch(expected, node_versions())
    if diff:
        raise ToolError(f"node {host} does not have the driver's pinned versions: {diff} "
                        "(install the toolchain with 'pip install -c constraints.txt' on every node)")
    for path, digest in point.inputs:
        if not os.path.isfile(path):
            raise InputError(f"node {host} has no {path}: every node needs the sweep's inputs at the same path "
                             "(a shared file system, or a copy)")
        if sha256_file(path) != digest:
            raise InputError(f"{path} on node {host} differs from the driver's copy (sha256)")


def run_point(point: PointSpec, expected: dict[str, str]) -> PointOutcome:
    """Check the node, deploy, return the reports; every failure becomes an outcome with one line."""
    from .progress import OutputMode, Progress
    from .runner import run_pipeline

    t0, started = time.perf_counter(), time.time()
    host = platform.node()
    try:
        check_node(point, expected)
        t1 = time.perf_counter()
        result = run_pipeline(point.options, Progress(OutputMode.QUIET))
        deploy_s = time.perf_counter() - t1
        base = point.options.build_dir.parent
        reports = tuple((os.path.relpath(t.report_dir / REPORT_JSON, base), (t.report_dir / REPORT_JSON).read_bytes())
                        for t in result.targets)
    except ToolchainError as exc:
        return PointOutcome(point.name, host, _one_line(str(exc)), int(exc.exit_code), started_unix_s=started,
                            task_s=time.perf_counter() - t0)
    except Exception as exc:  # noqa: BLE001  a bug in a point must not stop the sweep: named, exit 1
        return PointOutcome(point.name, host, _one_line(f"internal error: {type(exc).__name__}: {exc}"), 1,
                            started_unix_s=started, task_s=time.perf_counter() - t0)
    return PointOutcome(point.name, host, None, 0, reports, deploy_s, time.perf_counter() - t0, started)


def _one_line(text: str) -> str:
    return " ".join(text.split()) or "failed"
