"""Building a HardwareProfile from a validated profile dict, refusing contradictions
Vela itself would accept silently or report obscurely (a U85 system for a U55, constants in
SRAM beside an external arena, an Ethos-N78 SRAM size its variant cannot have...)."""
from __future__ import annotations

from typing import Any

from ..core.errors import ConfigError
from . import vela_system as vs
from .ethos_n_variants import EthosNVariant, sram_size_problem
from .profile import EthosNConfig, Family, HardwareProfile, Optimise
from .vela_system import AxiPort, MemoryArea, MemoryMode, MemoryTiming, SystemConfig

MIN_CLOCK_SCALE = 1e-4  # as schemas/hw_profile.schema.json bounds clock_scale


# --------------------------------------------------------------------------- building and checking


def build_profile(d: dict[str, Any], what: str, source: str) -> HardwareProfile:
    accelerator = d["accelerator"]
    family = Family.of_accelerator(accelerator)
    budget = d["budget"]
    common = {
        "name": d["name"],
        "description": d.get("description", ""),
        "family": family,
        "accelerator": accelerator,
        "sram_budget_bytes": int(budget["sram_bytes"]),
        "flash_budget_bytes": int(budget["flash_bytes"]),
        "palette_limit": int(d["palette_limit"]),
        "base": d.get("base"),
        "source": source,
    }
    if family is Family.ETHOS_N78:
        for key in ("system_config", "system", "memory_mode", "optimise"):
            if key in d:
                raise ConfigError(f"{what}: '{key}' is a Vela setting; Ethos-N78 ({accelerator}) is not compiled by Vela")
        variant = EthosNVariant.of_accelerator(accelerator)
        problem = sram_size_problem(variant, common["sram_budget_bytes"])
        if problem:
            raise ConfigError(f"{what}: budget.sram_bytes: {problem}")
        cfg = EthosNConfig(variant)
        clock_hz = int(d["ethos_n"]["clock_hz"])
        return HardwareProfile(clock_hz=clock_hz, ethos_n=cfg, **common)

    if "ethos_n" in d:
        raise ConfigError(f"{what}: an [ethos_n] table does not belong to a {accelerator} profile")
    has_named, has_custom = "system_config" in d, "system" in d
    if has_named == has_custom:
        raise ConfigError(
            f"{what}: give exactly one of system_config (a name from Vela's {vs.BUNDLED_CONFIG}) "
            "or a [system] table (a custom system)"
        )
    system = vs.bundled_system(d["system_config"]) if has_named else _custom_system(d, family, what)
    mm = d["memory_mode"]
    mode = vs.bundled_memory_mode(mm) if isinstance(mm, str) else _custom_mode(mm, d["name"])
    profile = HardwareProfile(
        clock_hz=system.core_clock_hz,
        system_config=system,
        memory_mode=mode,
        optimise=Optimise(d.get("optimise", "Performance")),
        **common,
    )
    _check_vela_profile(profile, what)
    return profile


def _ini_name(profile_name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in profile_name)


def _custom_system(d: dict[str, Any], family: Family, what: str) -> SystemConfig:
    s = d["system"]
    clock = int(s["core_clock_hz"])
    axi0, axi1 = MemoryArea(s["axi0_port"]), MemoryArea(s["axi1_port"])
    used = list(dict.fromkeys((axi0, axi1)))
    for area in MemoryArea:
        if area.value in s and area not in used:
            raise ConfigError(
                f"{what}: system.{area.value} is given but neither axi0_port nor axi1_port is {area.value}"
            )
    memories = []
    for area in used:
        m = s.get(area.value)
        if m is None:
            raise ConfigError(f"{what}: the system puts {area.value} on an AXI port but has no [system.{area.value}] table")
        if ("clock_scale" in m) == ("bandwidth_bytes_per_s" in m):
            raise ConfigError(f"{what}: system.{area.value} needs exactly one of clock_scale or bandwidth_bytes_per_s")
        ports = int(m.get("ports_used", 1))
        if "clock_scale" in m:
            scale = float(m["clock_scale"])
        else:
            scale = vs.clock_scale_for(float(m["bandwidth_bytes_per_s"]), family.axi_bytes_per_cycle, ports, clock)
        if not MIN_CLOCK_SCALE <= scale:  # a bandwidth this low gives Vela absurd cycle counts
            raise ConfigError(
                f"{what}: system.{area.value} bandwidth gives clock_scale {scale:.3g}, below {MIN_CLOCK_SCALE:g} "
                "of an AXI port per cycle; check the units (bytes per second)"
            )
        if scale > 1.0:
            peak = family.axi_bytes_per_cycle * ports * clock
            raise ConfigError(
                f"{what}: system.{area.value} asks for {scale * peak:.4g} bytes/s but {ports} AXI port(s) of a "
                f"{family.value} at {clock} Hz carry at most {peak:.4g} bytes/s (clock_scale must be <= 1)"
            )
        memories.append(
            MemoryTiming(
                area=area,
                clock_scale=scale,
                ports_used=ports,
                burst_length_bytes=int(m.get("burst_length_bytes", 32)),
                read_latency_cycles=int(m.get("read_latency_cycles", 0)),
                write_latency_cycles=int(m.get("write_latency_cycles", 0)),
                max_reads=int(m["max_reads"]) if "max_reads" in m else None,
                max_writes=int(m["max_writes"]) if "max_writes" in m else None,
            )
        )
    return SystemConfig(
        name=s.get("name") or _ini_name(d["name"]) + "_System",
        core_clock_hz=clock,
        axi0_port=axi0,
        axi1_port=axi1,
        memories=tuple(memories),
        bundled=False,
    )


def _custom_mode(m: dict[str, Any], profile_name: str) -> MemoryMode:
    return MemoryMode(
        name=m.get("name") or _ini_name(profile_name) + "_Memory",
        const_mem_area=AxiPort(m["const_mem_area"]),
        arena_mem_area=AxiPort(m["arena_mem_area"]),
        cache_mem_area=AxiPort(m["cache_mem_area"]),
        arena_cache_size_bytes=m.get("arena_cache_size_bytes"),
        bundled=False,
    )


def _check_vela_profile(p: HardwareProfile, what: str) -> None:
    system, mode = p.system_config, p.memory_mode
    assert system is not None and mode is not None
    # Vela accepts a system config of another family silently; the clocks and ports would be wrong.
    if system.bundled:
        prefix = p.family.system_config_prefix
        if not system.name.startswith(prefix):
            raise ConfigError(
                f"{what}: system config {system.name} is not for {p.family.value} ({p.accelerator}); "
                f"use one of: {', '.join(n for n in vs.bundled_system_and_mode_names()[0] if n.startswith(prefix))}"
            )
    if p.family is Family.ETHOS_U55 and mode.name.startswith("Dedicated_Sram"):
        raise ConfigError(
            f"{what}: memory mode {mode.name} is for Ethos-U65/U85; an Ethos-U55 shares its SRAM "
            "with the CPU (use Shared_Sram or Sram_Only)"
        )
    const_area = system.port_area(mode.const_mem_area)
    arena_area = system.port_area(mode.arena_mem_area)
    cache_area = system.port_area(mode.cache_mem_area)
    sram_only = mode.const_mem_area == mode.arena_mem_area == mode.cache_mem_area and const_area is MemoryArea.SRAM
    if const_area is MemoryArea.SRAM and not sram_only:
        raise ConfigError(
            f"{what}: memory mode {mode.name} puts constants on {mode.const_mem_area.value} = Sram while the arena "
            "or cache is elsewhere; constants go to Dram, OnChipFlash or OffChipFlash (or use an SRAM-only mode)"
        )
    if arena_area not in (MemoryArea.SRAM, MemoryArea.DRAM):
        raise ConfigError(
            f"{what}: memory mode {mode.name} puts the tensor arena on {mode.arena_mem_area.value} = "
            f"{arena_area.value} of system {system.name}; the arena must be Sram or Dram"
        )
    if cache_area is not MemoryArea.SRAM:
        raise ConfigError(
            f"{what}: memory mode {mode.name} puts the NPU cache on {mode.cache_mem_area.value} = "
            f"{cache_area.value}; it must be Sram"
        )
    cache = mode.arena_cache_size_bytes
    if cache is not None and arena_area is not MemoryArea.SRAM and cache > p.sram_budget_bytes:
        raise ConfigError(
            f"{what}: memory mode {mode.name} gives the NPU a {cache}-byte SRAM cache but the board's "
            f"budget.sram_bytes is {p.sram_budget_bytes}"
        )
