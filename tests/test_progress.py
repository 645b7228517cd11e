"""Progress on long steps: the output-aware fit draws a bar on stderr for a person at a terminal (a real
pseudo-terminal here), and prints nothing into a pipe or a file, with --quiet or with --json."""
from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import sys
import termios

import numpy as np
import pytest
from conftest import REPO


def _run(argv: list[str], terminal: bool) -> tuple[int, str, str]:
    """Run ``python -m toolchain`` with stderr on a pseudo-terminal (or a pipe); (exit code, stdout, stderr)."""
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3")
    cmd = [sys.executable, "-m", "toolchain", *argv]
    if not terminal:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
        return proc.returncode, proc.stdout, proc.stderr
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # a terminal has a size
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=follower, env=env)
    os.close(follower)
    err = b""
    while True:
        ready, _, _ = select.select([leader], [], [], 300)
        if not ready:
            proc.kill()
            pytest.fail("no output for 300 s")
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        err += chunk
    os.close(leader)
    out = proc.stdout.read().decode()
    return proc.wait(timeout=60), out, err.decode(errors="replace")


@pytest.fixture(scope="module")
def calibration(tmp_path_factory):
    path = tmp_path_factory.mktemp("cal") / "cal.npz"
    np.savez(path, x=np.random.default_rng(0).uniform(-4, 4, (64, 64)).astype(np.float32))
    return path


def _recluster(model, calibration, out, *extra: str) -> list[str]:
    return ["recluster", str(model), "-o", str(out), "--calibration", str(calibration), "--samples", "4", *extra]


def test_a_terminal_sees_each_layer_fitted(core_dense_int8, calibration, tmp_path):
    code, out, err = _run(_recluster(core_dense_int8, calibration, tmp_path / "m.tflite"), terminal=True)
    assert code == 0, err
    for layer in ("fc1/kernel", "fc2/kernel", "fc3/kernel"):
        assert f"fitted {layer}" in err
    assert "recluster: 3/3" in err and "verifying in LiteRT" in err
    assert "\r" in err  # one line redrawn in place, not a line per step
    assert "top-1 agreement" in out  # the summary is unchanged, on stdout


@pytest.mark.parametrize("terminal, flag", [(False, None), (True, "--quiet"), (True, "--json")])
def test_no_bar_in_a_pipe_or_when_asked_to_be_quiet(core_dense_int8, calibration, tmp_path, terminal, flag):
    code, _, err = _run(_recluster(core_dense_int8, calibration, tmp_path / "m.tflite", *([flag] if flag else [])),
                        terminal=terminal)
    assert code == 0, err
    assert err.strip() == ""
