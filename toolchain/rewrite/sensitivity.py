"""How much each K costs each tensor in output error on calibration data: what the K planners rank by.

One LiteRT pass of the original model gives every layer's statistics; each tensor is then fitted
(output-aware, each layer on the original inputs) at every candidate K. The fits are kept: their
codes give the planners' encoded sizes.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from ..tflite import interpreter as rt
from ..tflite.activations import capture_batches, choose_batch
from ..tflite.graph import find_weight_tensors, tensor_values
from ..tflite.model_io import read_model
from .config import ReclusterConfig, clusters_for
from .layers import FitLayer, describe_layer, layer_weights
from .output_aware import (
    Calibration,
    collect_statistics,
    fit_layer,
    stacked_weights,
)


@dataclass(frozen=True)
class TensorSensitivity:
    name: str
    op: str
    weights: int
    distinct: int
    layer: FitLayer = field(repr=False)
    fits: dict = field(repr=False)  # K -> LayerFit (only K below the tensor's distinct values)

    def relative_error(self, k: int) -> float:
        """Output noise / output energy at K on the calibration rows (0 when K keeps every value)."""
        return self.fits[k].relative_error if k in self.fits else 0.0


@dataclass(frozen=True)
class Sensitivity:
    tensors: dict  # tensor name -> TensorSensitivity
    samples: int
    batch: int


def measure_sensitivity(model_bytes: bytes, config: ReclusterConfig, calibration: Calibration,
                        ks: tuple[int, ...]) -> Sensitivity:
    """Every tensor the output-aware fit can model (depthwise included unless excluded), at every K in ``ks``."""
    rows = calibration.rows[: config.calibration_samples]
    model = read_model(model_bytes)
    cfg = replace(config, include_depthwise=True) if config.include_depthwise is None else config
    layers: list[tuple[FitLayer, int]] = []
    for w in find_weight_tensors(model):
        k, _ = clusters_for(w, cfg)
        layer = describe_layer(model, w) if k is not None else None
        if isinstance(layer, FitLayer):
            q = tensor_values(model, model.subgraphs[0].tensors[w.tensor_index])
            layers.append((layer, int(np.unique(q).size)))
    if not layers:
        return Sensitivity({}, len(rows), 1)
    batch = choose_batch(model_bytes, rows, sorted({la.input_index for la, _ in layers}))
    weights = {la.op_index: layer_weights(model, la) for la, _ in layers}
    v_orig = {o: stacked_weights(c, s, s * b) for o, (c, s, b) in weights.items()}
    stats, _ = collect_statistics(model_bytes, model_bytes, rows, [la for la, _ in layers], config, batch, v_orig)
    out = {}
    for la, distinct in layers:
        codes, scales, bias = weights[la.op_index]
        fits = {k: fit_layer(la, k, stats[la.op_index], codes, scales, bias, config) for k in ks if k < distinct}
        w = la.weight
        out[w.name] = TensorSensitivity(w.name, w.op, w.size, distinct, la, fits)
        del stats[la.op_index]  # the statistics of a large layer are large: free them as soon as fitted
    return Sensitivity(out, len(rows), batch)


def model_outputs(model_bytes: bytes, rows: list, batch: int, index: int | None = None,
                  validated: bool = False) -> np.ndarray:
    """The first output of every sample, flattened (samples, values). ``index``: that output's tensor index when
    known (a rewrite keeps the original's); ``validated``: the bytes are a rewrite of a validated model."""
    index = rt.output_specs(model_bytes)[0].index if index is None else index
    return np.concatenate([out[index].reshape(out[index].shape[0], -1)
                           for _, out in capture_batches(model_bytes, rows, [index], batch, validated=validated)])


def top1_agreement(reference: np.ndarray, outputs: np.ndarray) -> float:
    return float(np.mean(np.argmax(reference, axis=1) == np.argmax(outputs, axis=1)))
