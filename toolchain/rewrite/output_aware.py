"""The output-aware rewrite: each layer's palette fitted to the original model's outputs on calibration data.

Layers are fitted in topological order, in segments: a segment's entry layers see the activations of the model
whose earlier segments are already rewritten (captured in LiteRT) and are fitted towards the original model's
outputs on the original activations, so errors do not add up (algorithms/output_fit.py); a layer downstream of
another layer of its own segment is fitted on the original activations (that layer corrects the drift already).
The original's activations, paired row by row with the rewritten prefix's, are kept in memory when they fit (one
LiteRT pass per segment), else captured again (two). The weight-space fit is a candidate of every layer: the
result never has a larger output error on the calibration rows than it; with a rate price the rate-aware fit
(rate_layer) is chosen for error + rate instead.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field, replace
from itertools import pairwise

import numpy as np

from ..algorithms.channels import from_channels_first
from ..algorithms.output_fit import (
    LOSSLESS_RELATIVE_ERROR,
    LayerStatistics,
    codes_error,
    fit_output_palette,
    solve_layer,
)
from ..core.threads import FIT_THREADS, one_blas_thread
from ..tflite.activations import ActivationCapture, capture_batches, choose_batch
from ..tflite.editor import ModelEditor
from ..tflite.graph import (
    Granularity,
    find_weight_tensors,
    require_int8_model,
    tensor_values,
)
from ..tflite.model_io import read_model, write_model
from .config import Objective, ReclusterConfig, clusters_for, rate_lambda_for
from .depthwise_verdict import depthwise_verdict
from .fit import best_weight_fit
from .layers import (
    FitLayer,
    LayerKind,
    describe_layer,
    layer_rows,
    layer_weights,
    model_macs,
    nearest_fitted_upstream,
    own_bias_tensor,
    rows_per_layer,
)
from .rate_layer import fit_layer_rate
from .result import CalibrationSummary, ReclusterReport, TensorAction, TensorResult

AUTO_SEGMENT_BUDGET_S = 30.0  # LiteRT time the automatic number of segments may spend
# LiteRT's int8 kernels with every intermediate kept, one thread, on the 2-core machine the benchmarks ran on
# (an unloaded x86-64 core): about 5 GMAC/s plus 2 ms per invoke.
LITERT_MACS_PER_S = 5e9
INVOKE_OVERHEAD_S = 0.002
ORIGINAL_CACHE_BYTES = 256 << 20  # the original model's layer inputs kept across segments (else re-captured)


@dataclass(frozen=True)
class Calibration:
    """Representative model inputs (a list per sample, one array per model input) and where they came from."""

    rows: list = field(repr=False, compare=False)
    source: str

    @property
    def samples(self) -> int:
        return len(self.rows)


def calibration_from_file(model_bytes: bytes, path, config: ReclusterConfig) -> Calibration:
    """The first config.calibration_samples samples of an .npz (see tflite.inputs.load_calibration)."""
    import os

    from ..tflite.inputs import load_calibration
    from ..tflite.interpreter import input_specs

    rows = load_calibration(path, input_specs(model_bytes), config.calibration_samples)
    return Calibration(rows, os.path.basename(os.fspath(path)))


def calibration_from_training(model_bytes: bytes, x_train: np.ndarray, dataset: str,
                              config: ReclusterConfig) -> Calibration | None:
    """A seeded sample (config.calibration_seed) of config.calibration_samples training images, quantized for the
    model's one input; None when the model has several inputs or the samples do not fit its input."""
    from ..tflite.interpreter import input_specs, quantize_input

    specs = input_specs(model_bytes)
    if len(specs) != 1 or len(x_train) == 0:
        return None
    spec = specs[0]
    n = min(config.calibration_samples, len(x_train))
    idx = np.sort(np.random.default_rng(config.calibration_seed).choice(len(x_train), n, replace=False))
    x = np.asarray(x_train[idx], np.float64)
    if int(np.prod(x.shape[1:])) != int(np.prod(spec.shape[1:])):
        return None
    q = quantize_input(x.reshape((n, 1) + tuple(spec.shape[1:])), spec)
    return Calibration([[q[i]] for i in range(n)], f"{n} seeded samples of the training split of {dataset}")


@dataclass(frozen=True)
class LayerFit:
    codes: np.ndarray = field(repr=False)  # (C, D) int8
    scales: np.ndarray = field(repr=False)  # (C,)
    bias: np.ndarray = field(repr=False)  # (C,) weight units
    method: str
    relative_error: float
    weight_fit_relative_error: float
    before_relative_error: float
    scales_changed: bool


def stacked_weights(codes: np.ndarray, scales: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Rows [s x codes, bias] (weight units) of each output channel: the v of algorithms/output_fit."""
    return np.concatenate([scales[:, None] * codes.astype(np.float64), bias[:, None]], axis=1)


def _relative(stats: LayerStatistics, error: float) -> float:
    rel = error / (float(np.sum(stats.target_energy)) or 1.0)
    return 0.0 if rel < LOSSLESS_RELATIVE_ERROR else rel


def sqnr_from_relative_error(relative_error: float) -> float | None:
    return None if relative_error <= 0 else round(-10.0 * math.log10(relative_error), 4)


def cache_fits(model_bytes: bytes, tensors: list[int], samples: int) -> bool:
    """Whether every sample's activations of ``tensors`` fit ORIGINAL_CACHE_BYTES."""
    details = {d["index"]: d for d in ActivationCapture(model_bytes, validated=True).interp.get_tensor_details()}
    need = sum(int(np.prod(details[t]["shape"], dtype=np.float64)) * np.dtype(details[t]["dtype"]).itemsize
               for t in tensors) * samples
    return need <= ORIGINAL_CACHE_BYTES


def original_activations(model_bytes: bytes, rows: list, tensors: list[int], batch: int) -> dict[int, np.ndarray]:
    """Every sample's activations of ``tensors`` in the original model: kept, later segments need one LiteRT
    pass each instead of two."""
    parts: dict[int, list[np.ndarray]] = {t: [] for t in tensors}
    for _, got in capture_batches(model_bytes, rows, tensors, batch, validated=True):
        for t in tensors:
            parts[t].append(got[t])
    return {t: np.concatenate(p) for t, p in parts.items()}


def collect_statistics(original: bytes, current: bytes, rows: list, layers: list[FitLayer], config: ReclusterConfig,
                       batch: int, v_orig: dict[int, np.ndarray], independent: frozenset[int] = frozenset(),
                       cache: dict[int, np.ndarray] | None = None) -> tuple[dict[int, LayerStatistics], int]:
    """Statistics of every layer in ``layers``, and the LiteRT passes run for them: one pass of the original (none
    with ``cache``, its kept activations) and, when ``current`` differs from it, one of ``current``. Both models were
    read (validated) by the caller. LiteRT runs the next batch while numpy, on one BLAS thread, takes this one's rows.
    Layers in ``independent`` (operator indices) are fitted on the original model's inputs even when ``current``
    differs: a fitted layer of their own segment upstream already corrects the drift."""
    with one_blas_thread():
        return _collect_statistics(original, current, rows, layers, config, batch, v_orig, independent, cache)


def _collect_statistics(original: bytes, current: bytes, rows: list, layers: list[FitLayer], config: ReclusterConfig,
                        batch: int, v_orig: dict[int, np.ndarray], independent: frozenset[int],
                        cache: dict[int, np.ndarray] | None) -> tuple[dict[int, LayerStatistics], int]:
    tensors = sorted({la.input_index for la in layers})
    stats = {la.op_index: LayerStatistics(v_orig[la.op_index], la.per_channel_hessian) for la in layers}
    per_sample = {la.op_index: max(1, -(-rows_per_layer(la, config.max_rows_per_layer) // len(rows))) for la in layers}
    same = current == original
    if cache is not None:
        originals = ((start, {t: cache[t][start:start + batch] for t in tensors}) for start in range(0, len(rows), batch))
    else:
        originals = capture_batches(original, rows, tensors, batch, validated=True)
    new_batches = None if same else capture_batches(current, rows, tensors, batch, validated=True)
    for start, orig in originals:
        new = orig if new_batches is None else next(new_batches)[1]
        for la in layers:
            rng = np.random.default_rng([config.calibration_seed, la.op_index, start])
            own = same or la.op_index in independent
            x_new = orig[la.input_index] if own else new[la.input_index]
            for zn, zo in layer_rows(la, x_new, None if own else orig[la.input_index], per_sample[la.op_index], rng):
                stats[la.op_index].add(zn, zo)
    return stats, (0 if cache is not None else 1) + (0 if same else 1)


QUICK_REFIT_ITERATIONS = 3  # a quick fit's weight-space scale refit (most of its gain comes in the first few)


def fit_layer(layer: FitLayer, k: int, stats: LayerStatistics, codes: np.ndarray, scales: np.ndarray,
              bias: np.ndarray, config: ReclusterConfig, rate_lambda: float = 0.0, solve=None,
              quick: bool = False) -> LayerFit:
    """The best of the output-aware and weight-space fits (its bias, least-squares bias); priced: rate_layer's.
    ``solve``: output_fit.solve_layer's result for the layer when already computed (several K on one layer);
    ``quick``: GPTQ from the layer's own scales only (no second start, no nearest rounding; priced: one rounding
    pass) and at most QUICK_REFIT_ITERATIONS of the weight-space refit, for a plan's options."""
    if rate_lambda > 0:
        return fit_layer_rate(layer, k, rate_lambda, stats, codes, scales, bias, config, solve, quick)
    w = layer.weight
    per_tensor = w.quantization.granularity is Granularity.PER_TENSOR
    beta = scales * bias
    if solve is None:
        solve = solve_layer(stats, stacked_weights(codes, scales, beta), config.damping, layer.free_bias)
    before = _relative(stats, solve.original_error)
    qc = codes.reshape(1, -1) if per_tensor else codes
    wcfg = replace(config, refit_iterations=min(config.refit_iterations, QUICK_REFIT_ITERATIONS)) if quick else config
    _, wcodes, wscales, how = best_weight_fit(qc, scales[:1] if per_tensor else scales, k, wcfg, True)
    wcodes = wcodes.reshape(codes.shape)
    wscales = np.broadcast_to(wscales, scales.shape).astype(np.float64)
    # GPTQ also starts from the weight-space fit's scales and palette (fitted for one shared palette: after
    # tfmot they recover the clustered grid); a per-tensor scale stays shared, so only its own start is tried.
    starts = () if quick or per_tensor or np.array_equal(wscales, scales) else ((wscales, np.unique(wcodes)),)
    out = fit_output_palette(stats, codes, scales, bias, k, free_bias=layer.free_bias, keep_zero=config.keep_zero,
                             damping=config.damping, refit_scales=not per_tensor, starts=starts, solve=solve,
                             try_nearest=not quick)
    cands = [(out.error, f"outputs ({out.method})", out.codes, out.scales, out.bias)]
    # The weight-space rewrite rescales the bias by s / s': the same beta in weight units.
    q = codes_error(stats, wcodes)
    weight_error = float(q.errors(wscales, beta).sum())
    cands.append((weight_error, f"weights ({how.value})", wcodes, wscales, beta))
    if layer.free_bias:
        ls = q.best_bias(wscales)
        cands.append((float(q.errors(wscales, ls).sum()), f"weights ({how.value}) + bias", wcodes, wscales, ls))
    error, method, c, s, b = min(cands, key=lambda x: x[0])
    return LayerFit(c.astype(np.int8), s, b, method, _relative(stats, error), _relative(stats, weight_error), before,
                    not np.array_equal(s, scales))


def fit_layers(layers: list[FitLayer], ks: dict[int, int], stats: dict[int, LayerStatistics], weights: dict,
               config: ReclusterConfig, lambdas: dict[int, float] | None = None) -> Iterator[tuple[FitLayer, LayerFit]]:
    """fit_layer of every layer, FIT_THREADS at a time, largest first; yielded in the order of ``layers`` as
    each is done (the caller applies and reports them in layer order). The fits are independent of each
    other and numpy releases the GIL in BLAS, LAPACK and large array operations; with BLAS on one thread
    each fit computes exactly what it computes alone. Closed early, the fits not started are cancelled."""
    def one(la: FitLayer) -> LayerFit:
        codes, scales, bias = weights[la.op_index]
        return fit_layer(la, ks[la.op_index], stats[la.op_index], codes, scales, bias, config,
                         (lambdas or {}).get(la.op_index, 0.0))

    pool = ThreadPoolExecutor(max_workers=FIT_THREADS, thread_name_prefix="fit")
    try:
        futures = {la.op_index: pool.submit(one, la)
                   for la in sorted(layers, key=lambda la: (-la.weight.size, la.op_index))}
        for la in layers:
            yield la, futures[la.op_index].result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def write_layer(editor: ModelEditor, layer: FitLayer, fit: LayerFit) -> None:
    """Codes, scales when they moved, and the int bias round(beta / s') in the bias tensor's own integer type."""
    model = editor.model
    sg = model.subgraphs[0]
    w = layer.weight
    tensor = sg.tensors[w.tensor_index]
    per_tensor = w.quantization.granularity is Granularity.PER_TENSOR
    editor.set_data(tensor, from_channels_first(fit.codes, w.shape, w.channel_axis).astype(np.int8))
    scales = fit.scales[:1] if per_tensor else fit.scales
    if fit.scales_changed:
        tensor.quantization.scale = [float(x) for x in scales]
    stored = np.broadcast_to(np.asarray(scales, np.float32).astype(np.float64), fit.scales.shape)
    if layer.bias_index is None:
        return
    bt = sg.tensors[own_bias_tensor(editor, layer)]
    old = tensor_values(model, bt)
    info = np.iinfo(old.dtype)
    new = np.clip(np.round(fit.bias / stored), info.min, info.max).astype(old.dtype).reshape(old.shape)
    editor.set_data(bt, new)
    q = bt.quantization
    if fit.scales_changed and q is not None and q.scale is not None and len(q.scale) == stored.size:
        q.scale = [float(layer.input_scale * s) for s in stored]


def segment_layers(layers: list[FitLayer], segments: int) -> list[list[FitLayer]]:
    """Consecutive groups of about equal size, in operator (topological) order."""
    ordered = sorted(layers, key=lambda la: la.op_index)
    n = max(1, min(segments, len(ordered)))
    bounds = np.linspace(0, len(ordered), n + 1).round().astype(int)
    return [ordered[a:b] for a, b in pairwise(bounds) if b > a]


def auto_segments(model_bytes: bytes, samples: int, layers: int, cached: bool) -> int:
    """As many segments as AUTO_SEGMENT_BUDGET_S of LiteRT passes allow: one pass per segment when the original
    model's activations fit ORIGINAL_CACHE_BYTES (plus the pass that keeps them), else one for the first
    segment and two for each next.

    A pass is estimated from the model's multiply-accumulates, not timed: a timed choice would make the
    rewritten model depend on the machine's load, and the same input must give the same bytes.
    """
    pass_s = max(samples * (INVOKE_OVERHEAD_S + model_macs(read_model(model_bytes)) / LITERT_MACS_PER_S), 1e-6)
    if cached:
        affordable = int(AUTO_SEGMENT_BUDGET_S / pass_s) - 1
    else:
        affordable = int((AUTO_SEGMENT_BUDGET_S / pass_s + 1) // 2)
    return max(1, min(layers, affordable))


def recluster_on_data(model_bytes: bytes, config: ReclusterConfig, calibration: Calibration,
                      progress: Callable[[str, int, int], None] | None = None) -> tuple[bytes, ReclusterReport]:
    """The output-aware rewrite of every eligible tensor (see the module doc); the input is not modified.
    ``progress(what, layers done, layers)`` is told of each segment's LiteRT pass and each fitted layer, in
    layer order. numpy's BLAS runs on one thread throughout (core.threads): the fits' reductions in one order."""
    with one_blas_thread():
        return _recluster_on_data(model_bytes, config, calibration, progress)


def _recluster_on_data(model_bytes: bytes, config: ReclusterConfig, calibration: Calibration,
                       progress: Callable[[str, int, int], None] | None) -> tuple[bytes, ReclusterReport]:
    from .recluster import rewrite_on_weights

    t0 = time.perf_counter()
    rows = calibration.rows[: config.calibration_samples]
    model = read_model(model_bytes)
    require_int8_model(model)
    editor = ModelEditor(model)
    auto_dw = config.include_depthwise is None
    choose_cfg = replace(config, include_depthwise=True) if auto_dw else config
    results: dict[int, TensorResult] = {}
    to_fit: list[tuple[FitLayer, int]] = []
    lambdas: dict[int, float] = {}  # operator index -> the rate price of its tensor
    modified = False  # the model differs from the original: activations must be captured from both
    for w in find_weight_tensors(model):
        q = tensor_values(model, model.subgraphs[w.subgraph].tensors[w.tensor_index])
        before = int(np.unique(q).size)
        k, reason = clusters_for(w, choose_cfg)
        base = {"name": w.name, "op": w.op, "shape": w.shape, "granularity": w.quantization.granularity.value,
                "distinct_before": before}
        if k is None:
            results[w.tensor_index] = TensorResult(**base, action=TensorAction.SKIPPED, reason=reason, clusters=None,
                                                   distinct_after=before, squared_error=0.0, sqnr_db=None,
                                                   scales_refit=False)
        elif before <= k:
            results[w.tensor_index] = TensorResult(**base, action=TensorAction.UNCHANGED,
                                                   reason=f"already {before} <= {k} values", clusters=k,
                                                   distinct_after=before, squared_error=0.0, sqnr_db=None,
                                                   scales_refit=False)
        else:
            layer = describe_layer(model, w)
            if isinstance(layer, str):
                r = rewrite_on_weights(editor, w, q, k, config, base, rate_lambda_for(w, choose_cfg))
                modified = True
                results[w.tensor_index] = replace(r, objective=Objective.WEIGHTS.value, method=f"weights: {layer}")
            else:
                to_fit.append((layer, k))
                lambdas[layer.op_index] = rate_lambda_for(w, choose_cfg)
    inputs = sorted({la.input_index for la, _ in to_fit})
    batch = choose_batch(model_bytes, rows, inputs, validated=True) if to_fit else 1
    cacheable = bool(to_fit) and cache_fits(model_bytes, inputs, len(rows))
    n_seg = config.segments or (auto_segments(model_bytes, len(rows), len(to_fit), cacheable) if to_fit else 1)
    groups = segment_layers([la for la, _ in to_fit], n_seg)
    ks = {la.op_index: k for la, k in to_fit}
    passes = 0
    cache = None
    if len(groups) > 1 and cacheable:
        cache = original_activations(model_bytes, rows, inputs, batch)
        passes += 1
    added: list[float] = []  # output noise each non-depthwise layer's rewrite added, in fitting order
    fitted: list[int] = []  # operator indices of the layers fitted so far (for progress)
    for group in groups:
        weights = {la.op_index: layer_weights(model, la) for la in group}
        v_orig = {o: stacked_weights(c, s, s * b) for o, (c, s, b) in weights.items()}
        current = write_model(model) if modified else model_bytes
        # A layer downstream of another layer of its segment is fitted on the original inputs: that layer
        # corrects the drift of the earlier segments, and correcting it twice overshoots.
        ops = {la.op_index for la in group}
        independent = frozenset(la.op_index for la in group if nearest_fitted_upstream(model, la.op_index, ops))
        if progress is not None:
            progress(f"activations of {len(group)} layer(s) on {len(rows)} samples", len(fitted), len(to_fit))
        stats, used = collect_statistics(model_bytes, current, rows, group, config, batch, v_orig, independent, cache)
        passes += used
        with closing(fit_layers(group, ks, stats, weights, config, lambdas)) as fits:
            for la, fit in fits:
                codes, scales, _ = weights[la.op_index]
                skip = depthwise_verdict(fit, added, config) if auto_dw and la.kind is LayerKind.DEPTHWISE else None
                if la.kind is not LayerKind.DEPTHWISE:
                    added.append(max(fit.relative_error - fit.before_relative_error, 0.0))
                results[la.weight.tensor_index] = apply_layer_fit(editor, la, fit, codes, scales, ks[la.op_index], skip)
                fitted.append(la.op_index)
                if progress is not None:
                    progress(f"fitted {la.weight.name}", len(fitted), len(to_fit))
                modified = modified or results[la.weight.tensor_index].action is TensorAction.REWRITTEN
    ordered = tuple(results[w.tensor_index] for w in find_weight_tensors(model))
    summary = CalibrationSummary(Objective.OUTPUTS, len(rows), calibration.source, len(groups), passes, batch,
                                 time.perf_counter() - t0)
    return write_model(model), ReclusterReport(config=config, tensors=ordered, calibration=summary)


def apply_layer_fit(editor: ModelEditor, la: FitLayer, fit: LayerFit, codes: np.ndarray, scales: np.ndarray, k: int,
                    skip_reason: str | None) -> TensorResult:
    """Write one layer's fit (unless ``skip_reason``) and describe it; ``codes``, ``scales``: as it was."""
    w = la.weight
    base = {"name": w.name, "op": w.op, "shape": w.shape, "granularity": w.quantization.granularity.value,
            "distinct_before": int(np.unique(codes).size), "objective": Objective.OUTPUTS.value,
            "output_sqnr_before_db": sqnr_from_relative_error(fit.before_relative_error),
            "weight_fit_output_sqnr_db": sqnr_from_relative_error(fit.weight_fit_relative_error)}
    sq = sqnr_from_relative_error(fit.relative_error)
    if skip_reason is not None:
        return TensorResult(**base, action=TensorAction.SKIPPED, clusters=None, distinct_after=base["distinct_before"],
                            reason=skip_reason, squared_error=0.0, sqnr_db=None, scales_refit=False,
                            method=fit.method, output_sqnr_db=sq)
    write_layer(editor, la, fit)
    f = scales[:, None] * codes.astype(np.float64)
    g = fit.scales[:, None] * fit.codes.astype(np.float64)
    err = float(np.sum((f - g) ** 2))
    signal = float(np.sum(f * f))
    return TensorResult(**base, action=TensorAction.REWRITTEN, reason=None, clusters=k,
                        distinct_after=int(np.unique(fit.codes).size), squared_error=err,
                        sqnr_db=None if err == 0 else round(10 * math.log10(signal / err), 4) if signal else None,
                        scales_refit=fit.scales_changed, fit=None, method=fit.method, output_sqnr_db=sq)
