"""Run the Vela compiler in a subprocess and collect its files.

A subprocess because Vela's C++ core segfaults on some malformed inputs (and its
C++ warnings bypass Python's stdout redirection). Vela compiles a copy of the validated
model, named after a safe form of the model's file name, in a fresh hidden directory
inside ``out_dir`` (with ``--output-dir .``, so no temporary path lands in its outputs,
and the recorded command is the same wherever the model lives); its files are then
renamed into ``out_dir`` one by one. Hostile tensor names never reach Vela (see
vela_names). The child runs under an address-space limit (see vela_memory) and dies with
us: on Linux it gets a parent-death signal (``PR_SET_PDEATHSIG``), so a toolchain killed
with ``kill -9`` does not leave Vela running past ``--timeout``. The hidden directory
carries our process id (``.vela-PID-XXXXXXXX``): the next compile into the same directory
removes those of processes that no longer exist. Vela failing for lack of disk space
is the disk's fault, not Vela's: exit 2 naming the directory.
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from ..core.errors import ConfigError, InputError, ToolError
from ..core.escape import file_name_component
from ..core.fileio import read_input_bytes
from .profile import HardwareProfile
from .vela_memory import VelaMemory, base_vela_memory, ran_out_of_memory
from .vela_names import VelaNames, model_for_vela, restore_names

VELA_DIST = "ethos-u-vela"
# Vela options we always pass: per-layer CSV, debug database (per-layer encoded weights),
# and the list of operators left to the CPU.
REPORT_OPTIONS = ("--verbose-performance", "--enable-debug-db", "--show-cpu-operations")
WORK_PREFIX = ".vela-"
_WORK_DIR = re.compile(r"\.vela-(?:(\d+)-)?[A-Za-z0-9_]+")  # older versions wrote no process id
_NO_SPACE = re.compile(r"No space left on device|\[Errno 28\]|ENOSPC|Disk quota exceeded|\[Errno 122\]")
PR_SET_PDEATHSIG = 1  # linux/prctl.h


@dataclass(frozen=True)
class VelaRun:
    command: tuple[str, ...]  # as a user would type it in out_dir
    stdout: str
    vela_version: str
    vela_model: str  # file names inside out_dir
    summary_csv: str
    per_layer_csv: str | None
    debug_db: str | None
    log: str
    vela_ini: str | None
    names: VelaNames  # placeholders Vela saw instead of hostile names, and the real names


def vela_version() -> str:
    try:
        return metadata.version(VELA_DIST)
    except metadata.PackageNotFoundError:
        raise ToolError("ethos-u-vela is not installed (pip install ethos-u-vela==5.2.0)") from None


def vela_arguments(model_arg: str, profile: HardwareProfile) -> list[str]:
    return [model_arg, "--output-dir", ".", *profile.vela_config_arguments(), *REPORT_OPTIONS]


def vela_output_files(model_path: Path, profile: HardwareProfile) -> tuple[str, ...]:
    """The files a compile of ``model_path`` for ``profile`` puts in its output directory (compile.json aside)."""
    stem = file_name_component(model_path.stem)
    files = (f"{stem}_vela.tflite", f"{stem}_summary_{profile.system_config_name}.csv", f"{stem}_per-layer.csv",
             f"{stem}_debug.xml", f"{stem}_vela.log")
    return files + ((profile.ini_file_name,) if profile.vela_ini_text() is not None else ())


def _prctl():
    """libc's prctl, looked up in the parent (the child between fork and exec must not load libraries)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def _child_setup(memory: VelaMemory):
    """subprocess preexec_fn: the memory limit, and a SIGKILL when the toolchain dies (even by SIGKILL)."""
    prctl, parent = _prctl(), os.getpid()

    def setup() -> None:
        memory.apply()
        if prctl is not None:
            prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
            if os.getppid() != parent:  # the parent died before the signal was armed
                os._exit(1)
    return setup


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def remove_stale_work_dirs(out_dir: Path) -> list[str]:
    """Remove the hidden Vela directories that killed compiles left in ``out_dir`` (their process is gone)."""
    removed = []
    try:
        entries = sorted(os.scandir(out_dir), key=lambda e: e.name)
    except OSError:
        return removed
    for entry in entries:
        m = _WORK_DIR.fullmatch(entry.name)
        if m is None:
            continue
        pid = int(m.group(1)) if m.group(1) else None
        if pid is not None and (pid == os.getpid() or _alive(pid)):
            continue  # a compile still running (or one of ours)
        if entry.is_symlink():
            os.unlink(entry.path)  # the link itself, never what it points at
        elif entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            continue
        removed.append(entry.name)
    return removed


def _no_space(out_dir: Path, model: str, target: str) -> InputError:
    return InputError(f"no space left on the device of {out_dir}: Vela could not write its outputs compiling {model} "
                      f"for {target}; free some space (or choose another output directory) and run it again")


@contextlib.contextmanager
def _writing(out_dir: Path, model: str, target: str) -> Iterator[None]:
    """Our own writes in Vela's directory: a full disk is exit 2 naming the directory, like Vela's own."""
    try:
        yield
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise _no_space(out_dir, model, target) from None
        raise InputError(f"cannot write in {out_dir}: {exc.strerror or exc}") from None


def _failure_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for ln in reversed(lines):
        if "error" in ln.lower():
            return ln[:300]
    return lines[-1][:300] if lines else "no output"


def run_vela(model_path: Path, profile: HardwareProfile, out_dir: Path, timeout_s: float,
             memory: VelaMemory | None = None) -> VelaRun:
    """Compile ``model_path`` (already validated) under ``memory``'s limit (default: the base limit); Vela's files
    end up in ``out_dir``."""
    version = vela_version()
    memory = memory or base_vela_memory()
    stem = file_name_component(model_path.stem)
    data, names = model_for_vela(read_input_bytes(model_path, "model"))
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create output directory {out_dir}: {exc.strerror or exc}") from None
    out_abs = out_dir.resolve()
    copy = f"{stem}.tflite"
    recorded = ["vela", *vela_arguments(copy, profile)]  # run beside a copy of the model named STEM.tflite
    remove_stale_work_dirs(out_abs)
    try:
        work = Path(tempfile.mkdtemp(prefix=f"{WORK_PREFIX}{os.getpid()}-", dir=out_abs))
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise _no_space(out_dir, model_path.name, profile.name) from None
        raise InputError(f"output directory is not writable: {out_dir} ({exc.strerror or exc})") from None
    try:
        ini_name = None
        ini_text = profile.vela_ini_text()
        with _writing(out_dir, model_path.name, profile.name):
            if ini_text is not None:
                ini_name = profile.ini_file_name
                (work / ini_name).write_text(ini_text, encoding="utf-8")
            (work / copy).write_bytes(data)
        argv = [sys.executable, "-m", "ethosu.vela", *vela_arguments(copy, profile)]
        try:
            proc = subprocess.run(
                argv, cwd=work, capture_output=True, encoding="utf-8", errors="replace", timeout=timeout_s,
                stdin=subprocess.DEVNULL, preexec_fn=_child_setup(memory), check=False,  # the exit status is read below
            )
        except subprocess.TimeoutExpired:
            raise ToolError(
                f"Vela did not finish compiling {model_path.name} for {profile.name} within {timeout_s:g} s"
            ) from None
        except OSError as exc:
            raise ToolError(f"cannot start Vela: {exc.strerror or exc}") from None
        output = proc.stdout + proc.stderr
        if proc.returncode != 0 and ran_out_of_memory(output, proc.returncode):
            raise ToolError(memory.exhausted_message(model_path.name, profile.name))
        if proc.returncode != 0 and _NO_SPACE.search(output):
            raise _no_space(out_dir, model_path.name, profile.name)
        if proc.returncode < 0:
            try:
                sig = signal.Signals(-proc.returncode).name
            except ValueError:
                sig = f"signal {-proc.returncode}"
            raise ToolError(
                f"Vela crashed ({sig}) compiling {model_path.name} for {profile.name}; the model passed validation, "
                f"so this is a Vela bug: {_failure_line(output)}"
            )
        if proc.returncode != 0:
            line = _failure_line(output)
            if "ConfigOptionError" in output or "CliOptionError" in output:
                raise ConfigError(f"Vela refused profile {profile.name}: {line}")
            raise ToolError(f"Vela failed (exit {proc.returncode}) on {model_path.name} for {profile.name}: {line}")

        vela_model = f"{stem}_vela.tflite"
        summary = f"{stem}_summary_{profile.system_config_name}.csv"
        per_layer = f"{stem}_per-layer.csv"
        debug_db = f"{stem}_debug.xml"
        for required in (vela_model, summary):
            if not (work / required).is_file():
                raise ToolError(
                    f"Vela exited 0 but wrote no {required} for {model_path.name} on {profile.name}: {_failure_line(output)}"
                )
        (work / copy).unlink()  # the copy Vela read is not one of its outputs
        log = f"{stem}_vela.log"
        with _writing(out_dir, model_path.name, profile.name):
            if names.real:
                (work / vela_model).write_bytes(restore_names((work / vela_model).read_bytes(), names))
            (work / log).write_text(proc.stdout + ("\n" + proc.stderr if proc.stderr else ""), encoding="utf-8")

        # Older summaries of the same model for another system config would only mislead.
        for stale in out_abs.glob(f"{stem}_summary_*.csv"):
            if stale.name != summary:
                stale.unlink(missing_ok=True)
        for f in sorted(work.iterdir()):
            if f.is_file():
                os.replace(f, out_abs / f.name)
        return VelaRun(
            command=tuple(recorded),
            stdout=proc.stdout,
            vela_version=version,
            vela_model=vela_model,
            summary_csv=summary,
            per_layer_csv=per_layer if (out_abs / per_layer).is_file() else None,
            debug_db=debug_db if (out_abs / debug_db).is_file() else None,
            log=log,
            vela_ini=ini_name,
            names=names,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)

