"""Rewrite an int8 .tflite so each weight tensor uses at most K distinct values.

One shared palette per tensor across all its channels (what Vela's weight encoder
needs), solved exactly with per-channel scales kept, optionally followed by a
scale refit that never increases the error. Everything that is not a reclustered
weight (and, after a refit, its bias) is left as it was.
"""
from __future__ import annotations

import fnmatch
import math
import os
from dataclasses import asdict, dataclass
from enum import Enum

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from ..algorithms.palette import apply_lut, solve_palette, value_lut, value_weights
from ..algorithms.joint import joint_fit
from ..algorithms.refit import float_error, refit_scales
from ..algorithms import metrics
from ..core.errors import ConfigError
from ..tflite.graph import BuiltinOp, Granularity, WeightTensor, find_weight_tensors, require_int8_model, tensor_values
from ..tflite.model_io import read_model, write_model

MIN_CLUSTERS = 2
MAX_CLUSTERS = 256


class ScaleFit(Enum):
    """How per-channel scales are treated."""

    KEEP = "keep"  # scales unchanged: exact optimum of the shared palette
    REFIT = "refit"  # then refit scales + palette by alternating least squares (never worse)
    JOINT = "joint"  # also try codes + scales fitted jointly from the channel alignment; best of all


class TensorAction(Enum):
    REWRITTEN = "rewritten"
    UNCHANGED = "unchanged"  # already within K values
    SKIPPED = "skipped"


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


@dataclass(frozen=True)
class ReclusterReport:
    config: ReclusterConfig
    tensors: tuple[TensorResult, ...]
    verification: "Verification | None" = None
    plan: "object | None" = None  # toolchain.stages.choose_k.KPlan when K was chosen per tensor
    bias_corrections: "tuple | None" = None  # toolchain.stages.bias_correction.BiasCorrection per tensor

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
        cfg["rules"] = [{k: v for k, v in asdict(r).items() if v is not None or k == "clusters"} for r in self.config.rules]
        return {
            "config": cfg,
            "tensors": [{k: conv(v) for k, v in asdict(t).items()} | {"action": t.action.value} for t in self.tensors],
            "verification": None if self.verification is None else self.verification.to_json(),
            "plan": None if self.plan is None else self.plan.to_json(),
            "bias_corrections": None if self.bias_corrections is None else [asdict(b) for b in self.bias_corrections],
        }


@dataclass(frozen=True)
class Verification:
    inputs: str  # "random (seed N)" or the calibration file name
    agreement: "object"  # toolchain.tflite.interpreter.Agreement

    def to_json(self) -> dict:
        return {"inputs": self.inputs} | {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self.agreement).items()}


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


def _channels_first(q: np.ndarray, axis: int) -> np.ndarray:
    return np.moveaxis(q, axis, 0).reshape(q.shape[axis], -1)


def _from_channels_first(flat: np.ndarray, shape: tuple[int, ...], axis: int) -> np.ndarray:
    moved_shape = (shape[axis],) + tuple(d for i, d in enumerate(shape) if i != axis)
    return np.moveaxis(flat.reshape(moved_shape), 0, axis)


class _ModelEditor:
    """Copy-on-write edits of constant buffers (a buffer shared by several tensors is split)."""

    def __init__(self, model: schema.ModelT) -> None:
        self.model = model
        self.refs: dict[int, int] = {}
        for sg in model.subgraphs:
            for t in sg.tensors or []:
                self.refs[t.buffer] = self.refs.get(t.buffer, 0) + 1

    def set_data(self, tensor: schema.TensorT, data: np.ndarray) -> None:
        raw = np.ascontiguousarray(data).view(np.uint8).ravel().copy()
        if self.refs.get(tensor.buffer, 0) > 1:
            self.refs[tensor.buffer] -= 1
            buf = schema.BufferT()
            self.model.buffers.append(buf)
            tensor.buffer = len(self.model.buffers) - 1
            self.refs[tensor.buffer] = 1
        self.model.buffers[tensor.buffer].data = raw


def _bias_tensors(model: schema.ModelT, w: WeightTensor) -> list[int]:
    from ..tflite.graph import BIAS_INPUT, op_code

    sg = model.subgraphs[w.subgraph]
    out = []
    for o in w.consumers:
        op = sg.operators[o]
        code = op_code(model, op)
        pos = BIAS_INPUT.get(code)
        if pos is not None and pos < len(op.inputs) and op.inputs[pos] >= 0:
            out.append(int(op.inputs[pos]))
    return out


def _bias_shared_elsewhere(model: schema.ModelT, w: WeightTensor, bias_indices: list[int]) -> bool:
    from ..tflite.graph import BIAS_INPUT, WEIGHT_INPUT, op_code

    sg = model.subgraphs[w.subgraph]
    for op in sg.operators:
        code = op_code(model, op)
        if code in BIAS_INPUT and BIAS_INPUT[code] < len(op.inputs) and int(op.inputs[BIAS_INPUT[code]]) in bias_indices:
            if int(op.inputs[WEIGHT_INPUT[code]]) != w.tensor_index:
                return True
    return False


def _rescale_bias(editor: _ModelEditor, w: WeightTensor, bias_index: int, ratio: np.ndarray) -> None:
    """Keep acc = sum(x*w_q) + b exact: b is in units of in_scale x w_scale, so b' = b x s/s'."""
    model = editor.model
    t = model.subgraphs[w.subgraph].tensors[bias_index]
    b = tensor_values(model, t).astype(np.float64)
    if b.ndim != 1:
        return
    r = np.broadcast_to(ratio, b.shape)
    nb = np.clip(np.round(b * r), np.iinfo(np.int32).min, np.iinfo(np.int32).max)
    editor.set_data(t, nb.astype(b.dtype if b.dtype.kind == "i" else np.int32).astype(tensor_values(model, t).dtype))
    q = t.quantization
    if q is not None and q.scale is not None and len(q.scale) == b.size:
        q.scale = [float(s / rr) for s, rr in zip(np.asarray(q.scale, np.float64), r)]
    elif q is not None and q.scale is not None and len(q.scale) == 1 and np.allclose(r, r[0]):
        q.scale = [float(q.scale[0] / r[0])]


def recluster_model(model_bytes: bytes, config: ReclusterConfig) -> tuple[bytes, ReclusterReport]:
    """The rewriter: returns the new model's bytes and a per-tensor report. The input is not modified."""
    model = read_model(model_bytes)
    require_int8_model(model)
    editor = _ModelEditor(model)
    results = []
    for w in find_weight_tensors(model):
        tensor = model.subgraphs[w.subgraph].tensors[w.tensor_index]
        q = tensor_values(model, tensor)
        before = int(np.unique(q).size)
        k, reason = clusters_for(w, config)
        base = dict(name=w.name, op=w.op, shape=w.shape, granularity=w.quantization.granularity.value,
                    distinct_before=before)
        if k is None:
            results.append(TensorResult(**base, action=TensorAction.SKIPPED, reason=reason, clusters=None,
                                        distinct_after=before, squared_error=0.0, sqnr_db=None, scales_refit=False))
            continue
        if before <= k:
            results.append(TensorResult(**base, action=TensorAction.UNCHANGED, reason=f"already {before} <= {k} values",
                                        clusters=k, distinct_after=before, squared_error=0.0, sqnr_db=None, scales_refit=False))
            continue
        result = _rewrite_tensor(editor, w, q, k, config, base)
        results.append(result)
    out = write_model(model)
    return out, ReclusterReport(config=config, tensors=tuple(results))


def _fit_candidates(qc: np.ndarray, scales: np.ndarray, k: int, config: ReclusterConfig, may_refit: bool):
    """(codes, scales, how) with the lowest float-domain error among the allowed fits."""
    f = scales[:, None] * qc.astype(np.float64)
    values, weights = value_weights(qc, scales**2, 0)
    sol = solve_palette(values, weights, k, keep_zero=config.keep_zero)
    keep_codes = apply_lut(qc, value_lut(sol, values))
    best = (float_error(f, scales, keep_codes.astype(np.float64)), keep_codes, scales, ScaleFit.KEEP)
    if not may_refit or config.fit is ScaleFit.KEEP or config.refit_iterations == 0:
        return best
    r = refit_scales(f, keep_codes, scales, sol.palette, keep_zero=config.keep_zero, max_iterations=config.refit_iterations)
    if r.error < best[0]:
        best = (r.error, r.codes, r.scales, ScaleFit.REFIT)
    if config.fit is ScaleFit.JOINT:
        j = joint_fit(qc, scales, k, keep_zero=config.keep_zero, iterations=config.refit_iterations)
        if j is not None and j.error < best[0] and np.unique(j.codes).size <= k:
            best = (j.error, j.codes, j.scales, ScaleFit.JOINT)
    return best


def write_weights(editor: "_ModelEditor", w: WeightTensor, new_qc: np.ndarray, old_scales: np.ndarray,
                  new_scales: np.ndarray, biases: list[int]) -> None:
    """Store new codes (channels first, or one row for per-tensor) and, if scales moved, the scales and biases."""
    tensor = editor.model.subgraphs[w.subgraph].tensors[w.tensor_index]
    shape = w.shape
    if new_qc.shape[0] == 1 and (w.quantization.granularity is Granularity.PER_TENSOR or not shape):
        new_q = new_qc.reshape(shape)
    else:
        new_q = _from_channels_first(new_qc, shape, w.channel_axis)
    editor.set_data(tensor, new_q.astype(np.int8))
    if not np.array_equal(np.asarray(old_scales, np.float64), np.asarray(new_scales, np.float64)):
        tensor.quantization.scale = [float(s) for s in new_scales]
        for b in biases:
            # the stored scale is float32: rescale the bias by exactly the ratio the kernels will see
            stored = np.asarray(new_scales, np.float32).astype(np.float64)
            _rescale_bias(editor, w, b, np.asarray(old_scales, np.float64) / stored)


def _rewrite_tensor(editor: _ModelEditor, w: WeightTensor, q: np.ndarray, k: int, config: ReclusterConfig, base: dict) -> TensorResult:
    model = editor.model
    per_tensor = w.quantization.granularity is Granularity.PER_TENSOR or q.ndim == 0
    # A per-tensor scale is one "channel" holding every weight; per-channel: channels first.
    qc = q.reshape(1, -1) if per_tensor else _channels_first(q, w.channel_axis)
    scales = w.quantization.scales.astype(np.float64)[:1] if per_tensor else w.quantization.scales.astype(np.float64)
    biases = _bias_tensors(model, w)
    may_refit = not _bias_shared_elsewhere(model, w, biases)
    err, new_qc, new_scales, how = _fit_candidates(qc, scales, k, config, may_refit)
    f = scales[:, None] * qc.astype(np.float64)
    sq = metrics.sqnr_db(f, new_scales[:, None] * new_qc)
    write_weights(editor, w, new_qc, scales, new_scales, biases)
    refit = how is not ScaleFit.KEEP
    return TensorResult(**base, action=TensorAction.REWRITTEN, reason=None, clusters=k,
                        distinct_after=int(np.unique(new_qc).size), squared_error=err,
                        sqnr_db=None if math.isinf(sq) else round(sq, 4), scales_refit=refit, fit=how.value)


def verify(original: bytes, rewritten: bytes, calibration: str | os.PathLike[str] | None = None,
           samples: int = 16, seed: int = 0) -> Verification:
    """Run both models in LiteRT on the same inputs and measure how their outputs agree."""
    from ..tflite import interpreter as rt

    inputs, label = calibration_inputs(original, calibration, samples, seed)
    ref = rt.run_model(original, inputs)
    new = rt.run_model(rewritten, inputs)
    return Verification(inputs=label, agreement=rt.compare_outputs(ref, new, rt.output_specs(original)))


def with_verification(report: ReclusterReport, verification: Verification) -> ReclusterReport:
    from dataclasses import replace

    return replace(report, verification=verification)


def calibration_inputs(model_bytes: bytes, calibration: str | os.PathLike[str] | None, samples: int, seed: int):
    """(inputs, label): rows from the user's .npz, else seeded random inputs."""
    from ..tflite import interpreter as rt

    specs = rt.input_specs(model_bytes)
    if calibration is not None:
        return rt.load_calibration(calibration, specs, samples), os.path.basename(os.fspath(calibration))
    return rt.random_inputs(specs, samples, seed), f"random (seed {seed})"
