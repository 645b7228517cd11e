"""Vela's system configurations and memory modes.

The named ones come from the ``Arm/vela.ini`` that ships inside the pinned
ethos-u-vela wheel (read, never copied, so they always match the compiler that
runs); a custom system from a profile is rendered into an .ini of the same form.
Nothing here imports Vela itself: it is only run in a subprocess.
"""
from __future__ import annotations

import configparser
import importlib.util
import math
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache
from pathlib import Path

from ..core.errors import ConfigError, ToolError

BUNDLED_CONFIG = "Arm/vela.ini"  # how Vela's --config names its own file


class MemoryArea(Enum):
    """Vela's memory kinds (the spelling is Vela's, used verbatim in .ini keys)."""

    SRAM = "Sram"
    DRAM = "Dram"
    ON_CHIP_FLASH = "OnChipFlash"
    OFF_CHIP_FLASH = "OffChipFlash"


class AxiPort(Enum):
    AXI0 = "Axi0"
    AXI1 = "Axi1"


@dataclass(frozen=True)
class MemoryTiming:
    """How one memory behind an AXI port performs, in Vela's terms."""

    area: MemoryArea
    clock_scale: float  # memory bandwidth as a fraction of one AXI port at the core clock
    ports_used: int = 1
    burst_length_bytes: int = 1
    read_latency_cycles: int = 0
    write_latency_cycles: int = 0
    max_reads: int | None = None
    max_writes: int | None = None

    def to_dict(self) -> dict:
        d = {
            "clock_scale": self.clock_scale,
            "ports_used": self.ports_used,
            "burst_length_bytes": self.burst_length_bytes,
            "read_latency_cycles": self.read_latency_cycles,
            "write_latency_cycles": self.write_latency_cycles,
        }
        if self.max_reads is not None:
            d["max_reads"] = self.max_reads
        if self.max_writes is not None:
            d["max_writes"] = self.max_writes
        return d


@dataclass(frozen=True)
class SystemConfig:
    """A Vela ``[System_Config.<name>]`` section."""

    name: str
    core_clock_hz: int
    axi0_port: MemoryArea
    axi1_port: MemoryArea
    memories: tuple[MemoryTiming, ...]
    bundled: bool  # True: from Vela's own Arm/vela.ini

    def timing(self, area: MemoryArea) -> MemoryTiming:
        for m in self.memories:
            if m.area is area:
                return m
        # Vela's default for a memory without settings (all 1s / 0s)
        return MemoryTiming(area, 1.0)

    def port_area(self, port: AxiPort) -> MemoryArea:
        return self.axi0_port if port is AxiPort.AXI0 else self.axi1_port

    def bandwidth_bytes_per_s(self, area: MemoryArea, axi_bytes_per_cycle: int) -> float:
        """Vela's peak bandwidth: AXI width x ports x clock scale x core clock."""
        t = self.timing(area)
        return axi_bytes_per_cycle * t.ports_used * t.clock_scale * self.core_clock_hz

    def to_dict(self, axi_bytes_per_cycle: int) -> dict:
        return {
            "name": self.name,
            "bundled": self.bundled,
            "core_clock_hz": self.core_clock_hz,
            "axi0_port": self.axi0_port.value,
            "axi1_port": self.axi1_port.value,
            "memories": {
                m.area.value: {
                    **m.to_dict(),
                    "bandwidth_bytes_per_s": round(self.bandwidth_bytes_per_s(m.area, axi_bytes_per_cycle)),
                }
                for m in self.memories
            },
        }


@dataclass(frozen=True)
class MemoryMode:
    """A Vela ``[Memory_Mode.<name>]`` section: which AXI port holds what."""

    name: str
    const_mem_area: AxiPort  # weights and other constants
    arena_mem_area: AxiPort  # the tensor arena (activations)
    cache_mem_area: AxiPort  # the NPU's staging cache
    arena_cache_size_bytes: int | None
    bundled: bool

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "bundled": self.bundled,
            "const_mem_area": self.const_mem_area.value,
            "arena_mem_area": self.arena_mem_area.value,
            "cache_mem_area": self.cache_mem_area.value,
            "arena_cache_size_bytes": self.arena_cache_size_bytes,
        }


def bundled_ini_path() -> Path:
    spec = importlib.util.find_spec("ethosu")
    if spec is None or not spec.submodule_search_locations:
        raise ToolError("ethos-u-vela is not installed (pip install ethos-u-vela==5.2.0)")
    for loc in spec.submodule_search_locations:
        p = Path(loc) / "config_files" / "Arm" / "vela.ini"
        if p.is_file():
            return p
    raise ToolError("ethos-u-vela is installed without its config_files/Arm/vela.ini")


def _parser(text: str) -> configparser.ConfigParser:
    # Vela reads its .ini with a default ConfigParser (keys are case-insensitive); so do we.
    cp = configparser.ConfigParser()
    cp.read_string(text)
    return cp


def _section_items(cp: configparser.ConfigParser, section: str, depth: int = 0) -> dict[str, str]:
    """A section's keys with Vela's ``inherit=`` resolved."""
    if depth > 8:
        raise ToolError(f"Vela config: inheritance too deep at [{section}]")
    items = dict(cp.items(section))
    parent = items.pop("inherit", None)
    if parent:
        base = _section_items(cp, parent, depth + 1)
        base.update(items)
        items = base
    return items


def _area(text: str, where: str) -> MemoryArea:
    try:
        return MemoryArea(text)
    except ValueError:
        raise ToolError(f"Vela config [{where}]: unknown memory '{text}'") from None


def _system_from_items(name: str, items: dict[str, str], bundled: bool) -> SystemConfig:
    axi0 = _area(items.get("axi0_port", "Sram"), name)
    axi1 = _area(items.get("axi1_port", "Sram"), name)
    memories = []
    for area in dict.fromkeys((axi0, axi1)):
        k = area.value.lower()
        memories.append(
            MemoryTiming(
                area=area,
                clock_scale=float(items.get(f"{k}_clock_scale", 1.0)),
                ports_used=int(items.get(f"{k}_ports_used", 1)),
                burst_length_bytes=int(items.get(f"{k}_burst_length", 1)),
                read_latency_cycles=int(items.get(f"{k}_read_latency", 0)),
                write_latency_cycles=int(items.get(f"{k}_write_latency", 0)),
                max_reads=int(items[f"{k}_max_reads"]) if f"{k}_max_reads" in items else None,
                max_writes=int(items[f"{k}_max_writes"]) if f"{k}_max_writes" in items else None,
            )
        )
    return SystemConfig(
        name=name,
        core_clock_hz=round(float(items.get("core_clock", 1))),
        axi0_port=axi0,
        axi1_port=axi1,
        memories=tuple(memories),
        bundled=bundled,
    )


def _mode_from_items(name: str, items: dict[str, str], bundled: bool) -> MemoryMode:
    size = items.get("arena_cache_size")
    return MemoryMode(
        name=name,
        const_mem_area=AxiPort(items.get("const_mem_area", "Axi1")),
        arena_mem_area=AxiPort(items.get("arena_mem_area", "Axi1")),
        cache_mem_area=AxiPort(items.get("cache_mem_area", "Axi1")),
        arena_cache_size_bytes=int(size) if size is not None else None,
        bundled=bundled,
    )


@lru_cache(maxsize=1)
def _bundled() -> tuple[dict[str, SystemConfig], dict[str, MemoryMode]]:
    cp = _parser(bundled_ini_path().read_text(encoding="utf-8"))
    systems: dict[str, SystemConfig] = {}
    modes: dict[str, MemoryMode] = {}
    for section in cp.sections():
        kind, _, name = section.partition(".")
        if kind == "System_Config":
            systems[name] = _system_from_items(name, _section_items(cp, section), bundled=True)
        elif kind == "Memory_Mode":
            modes[name] = _mode_from_items(name, _section_items(cp, section), bundled=True)
    return systems, modes


def bundled_system(name: str) -> SystemConfig:
    systems, _ = _bundled()
    if name not in systems:
        raise ConfigError(
            f"unknown Vela system config '{name}'; {BUNDLED_CONFIG} has: {', '.join(sorted(systems))} "
            "(or describe your own system in a [system] table)"
        )
    return systems[name]


def bundled_memory_mode(name: str) -> MemoryMode:
    _, modes = _bundled()
    if name not in modes:
        raise ConfigError(
            f"unknown Vela memory mode '{name}'; {BUNDLED_CONFIG} has: {', '.join(sorted(modes))} "
            "(or describe your own in a [memory_mode] table)"
        )
    return modes[name]


def bundled_system_and_mode_names() -> tuple[list[str], list[str]]:
    systems, modes = _bundled()
    return sorted(systems), sorted(modes)


def _fmt(x: float) -> str:
    # Whole numbers without a fraction, others in shortest round-trip form: stable text.
    if float(x).is_integer() and abs(x) < 1e18:
        return str(int(x))
    return repr(float(x))


def render_ini(system: SystemConfig, mode: MemoryMode) -> str:
    """A self-contained Vela .ini holding exactly this system and this memory mode."""
    lines = [
        "; Rendered by the toolchain from a hardware profile; passed to Vela with --config.",
        f"[System_Config.{system.name}]",
        f"core_clock={_fmt(system.core_clock_hz)}",
        f"axi0_port={system.axi0_port.value}",
        f"axi1_port={system.axi1_port.value}",
    ]
    for m in system.memories:
        k = m.area.value
        lines += [
            f"{k}_clock_scale={_fmt(m.clock_scale)}",
            f"{k}_ports_used={m.ports_used}",
            f"{k}_burst_length={m.burst_length_bytes}",
            f"{k}_read_latency={m.read_latency_cycles}",
            f"{k}_write_latency={m.write_latency_cycles}",
        ]
        if m.max_reads is not None:
            lines.append(f"{k}_max_reads={m.max_reads}")
        if m.max_writes is not None:
            lines.append(f"{k}_max_writes={m.max_writes}")
    lines += [
        "",
        f"[Memory_Mode.{mode.name}]",
        f"const_mem_area={mode.const_mem_area.value}",
        f"arena_mem_area={mode.arena_mem_area.value}",
        f"cache_mem_area={mode.cache_mem_area.value}",
    ]
    if mode.arena_cache_size_bytes is not None:
        lines.append(f"arena_cache_size={mode.arena_cache_size_bytes}")
    return "\n".join(lines) + "\n"


def parse_ini(text: str, system_name: str, mode_name: str) -> tuple[SystemConfig, MemoryMode]:
    """Read back a rendered .ini (used by tests to prove the rendering is faithful)."""
    cp = _parser(text)
    system = _system_from_items(system_name, _section_items(cp, f"System_Config.{system_name}"), bundled=False)
    mode = _mode_from_items(mode_name, _section_items(cp, f"Memory_Mode.{mode_name}"), bundled=False)
    return system, mode


def clock_scale_for(bandwidth_bytes_per_s: float, axi_bytes_per_cycle: int, ports_used: int, core_clock_hz: int) -> float:
    """Invert Vela's bandwidth formula, so a profile may state bandwidth in bytes/s."""
    scale = bandwidth_bytes_per_s / (axi_bytes_per_cycle * ports_used * core_clock_hz)
    # Keep it short and stable in the rendered .ini.
    return float(f"{scale:.9g}") if math.isfinite(scale) else scale
