"""A hardware profile: accelerator, system and memory mode (or an Ethos-N configuration), board budgets, palette limit."""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from ..core.errors import ConfigError
from . import vela_system as vs
from .ethos_n_variants import EthosNVariant
from .vela_system import MemoryArea, MemoryMode, SystemConfig


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
    def of_accelerator(cls, accelerator: str) -> Family:
        for f in cls:
            if accelerator.startswith(f.value + "-"):
                return f
        raise ConfigError(f"unknown accelerator '{accelerator}'")


class Optimise(Enum):
    PERFORMANCE = "Performance"
    SIZE = "Size"


@dataclass(frozen=True)
class EthosNConfig:
    """An Ethos-N78 variant as Arm's support library defines it (its hardware in ethos_n_variants)."""

    variant: EthosNVariant

    def to_dict(self) -> dict:
        hw = self.variant.hardware
        return {
            "variant": self.variant.value,
            "macs_per_cycle": hw.macs_per_cycle,
            "engines": hw.engines,
            "ple_lanes": hw.ple_lanes,
            "arm_estimates": hw.arm_estimates,
        }


@dataclass(frozen=True)
class HardwareProfile:
    name: str
    description: str
    family: Family
    accelerator: str  # Vela's --accelerator-config, or an Ethos-N78 variant ("ethos-n78-1tops-4ple")
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
