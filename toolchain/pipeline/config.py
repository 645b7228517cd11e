"""The deploy pipeline's config file (schemas/pipeline.schema.json) and how CLUSTERS combines with it.

The finetune and recluster sections are the stages' own config formats (the
schema refers to their schemas), so a section can be copied from a stage's
config file. Nothing here imports TensorFlow: the finetune and quantize
sections stay plain dicts until the training stages turn them into configs.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from ..core.errors import ConfigError
from ..core.schemas import (
    check_nesting,
    first_error,
    load_config_file,
    load_schema,
    strict_validator,
)
from ..rewrite.config import ReclusterConfig
from ..rewrite.config_file import config_from_dict
from ..rewrite.result import ReclusterReport

SCHEMA = "pipeline"
DEFAULT_CLUSTERS = 16
_REFERENCED = ("finetune", "recluster")  # schemas pipeline.schema.json refers to by file name


@lru_cache(maxsize=1)
def _validator() -> Any:
    resources = [(f"{n}.schema.json", Resource.from_contents(load_schema(n), default_specification=DRAFT202012))
                 for n in _REFERENCED]
    return strict_validator(load_schema(SCHEMA), registry=Registry().with_resources(resources))


def validate_pipeline_config(data: Any, what: str) -> None:
    """One-line ConfigError naming the offending key (as core.schemas.validate, with cross-schema refs):
    integers are ints, numbers finite, nesting bounded."""
    check_nesting(data, what)
    first_error(_validator(), data, what)


@dataclass(frozen=True)
class DataSubset:
    train_samples: int | None = None  # None: all
    test_samples: int | None = None
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"train_samples": self.train_samples, "test_samples": self.test_samples, "seed": self.seed}


@dataclass(frozen=True)
class VerifySettings:
    samples: int | None = None  # None: as many as ~20 s of LiteRT allow (rewrite.calibration_set); 0: no check
    min_top1_agreement: float | None = None
    min_output_sqnr_db: float | None = None
    output_kinds: tuple[tuple[str, str], ...] = ()  # (output name, tflite.output_kind.OutputKind value)

    @property
    def enabled(self) -> bool:
        return self.samples != 0

    def to_dict(self) -> dict[str, Any]:
        return {"samples": self.samples, "output_kinds": dict(self.output_kinds)}


@dataclass(frozen=True)
class PalettiseSettings:
    bits: int | None = None
    exclude: tuple[str, ...] = ()
    tflm: bool = True


@dataclass(frozen=True)
class CompileSettings:
    enforce_budget: bool = True
    allow_cpu: bool = False
    timeout_s: float = 600.0


@dataclass(frozen=True)
class FirmwareSettings:
    section: str | None = None  # None: the firmware stage's default
    arena_margin_percent: int | None = None
    arena_overhead_bytes: int | None = None

    def to_kwargs(self) -> dict[str, Any]:
        return {k: v for k, v in (("section", self.section), ("arena_margin_percent", self.arena_margin_percent),
                                  ("arena_overhead_bytes", self.arena_overhead_bytes)) if v is not None}


@dataclass(frozen=True)
class PlanSettings:
    """The [plan] section: how recluster chooses K per tensor (rewrite.planner.PlanRequest), and whose encoder."""

    auto: bool = False
    weight_budget_bytes: int | None = None
    flash_budget_bytes: int | None = None
    min_top1_agreement: float | None = None
    min_output_sqnr_db: float | None = None
    min_sqnr_db: float | None = None
    max_clusters: int | None = None
    target: str | None = None  # None: the first deploy target

    def request(self):
        """The planner's request (its checks name a conflicting goal with exit 2)."""
        from ..rewrite.planner import PlanRequest, SizeGoal

        goals = [self.auto, self.weight_budget_bytes is not None, self.flash_budget_bytes is not None]
        if sum(goals) > 1:
            raise ConfigError("[plan]: choose one of auto, weight_budget_bytes, flash_budget_bytes")
        goal = (SizeGoal.AUTO if self.auto else SizeGoal.WEIGHT_BUDGET if goals[1]
                else SizeGoal.FLASH_BUDGET if goals[2] else SizeGoal.FIXED)
        return PlanRequest(goal, min_sqnr_db=self.min_sqnr_db, weight_budget_bytes=self.weight_budget_bytes,
                           flash_budget_bytes=self.flash_budget_bytes, min_top1_agreement=self.min_top1_agreement,
                           min_output_sqnr_db=self.min_output_sqnr_db, max_clusters=self.max_clusters)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class PipelineConfig:
    """The resolved settings of every stage (K already applied)."""

    clusters: int = DEFAULT_CLUSTERS
    data: DataSubset = DataSubset()
    finetune: dict[str, Any] = field(default_factory=dict)  # finetune.schema.json, "clusters" filled in
    quantize: dict[str, Any] = field(default_factory=dict)  # QuantizeConfig keyword arguments
    recluster: ReclusterConfig = ReclusterConfig()
    plan: PlanSettings = PlanSettings()
    verify: VerifySettings = VerifySettings()
    palettise: PalettiseSettings = PalettiseSettings()
    compile: CompileSettings = CompileSettings()
    firmware: FirmwareSettings = FirmwareSettings()

    def recluster_dict(self) -> dict[str, Any]:
        return ReclusterReport(config=self.recluster, tensors=()).to_json()["config"]


def load_pipeline_config(path: str | os.PathLike[str] | None, clusters: int | None,
                         settings: tuple[tuple[str, str, Any], ...] = ()) -> PipelineConfig:
    """The config file (or none) with CLUSTERS applied: a section's own 'clusters' wins over CLUSTERS.

    ``settings`` are deploy's flags as (section, key, value): they win over the file, and are checked
    against the same schema (a flag and its config key accept the same values).
    """
    raw: dict[str, Any] = {}
    what = "pipeline config"
    if path is not None:
        raw = load_config_file(path, "pipeline config")
        what = f"pipeline config {os.fspath(path)}"
    if settings:
        raw = dict(raw)
        for section, key, value in settings:
            current = raw.get(section)
            if current is None or isinstance(current, dict):  # anything else: the schema check names it
                raw[section] = {**(current or {}), key: value}
        what += " with the command-line flags"
    return config_from_mapping(raw, clusters, what)


def config_from_mapping(raw: dict[str, Any], clusters: int | None, what: str = "pipeline config") -> PipelineConfig:
    validate_pipeline_config(raw, what)
    k = DEFAULT_CLUSTERS if clusters is None else clusters
    if isinstance(k, bool) or not isinstance(k, int) or not 2 <= k <= 256:
        raise ConfigError(f"CLUSTERS (--clusters) must be an integer from 2 to 256, got {k!r}")
    finetune = dict(raw.get("finetune", {}))
    finetune.setdefault("clusters", k)
    quantize = dict(raw.get("quantize", {}))
    if "strategy" in finetune:  # cluster-preserving QAT trains where the fine-tune did, unless told otherwise
        quantize.setdefault("strategy", finetune["strategy"])
    rc_raw = dict(raw.get("recluster", {}))
    rc_raw.setdefault("clusters", k)
    recluster = config_from_dict(rc_raw, f"{what} [recluster]")
    d = raw.get("data", {})
    v = raw.get("verify", {})
    p = raw.get("palettise", {})
    c = raw.get("compile", {})
    f = raw.get("firmware", {})
    plan = PlanSettings(**raw.get("plan", {}))
    plan.request()  # conflicting or out-of-range goals are refused before any stage runs
    return PipelineConfig(
        clusters=k,
        data=DataSubset(d.get("train_samples"), d.get("test_samples"), d.get("seed", 0)),
        finetune=finetune,
        quantize=quantize,
        recluster=recluster,
        plan=plan,
        verify=VerifySettings(v.get("samples"), v.get("min_top1_agreement"), v.get("min_output_sqnr_db"),
                              tuple(sorted(v.get("output_kinds", {}).items()))),
        palettise=PalettiseSettings(p.get("bits"), tuple(p.get("exclude", ())), p.get("tflm", True)),
        compile=CompileSettings(c.get("enforce_budget", True), c.get("allow_cpu", False), float(c.get("timeout_s", 600.0))),
        firmware=FirmwareSettings(f.get("section"), f.get("arena_margin_percent"), f.get("arena_overhead_bytes")),
    )

