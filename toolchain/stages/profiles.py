"""Hardware profiles: one TOML file per target in ``hw_profiles/``, or a user's own file.

A profile names the accelerator, the system (a Vela system config by name, or a
custom one that is rendered into a Vela .ini), the memory mode, the board's
budgets and the palette limit. Files are checked against
``schemas/hw_profile.schema.json`` for structure, then here for contradictions
Vela itself would accept silently or report obscurely.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path
from typing import Any

from ..core.errors import ConfigError
from ..core.schemas import REPO_ROOT, load_config_file, validate
from . import vela_system as vs
from .vela_system import AxiPort, MemoryArea, MemoryMode, MemoryTiming, SystemConfig

PROFILE_DIR = REPO_ROOT / "hw_profiles"
SCHEMA = "hw_profile"
# Within this relative tolerance the published TOPS must equal 2 x MACs/cycle x clock.
TOPS_TOLERANCE = 0.05
_MAX_BASE_DEPTH = 4


class Family(Enum):
    ETHOS_U55 = "ethos-u55"
    ETHOS_U65 = "ethos-u65"
    ETHOS_U85 = "ethos-u85"
    ETHOS_N78 = "ethos-n78"

    @property
    def compiled_by_vela(self) -> bool:
        return self is not Family.ETHOS_N78

    @property
    def axi_bytes_per_cycle(self) -> int:
        # AXI data width per port and core cycle, as Vela models it (architecture_features.py).
        return 8 if self is Family.ETHOS_U55 else 16

    @property
    def system_config_prefix(self) -> str:
        return {"ethos-u55": "Ethos_U55_", "ethos-u65": "Ethos_U65_", "ethos-u85": "Ethos_U85_"}.get(self.value, "")

    @classmethod
    def of_accelerator(cls, accelerator: str) -> "Family":
        for f in cls:
            if accelerator.startswith(f.value + "-"):
                return f
        raise ConfigError(f"unknown accelerator '{accelerator}'")


class Optimise(Enum):
    PERFORMANCE = "Performance"
    SIZE = "Size"


@dataclass(frozen=True)
class EthosNConfig:
    """An Ethos-N78 engine configuration and what the analytical estimate assumes of it."""

    tops: float
    macs_per_cycle: int
    dram_bandwidth_bytes_per_s: float
    utilisation: float = 1.0

    def to_dict(self) -> dict:
        return {
            "tops": self.tops,
            "macs_per_cycle": self.macs_per_cycle,
            "dram_bandwidth_bytes_per_s": self.dram_bandwidth_bytes_per_s,
            "utilisation": self.utilisation,
        }


@dataclass(frozen=True)
class HardwareProfile:
    name: str
    description: str
    family: Family
    accelerator: str  # Vela's --accelerator-config, or "ethos-n78-<N>tops"
    clock_hz: int
    sram_budget_bytes: int
    flash_budget_bytes: int
    palette_limit: int
    system_config: SystemConfig | None = None  # None for Ethos-N
    memory_mode: MemoryMode | None = None
    optimise: Optimise = Optimise.PERFORMANCE
    ethos_n: EthosNConfig | None = None
    base: str | None = None
    aliases: tuple[str, ...] = ()
    source: str = ""  # file name the profile came from (no directory: keeps outputs path-free)

    @property
    def system_config_name(self) -> str | None:
        return self.system_config.name if self.system_config else None

    @property
    def memory_mode_name(self) -> str | None:
        return self.memory_mode.name if self.memory_mode else None

    @property
    def needs_rendered_ini(self) -> bool:
        """True when Vela cannot take the system/mode from its bundled Arm/vela.ini."""
        if not self.family.compiled_by_vela:
            return False
        return not (self.system_config.bundled and self.memory_mode.bundled)  # type: ignore[union-attr]

    @property
    def ini_file_name(self) -> str:
        return f"{self.name}.ini"

    def vela_ini_text(self) -> str | None:
        if not self.needs_rendered_ini:
            return None
        return vs.render_ini(self.system_config, self.memory_mode)  # type: ignore[arg-type]

    def vela_config_arguments(self) -> list[str]:
        """``--config``/``--system-config``/``--memory-mode``/``--accelerator-config`` for Vela."""
        if not self.family.compiled_by_vela:
            raise ConfigError(f"{self.name} is not a Vela target")
        config = f"./{self.ini_file_name}" if self.needs_rendered_ini else vs.BUNDLED_CONFIG
        return [
            "--accelerator-config", self.accelerator,
            "--config", config,
            "--system-config", self.system_config.name,  # type: ignore[union-attr]
            "--memory-mode", self.memory_mode.name,  # type: ignore[union-attr]
            "--optimise", self.optimise.value,
        ]

    @property
    def constants_in_sram(self) -> bool:
        """Vela's SRAM-only modes place weights in SRAM, reported as 'on-chip flash'."""
        if self.memory_mode is None or self.system_config is None:
            return False
        return self.system_config.port_area(self.memory_mode.const_mem_area) is MemoryArea.SRAM

    def bandwidths_bytes_per_s(self) -> dict[str, float]:
        if self.system_config is None:
            return {}
        return {
            m.area.value: self.system_config.bandwidth_bytes_per_s(m.area, self.family.axi_bytes_per_cycle)
            for m in self.system_config.memories
        }

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "family": self.family.value,
            "accelerator": self.accelerator,
            "clock_hz": self.clock_hz,
            "palette_limit": self.palette_limit,
            "budget": {"sram_bytes": self.sram_budget_bytes, "flash_bytes": self.flash_budget_bytes},
            "aliases": list(self.aliases),
            "base": self.base,
            "source": self.source,
        }
        if self.system_config is not None:
            d["system_config"] = self.system_config.to_dict(self.family.axi_bytes_per_cycle)
            d["memory_mode"] = self.memory_mode.to_dict()  # type: ignore[union-attr]
            d["optimise"] = self.optimise.value
        if self.ethos_n is not None:
            d["ethos_n"] = self.ethos_n.to_dict()
        return d


# --------------------------------------------------------------------------- loading


def _looks_like_path(name_or_path: str | os.PathLike[str]) -> bool:
    s = os.fspath(name_or_path)
    return s.endswith((".toml", ".json")) or os.sep in s or "/" in s


def builtin_names() -> list[str]:
    """Every file stem in hw_profiles/ (profiles and aliases)."""
    if not PROFILE_DIR.is_dir():
        return []
    return sorted(p.stem for p in PROFILE_DIR.glob("*.toml"))


def _builtin_raw(name: str) -> dict[str, Any]:
    path = PROFILE_DIR / f"{name}.toml"
    if not path.is_file():
        known = ", ".join(builtin_names()) or "(none: hw_profiles/ is missing)"
        raise ConfigError(f"unknown target '{name}'; known targets: {known} (or give a profile file)")
    raw = load_config_file(path, "hardware profile")
    if raw.get("name") != name:
        raise ConfigError(f"hardware profile {path.name}: name '{raw.get('name')}' must match the file name '{name}'")
    return raw


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = {k: v for k, v in base.items() if k not in ("name", "description", "alias_of", "base")}
    # A system (or memory mode) is given either by name or as a table: the file's choice replaces the base's.
    if "system" in over:
        merged.pop("system_config", None)
    if "system_config" in over:
        merged.pop("system", None)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(merged.get(k), dict) and k != "memory_mode":
            merged[k] = {**merged[k], **v}
        else:
            merged[k] = v
    return merged


def _resolve_raw(raw: dict[str, Any], what: str, depth: int = 0) -> dict[str, Any]:
    """Follow ``alias_of`` and ``base`` to a complete profile dict."""
    if depth > _MAX_BASE_DEPTH:
        raise ConfigError(f"{what}: alias/base chain is longer than {_MAX_BASE_DEPTH} (a cycle?)")
    if "alias_of" in raw:
        validate(raw, SCHEMA, what)
        target = _builtin_raw(raw["alias_of"])
        if "alias_of" in target:
            raise ConfigError(f"{what}: alias_of names '{raw['alias_of']}', which is itself an alias")
        return _resolve_raw(target, f"hardware profile '{raw['alias_of']}'", depth + 1)
    if "base" in raw:
        base_name = raw["base"]
        if not isinstance(base_name, str):
            raise ConfigError(f"{what}: base must be a profile name")
        base = _resolve_raw(_builtin_raw(base_name), f"hardware profile '{base_name}'", depth + 1)
        merged = _merge(base, raw)
        merged.setdefault("description", f"based on {base_name}")
        merged["base"] = base_name
        return merged
    return raw


def load_profile(name_or_path: str | os.PathLike[str]) -> HardwareProfile:
    """A built-in target by name or alias (``ethos-u55``), or a profile file (.toml/.json)."""
    if _looks_like_path(name_or_path):
        path = Path(name_or_path)
        what = f"hardware profile {path.name}"
        raw = load_config_file(path, "hardware profile")
        source = path.name
    else:
        name = os.fspath(name_or_path)
        raw = _builtin_raw(name)
        what = f"hardware profile '{name}'"
        source = f"{name}.toml"
    if "alias_of" in raw:
        source = f"{raw['alias_of']}.toml"
    full = _resolve_raw(raw, what)
    validate(full, SCHEMA, what)
    profile = _build(full, what, source)
    return _with_aliases(profile)


def _with_aliases(profile: HardwareProfile) -> HardwareProfile:
    aliases = []
    for name in builtin_names():
        raw = load_config_file(PROFILE_DIR / f"{name}.toml", "hardware profile")
        if raw.get("alias_of") == profile.name:
            aliases.append(name)
    return replace(profile, aliases=tuple(aliases)) if aliases else profile


def list_profiles() -> list[HardwareProfile]:
    """Every built-in profile (aliases appear in each profile's ``aliases``), sorted by family then size."""
    profiles = []
    for name in builtin_names():
        raw = load_config_file(PROFILE_DIR / f"{name}.toml", "hardware profile")
        if "alias_of" not in raw:
            profiles.append(load_profile(name))
    return sorted(profiles, key=_sort_key)


def list_aliases() -> dict[str, str]:
    out = {}
    for name in builtin_names():
        raw = load_config_file(PROFILE_DIR / f"{name}.toml", "hardware profile")
        if "alias_of" in raw:
            out[name] = raw["alias_of"]
    return out


def _sort_key(p: HardwareProfile) -> tuple:
    size = "".join(ch for ch in p.accelerator.rsplit("-", 1)[-1] if ch.isdigit())
    return (list(Family).index(p.family), int(size or 0), p.name)


# --------------------------------------------------------------------------- building and checking


def _build(d: dict[str, Any], what: str, source: str) -> HardwareProfile:
    accelerator = d["accelerator"]
    family = Family.of_accelerator(accelerator)
    budget = d["budget"]
    common = dict(
        name=d["name"],
        description=d.get("description", ""),
        family=family,
        accelerator=accelerator,
        sram_budget_bytes=int(budget["sram_bytes"]),
        flash_budget_bytes=int(budget["flash_bytes"]),
        palette_limit=int(d["palette_limit"]),
        base=d.get("base"),
        source=source,
    )
    if family is Family.ETHOS_N78:
        for key in ("system_config", "system", "memory_mode", "optimise"):
            if key in d:
                raise ConfigError(f"{what}: '{key}' is a Vela setting; Ethos-N78 ({accelerator}) is not compiled by Vela")
        n = d["ethos_n"]
        cfg = EthosNConfig(
            tops=float(n["tops"]),
            macs_per_cycle=int(n["macs_per_cycle"]),
            dram_bandwidth_bytes_per_s=float(n["dram_bandwidth_bytes_per_s"]),
            utilisation=float(n.get("utilisation", 1.0)),
        )
        clock_hz = int(n["clock_hz"])
        _check_ethos_n(cfg, clock_hz, accelerator, what)
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
                f"use one of: {', '.join(n for n in vs.bundled_names()[0] if n.startswith(prefix))}"
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


def _check_ethos_n(cfg: EthosNConfig, clock_hz: int, accelerator: str, what: str) -> None:
    named_tops = float(accelerator.removeprefix("ethos-n78-").removesuffix("tops"))
    if cfg.tops != named_tops:
        raise ConfigError(f"{what}: ethos_n.tops is {cfg.tops:g} but the accelerator is {accelerator}")
    peak_tops = 2 * cfg.macs_per_cycle * clock_hz / 1e12
    if abs(peak_tops - cfg.tops) > TOPS_TOLERANCE * cfg.tops:
        raise ConfigError(
            f"{what}: {cfg.macs_per_cycle} MACs/cycle at {clock_hz} Hz give {peak_tops:.3g} TOPS "
            f"(2 x MACs x clock), not the {cfg.tops:g} TOPS of {accelerator}"
        )
