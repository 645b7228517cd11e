"""Building the firmware check program with arm-none-eabi-gcc for a Cortex-M55 and running it under QEMU.

The recipe (measured here, docs/firmware.md): ``-mcpu=cortex-m55 -mthumb``, newlib's semihosting library
(``-specs=rdimon.specs``) and the project's own startup code and linker script (``-nostartfiles``); run with
``qemu-system-arm -M mps3-an547 -nographic -semihosting -kernel fw.elf``, which prints what the program
prints and exits with main()'s status. QEMU has no Ethos-U: only what runs on the CPU is checked.
"""
from __future__ import annotations

import shutil
import subprocess
from importlib.resources import as_file, files
from pathlib import Path

from ..core.errors import ToolError

GCC = "arm-none-eabi-gcc"
QEMU = "qemu-system-arm"
PACKAGES = {GCC: "gcc-arm-none-eabi libnewlib-arm-none-eabi", QEMU: "qemu-system-arm"}
# Every source, the generated ones included, builds warning-free as strict C99.
CFLAGS = ("-mcpu=cortex-m55", "-mthumb", "-std=c99", "-pedantic", "-O2", "-Wall", "-Wextra", "-Werror")
LDFLAGS = ("-specs=rdimon.specs", "-nostartfiles", "-Wl,--gc-sections")
QEMU_ARGS = ("-M", "mps3-an547", "-nographic", "-semihosting", "-kernel")
PROJECT_FILES = ("startup.c", "check_main.c", "check.h", "link.ld")  # package data: toolchain/firmware/m55_check
EXPECTED_C = "check_expected.c"  # written per run (toolchain.firmware.target_check)
SECTION_LD = "model_section.ld"  # link.ld includes it: the model's linker section
ELF = "fw.elf"
BUILD_TIMEOUT_S = 600.0
RUN_TIMEOUT_S = 300.0


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ToolError(f"{name} is not installed (Debian: apt-get install {PACKAGES[name]}); the firmware check "
                        "builds for the Cortex-M55 and runs under QEMU")
    return path


def require_tools() -> None:
    """Both tools, before any work: ToolError (exit 3) naming the Debian package of the one missing."""
    tool(GCC)
    tool(QEMU)


def _copy_project_files(work: Path) -> None:
    """The startup code, linker script and test main, next to the generated files (one include path)."""
    for name in PROJECT_FILES:
        with as_file(files(__package__) / "m55_check" / name) as src:
            shutil.copyfile(src, work / name)


def program_sources(work: Path, generated: list[Path]) -> list[Path]:
    """Every C file of the program: the project's, check_expected.c and the generated firmware sources."""
    _copy_project_files(work)
    for path in generated:
        if not path.is_file():
            raise ToolError(f"generated source {path} is missing: run 'toolchain firmware' / 'toolchain palettise' "
                            "again")
    return [work / "startup.c", work / "check_main.c", work / EXPECTED_C, *generated]


def _first_error(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for ln in lines:
        if "error" in ln.lower():
            return ln[:300]
    return lines[0][:300] if lines else "no output"


def build_program(sources: list[Path], include_dirs: list[Path], work: Path) -> Path:
    work = work.absolute()  # the compiler runs in work: every path it is given must not depend on our directory
    elf = work / ELF
    argv = [tool(GCC), *CFLAGS, *LDFLAGS, f"-I{work}", *(f"-I{d.absolute()}" for d in include_dirs),
            f"-L{work}", f"-T{work / 'link.ld'}", *(str(p.absolute()) for p in sources), "-o", str(elf)]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, cwd=work,
                              stdin=subprocess.DEVNULL, check=False)  # the status is read below
    except subprocess.TimeoutExpired:
        raise ToolError(f"{GCC} did not finish within {BUILD_TIMEOUT_S:g} s") from None
    if proc.returncode != 0:
        raise ToolError(f"{GCC} could not build the firmware check program: {_first_error(proc.stderr)}")
    return elf


def run_program(elf: Path) -> tuple[int, str]:
    """(exit status, what it printed) of the program under QEMU."""
    try:
        proc = subprocess.run([tool(QEMU), *QEMU_ARGS, str(elf)], capture_output=True, text=True, errors="replace",
                              timeout=RUN_TIMEOUT_S, stdin=subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired:
        raise ToolError(f"the firmware check program did not finish under QEMU within {RUN_TIMEOUT_S:g} s") from None
    if proc.returncode != 0 and "firmware check:" not in proc.stdout and proc.returncode != 100:
        raise ToolError(f"{QEMU} failed (exit {proc.returncode}): {_first_error(proc.stderr or proc.stdout)}")
    return proc.returncode, proc.stdout
