"""Running a sweep's points as Ray tasks: a local Ray cluster, or an existing one.

Ray is the optional ``distributed`` extra, imported only here and only inside functions. Each
point is one task (``max_calls=1``: a fresh worker process per point, as ``make sweep`` starts a
fresh ``toolchain deploy``; TensorFlow's process-wide state would otherwise carry from one point
into the next). Retries are ours, not Ray's, so a failure inside a point (an error the toolchain
raised) and a lost worker are retried alike, once. An address is probed in a child process with a
time limit first: ``ray.init`` against an address nothing answers on retries for minutes.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from importlib.util import find_spec

from ..core.errors import InputError, ToolError
from .sweep_points import POINT_ATTEMPTS, PointOutcome, PointSpec, run_point

RAY_EXTRA_HINT = ("Ray is not installed: install the distributed extra, pip install 'ethos-palette-toolchain[distributed]' "
                  "(in a checkout: pip install -c constraints.txt -e '.[distributed]')")
CONNECT_TIMEOUT_S = 30.0  # the probe of an existing cluster, start to finish
TCP_TIMEOUT_S = 5.0
LOCAL_OBJECT_STORE_BYTES = 128 * 1024 * 1024  # a point returns a few report.json files: no need for Ray's 30% of RAM

_PROBE = """
import json, logging, sys
import ray
ray.init(address=sys.argv[1], logging_level=logging.ERROR, log_to_driver=False)
nodes = [n for n in ray.nodes() if n.get("Alive")]
print(json.dumps({"nodes": len(nodes), "cpus": ray.cluster_resources().get("CPU", 0)}))
ray.shutdown()
"""


@dataclass(frozen=True)
class RayCluster:
    address: str | None  # None: a local cluster this command started
    nodes: int
    cpus: float
    connect_s: float

    def describe(self) -> str:
        if self.address is None:
            return f"ray, a local Ray cluster on this machine ({self.cpus:g} CPUs), shut down after"
        return f"ray, the cluster at {self.address} ({self.nodes} node(s), {self.cpus:g} CPUs)"


def require_ray() -> None:
    if find_spec("ray") is None:
        raise InputError(RAY_EXTRA_HINT)


def resolve_address(flag: str | None) -> str | None:
    """--ray-address, else RAY_ADDRESS, else None (a local cluster); 'local' means a local cluster too."""
    address = flag if flag is not None else os.environ.get("RAY_ADDRESS")
    address = (address or "").strip()
    return None if address in ("", "local") else address


def _host_port(address: str) -> tuple[str, int] | None:
    rest = address.split("://", 1)[1] if "://" in address else address
    host, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit():
        return None
    return host.strip("[]"), int(port)


def probe_address(address: str) -> tuple[int, float]:
    """(nodes, CPUs) of the cluster at ``address``; InputError naming it when nothing usable answers in time."""
    hp = _host_port(address)
    if address != "auto" and hp is None:
        raise InputError(f"Ray address '{address}' is not HOST:PORT, ray://HOST:PORT or 'auto' (--ray-address / "
                         "RAY_ADDRESS)")
    if hp is not None:
        try:
            socket.create_connection(hp, timeout=TCP_TIMEOUT_S).close()
        except OSError as exc:
            raise InputError(f"cannot reach the Ray cluster at {address} (--ray-address / RAY_ADDRESS): "
                             f"{exc.strerror or exc}") from None
    try:
        proc = subprocess.run([sys.executable, "-c", _PROBE, address], check=False, capture_output=True, text=True,
                              timeout=CONNECT_TIMEOUT_S, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise InputError(f"no Ray cluster answered at {address} within {CONNECT_TIMEOUT_S:g} s "
                         "(--ray-address / RAY_ADDRESS)") from None
    last = (proc.stdout.strip().splitlines() or [""])[-1]
    if proc.returncode != 0 or not last.startswith("{"):
        errors = [line for line in proc.stderr.splitlines() if "Error" in line]
        why = errors[-1].strip() if errors else f"exit code {proc.returncode}"
        raise InputError(f"cannot connect to the Ray cluster at {address} (--ray-address / RAY_ADDRESS): {why}")
    info = json.loads(last)
    return int(info["nodes"]), float(info["cpus"])


@contextmanager
def ray_cluster(address: str | None, cpus: int) -> Iterator[RayCluster]:
    """Connected for the block: to ``address``, or to a local cluster of ``cpus`` CPUs that is shut down after."""
    import logging

    require_ray()
    t0 = time.perf_counter()
    nodes = 1
    if address is not None:
        nodes, total = probe_address(address)
    import ray

    try:
        if address is None:
            ray.init(num_cpus=cpus, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False,
                     object_store_memory=LOCAL_OBJECT_STORE_BYTES)
            total = float(ray.cluster_resources().get("CPU", cpus))
        else:
            ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False)
    except Exception as exc:  # noqa: BLE001  Ray raises RuntimeError, ConnectionError, ValueError... at start-up
        where = "start a local Ray cluster" if address is None else f"connect to the Ray cluster at {address}"
        raise ToolError(f"cannot {where}: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}") from None
    try:
        yield RayCluster(address, nodes, total, time.perf_counter() - t0)
    finally:
        ray.shutdown()


def run_on_ray(points: list[PointSpec], expected: dict[str, str],
               on_done: Callable[[PointOutcome, bool], None]) -> list[PointOutcome]:
    """Every point as a task, a failed one submitted once more; ``on_done(outcome, retrying)`` per attempt.

    Returns the final outcomes in the points' order."""
    import ray

    task = ray.remote(max_calls=1, max_retries=0, num_cpus=1)(run_point)
    pending: dict = {}
    attempts: dict[int, list[str]] = {i: [] for i in range(len(points))}
    final: dict[int, PointOutcome] = {}

    def submit(i: int) -> None:
        pending[task.remote(points[i], expected)] = i

    for i in range(len(points)):
        submit(i)
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        i = pending.pop(done[0])
        try:
            outcome = ray.get(done[0])
        except Exception as exc:  # noqa: BLE001  a lost worker, a node gone, a worker that cannot import us
            outcome = PointOutcome(points[i].name, "?", _ray_error(exc), 1)
        attempts[i].append(outcome.error or "")
        retrying = not outcome.ok and len(attempts[i]) < POINT_ATTEMPTS
        outcome = replace(outcome, attempts=len(attempts[i]), errors=tuple(e for e in attempts[i] if e))
        on_done(outcome, retrying)
        if retrying:
            submit(i)
        else:
            final[i] = outcome
    return [final[i] for i in range(len(points))]


def _ray_error(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if "No module named 'toolchain'" in text:
        return "the worker cannot import the toolchain: install it (with constraints.txt) on every node"
    return f"Ray: {type(exc).__name__}: {text[:300]}"
