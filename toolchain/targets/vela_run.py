"""Run the Vela compiler in a subprocess and collect its files.

A subprocess because Vela's C++ core segfaults on some malformed inputs (and its
C++ warnings bypass Python's stdout redirection). Vela writes into a fresh hidden
directory inside ``out_dir`` (with ``--output-dir .``, so no temporary path lands in
its outputs); the files are then renamed into ``out_dir`` one by one.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from ..core.errors import ConfigError, InputError, ToolError
from .profile import HardwareProfile

VELA_DIST = "ethos-u-vela"
# Vela options we always pass: per-layer CSV, debug database (per-layer encoded weights),
# and the list of operators left to the CPU.
REPORT_OPTIONS = ("--verbose-performance", "--enable-debug-db", "--show-cpu-operations")


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


def vela_version() -> str:
    try:
        return metadata.version(VELA_DIST)
    except metadata.PackageNotFoundError:
        raise ToolError("ethos-u-vela is not installed (pip install ethos-u-vela==5.2.0)") from None


def vela_arguments(model_arg: str, profile: HardwareProfile) -> list[str]:
    return [model_arg, "--output-dir", ".", *profile.vela_config_arguments(), *REPORT_OPTIONS]


def _failure_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for ln in reversed(lines):
        if "error" in ln.lower():
            return ln[:300]
    return lines[-1][:300] if lines else "no output"


def run_vela(model_path: Path, profile: HardwareProfile, out_dir: Path, timeout_s: float) -> VelaRun:
    version = vela_version()
    model_abs = model_path.resolve()
    stem = model_abs.stem
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create output directory {out_dir}: {exc.strerror or exc}") from None
    out_abs = out_dir.resolve()
    recorded = ["vela", *vela_arguments(os.path.relpath(model_abs, out_abs), profile)]
    try:
        work = Path(tempfile.mkdtemp(prefix=".vela-", dir=out_abs))
    except OSError as exc:
        raise InputError(f"output directory is not writable: {out_dir} ({exc.strerror or exc})") from None
    try:
        ini_name = None
        ini_text = profile.vela_ini_text()
        if ini_text is not None:
            ini_name = profile.ini_file_name
            (work / ini_name).write_text(ini_text, encoding="utf-8")
        argv = [sys.executable, "-m", "ethosu.vela", *vela_arguments(str(model_abs), profile)]
        try:
            proc = subprocess.run(
                argv, cwd=work, capture_output=True, encoding="utf-8", errors="replace", timeout=timeout_s,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            raise ToolError(
                f"Vela did not finish compiling {model_path.name} for {profile.name} within {timeout_s:g} s"
            ) from None
        except OSError as exc:
            raise ToolError(f"cannot start Vela: {exc.strerror or exc}") from None
        output = proc.stdout + proc.stderr
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
        log = f"{stem}_vela.log"
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
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)

