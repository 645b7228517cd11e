"""Vela is a child that dies with us: ``kill -9`` of the toolchain alone used to leave Vela running, no longer
bounded by ``--timeout``, and its ``.vela-*`` directory was never cleaned. Now the child carries a
parent-death signal (Linux), and the next compile into the directory removes what dead runs left.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import fuzz_mutators as fm
import pytest

from toolchain.targets.vela_run import remove_stale_work_dirs

REPO = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.tf, pytest.mark.slow]  # converter-made model; Vela runs


def _env() -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("TOOLCHAIN_DEBUG", None)
    return env


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _vela_children(pid: int) -> list[int]:
    """The children of ``pid`` that run Vela (compile may start other helpers first)."""
    out = []
    for c in _children(pid):
        try:
            if b"ethosu.vela" in Path(f"/proc/{c}/cmdline").read_bytes():
                out.append(c)
        except OSError:
            pass
    return out


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphan killed but not yet reaped by init is gone for our purpose)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG and /proc are Linux's")
def test_vela_dies_with_a_killed_toolchain_and_the_next_run_cleans_up(dense_int8, tmp_path):
    # a model declaring 256K x 64 activations (within Vela's memory)
    (tmp_path / "slow.tflite").write_bytes(fm.input_dimension(dense_int8.read_bytes(), 1 << 18))
    argv = [sys.executable, "-m", "toolchain", "compile", "slow.tflite", "--target", "ethos-u55-128", "-o", "out",
            "--no-budget"]
    proc = subprocess.Popen(argv, cwd=tmp_path, env=_env(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        vela: list[int] = []
        while not vela and proc.poll() is None and time.monotonic() < deadline:
            vela = _vela_children(proc.pid)
            time.sleep(0.01)
        assert vela, "Vela never started"
        time.sleep(0.05)  # Vela is still importing: on an idle machine its whole run takes about 0.4 s
        proc.send_signal(signal.SIGKILL)  # the toolchain alone, not its process group
        proc.wait()
        deadline = time.monotonic() + 10
        while any(_running(v) for v in vela) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(_running(v) for v in vela), "Vela outlived the toolchain"
    finally:
        os.killpg(proc.pid, signal.SIGKILL) if proc.poll() is None else None
    stale = [p.name for p in (tmp_path / "out").iterdir() if p.name.startswith(".vela-")]
    assert len(stale) == 1 and stale[0].startswith(f".vela-{proc.pid}-"), stale
    assert not list((tmp_path / "out" / stale[0]).glob("*_vela.tflite")), "Vela finished its work after the kill"
    run = subprocess.run(argv, cwd=tmp_path, env=_env(), stdin=subprocess.DEVNULL, capture_output=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert not [p.name for p in (tmp_path / "out").iterdir() if p.name.startswith(".vela-")]


def test_only_directories_of_dead_processes_are_removed(tmp_path):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
        names = {f".vela-{int(dead.stdout)}-abc": True, f".vela-{sleeper.pid}-def": False,
                 f".vela-{os.getpid()}-ghi": False, ".vela-old12345": True, ".velaX-1-a": False}
        for n in names:
            (tmp_path / n).mkdir()
            (tmp_path / n / "model.tflite").write_bytes(b"x")
        victim = tmp_path / "victim"
        victim.mkdir()
        (victim / "keep").write_text("mine")
        (tmp_path / f".vela-{int(dead.stdout)}-link").symlink_to(victim)
        removed = remove_stale_work_dirs(tmp_path)
        assert sorted(removed) == sorted([n for n, gone in names.items() if gone] + [f".vela-{int(dead.stdout)}-link"])
        assert {p.name for p in tmp_path.iterdir()} == {n for n, gone in names.items() if not gone} | {"victim"}
        assert (victim / "keep").read_text() == "mine"  # a link is removed, never what it points at
    finally:
        sleeper.kill()
        sleeper.wait()
        shutil.rmtree(tmp_path, ignore_errors=True)
