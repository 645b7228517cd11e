"""What a compile produces: the estimate kind, the NPU/CPU status, the memory budget check and the result."""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .op_placement import Placement


class EstimateKind(Enum):
    VELA = "vela"
    ANALYTICAL = "analytical"  # the calibrated Ethos-N78 model
    ARM = "arm"  # Arm's Ethos-N support library's estimator

    @property
    def estimate(self) -> bool:
        """Figures of an estimator, not of a compile."""
        return self is not EstimateKind.VELA


class CompileStatus(Enum):
    OK = "ok"  # no operator on the CPU per inference
    PARTIAL_CPU = "partial_cpu"  # some operators on the CPU per inference (warned)
    MOSTLY_CPU = "mostly_cpu"  # most compute work (MACs) per inference, or all of it, on the CPU: refused unless allowed


@dataclass(frozen=True)
class Budget:
    sram_budget_bytes: int
    flash_budget_bytes: int
    sram_used_bytes: int
    flash_used_bytes: int

    @property
    def sram_ok(self) -> bool:
        return self.sram_used_bytes <= self.sram_budget_bytes

    @property
    def flash_ok(self) -> bool:
        return self.flash_used_bytes <= self.flash_budget_bytes

    @property
    def within_budget(self) -> bool:
        return self.sram_ok and self.flash_ok

    def describe(self) -> str:
        def part(what: str, used: int, budget: int) -> str:
            rel = "<=" if used <= budget else ">"
            return f"{what} {used:,} B {rel} budget {budget:,} B"

        return "; ".join(
            (
                part("SRAM", self.sram_used_bytes, self.sram_budget_bytes),
                part("flash (compiled model file)", self.flash_used_bytes, self.flash_budget_bytes),
            )
        )

    def to_dict(self, enforced: bool) -> dict[str, Any]:
        return {
            "sram_bytes": self.sram_budget_bytes,
            "flash_bytes": self.flash_budget_bytes,
            "sram_used_bytes": self.sram_used_bytes,
            "flash_used_bytes": self.flash_used_bytes,
            "within_budget": self.within_budget,
            "enforced": enforced,
        }


@dataclass(frozen=True)
class CompileResult:
    target: str
    estimate_kind: EstimateKind
    status: CompileStatus
    out_dir: Path
    compile_json: Path
    vela_model: Path | None  # None for Ethos-N estimates
    sram_bytes: int
    dram_bytes: int
    on_chip_flash_bytes: int
    off_chip_flash_bytes: int
    cycles_npu: int
    cycles_total: int
    inference_time_s: float
    npu_operators: int  # input operators on the NPU per inference
    cpu_operators: int  # operators on the CPU per inference (compute, state and plumbing)
    init_operators: int  # operators of init-only (CALL_ONCE) subgraphs
    placement: Placement = field(compare=False, repr=False)  # per subgraph, named
    budget: Budget
    warnings: tuple[str, ...]
    report: dict = field(compare=False, repr=False)  # what compile.json holds

    @property
    def within_budget(self) -> bool:
        return self.budget.within_budget
