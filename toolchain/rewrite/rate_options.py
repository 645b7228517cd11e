"""What each weight tensor can become, and what it costs: the options a size or fidelity plan chooses from.

For every tensor a plan may touch, each candidate (K, rate price) is fitted once, on the original
model's inputs (the output-aware fit with calibration data, else the weight-space fit), and measured
twice: its error (the layer's output noise relative to its output energy on the calibration rows, or
the weights' own relative error without data) and Vela's encoded bytes of the fitted tensor on the
target (the rate model, ``RateModel``). The tensor as it is stays an option (no error, its own bytes).

How much a layer's error matters downstream differs from layer to layer: with data, each tensor's
sensitivity is measured by running the model with that tensor alone at a probe candidate and dividing
the noise it adds to the model's output (relative to the output energy) by the layer's own relative
error. A plan then adds up sensitivity x error (noise at the output, assumed additive). Options that
are both larger and worse than another are dropped.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Protocol

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from ..algorithms.channels import channels_first, from_channels_first
from ..tflite.editor import ModelEditor
from ..tflite.graph import Granularity, WeightTensor, find_weight_tensors, require_int8_model, tensor_values
from ..tflite.model_io import read_model, write_model
from .config import Objective, ReclusterConfig, clusters_for
from .fit import best_weight_fit
from .layers import FitLayer, describe_layer, layer_weights
from .result import TensorAction, TensorResult

if TYPE_CHECKING:
    from .output_aware import Calibration

PLAN_CLUSTERS = (2, 3, 4, 6, 8, 12, 16, 24, 32)  # candidate K (up to the config's clusters)
PLAN_RATE_LAMBDAS = (0.0, 1.0, 3.0)  # candidate rate prices (config.rate_lambda's meaning)
PROBE_CLUSTERS = 4  # the candidate whose output noise measures a tensor's sensitivity
PROBE_SAMPLES = 64
UNIFORM_CLUSTERS = 16  # RateOptions.uniform_bytes: the size of K=16 everywhere, what a fidelity plan must beat


class RateModel(Protocol):
    """Vela's encoded bytes on one target, per weight tensor of one model (targets.weight_encoding.ModelRate)."""

    target: str
    fixed_bytes: int  # Vela's figure outside the model's weight tensors
    original_bytes: dict  # tensor name -> bytes as it is

    def tensor_bytes(self, name: str, q: np.ndarray) -> int: ...

    def model_bytes_of(self, model_bytes: bytes) -> int: ...


@dataclass(frozen=True)
class Option:
    clusters: int | None  # None: the tensor as it is
    rate_lambda: float
    relative_error: float
    encoded_bytes: int
    fit: object = field(default=None, repr=False, compare=False)  # LayerFit, or fit.best_weight_fit's result


@dataclass(frozen=True)
class TensorOptions:
    weight: WeightTensor = field(repr=False)
    layer: FitLayer | None = field(repr=False)  # None: fitted on its weights
    sensitivity: float  # output noise per unit of the tensor's relative error (1 without data)
    options: tuple[Option, ...]  # by bytes, each better than every smaller one; options[0] is the smallest
    uniform: Option  # what K=UNIFORM_CLUSTERS alone makes of it (as it is when it has no more values)

    @property
    def name(self) -> str:
        return self.weight.name

    def distortion(self, option: Option) -> float:
        return self.sensitivity * option.relative_error


@dataclass(frozen=True)
class RateOptions:
    tensors: tuple[TensorOptions, ...]
    fixed_bytes: int  # Vela's figure for everything the plan does not choose
    objective: Objective
    target: str
    batch: int = 1  # samples per LiteRT invoke of the statistics' pass

    @property
    def uniform_bytes(self) -> int:
        """Vela's figure with every tensor fitted alone at K=16 (or as it is when it has fewer values)."""
        return self.fixed_bytes + sum(t.uniform.encoded_bytes for t in self.tensors)

    @property
    def smallest_bytes(self) -> int:
        return self.fixed_bytes + sum(t.options[0].encoded_bytes for t in self.tensors)

    @property
    def largest_bytes(self) -> int:
        return self.fixed_bytes + sum(t.options[-1].encoded_bytes for t in self.tensors)


def pareto(options: list[Option]) -> tuple[Option, ...]:
    """Options sorted by bytes, each with a lower error than every smaller one (ties: the smaller, then K)."""
    ordered = sorted(options, key=lambda o: (o.encoded_bytes, o.relative_error, o.clusters or 1 << 10, o.rate_lambda))
    kept: list[Option] = []
    for o in ordered:
        if not kept or o.relative_error < kept[-1].relative_error:
            kept.append(o)
    return tuple(kept)


def _candidates(config: ReclusterConfig, distinct: int, ks: tuple[int, ...], lambdas: tuple[float, ...]):
    for k in ks:
        if k <= config.clusters and k < distinct:
            for lam in lambdas:
                yield k, lam


def _weight_options(model, w: WeightTensor, config, rate: RateModel, ks, lambdas) -> list[Option]:
    from .recluster import bias_shared_elsewhere, bias_tensors

    may_refit = not bias_shared_elsewhere(model, w, bias_tensors(model, w))
    q = tensor_values(model, model.subgraphs[w.subgraph].tensors[w.tensor_index])
    per_tensor = w.quantization.granularity is Granularity.PER_TENSOR
    qc = q.reshape(1, -1) if per_tensor else channels_first(q, w.channel_axis)
    scales = w.quantization.scales.astype(np.float64)[: 1 if per_tensor else None]
    f = scales[:, None] * qc.astype(np.float64)
    signal = float(np.sum(f * f)) or 1.0
    out = [Option(None, 0.0, 0.0, rate.original_bytes[w.name])]
    for k, lam in _candidates(config, int(np.unique(q).size), ks, lambdas):
        fit = best_weight_fit(qc, scales, k, config, may_refit, lam)
        err, codes = fit[0], fit[1]
        new_q = codes.reshape(q.shape) if per_tensor else from_channels_first(codes, q.shape, w.channel_axis)
        out.append(Option(k, lam, err / signal, rate.tensor_bytes(w.name, new_q), fit))
    return out


def _layer_options(layers: list[FitLayer], stats: dict, weights: dict, config, rate: RateModel, ks, lambdas,
                   full: bool) -> dict[int, list[Option]]:
    """Every layer's candidate fits (by operator index), FIT_THREADS at a time on one BLAS thread each (each
    computes exactly what it computes alone: the options do not depend on the machine), then Vela's bytes of
    each, in layer order, beside the fits still running."""
    from concurrent.futures import ThreadPoolExecutor

    from ..algorithms.output_fit import solve_layer
    from ..core.threads import FIT_THREADS, one_blas_thread
    from .output_aware import fit_layer, stacked_weights

    candidates = {la.op_index: list(_candidates(config, int(np.unique(weights[la.op_index][0]).size), ks, lambdas))
                  for la in layers}

    def solve(la: FitLayer):
        # shared by the layer's candidates: v*, the inverse Hessian and its factor do not depend on K or lambda
        # (and reading the statistics folds them, so the candidates only read them)
        codes, scales, bias = weights[la.op_index]
        return solve_layer(stats[la.op_index], stacked_weights(codes, scales, scales * bias), config.damping,
                           la.free_bias)

    def fit(la: FitLayer, solved, k: int, lam: float):
        codes, scales, bias = weights[la.op_index]
        return fit_layer(la, k, stats[la.op_index], codes, scales, bias, config, lam, solved.result(), quick=not full)

    out = {}
    with one_blas_thread(), ThreadPoolExecutor(max_workers=FIT_THREADS, thread_name_prefix="option") as pool:
        # every solve is queued before any candidate (first in, first out; the largest first), then the candidates
        # of the smallest layers first: a candidate waits only for a solve that is running, the small layers' work
        # fills the other thread while the largest is solved, and Vela encodes each layer's fits while the next run
        busy = sorted((la for la in layers if candidates[la.op_index]), key=lambda la: (la.weight.size, la.op_index))
        solved = {la.op_index: pool.submit(solve, la) for la in reversed(busy)}
        fits = {la.op_index: [pool.submit(fit, la, solved[la.op_index], k, lam) for k, lam in candidates[la.op_index]]
                for la in busy}
        for la in busy + [la for la in layers if not candidates[la.op_index]]:
            w = la.weight
            out[la.op_index] = [Option(None, 0.0, 0.0, rate.original_bytes[w.name])]
            for (k, lam), job in zip(candidates[la.op_index], fits.get(la.op_index, [])):
                f = job.result()
                new_q = from_channels_first(f.codes, w.shape, w.channel_axis)
                out[la.op_index].append(Option(k, lam, f.relative_error, rate.tensor_bytes(w.name, new_q), f))
    return out


def write_option(editor: ModelEditor, t: TensorOptions, option: Option, kept_by: str = "the plan") -> TensorResult:
    """Put one option's fit into an editable model (the original's values in that tensor) and say what it did."""
    from .output_aware import apply_layer_fit
    from .recluster import apply_weight_fit

    w = t.weight
    q = tensor_values(editor.model, editor.model.subgraphs[w.subgraph].tensors[w.tensor_index])
    base = {"name": w.name, "op": w.op, "shape": w.shape, "granularity": w.quantization.granularity.value,
            "distinct_before": int(np.unique(q).size)}
    if option.clusters is None:
        return TensorResult(**base, action=TensorAction.SKIPPED, reason=f"left as is by {kept_by}", clusters=None,
                            distinct_after=base["distinct_before"], squared_error=0.0, sqnr_db=None,
                            scales_refit=False)
    if t.layer is not None:
        codes, scales, _ = layer_weights(editor.model, t.layer)
        return apply_layer_fit(editor, t.layer, option.fit, codes, scales, option.clusters, None)
    return apply_weight_fit(editor, w, q, option.clusters, base, option.fit)


def model_with_options(original: bytes | schema.ModelT, tensors: tuple[TensorOptions, ...], chosen: list[Option],
                       kept_by: str = "the plan") -> tuple[bytes, dict[str, TensorResult]]:
    """The original model (bytes, or parsed: a copy is edited) with every tensor's chosen option written (each
    fitted alone, on the original inputs), and what each tensor became, by name."""
    model = read_model(original) if isinstance(original, bytes) else copy.deepcopy(original)
    editor = ModelEditor(model)
    results = {t.name: write_option(editor, t, o, kept_by) for t, o in zip(tensors, chosen)}
    return write_model(model), results


def model_with(original: bytes | schema.ModelT, tensors: tuple[TensorOptions, ...], picks: list[int]) -> bytes:
    """model_with_options of each tensor's picked option (an index into its options)."""
    return model_with_options(original, tensors, [t.options[i] for t, i in zip(tensors, picks)])[0]


def _output_noise(reference: np.ndarray, outputs: np.ndarray) -> float:
    energy = float(np.sum(reference.astype(np.float64) ** 2)) or 1.0
    return float(np.sum((outputs.astype(np.float64) - reference) ** 2)) / energy


def _sensitivities(original: bytes, found: list[tuple[WeightTensor, FitLayer | None, list[Option]]],
                   calibration: Calibration, batch: int) -> list[float]:
    """Output noise per unit of relative error, per tensor, from one probe each (see the module doc)."""
    from ..tflite import interpreter as rt
    from .sensitivity import model_outputs

    rows = calibration.rows[:PROBE_SAMPLES]
    index = rt.output_specs(original)[0].index
    reference = model_outputs(original, rows, batch, index).astype(np.float64)
    parsed = read_model(original)
    out = []
    for w, la, options in found:
        lossy = [o for o in options if o.clusters is not None and o.rate_lambda == 0.0 and o.relative_error > 0]
        if not lossy:
            out.append(0.0)
            continue
        probe = min(lossy, key=lambda o: (abs(o.clusters - PROBE_CLUSTERS), o.clusters))
        t = TensorOptions(w, la, 1.0, (probe,), probe)
        noise = _output_noise(reference, model_outputs(model_with(parsed, (t,), [0]), rows, batch, index, True))
        out.append(noise / probe.relative_error)
    return out


def measure_options(original: bytes, config: ReclusterConfig, calibration: Calibration | None, rate: RateModel,
                    ks: tuple[int, ...] = PLAN_CLUSTERS, lambdas: tuple[float, ...] = PLAN_RATE_LAMBDAS,
                    full_fits: bool = True, keep_original: bool = True) -> RateOptions:
    """Every tensor the config lets a plan touch (depthwise included unless excluded), with its options.
    ``full_fits`` False: candidates without a rate price get output_aware.fit_layer's quick fit.
    ``keep_original`` False: a tensor with more values than the largest candidate K must take a candidate."""
    from ..tflite.activations import choose_batch
    from .output_aware import collect_statistics, stacked_weights

    model = read_model(original)
    require_int8_model(model)
    cfg = replace(config, include_depthwise=True) if config.include_depthwise is None else config
    use_data = calibration is not None and config.objective_for(True) is Objective.OUTPUTS
    if use_data:
        from .recluster import refuse_stateful_outputs

        refuse_stateful_outputs(model)
    planned: list[tuple[WeightTensor, FitLayer | None]] = []
    for w in find_weight_tensors(model):
        if clusters_for(w, cfg)[0] is None:
            continue
        la = describe_layer(model, w) if use_data else None
        planned.append((w, la if isinstance(la, FitLayer) else None))
    layers = [la for _, la in planned if la is not None]
    stats, batch = {}, 1
    weights = {la.op_index: layer_weights(model, la) for la in layers}
    if layers:
        rows = calibration.rows[: config.calibration_samples]
        batch = choose_batch(original, rows, sorted({la.input_index for la in layers}))
        v_orig = {o: stacked_weights(c, s, s * b) for o, (c, s, b) in weights.items()}
        stats, _ = collect_statistics(original, original, rows, layers, cfg, batch, v_orig)
    layer_options = _layer_options(layers, stats, weights, cfg, rate, ks, lambdas, full_fits) if layers else {}
    stats.clear()  # the statistics of a large layer are large
    found = [(w, la, layer_options[la.op_index] if la is not None else _weight_options(model, w, cfg, rate, ks, lambdas))
             for w, la in planned]
    if use_data:
        alphas = _sensitivities(original, found, calibration, batch)
    else:
        alphas = [1.0] * len(found)
    chosen = {w.name for w, _, _ in found}
    fixed = rate.fixed_bytes + sum(b for n, b in rate.original_bytes.items() if n not in chosen)
    uniform = [_uniform_option(opts) for _, _, opts in found]
    if not keep_original:  # the tensor as it is (options[0] of each list) only where no candidate exists
        found = [(w, la, opts[1:] if len(opts) > 1 else opts) for w, la, opts in found]
    tensors = tuple(TensorOptions(w, la, a, pareto(opts), u) for (w, la, opts), a, u in zip(found, alphas, uniform))
    return RateOptions(tensors, fixed, Objective.OUTPUTS if use_data else Objective.WEIGHTS, rate.target, batch)


def _uniform_option(options: list[Option]) -> Option:
    """K=UNIFORM_CLUSTERS without the rate term; as it is when it holds no more values (options[0])."""
    return next((o for o in options if o.clusters == UNIFORM_CLUSTERS and o.rate_lambda == 0), options[0])

