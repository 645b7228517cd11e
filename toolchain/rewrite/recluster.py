"""Rewrite an int8 .tflite so each weight tensor uses at most K distinct values.

One shared palette per tensor across all its channels (what Vela's weight encoder
needs), solved exactly with per-channel scales kept, optionally followed by a
scale refit that never increases the error. Everything that is not a reclustered
weight (and, after a refit, its bias) is left as it was.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from ..algorithms import metrics
from ..algorithms.channels import channels_first, from_channels_first
from ..core.errors import ConfigError
from ..core.threads import FIT_THREADS
from ..tflite.editor import ModelEditor
from ..tflite.graph import (
    Granularity,
    WeightTensor,
    find_weight_tensors,
    require_int8_model,
    tensor_values,
)
from ..tflite.model_io import read_model, write_model
from .config import Objective, ReclusterConfig, ScaleFit, clusters_for, rate_lambda_for
from .fit import best_weight_fit
from .result import ReclusterReport, TensorAction, TensorResult

if TYPE_CHECKING:
    from .output_aware import Calibration


def bias_tensors(model: schema.ModelT, w: WeightTensor) -> list[int]:
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


def bias_shared_elsewhere(model: schema.ModelT, w: WeightTensor, bias_indices: list[int]) -> bool:
    from ..tflite.graph import BIAS_INPUT, WEIGHT_INPUT, op_code

    sg = model.subgraphs[w.subgraph]
    for op in sg.operators:
        code = op_code(model, op)
        if (code in BIAS_INPUT and BIAS_INPUT[code] < len(op.inputs)
                and int(op.inputs[BIAS_INPUT[code]]) in bias_indices
                and int(op.inputs[WEIGHT_INPUT[code]]) != w.tensor_index):
            return True
    return False


def _rescale_bias(editor: ModelEditor, w: WeightTensor, bias_index: int, ratio: np.ndarray) -> None:
    """Keep acc = sum(x*w_q) + b exact: b is in units of in_scale x w_scale, so b' = b x s/s'."""
    model = editor.model
    t = model.subgraphs[w.subgraph].tensors[bias_index]
    b = tensor_values(model, t).astype(np.float64)
    if b.ndim != 1:
        return
    r = np.broadcast_to(ratio, b.shape)
    stored = tensor_values(model, t).dtype  # int32, or int64 for int16 activations
    info = np.iinfo(stored if stored.kind == "i" else np.int32)
    editor.set_data(t, np.clip(np.round(b * r), info.min, info.max).astype(stored))
    q = t.quantization
    if q is not None and q.scale is not None and len(q.scale) == b.size:
        q.scale = [float(s / rr) for s, rr in zip(np.asarray(q.scale, np.float64), r)]
    elif q is not None and q.scale is not None and len(q.scale) == 1 and np.allclose(r, r[0]):
        q.scale = [float(q.scale[0] / r[0])]


def refuse_stateful_outputs(model: schema.ModelT) -> None:
    """The output-aware fit (and every plan measured with it) treats samples as independent: not a model with state."""
    from ..tflite.graph import has_resource_variables

    if has_resource_variables(model):
        raise ConfigError("the output-aware fit needs independent samples; this model keeps state between "
                          "invocations: use --objective weights")


def recluster_model(model_bytes: bytes, config: ReclusterConfig, calibration: Calibration | None = None,
                    progress: Callable[[str, int, int], None] | None = None) -> tuple[bytes, ReclusterReport]:
    """The rewriter: returns the new model's bytes and a per-tensor report. The input is not modified.

    With ``calibration`` (output_aware.Calibration) the objective defaults to the layers' outputs, and
    ``progress(what, done, total)`` hears of each layer fitted (the weight-space fit takes milliseconds).
    """
    if config.objective is Objective.OUTPUTS and calibration is None:
        raise ConfigError("the output objective needs calibration data (--calibration FILE.npz)")
    if calibration is not None and config.objective_for(True) is Objective.OUTPUTS:
        from .output_aware import recluster_on_data

        refuse_stateful_outputs(read_model(model_bytes))
        return recluster_on_data(model_bytes, config, calibration, progress)
    model = read_model(model_bytes)
    require_int8_model(model)
    editor = ModelEditor(model)
    results: list[TensorResult | None] = []
    jobs = []  # (position in results, tensor, its codes, K, report fields) of the tensors to fit
    for w in find_weight_tensors(model):
        tensor = model.subgraphs[w.subgraph].tensors[w.tensor_index]
        q = tensor_values(model, tensor)
        before = int(np.unique(q).size)
        k, reason = clusters_for(w, config)
        base = {"name": w.name, "op": w.op, "shape": w.shape, "granularity": w.quantization.granularity.value,
                "distinct_before": before}
        if k is None:
            results.append(TensorResult(**base, action=TensorAction.SKIPPED, reason=reason, clusters=None,
                                        distinct_after=before, squared_error=0.0, sqnr_db=None, scales_refit=False))
            continue
        if before <= k:
            results.append(TensorResult(**base, action=TensorAction.UNCHANGED, reason=f"already {before} <= {k} values",
                                        clusters=k, distinct_after=before, squared_error=0.0, sqnr_db=None, scales_refit=False))
            continue
        jobs.append((len(results), w, q, k, base))
        results.append(None)
    # The fits read the model and write nothing (copy-on-write edits never change another tensor's codes): they
    # run FIT_THREADS at a time, largest first; the edits follow one by one, in model order.
    with ThreadPoolExecutor(max_workers=FIT_THREADS, thread_name_prefix="fit") as pool:
        fits = dict(pool.map(lambda job: (job[0], fit_on_weights(model, job[1], job[2], job[3], config,
                                                                 rate_lambda_for(job[1], config))),
                             sorted(jobs, key=lambda job: (-job[2].size, job[0]))))
    for i, w, q, k, base in jobs:
        results[i] = apply_weight_fit(editor, w, q, k, base, fits[i])
    out = write_model(model)
    return out, ReclusterReport(config=config, tensors=tuple(results))


def write_weights(editor: ModelEditor, w: WeightTensor, new_qc: np.ndarray, old_scales: np.ndarray,
                  new_scales: np.ndarray, biases: list[int]) -> None:
    """Store new codes (channels first, or one row for per-tensor) and, if scales moved, the scales and biases."""
    tensor = editor.model.subgraphs[w.subgraph].tensors[w.tensor_index]
    shape = w.shape
    if new_qc.shape[0] == 1 and (w.quantization.granularity is Granularity.PER_TENSOR or not shape):
        new_q = new_qc.reshape(shape)
    else:
        new_q = from_channels_first(new_qc, shape, w.channel_axis)
    editor.set_data(tensor, new_q.astype(np.int8))
    if not np.array_equal(np.asarray(old_scales, np.float64), np.asarray(new_scales, np.float64)):
        tensor.quantization.scale = [float(s) for s in new_scales]
        for b in biases:
            # the stored scale is float32: rescale the bias by exactly the ratio the kernels will see
            stored = np.asarray(new_scales, np.float32).astype(np.float64)
            _rescale_bias(editor, w, b, np.asarray(old_scales, np.float64) / stored)


def fit_on_weights(model: schema.ModelT, w: WeightTensor, q: np.ndarray, k: int, config: ReclusterConfig,
                   rate_lambda: float = 0.0):
    """The weight-space fit of one tensor, (error, new codes, new scales, how): reads the model, writes nothing."""
    per_tensor = w.quantization.granularity is Granularity.PER_TENSOR or q.ndim == 0
    # A per-tensor scale is one "channel" holding every weight; per-channel: channels first.
    qc = q.reshape(1, -1) if per_tensor else channels_first(q, w.channel_axis)
    scales = w.quantization.scales.astype(np.float64)[:1] if per_tensor else w.quantization.scales.astype(np.float64)
    may_refit = not bias_shared_elsewhere(model, w, bias_tensors(model, w))
    return best_weight_fit(qc, scales, k, config, may_refit, rate_lambda)


def rewrite_on_weights(editor: ModelEditor, w: WeightTensor, q: np.ndarray, k: int, config: ReclusterConfig, base: dict,
                       rate_lambda: float = 0.0) -> TensorResult:
    return apply_weight_fit(editor, w, q, k, base, fit_on_weights(editor.model, w, q, k, config, rate_lambda))


def apply_weight_fit(editor: ModelEditor, w: WeightTensor, q: np.ndarray, k: int, base: dict, fit) -> TensorResult:
    """Write a fit_on_weights result (codes, scales, rescaled biases) and describe it."""
    model = editor.model
    per_tensor = w.quantization.granularity is Granularity.PER_TENSOR or q.ndim == 0
    qc = q.reshape(1, -1) if per_tensor else channels_first(q, w.channel_axis)
    scales = w.quantization.scales.astype(np.float64)[:1] if per_tensor else w.quantization.scales.astype(np.float64)
    biases = bias_tensors(model, w)
    err, new_qc, new_scales, how = fit
    f = scales[:, None] * qc.astype(np.float64)
    sq = metrics.sqnr_db(f, new_scales[:, None] * new_qc)
    write_weights(editor, w, new_qc, scales, new_scales, biases)
    refit = how is not ScaleFit.KEEP
    return TensorResult(**base, action=TensorAction.REWRITTEN, reason=None, clusters=k,
                        distinct_after=int(np.unique(new_qc).size), squared_error=err,
                        sqnr_db=None if math.isinf(sq) else round(sq, 4), scales_refit=refit, fit=how.value)
