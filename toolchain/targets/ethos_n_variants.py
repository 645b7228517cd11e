"""The Ethos-N78 variants as Arm's support library defines them (driver stack 25.03, Apache-2.0).

Figures from ``driver/support_library/src/CapabilitiesInternal.cpp`` (``GetEthosN78FwHwCapabilities``):
compute engines, input and output groups per engine, SRAM controllers (EMCs) per engine, PLE lanes
and the default SRAM size; 8 MAC units per output group. The int8 MACs per cycle follow as
(engines x IGs) input channels x 8 MAC units x (engines x OGs) output channels (the direct-convolution
rate of ``MceEstimationUtils.cpp``): 512, 1024, 2048 and 4096, so the variant names' 1, 2, 4 and 8
TOPS hold at a 1 GHz clock (2 x MACs x clock = 1.02 to 8.19 TOPS).

The library's PLE kernel database (``PleKernelDatabaseGenerated.hpp``, the same in every release
from 23.11 to 25.03) holds kernels for four of the seven hardware configurations only; for the
other three (1TOPS_2PLE, 2TOPS_2PLE, 2TOPS_4PLE) its estimator returns "Estimation didn't find
any valid performance data" for every network, whatever the SRAM size.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from ..core.errors import ConfigError

MAC_UNITS_PER_OG = 8
_KIB = 1024


class EthosNVariant(Enum):
    """Arm's ``ethosn::support_library::EthosNVariant`` names (the N77/N57/N37 entries are unsupported there)."""

    N78_1TOPS_2PLE = "ETHOS_N78_1TOPS_2PLE_RATIO"
    N78_1TOPS_4PLE = "ETHOS_N78_1TOPS_4PLE_RATIO"
    N78_2TOPS_2PLE = "ETHOS_N78_2TOPS_2PLE_RATIO"
    N78_2TOPS_4PLE = "ETHOS_N78_2TOPS_4PLE_RATIO"
    N78_4TOPS_2PLE = "ETHOS_N78_4TOPS_2PLE_RATIO"
    N78_4TOPS_4PLE = "ETHOS_N78_4TOPS_4PLE_RATIO"
    N78_8TOPS_2PLE = "ETHOS_N78_8TOPS_2PLE_RATIO"

    @property
    def accelerator(self) -> str:
        """The profile's accelerator name: ``ethos-n78-1tops-2ple`` for ETHOS_N78_1TOPS_2PLE_RATIO."""
        return "ethos-n78-" + self.name.removeprefix("N78_").lower().replace("_", "-")

    @property
    def tops(self) -> int:
        return int(self.name.split("_")[1].removesuffix("TOPS"))

    @property
    def hardware(self) -> VariantHardware:
        return HARDWARE[self]

    @classmethod
    def of_accelerator(cls, accelerator: str) -> EthosNVariant:
        for v in cls:
            if v.accelerator == accelerator:
                return v
        known = ", ".join(v.accelerator for v in cls)
        raise ConfigError(f"unknown Ethos-N78 accelerator '{accelerator}'; Arm's variants are {known}")


@dataclass(frozen=True)
class VariantHardware:
    engines: int
    igs_per_engine: int
    ogs_per_engine: int
    emcs_per_engine: int
    ple_lanes: int
    default_sram_bytes: int
    arm_estimates: bool  # the support library has PLE kernels for it (see the module docstring)

    @property
    def macs_per_cycle(self) -> int:
        return self.input_channels_per_cycle * MAC_UNITS_PER_OG * self.output_channels_per_cycle

    @property
    def input_channels_per_cycle(self) -> int:
        return self.engines * self.igs_per_engine

    @property
    def output_channels_per_cycle(self) -> int:
        return self.engines * self.ogs_per_engine

    @property
    def sram_controllers(self) -> int:
        # The library divides the SRAM by engines x IGs per engine (its "numEmcs").
        return self.engines * self.igs_per_engine


HARDWARE: dict[EthosNVariant, VariantHardware] = {
    EthosNVariant.N78_1TOPS_2PLE: VariantHardware(2, 4, 4, 4, 1, 448 * _KIB, False),
    EthosNVariant.N78_1TOPS_4PLE: VariantHardware(2, 4, 4, 4, 2, 448 * _KIB, True),
    EthosNVariant.N78_2TOPS_2PLE: VariantHardware(4, 2, 4, 2, 1, 768 * _KIB, False),
    EthosNVariant.N78_2TOPS_4PLE: VariantHardware(4, 2, 4, 2, 2, 768 * _KIB, False),
    EthosNVariant.N78_4TOPS_2PLE: VariantHardware(4, 4, 4, 4, 2, 1024 * _KIB, True),
    EthosNVariant.N78_4TOPS_4PLE: VariantHardware(8, 2, 2, 2, 2, 1024 * _KIB, True),
    EthosNVariant.N78_8TOPS_2PLE: VariantHardware(8, 2, 4, 2, 2, 2048 * _KIB, True),
}


def sram_size_problem(variant: EthosNVariant, sram_bytes: int) -> str | None:
    """Why the library would refuse this SRAM size for the variant, or None.

    Its rule (``GetEthosN78FwHwCapabilities``): the SRAM per controller is 32 to 128 KiB in
    steps of 16 KiB, or 56 or 256 KiB.
    """
    controllers = variant.hardware.sram_controllers
    per = sram_bytes // controllers
    allowed = "32 to 128 KiB in steps of 16 KiB, or 56 or 256 KiB"
    if not ((32 * _KIB <= per <= 128 * _KIB and per % (16 * _KIB) == 0) or per in (56 * _KIB, 256 * _KIB)):
        return (f"{sram_bytes} bytes of SRAM is not a size {variant.value} can have: Arm's support library "
                f"allows {allowed} for each of its {controllers} SRAM controllers")
    return None
