"""Firmware settings: symbol names, linker section, arena margin, and their checks."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import ConfigError, ToolchainError
from ..core.escape import c_identifier, is_c_identifier

DEFAULT_SECTION = "network_model_sec"  # the section TFLM's network_tester and Arm's platform linker scripts use
DEFAULT_ARENA_MARGIN_PERCENT = 10
DEFAULT_ARENA_OVERHEAD_BYTES = 4096
ARENA_ALIGNMENT_BYTES = 16
MAX_NAME_CHARS = 48
_SECTION = re.compile(r"[A-Za-z_.][A-Za-z0-9_.]*")  # fullmatch: "$" would accept a final newline


def default_name(vela_file: str) -> str:
    stem = Path(vela_file).stem
    stem = stem.removesuffix("_vela")
    name = c_identifier(stem, fallback="model").lower()
    if not name[0].isalpha():
        name = f"model{name}" if name[0] == "_" else f"model_{name}"
    return name[:MAX_NAME_CHARS]


def check_name(name: str) -> str:
    if not is_c_identifier(name) or name.startswith("_") or len(name) > MAX_NAME_CHARS:
        raise ConfigError(
            f"--name must be a C identifier of at most {MAX_NAME_CHARS} characters starting with a letter "
            f"(letters, digits, '_'), got {name!r}"
        )
    return name


def check_section(section: str) -> str:
    if not isinstance(section, str) or not _SECTION.fullmatch(section) or len(section) > 128:
        raise ConfigError(f"--section must be a linker section name (letters, digits, '_' and '.'), got {section!r}")
    if section.startswith((".bss", ".tbss", ".noinit", ".sbss")):
        raise ConfigError(f"--section {section}: the model is initialised read-only data and cannot go in a zero-initialised section")
    return section


@dataclass(frozen=True)
class FirmwareConfig:
    target: str | None = None  # None: the target compile.json records; a name: checked against it
    name: str | None = None  # default: the Vela model's file name without "_vela"
    section: str = DEFAULT_SECTION
    arena_margin_percent: int = DEFAULT_ARENA_MARGIN_PERCENT
    arena_overhead_bytes: int = DEFAULT_ARENA_OVERHEAD_BYTES

    def __post_init__(self) -> None:
        if self.name is not None:
            check_name(self.name)
        check_section(self.section)
        if not 0 <= self.arena_margin_percent <= 1000:
            raise ConfigError(f"--arena-margin-percent must be 0..1000, got {self.arena_margin_percent}")
        if not 0 <= self.arena_overhead_bytes <= 1 << 30:
            raise ConfigError(f"--arena-overhead-bytes must be 0..{1 << 30}, got {self.arena_overhead_bytes}")


def arena_bytes_for(sram_bytes: int, margin_percent: int, overhead_bytes: int) -> int:
    """Vela's SRAM figure + margin_percent % + overhead, rounded up to 16 bytes."""
    raw = sram_bytes + math.ceil(sram_bytes * margin_percent / 100) + overhead_bytes
    return -(-raw // ARENA_ALIGNMENT_BYTES) * ARENA_ALIGNMENT_BYTES


def same_target(requested: str, compiled: str) -> bool:
    """True when both names are the same target, following profile aliases (ethos-u55 = ethos-u55-128)."""
    if requested == compiled:
        return True
    try:
        from ..targets.profiles import load_profile

        return load_profile(requested).name == load_profile(compiled).name
    except ToolchainError:  # an unknown name on either side: they are not provably the same
        return False
