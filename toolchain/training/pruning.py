"""Magnitude pruning with tfmot before clustering: the prune -> cluster -> quantize cascade of Deep Compression.

The layers that will be clustered (Conv2D, Dense, ... that no layer rule skips) are wrapped in
``prune_low_magnitude`` with a polynomial schedule from 0 to the target sparsity over the
pruning epochs, trained, and stripped. Clustering then runs with ``preserve_sparsity`` so the
zeros stay zeros; the rewriter keeps them exact too, and Vela run-length codes them when zero
is common enough.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .clustering import FinetuneConfig, all_layers, clusterable_weight_names
from .datasets import Dataset
from .keras_training import compile_for_training, fit
from .tf_env import import_keras, import_tfmot


@dataclass(frozen=True)
class PrunedLayer:
    name: str
    layer_type: str
    sparsity: float  # fraction of the kernel's weights that are exactly zero after stripping


def _prunable(layer, config: FinetuneConfig) -> bool:
    from tensorflow_model_optimization.python.core.sparsity.keras import prune_registry

    keras = import_keras()
    if isinstance(layer, keras.layers.DepthwiseConv2D):  # not clustered either: left dense
        return False
    clusters, _ = config.clusters_for(layer.name)
    return (clusters is not None and bool(layer.trainable_weights) and bool(clusterable_weight_names(layer))
            and prune_registry.PruneRegistry.supports(layer))


def prune_model(model, data: Dataset, config: FinetuneConfig, quiet: bool):
    """(the pruned, stripped model, what each pruned layer reached). ``config.prune_sparsity`` must be set."""
    keras = import_keras()
    sparsity_api = import_tfmot().sparsity.keras
    steps = math.ceil(len(data.x_train) / config.batch_size) * config.prune_epochs
    # tfmot masks only every `frequency` steps (default 100: never, on a short run); about 20 updates,
    # the last one on a step the run reaches, so the target sparsity is met
    frequency = max(1, (steps - 1) // 20)
    end_step = max(frequency, ((steps - 1) // frequency) * frequency)
    schedule = sparsity_api.PolynomialDecay(initial_sparsity=0.0, final_sparsity=float(config.prune_sparsity),
                                            begin_step=0, end_step=end_step, frequency=frequency)
    fresh = keras.models.clone_model(model)
    fresh.set_weights(model.get_weights())
    names: list[str] = []

    def wrap(layer):
        if _prunable(layer, config):
            names.append(layer.name)
            return sparsity_api.prune_low_magnitude(layer, pruning_schedule=schedule)
        return layer

    wrapped = keras.models.clone_model(fresh, clone_function=wrap)
    compile_for_training(wrapped, config.learning_rate)
    # the schedule only advances with UpdatePruningStep: without it nothing is pruned
    fit(wrapped, data, config.prune_epochs, config.batch_size, quiet, callbacks=[sparsity_api.UpdatePruningStep()])
    stripped = sparsity_api.strip_pruning(wrapped)
    layers = {layer.name: layer for layer in all_layers(stripped)}
    report = []
    for name in names:
        layer = layers[name]
        kernel = np.asarray(getattr(layer, clusterable_weight_names(layer)[0]))
        report.append(PrunedLayer(name, layer.__class__.__name__, float(np.mean(kernel == 0.0))))
    return stripped, tuple(report)
