"""Run the Vela compiler in a subprocess and collect its files.

A subprocess because Vela's C++ core segfaults on some malformed inputs (and its
C++ warnings bypass Python's stdout redirection). Vela compiles a copy of the validated
model, named after a safe form of the model's file name, in a fresh hidden directory
inside ``out_dir`` (with ``--output-dir .``, so no temporary path lands in its outputs,
and the recorded command is the same wherever the model lives); its files are then
renamed into ``out_dir`` one by one. Hostile tensor names never reach Vela (see
vela_names). The child runs under an address-space limit (see vela_memory).
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
from ..core.escape import file_name_component
from ..core.fileio import read_input_bytes
from .profile import HardwareProfile
from .vela_memory import VelaMemory, base_vela_memory, ran_out_of_memory
from .vela_names import VelaNames, model_for_vela, restore_names

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
        (work / copy).write_bytes(data)
        argv = [sys.executable, "-m", "ethosu.vela", *vela_arguments(copy, profile)]
        try:
            proc = subprocess.run(
                argv, cwd=work, capture_output=True, encoding="utf-8", errors="replace", timeout=timeout_s,
                stdin=subprocess.DEVNULL, preexec_fn=memory.apply, check=False,  # the exit status is read below
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
        if names.real:
            (work / vela_model).write_bytes(restore_names((work / vela_model).read_bytes(), names))
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
            names=names,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)

