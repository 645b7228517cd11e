"""The rewriter's settings: K, the fit, which tensors (name and op rules), and how K is decided per tensor."""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from enum import Enum

import numpy as np

from ..core.errors import ConfigError
from ..tflite.graph import BuiltinOp, Granularity, WeightTensor

MIN_CLUSTERS = 2
MAX_CLUSTERS = 256  # an int8 tensor cannot hold more distinct values


class ScaleFit(Enum):
    """How per-channel scales are treated."""

    KEEP = "keep"  # scales unchanged: exact optimum of the shared palette
    REFIT = "refit"  # then refit scales + palette by alternating least squares (never worse)
    JOINT = "joint"  # also try codes + scales fitted jointly from the channel alignment; best of all


@dataclass(frozen=True)
class TensorRule:
    """Override for tensors matched by name pattern (fnmatch) and/or op type; clusters=None skips them."""

    clusters: int | None
    pattern: str | None = None
    op: str | None = None
    label: str | None = None  # how the report names the rule's origin (e.g. "the size plan")

    def matches(self, w: WeightTensor) -> bool:
        if self.pattern is not None and not fnmatch.fnmatchcase(w.name, self.pattern):
            return False
        if self.op is not None and w.op != self.op:
            return False
        return True


@dataclass(frozen=True)
class ReclusterConfig:
    clusters: int = 16
    fit: ScaleFit = ScaleFit.JOINT  # never worse than KEEP: the lowest-error candidate is kept
    min_weights: int = 64  # tensors smaller than this are left alone
    include_depthwise: bool = False  # DEPTHWISE_CONV_2D is skipped by default (accuracy)
    keep_zero: bool = True  # zeros stay exactly zero (pruning, Vela's zero-run coding)
    rules: tuple[TensorRule, ...] = ()  # name rules win over op rules; first match wins within a kind
    refit_iterations: int = 10

    def __post_init__(self) -> None:
        _check_clusters(self.clusters, "clusters")
        for r in self.rules:
            if r.clusters is not None:
                _check_clusters(r.clusters, f"clusters of rule {r.pattern or r.op}")
            if r.op is not None and r.op not in BuiltinOp.__members__:
                raise ConfigError(f"unknown op type '{r.op}' in rule (expected e.g. CONV_2D, FULLY_CONNECTED)")
            if r.pattern is None and r.op is None:
                raise ConfigError("a rule needs a name pattern or an op type")
        if self.min_weights < 0:
            raise ConfigError("min_weights must be >= 0")
        if not 0 <= self.refit_iterations <= 1000:
            raise ConfigError("refit_iterations must be in 0..1000")


def _check_clusters(k: object, what: str) -> None:
    if not isinstance(k, int) or isinstance(k, bool) or not MIN_CLUSTERS <= k <= MAX_CLUSTERS:
        raise ConfigError(f"{what} must be an integer from {MIN_CLUSTERS} to {MAX_CLUSTERS}, got {k!r}")


def clusters_for(w: WeightTensor, config: ReclusterConfig) -> tuple[int | None, str | None]:
    """K for a tensor, or (None, reason) when it is left alone.

    An explicit rule (name rules before op rules, first match wins) overrides the
    depthwise default and the minimum size; unquantized tensors are never touched.
    """
    if w.quantization.granularity is Granularity.NONE:
        return None, "not quantized"
    if np.any(w.quantization.zero_points != 0):
        return None, "non-zero weight zero point"
    ordered = [r for r in config.rules if r.pattern is not None] + [r for r in config.rules if r.pattern is None]
    for r in ordered:
        if r.matches(w):
            if r.clusters is None:
                return None, f"left as is by {r.label}" if r.label else f"skipped by rule {r.pattern or r.op}"
            return r.clusters, None
    if w.op == BuiltinOp.DEPTHWISE_CONV_2D.name and not config.include_depthwise:
        return None, "depthwise convolution (use --include-depthwise)"
    if w.size < config.min_weights:
        return None, f"fewer than {config.min_weights} weights"
    return config.clusters, None
