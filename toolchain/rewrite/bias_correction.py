"""Bias correction after re-clustering, from calibration activations.

Moving weights shifts each output channel's mean by sum_i dW[c, i] x E[x_i]. With
the mean input activation of every rewritten layer (read from the original model's
intermediate tensors in LiteRT) the shift is folded into the int32 bias, in the
rewritten layer's accumulator units (input scale x new weight scale).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..tflite.graph import BuiltinOp, find_weight_tensors, op_code, tensor_values
from ..tflite.interpreter import make_interpreter
from ..tflite.model_io import read_model, write_model


@dataclass(frozen=True)
class BiasCorrection:
    tensor: str
    op: str
    corrected: bool
    reason: str | None
    max_abs_shift_steps: float  # largest change of a bias, in accumulator steps


def input_channel_means(model_bytes: bytes, inputs: list[list[np.ndarray]], tensor_indices: list[int]) -> dict[int, np.ndarray]:
    """Mean of (x - zero_point) over samples and positions, per last-axis channel, for each tensor."""
    interp = make_interpreter(model_bytes, keep_intermediates=True)
    details = {d["index"]: d for d in interp.get_tensor_details()}
    sums: dict[int, np.ndarray] = {}
    counts: dict[int, int] = {}
    ins = interp.get_input_details()
    for row in inputs:
        for d, x in zip(ins, row):
            interp.set_tensor(d["index"], x)
        interp.invoke()
        for t in tensor_indices:
            a = interp.get_tensor(t).astype(np.float64)
            zp = details[t]["quantization"][1]
            a = (a - zp).reshape(-1, a.shape[-1]) if a.ndim else a.reshape(1, 1)
            sums[t] = sums.get(t, 0) + a.sum(axis=0)
            counts[t] = counts.get(t, 0) + a.shape[0]
    return {t: sums[t] / counts[t] for t in tensor_indices if counts.get(t)}


def correct_biases(original: bytes, rewritten: bytes, inputs: list[list[np.ndarray]]) -> tuple[bytes, tuple[BiasCorrection, ...]]:
    """Return the rewritten model with bias corrections and what was done per tensor."""
    orig_model = read_model(original)
    new_model = read_model(rewritten)
    sg_o, sg_n = orig_model.subgraphs[0], new_model.subgraphs[0]
    weights = [w for w in find_weight_tensors(new_model) if w.subgraph == 0]
    plans = []
    for w in weights:
        op = sg_n.operators[w.consumers[0]]
        code = op_code(new_model, op)
        q_new = tensor_values(new_model, sg_n.tensors[w.tensor_index]).astype(np.float64)
        q_old = tensor_values(orig_model, sg_o.tensors[w.tensor_index]).astype(np.float64)
        if np.array_equal(q_new, q_old) and _scales(sg_n, w) == _scales(sg_o, w):
            continue
        if code not in (BuiltinOp.CONV_2D, BuiltinOp.DEPTHWISE_CONV_2D, BuiltinOp.FULLY_CONNECTED):
            plans.append((w, None, None, "operator not supported"))
            continue
        if w.bias_tensor_index is None or len(w.consumers) != 1:
            plans.append((w, None, None, "no bias tensor" if w.bias_tensor_index is None else "shared weights"))
            continue
        plans.append((w, int(op.inputs[0]), code, None))
    means = input_channel_means(original, inputs, sorted({p[1] for p in plans if p[1] is not None}))
    results = []
    for w, in_idx, code, reason in plans:
        if reason is not None or in_idx not in means:
            results.append(BiasCorrection(w.name, w.op, False, reason or "no activations", 0.0))
            continue
        q_new = tensor_values(new_model, sg_n.tensors[w.tensor_index]).astype(np.float64)
        q_old = tensor_values(orig_model, sg_o.tensors[w.tensor_index]).astype(np.float64)
        s_old = np.asarray(sg_o.tensors[w.tensor_index].quantization.scale, np.float64)
        s_new = np.asarray(sg_n.tensors[w.tensor_index].quantization.scale, np.float64).astype(np.float32).astype(np.float64)
        m = means[in_idx]
        if code == BuiltinOp.DEPTHWISE_CONV_2D:
            # [1, H, W, C*M]: output channel c reads input channel c // M
            ratio = np.broadcast_to(s_old / s_new, (q_new.shape[-1],))
            d = (q_old * ratio - q_new).reshape(-1, q_new.shape[-1])
            mult = q_new.shape[-1] // m.size
            shift = (d * np.repeat(m, mult)[None, :]).sum(axis=0)
        else:
            # [O, ..., I]: sum over everything but the output channel, inputs along the last axis
            out_ch = q_new.shape[0]
            ratio = np.broadcast_to(s_old / s_new, (out_ch,))
            d = q_old * ratio.reshape((-1,) + (1,) * (q_new.ndim - 1)) - q_new
            if d.shape[-1] != m.size:
                results.append(BiasCorrection(w.name, w.op, False, "input shape mismatch", 0.0))
                continue
            shift = (d.reshape(out_ch, -1, d.shape[-1]) * m[None, None, :]).sum(axis=(1, 2))
        bt = sg_n.tensors[w.bias_tensor_index]
        b = tensor_values(new_model, bt)
        nb = np.clip(np.round(b.astype(np.float64) + shift), np.iinfo(b.dtype).min, np.iinfo(b.dtype).max).astype(b.dtype)
        _set_buffer(new_model, bt, nb)
        results.append(BiasCorrection(w.name, w.op, True, None, float(np.max(np.abs(shift))) if shift.size else 0.0))
    return write_model(new_model), tuple(results)


def _scales(sg, w) -> list[float]:
    q = sg.tensors[w.tensor_index].quantization
    return [float(x) for x in (q.scale if q is not None and q.scale is not None else [])]


def _set_buffer(model, tensor, values: np.ndarray) -> None:
    refs = sum(1 for sg in model.subgraphs for t in sg.tensors if t.buffer == tensor.buffer)
    raw = np.ascontiguousarray(values).view(np.uint8).ravel().copy()
    if refs > 1:
        from ai_edge_litert import schema_py_generated as schema

        model.buffers.append(schema.BufferT())
        tensor.buffer = len(model.buffers) - 1
    model.buffers[tensor.buffer].data = raw
