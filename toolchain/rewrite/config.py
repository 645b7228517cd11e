"""The rewriter's settings: K, the fit, which tensors (name and op rules), and how K is decided per tensor."""
from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass
from enum import Enum

import numpy as np

from ..core.errors import ConfigError
from ..tflite.graph import BuiltinOp, Granularity, WeightTensor

MIN_CLUSTERS = 2
MAX_CLUSTERS = 256  # an int8 tensor cannot hold more distinct values


class Objective(Enum):
    """What the fit minimises."""

    WEIGHTS = "weights"  # the error of the weights themselves (no data needed)
    OUTPUTS = "outputs"  # each layer's output error on calibration data (GPTQ with palette rounding)


DEFAULT_CALIBRATION_SAMPLES = 512
DEFAULT_DAMPING = 0.01  # GPTQ's: 1% of the mean Hessian diagonal
DEFAULT_MAX_ROWS_PER_LAYER = 65_536  # calibration rows (samples x positions) a layer's statistics use
# With data and include_depthwise unset, a depthwise tensor is rewritten when the output noise its rewrite adds
# is at most the median of the layers before it and its added-noise SQNR reaches this floor.
DEFAULT_DEPTHWISE_MIN_OUTPUT_SQNR_DB = 15.0
# The rate term's price (algorithms.rate_fit): a bit per weight is worth rate_lambda x the mean squared error of the
# palette without it (in int8 steps); 0: no rate term. Around 1 a bit trades at the slope of a uniform quantiser's
# rate-distortion curve; above MAX_RATE_LAMBDA every weight goes to the most common code.
MAX_RATE_LAMBDA = 64.0


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
    rate_lambda: float | None = None  # None: the config's

    def __post_init__(self) -> None:
        if self.rate_lambda is not None:
            check_rate_lambda(self.rate_lambda, f"rate_lambda of rule {self.pattern or self.op}")

    def matches(self, w: WeightTensor) -> bool:
        if self.pattern is not None and not fnmatch.fnmatchcase(w.name, self.pattern):
            return False
        return self.op is None or w.op == self.op


@dataclass(frozen=True)
class ReclusterConfig:
    clusters: int = 16
    fit: ScaleFit = ScaleFit.JOINT  # never worse than KEEP: the lowest-error candidate is kept
    min_weights: int = 64  # tensors smaller than this are left alone
    # DEPTHWISE_CONV_2D: True always, False never; None (default): only with calibration data, when the output
    # noise the rewrite adds allows (depthwise_verdict): 9 weights per channel suffer most from a palette
    include_depthwise: bool | None = None
    keep_zero: bool = True  # zeros stay exactly zero (pruning, Vela's zero-run coding)
    rules: tuple[TensorRule, ...] = ()  # name rules win over op rules; first match wins within a kind
    refit_iterations: int = 10
    objective: Objective | None = None  # None: OUTPUTS when calibration data is given, else WEIGHTS
    calibration_samples: int = DEFAULT_CALIBRATION_SAMPLES
    segments: int | None = None  # layer groups fitted in sequence; None: from the time of one LiteRT pass
    damping: float = DEFAULT_DAMPING
    max_rows_per_layer: int = DEFAULT_MAX_ROWS_PER_LAYER
    depthwise_min_output_sqnr_db: float = DEFAULT_DEPTHWISE_MIN_OUTPUT_SQNR_DB
    calibration_seed: int = 0  # which training samples and which positions calibrate
    rate_lambda: float = 0.0  # the price of code bits in the fit (MAX_RATE_LAMBDA above); rules may override it

    def objective_for(self, has_data: bool) -> Objective:
        return self.objective if self.objective is not None else Objective.OUTPUTS if has_data else Objective.WEIGHTS

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
        if not isinstance(self.calibration_samples, int) or self.calibration_samples < 1:
            raise ConfigError(f"calibration_samples must be a whole number >= 1, got {self.calibration_samples!r}")
        if self.segments is not None and (not isinstance(self.segments, int) or self.segments < 1):
            raise ConfigError(f"segments must be a whole number >= 1, got {self.segments!r}")
        if not 0 < self.damping <= 10:
            raise ConfigError(f"damping must be in (0, 10], got {self.damping!r}")
        check_rate_lambda(self.rate_lambda, "rate_lambda")
        d = self.depthwise_min_output_sqnr_db
        if isinstance(d, bool) or not isinstance(d, (int, float)) or not -100.0 <= d <= 300.0:  # NaN fails too
            raise ConfigError(f"depthwise_min_output_sqnr_db must be a finite number from -100 to 300 dB, got {d!r}")
        if not isinstance(self.max_rows_per_layer, int) or self.max_rows_per_layer < 16:
            raise ConfigError(f"max_rows_per_layer must be a whole number >= 16, got {self.max_rows_per_layer!r}")


def check_rate_lambda(value: object, what: str) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or not 0 <= value <= MAX_RATE_LAMBDA:
        raise ConfigError(f"{what} must be a finite number from 0 to {MAX_RATE_LAMBDA:g}, got {value!r}")


def _check_clusters(k: object, what: str) -> None:
    if not isinstance(k, int) or isinstance(k, bool) or not MIN_CLUSTERS <= k <= MAX_CLUSTERS:
        raise ConfigError(f"{what} must be an integer from {MIN_CLUSTERS} to {MAX_CLUSTERS}, got {k!r}")


def _ordered_rules(config: ReclusterConfig) -> list[TensorRule]:
    return [r for r in config.rules if r.pattern is not None] + [r for r in config.rules if r.pattern is None]


def rate_lambda_for(w: WeightTensor, config: ReclusterConfig) -> float:
    """The rate price of a tensor: the first matching rule's when it names one, else the config's."""
    for r in _ordered_rules(config):
        if r.matches(w):
            return config.rate_lambda if r.rate_lambda is None else float(r.rate_lambda)
    return config.rate_lambda


def clusters_for(w: WeightTensor, config: ReclusterConfig) -> tuple[int | None, str | None]:
    """K for a tensor, or (None, reason) when it is left alone.

    An explicit rule (name rules before op rules, first match wins) overrides the
    depthwise default and the minimum size; unquantized tensors are never touched.
    """
    if w.quantization.granularity is Granularity.NONE:
        return None, "not quantized"
    if np.any(w.quantization.zero_points != 0):
        return None, "non-zero weight zero point"
    for r in _ordered_rules(config):
        if r.matches(w):
            if r.clusters is None:
                return None, f"left as is by {r.label}" if r.label else f"skipped by rule {r.pattern or r.op}"
            return r.clusters, None
    if w.op == BuiltinOp.DEPTHWISE_CONV_2D.name and not config.include_depthwise:
        return None, "depthwise convolution (use --include-depthwise)"
    if w.size < config.min_weights:
        return None, f"fewer than {config.min_weights} weights"
    return config.clusters, None
