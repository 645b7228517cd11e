"""The options of ``toolchain deploy`` and what a run produced (per-target reports, budget verdicts)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.errors import BudgetExceeded
from ..reporting.report import REPORT_JSON, REPORT_MD, key_metrics
from .inputs import Entry
from .progress import StageRecord, StageStatus


@dataclass(frozen=True)
class DeployOptions:
    """The options of ``toolchain deploy`` / the Makefile variables of ``make deploy``."""

    model: Path | None = None  # MODEL
    data: str | None = None  # DATA: an .npz or a bundled dataset name (labelled)
    # CALIBRATION (--calibration): unlabelled representative inputs (.npz, docs/data.md) of a .tflite MODEL: a float
    # one is quantized on them; the rewrite fits on them, part held back for its check (pipeline.rewrite_data)
    calibration: Path | None = None
    verify_data: Path | None = None  # VERIFY_DATA: inputs the check of after vs before runs on
    clusters: int | None = None  # CLUSTERS (default 16)
    targets: tuple[str, ...] = ()  # TARGET, one or several (default ethos-u55)
    profile: Path | None = None  # PROFILE: a custom hardware profile file
    config: Path | None = None  # CONFIG: the pipeline config file
    build_dir: Path = Path("build")
    example_dir: Path | None = None  # where the example is built/cached (default BUILD/example)
    synthetic_calibration: bool = False  # --synthetic-calibration: quantize a float model on random inputs
    # flags that set config keys, as (section, key, value); they win over CONFIG (see pipeline.config)
    settings: tuple[tuple[str, str, Any], ...] = ()
    replace_builtin: bool = False  # a PROFILE named like a built-in target may replace it
    trust_model_code: bool = False  # a Keras MODEL may hold Lambda layers and custom objects (code that runs)


@dataclass(frozen=True)
class TargetOutcome:
    target: str
    report_dir: Path
    report: dict[str, Any] = field(repr=False)

    @property
    def within_budget(self) -> bool:
        return bool(self.report["budget"]["within_budget"])


@dataclass(frozen=True)
class DeployResult:
    model: str
    entry: Entry
    model_dir: Path
    clusters: int
    stages: tuple[StageRecord, ...]
    targets: tuple[TargetOutcome, ...]
    history_appended: bool
    enforce_budget: bool
    min_top1_agreement: float | None = None  # [verify] min_top1_agreement / --min-top1-agreement
    min_output_sqnr_db: float | None = None  # [verify] min_output_sqnr_db / --min-output-sqnr

    @property
    def ran(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.stages if s.status is StageStatus.RAN)

    @property
    def over_budget(self) -> tuple[str, ...]:
        return tuple(t.target for t in self.targets if not t.within_budget)

    @property
    def dashboard(self) -> Path:
        return self.model_dir / "index.html"

    def raise_for_gates(self) -> None:
        """The gates, after every report is written: fidelity (exit 5) first, then the budget (exit 4).

        The recluster stage already refused a candidate below a [verify] gate (keeping the last good output), so a
        completed run's fidelity passes; the budget is a finding of the compile stages, raised on every run until
        the model fits."""
        self.raise_for_fidelity()
        self.raise_for_budget()

    def raise_for_fidelity(self) -> None:
        """VerificationError (exit 5) when after vs before misses a [verify] gate (or cannot show it)."""
        from ..reporting.fidelity import check_gates

        if self.targets:
            check_gates(self.targets[0].report["recluster"].get("verification"), self.min_top1_agreement,
                        self.min_output_sqnr_db, "verify.min_top1_agreement (--min-top1-agreement)",
                        "verify.min_output_sqnr_db (--min-output-sqnr)")

    def raise_for_budget(self) -> None:
        """BudgetExceeded (exit 4) when the reclustered model does not fit a target (unless not enforced)."""
        if not self.enforce_budget or not self.over_budget:
            return
        parts = []
        for t in self.targets:
            if not t.within_budget:
                b = t.report["budget"]
                parts.append(f"{t.target} (SRAM {b['sram_bytes']:,} of {b['sram_budget_bytes']:,} B, "
                             f"flash (compiled model file) {b['flash_bytes']:,} of {b['flash_budget_bytes']:,} B)")
        raise BudgetExceeded(
            f"the reclustered {self.model} does not fit " + "; ".join(parts)
            + f": see {self.model_dir}/<target>/report (--no-budget, or compile.enforce_budget = false in CONFIG, "
            "accepts it)"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "entry": self.entry.value,
            "model_dir": str(self.model_dir),
            "clusters": self.clusters,
            "stages": [s.to_json() for s in self.stages],
            "stages_ran": len(self.ran),
            "targets": [
                {
                    "target": t.target,
                    "report_json": str(t.report_dir / REPORT_JSON),
                    "report_md": str(t.report_dir / REPORT_MD),
                    "index_html": str(t.report_dir / "index.html"),
                    "within_budget": t.within_budget,
                    "models": key_metrics(t.report),
                }
                for t in self.targets
            ],
            "dashboard": str(self.dashboard),
            "history_appended": self.history_appended,
            "over_budget": list(self.over_budget),
            "fidelity": self.targets[0].report["fidelity"] if self.targets else None,
        }
