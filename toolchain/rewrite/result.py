"""What the rewriter did per tensor, and the report that goes to recluster.json."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from enum import Enum

from .config import Objective, ReclusterConfig


class TensorAction(Enum):
    REWRITTEN = "rewritten"
    UNCHANGED = "unchanged"  # already within K values
    SKIPPED = "skipped"


@dataclass(frozen=True)
class TensorResult:
    name: str
    op: str
    shape: tuple[int, ...]
    granularity: str
    action: TensorAction
    reason: str | None
    clusters: int | None
    distinct_before: int
    distinct_after: int
    squared_error: float  # sum over weights of (w_float_before - w_float_after)^2
    sqnr_db: float | None  # None when lossless
    scales_refit: bool
    fit: str | None = None  # which fit won: keep, refit or joint
    # With calibration data: the objective, which candidate won, and the layer's output SQNR on the
    # calibration rows (None: lossless) before (original weights, rewritten prefix) and after the rewrite,
    # and what the weight-space fit alone would have given.
    objective: str | None = None
    method: str | None = None
    output_sqnr_before_db: float | None = None
    output_sqnr_db: float | None = None
    weight_fit_output_sqnr_db: float | None = None


@dataclass(frozen=True)
class CalibrationSummary:
    """How the output-aware fit used calibration data (absent from a report: accuracy not checked on data)."""

    objective: Objective
    samples: int
    source: str  # the .npz name, or which split of which dataset
    segments: int  # layer groups fitted in sequence (1: every layer on the original model's inputs)
    litert_passes: int
    batch: int  # samples per LiteRT invoke
    elapsed_s: float = field(default=0.0, compare=False)  # not in the JSON: reports are byte-identical

    def to_json(self) -> dict:
        return {"objective": self.objective.value, "samples": self.samples, "source": self.source,
                "segments": self.segments, "litert_passes": self.litert_passes, "batch": self.batch,
                "checked_on_data": True}


@dataclass(frozen=True)
class ReclusterReport:
    config: ReclusterConfig
    tensors: tuple[TensorResult, ...]
    verification: Verification | None = None
    plan: object | None = None  # toolchain.rewrite.choose_k.KPlan when K was chosen per tensor
    bias_corrections: tuple | None = None  # toolchain.rewrite.bias_correction.BiasCorrection per tensor
    calibration: CalibrationSummary | None = None  # None: the weight-space fit, no data
    data_notes: tuple[str, ...] = ()  # how the data was used when not as asked (LiteRT cannot run the model...)
    data_warnings: tuple[str, ...] = ()  # about the data itself (values outside the input's quantization range)

    @property
    def rewritten(self) -> tuple[TensorResult, ...]:
        return tuple(t for t in self.tensors if t.action is TensorAction.REWRITTEN)

    def to_json(self) -> dict:
        def conv(v):
            if isinstance(v, Enum):
                return v.value
            if isinstance(v, tuple):
                return [conv(x) for x in v]
            if isinstance(v, float) and not math.isfinite(v):
                return None
            return v

        cfg = asdict(self.config)
        cfg["fit"] = self.config.fit.value
        cfg["objective"] = None if self.config.objective is None else self.config.objective.value
        cfg["rules"] = [{k: v for k, v in asdict(r).items() if v is not None or k == "clusters"} for r in self.config.rules]
        return {
            "config": cfg,
            "tensors": [{k: conv(v) for k, v in asdict(t).items()} | {"action": t.action.value} for t in self.tensors],
            "verification": None if self.verification is None else self.verification.to_json(),
            "plan": None if self.plan is None else self.plan.to_json(),
            "bias_corrections": None if self.bias_corrections is None else [asdict(b) for b in self.bias_corrections],
            "data_notes": list(self.data_notes),
            "data_warnings": list(self.data_warnings),
            "calibration": self.calibration.to_json() if self.calibration is not None else {
                "objective": Objective.WEIGHTS.value, "checked_on_data": False,
                "note": "weight-space fit: accuracy was not checked on calibration data"},
        }


class Evidence(Enum):
    """What a check's inputs can show about the model's behaviour on real data."""

    HELD_OUT = "held_out"  # real inputs the rewrite never saw (held back, a separate file, a test split)
    IN_SAMPLE = "in_sample"  # the very inputs the fit used: flatters the rewrite
    RANDOM = "random"  # seeded random inputs: weak evidence


@dataclass(frozen=True)
class Verification:
    """The original and the rewritten model run side by side in LiteRT, or why that could not run."""

    inputs: str  # what the check ran on, e.g. "256 held-back samples of cal.npz" or "32 random inputs (seed 0)"
    evidence: Evidence
    agreement: object | None = None  # toolchain.tflite.agreement.Agreement; None: not run
    stateful: bool = False  # resource variables: the inputs ran as one stream, state carried
    not_run: str | None = None  # why LiteRT could not run it, e.g. "custom operator Convolution2DTransposeBias"
    accuracy_before: float | None = None  # with labelled check samples: top-1 accuracy of each model on them
    accuracy_after: float | None = None

    def to_json(self) -> dict:
        a = self.agreement
        figures = a.to_json() if a is not None else {  # type: ignore[attr-defined]
            "samples": 0, "top1_agreement": None, "top1_not_measurable": None, "sqnr_db": None,
            "max_abs_diff_steps": None, "mean_abs_diff_steps": None, "informative": False, "outputs": []}
        return {"inputs": self.inputs, "evidence": self.evidence.value, "stateful": self.stateful,
                "not_run": self.not_run, "accuracy_before": self.accuracy_before,
                "accuracy_after": self.accuracy_after} | figures
