"""``toolchain sweep``: every point of a sweep on one executor, then the Pareto table of what succeeded.

Both executors run the same function (``sweep_points.run_point``) in a fresh process per point
and retry a failed point once; a point that fails twice is reported by name and the others go
on. The driver writes each report.json a point returned into ``BUILD/sweep/`` (where a worker
on this machine already wrote it; a remote worker's disk is not ours) and then the same
``pareto.json``/``pareto.md``/``pareto.png`` as ``make sweep``, from the same reports in the
same order, so both give the same bytes.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, replace
from multiprocessing import get_context
from pathlib import Path

from ..core.errors import BudgetExceeded, InputError, ToolError, VerificationError
from ..core.fileio import atomic_write_bytes
from ..core.paths import check_output_dir, check_paths, real_dir, refuse_links
from ..reporting.sweep import SweepOutcome, write_pareto
from ..training.keras_io import KERAS_SUFFIXES
from .inputs import resolve_targets
from .sweep_points import (
    POINT_ATTEMPTS,
    Executor,
    PointOutcome,
    PointSpec,
    SweepOptions,
    node_versions,
    plan_points,
    run_point,
)

_ERROR_OF_EXIT = {2: InputError, 3: ToolError, 4: BudgetExceeded, 5: VerificationError}


@dataclass(frozen=True)
class SweepRun:
    executor: Executor
    where: str  # which executor ran and where, for the log
    points: tuple[PointOutcome, ...]
    pareto: SweepOutcome | None  # None when no point succeeded
    wall_s: float
    connect_s: float = 0.0  # Ray: start or reach the cluster (local executor: 0)

    @property
    def failed(self) -> tuple[PointOutcome, ...]:
        return tuple(p for p in self.points if not p.ok)

    def raise_for_failures(self) -> None:
        """The first failed point's kind of error (its exit code), naming every failed point."""
        if not self.failed:
            return
        first = self.failed[0]
        names = "; ".join(f"{p.name} ({p.error})" for p in self.failed)
        kept = f", the Pareto table holds the other {len(self.points) - len(self.failed)}" if self.pareto else ""
        raise _ERROR_OF_EXIT.get(first.exit_code, ToolError)(
            f"{len(self.failed)} of {len(self.points)} sweep points failed after {POINT_ATTEMPTS} attempts{kept}: {names}")


def run_sweep(options: SweepOptions, log: Callable[[str], None] = lambda line: None) -> SweepRun:
    """Run every point on ``options.executor``; raises before any point for bad inputs, never for a failed point."""
    t0 = time.perf_counter()
    _check(options)
    if options.executor is Executor.RAY:
        from .sweep_ray import require_ray, resolve_address

        require_ray()  # before the example trains: the missing extra is a second's answer
        address = resolve_address(options.ray_address)
    models = options.models
    if not models:
        _prepare_example(options, log)
    points = plan_points(options, models)
    expected = node_versions()

    def done(o: PointOutcome, retrying: bool) -> None:
        if o.ok:
            log(f"  {o.name:<28} done on {o.node} in {o.task_s:.1f} s")
        else:
            log(f"  {o.name:<28} failed on {o.node} (attempt {o.attempts} of {POINT_ATTEMPTS})"
                f"{', retrying' if retrying else ''}: {o.error}")

    connect_s = 0.0
    if options.executor is Executor.RAY:
        from .sweep_ray import ray_cluster, run_on_ray

        with ray_cluster(address, options.jobs or os.cpu_count() or 1) as cluster:
            where, connect_s = cluster.describe(), cluster.connect_s
            log(f"executor: {where}; {len(points)} point(s)")
            outcomes = run_on_ray(points, expected, done)
    else:
        jobs = options.jobs or os.cpu_count() or 1
        where = f"local, {jobs} process(es) at a time on this machine"
        log(f"executor: {where}; {len(points)} point(s)")
        outcomes = run_locally(points, expected, jobs, done)
    pareto = _write_pareto(options, points, outcomes)
    return SweepRun(options.executor, where, tuple(outcomes), pareto, time.perf_counter() - t0, connect_s)


def _check(options: SweepOptions) -> None:
    if not options.clusters:
        raise InputError("a sweep needs at least one K (--clusters)")
    if len(set(options.clusters)) != len(options.clusters):
        raise InputError(f"K given twice in --clusters {' '.join(map(str, options.clusters))}")
    for m in options.models:
        if not Path(m).is_file():
            raise InputError(f"MODEL not found: {m}")
        if Path(m).suffix.lower() in KERAS_SUFFIXES and not options.data:  # every point would fail on it
            raise InputError(f"MODEL {m} is a Keras model: fine-tuning needs DATA (--data)")
    check_output_dir(options.build_dir, "--build-dir")
    data = Path(options.data) if options.data and Path(options.data).suffix.lower() == ".npz" else None
    check_paths(inputs=[*options.models, options.profile, options.config, data], owned_dirs=[options.sweep_dir])
    resolve_targets(options.targets, options.profile, options.replace_builtin)  # a bad target: once, before any point
    refuse_links(options.sweep_dir, "sweep")  # its points' model directories and the Pareto files are written there


def _prepare_example(options: SweepOptions, log: Callable[[str], None]) -> None:
    """The bundled example, trained once here before the points (as ``make sweep``'s sweep-example)."""
    from .keras_stages import run_example

    t0 = time.perf_counter()
    ex = run_example(options.example_dir, quiet=True)
    log(f"example: {'reused' if ex.reused else 'trained'} in {options.example_dir} ({time.perf_counter() - t0:.1f} s)")


def run_locally(points: list[PointSpec], expected: dict[str, str], jobs: int,
                on_done: Callable[[PointOutcome, bool], None]) -> list[PointOutcome]:
    """Each point in a fresh process (spawned, one point per process), ``jobs`` at a time; a failure retried once."""
    attempts: dict[int, list[str]] = {i: [] for i in range(len(points))}
    final: dict[int, PointOutcome] = {}
    with ProcessPoolExecutor(max_workers=max(1, min(jobs, len(points))), mp_context=get_context("spawn"),
                             max_tasks_per_child=1) as pool:
        pending = {pool.submit(run_point, p, expected): i for i, p in enumerate(points)}
        while pending:
            finished, _ = wait(list(pending), return_when=FIRST_COMPLETED)
            for fut in finished:
                i = pending.pop(fut)
                try:
                    outcome = fut.result()
                except Exception as exc:  # noqa: BLE001  a process that died (killed, out of memory)
                    outcome = PointOutcome(points[i].name, "this machine", f"the point's process died: {exc}", 1)
                attempts[i].append(outcome.error or "")
                retrying = not outcome.ok and len(attempts[i]) < POINT_ATTEMPTS
                outcome = replace(outcome, attempts=len(attempts[i]), errors=tuple(e for e in attempts[i] if e))
                on_done(outcome, retrying)
                if retrying:
                    pending[pool.submit(run_point, points[i], expected)] = i
                else:
                    final[i] = outcome
    return [final[i] for i in range(len(points))]


def _write_pareto(options: SweepOptions, points: list[PointSpec], outcomes: list[PointOutcome]) -> SweepOutcome | None:
    """Mirror the returned reports here, then the Pareto files, in ``make sweep``'s order (K as given, then path)."""
    out = options.sweep_dir
    by_k: dict[Path, list[Path]] = {}
    for point, outcome in zip(points, outcomes):
        if not outcome.ok:
            continue
        found = by_k.setdefault(point.options.build_dir, [])
        for rel, data in outcome.reports:
            # a worker (another machine's, with Ray) names where its report goes: below the sweep directory only,
            # and never through a link there
            if Path(rel).is_absolute() or ".." in Path(rel).parts:
                raise ToolError(f"sweep point {point.name} returned a report path outside {out}: {rel!r}")
            path = out / rel
            real_dir(out, path.parent)
            if path.is_symlink() or not path.is_file() or path.read_bytes() != data:
                atomic_write_bytes(path, data)
            found.append(path)
    reports = [p for k_dir in dict.fromkeys(p.options.build_dir for p in points) for p in sorted(by_k.get(k_dir, []))]
    if not reports:
        return None
    return write_pareto(reports, out)
