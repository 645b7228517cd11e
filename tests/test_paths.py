"""Never write over what is not ours, read inputs within limits, one deploy per model directory.

toolchain.core.paths (every verb passes all its inputs and outputs there first) and
toolchain.core.fileio (bounded reads of regular files, atomic writes over regular files only),
then the CLI cases that need real models: a read-only --build-dir, two deploys at once,
compile.json made from two directories.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import need_executable

from toolchain.core.errors import InputError
from toolchain.core.fileio import (
    CONFIG_LIMIT_BYTES,
    atomic_write_bytes,
    read_input_bytes,
)
from toolchain.core.paths import check_output_dir, check_paths

REPO = Path(__file__).resolve().parents[1]


def _env() -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("TOOLCHAIN_DEBUG", None)
    return env


# --------------------------------------------------------------------------- inputs


def test_fifos_devices_and_directories_are_refused_without_reading(tmp_path):
    fifo = tmp_path / "m.tflite"
    os.mkfifo(fifo)  # opening it for reading would block until a writer came
    zero = tmp_path / "z.tflite"
    zero.symlink_to("/dev/zero")  # would be read until MemoryError
    dangling = tmp_path / "d.tflite"
    dangling.symlink_to(tmp_path / "nowhere")
    t0 = time.monotonic()
    for path, message in ((fifo, "is a FIFO, not a regular file"), (zero, "is a character device"),
                          (tmp_path, "is a directory"), (dangling, "is a broken symbolic link")):
        with pytest.raises(InputError, match=message):
            read_input_bytes(path, "model")
    assert time.monotonic() - t0 < 2


def test_the_read_limit_is_counted_while_reading_not_taken_from_stat(tmp_path):
    assert os.stat("/proc/self/maps").st_size == 0  # stat says empty; the file is not
    with pytest.raises(InputError, match="over the 64 bytes limit"):
        read_input_bytes("/proc/self/maps", "config", limit=64)
    big = tmp_path / "profile.toml"
    big.write_bytes(b"#" * (CONFIG_LIMIT_BYTES + 1))
    with pytest.raises(InputError, match="over the 1 MiB limit"):
        read_input_bytes(big, "hardware profile", CONFIG_LIMIT_BYTES)
    big.write_bytes(b"#" * CONFIG_LIMIT_BYTES)
    assert len(read_input_bytes(big, "hardware profile", CONFIG_LIMIT_BYTES)) == CONFIG_LIMIT_BYTES


# --------------------------------------------------------------------------- outputs


def test_outputs_never_replace_devices_fifos_directories_or_kernel_files(tmp_path):
    fifo = tmp_path / "out.tflite"
    os.mkfifo(fifo)
    for target, message in ((Path("/dev/null"), "under /dev"), (fifo, "is a FIFO"), (tmp_path, "is a directory"),
                            (Path("/proc/self/comm"), "under /proc"), (Path("/sys/x.tflite"), "under /sys")):
        with pytest.raises(InputError, match=message):
            atomic_write_bytes(target, b"data")
        with pytest.raises(InputError, match=message):
            check_paths(outputs=[target])
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode) and stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_a_long_output_name_gets_a_short_temporary_name(tmp_path):
    target = tmp_path / ("a" * 250 + ".tflite")  # 257 bytes would exceed NAME_MAX; ".NAME.XXXXXXXX.tmp" did at 252
    with pytest.raises(InputError, match="longer than 255 bytes"):
        atomic_write_bytes(target, b"x")
    target = tmp_path / ("a" * 245 + ".tflite")
    atomic_write_bytes(target, b"x")
    assert [p.name for p in tmp_path.iterdir()] == [target.name] and target.read_bytes() == b"x"


def test_an_output_that_is_an_input_is_refused_however_it_is_spelled(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = tmp_path / "m.tflite"
    model.write_bytes(b"model")
    (tmp_path / "sub").mkdir()
    os.link(model, tmp_path / "hard.tflite")
    (tmp_path / "soft.tflite").symlink_to(model)
    for spelling in ("m.tflite", "./m.tflite", "sub/../m.tflite", str(model), "hard.tflite", "soft.tflite"):
        with pytest.raises(InputError, match="is the input file"):
            check_paths(inputs=["m.tflite"], outputs=["new.tflite", spelling])
    with pytest.raises(InputError, match="two outputs are the same file"):
        check_paths(inputs=["m.tflite"], outputs=["out.tflite", "./out.tflite"])
    check_paths(inputs=["m.tflite", None], outputs=["out.tflite", "out.json", None])
    assert model.read_bytes() == b"model"


def test_a_directory_the_command_rewrites_may_not_hold_an_input(tmp_path):
    build = tmp_path / "build" / "model"
    (build / "recluster").mkdir(parents=True)
    (build / "recluster" / "model.tflite").write_bytes(b"m")
    with pytest.raises(InputError, match="lies inside .*which this command rewrites"):
        check_paths(inputs=[build / "recluster" / "model.tflite"], owned_dirs=[build])
    check_paths(inputs=[build / "recluster" / "model.tflite"], owned_dirs=[tmp_path / "build" / "other"])


def test_output_directories_that_cannot_be_used_are_one_line_errors(tmp_path):
    (tmp_path / "file").write_text("x")
    (tmp_path / "link").symlink_to(tmp_path / "nowhere")
    for d, message in ((tmp_path / "file", "is a file, not a directory"), (tmp_path / "link", "broken symbolic link"),
                       (tmp_path / "file" / "sub", "is not a directory"), (Path("/proc/toolchain"), "under /proc")):
        with pytest.raises(InputError, match=message):
            check_output_dir(d, "--build-dir")


# --------------------------------------------------------------------------- the CLI, with real models


@contextlib.contextmanager
def _read_only(directory: Path):
    """A directory nobody may write to, root included: mode 555, and for root the immutable attribute."""
    directory.chmod(0o555)
    immutable = os.geteuid() == 0
    if immutable:
        subprocess.run([need_executable("chattr", "e2fsprogs"), "+i", str(directory)], check=True)
    try:
        yield
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(directory)], check=True)
        directory.chmod(0o755)


@pytest.mark.tf
def test_read_only_build_dir_is_a_one_line_error(dense_int8, tmp_path):
    shutil.copyfile(dense_int8, tmp_path / "model.tflite")
    (tmp_path / "build").mkdir()
    with _read_only(tmp_path / "build"):
        proc = subprocess.run([sys.executable, "-m", "toolchain", "deploy", "model.tflite", "--build-dir", "build"],
                              cwd=tmp_path, capture_output=True, text=True, timeout=120, env=_env())
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.splitlines() == ["error: --build-dir build is not writable"]
        assert list((tmp_path / "build").iterdir()) == []


@pytest.mark.tf
def test_a_second_deploy_into_a_locked_model_directory_is_refused_at_once(dense_int8, tmp_path):
    """Two real processes: one holds the deploy lock of build/model/, the other is `toolchain deploy`."""
    shutil.copyfile(dense_int8, tmp_path / "model.tflite")
    holder = subprocess.Popen(
        [sys.executable, "-c", ("import sys, time; from pathlib import Path\n"
                                "from toolchain.pipeline.build_lock import model_dir_lock\n"
                                "with model_dir_lock(Path('build/model')):\n    print('held', flush=True); time.sleep(120)")],
        cwd=tmp_path, stdout=subprocess.PIPE, text=True, env=_env())
    try:
        assert holder.stdout.readline().strip() == "held"
        t0 = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "toolchain", "deploy", "model.tflite", "--build-dir", "build"],
                              cwd=tmp_path, capture_output=True, text=True, timeout=120, env=_env())
        assert proc.returncode == 2 and proc.stderr.splitlines() == [
            "error: another deploy is using build/model; wait for it to finish or choose another --build-dir"]
        assert time.monotonic() - t0 < 30  # refused before any stage ran
        assert sorted(p.name for p in (tmp_path / "build" / "model").iterdir()) == [".deploy.lock"]
    finally:
        holder.kill()  # SIGKILL: the OS releases the lock of a killed deploy
        holder.wait()
    again = subprocess.run([sys.executable, "-c", ("from pathlib import Path\n"
                                                   "from toolchain.pipeline.build_lock import model_dir_lock\n"
                                                   "with model_dir_lock(Path('build/model')): print('acquired')")],
                           cwd=tmp_path, capture_output=True, text=True, timeout=60, env=_env())
    assert again.stdout.strip() == "acquired", again.stderr


@pytest.mark.tf
@pytest.mark.slow
def test_compile_json_is_the_same_from_any_directory(dense_int8, tmp_path):
    """It names the model by file name and sha256, never by a path relative to the output directory."""
    for where in ("a/deep/models", "b"):
        (tmp_path / where).mkdir(parents=True)
        shutil.copyfile(dense_int8, tmp_path / where / "model.tflite")
    runs = [(tmp_path / "a", "deep/models/model.tflite", "../out1"), (tmp_path / "b", "model.tflite", "out2")]
    for cwd, model, out in runs:
        proc = subprocess.run([sys.executable, "-m", "toolchain", "compile", model, "--target", "ethos-u55-128", "-o", out],
                              cwd=cwd, capture_output=True, text=True, timeout=300, env=_env())
        assert proc.returncode == 0, proc.stderr
    first, second = (tmp_path / "out1", tmp_path / "b" / "out2")
    assert (first / "compile.json").read_bytes() == (second / "compile.json").read_bytes()
    assert (first / "model_vela.tflite").read_bytes() == (second / "model_vela.tflite").read_bytes()
