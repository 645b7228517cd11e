"""Weight clustering with tfmot: which layers, how many clusters, wrapping and stripping.

The tfmot pitfalls of the design notes are handled here rather than left to the user:
a fresh clone before wrapping (wrapping a model twice fails), layers tfmot cannot
cluster are skipped with a warning that names them, and ``cluster_per_channel`` is
applied to Conv2D layers without a bias, which tfmot's own check skips by mistake (it
takes the last trainable weight, the bias, as the channel count; without a bias that is
the kernel itself)."""
from __future__ import annotations

import fnmatch
import sys
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np

from ..core.errors import ConfigError
from ..core.schemas import validate
from ..rewrite.config import MAX_CLUSTERS, MIN_CLUSTERS
from .distribute import Strategy, parse_strategy
from .tf_env import import_keras, import_tfmot


class CentroidInit(Enum):
    LINEAR = "linear"
    KMEANS_PLUS_PLUS = "kmeans++"
    DENSITY = "density"
    RANDOM = "random"

    def tfmot_value(self):
        ci = import_tfmot().clustering.keras.CentroidInitialization
        return {
            CentroidInit.LINEAR: ci.LINEAR,
            CentroidInit.KMEANS_PLUS_PLUS: ci.KMEANS_PLUS_PLUS,
            CentroidInit.DENSITY: ci.DENSITY_BASED,
            CentroidInit.RANDOM: ci.RANDOM,
        }[self]


class LayerSkipReason(Enum):
    RULE = "skipped by a layer rule"
    UNSUPPORTED = "tfmot cannot cluster this layer type"
    DEPTHWISE = "tfmot does not cluster depthwise kernels"
    TOO_FEW_WEIGHTS = "no more weights than clusters"
    FROZEN = "the layer is frozen (trainable=False)"


@dataclass(frozen=True)
class LayerRule:
    """Layers whose name matches ``pattern`` (shell-style: ``conv*``, ``block_?_dense``) get
    ``clusters`` clusters, or are left unclustered when ``clusters`` is None."""

    pattern: str
    clusters: int | None

    def to_dict(self) -> dict[str, Any]:
        return {"pattern": self.pattern, "skip": True} if self.clusters is None else {
            "pattern": self.pattern, "clusters": self.clusters}


@dataclass(frozen=True)
class FinetuneConfig:
    clusters: int = 16
    layer_rules: tuple[LayerRule, ...] = ()  # first match wins
    centroid_init: CentroidInit = CentroidInit.KMEANS_PLUS_PLUS
    per_channel: bool = False  # Conv2D only: K clusters in every output channel
    preserve_sparsity: bool = False  # keep zero weights at zero (pruned models)
    prune_sparsity: float | None = None  # prune this fraction of each clustered kernel first (then sparsity is preserved)
    prune_epochs: int = 2
    epochs: int = 2
    learning_rate: float = 1e-4
    batch_size: int = 32  # the global batch: under a distribution strategy Keras splits it over the replicas
    seed: int = 0
    strategy: Strategy = Strategy.DEFAULT  # where the fine-tune trains (toolchain.training.distribute)

    def __post_init__(self) -> None:
        object.__setattr__(self, "strategy", parse_strategy(self.strategy))
        if self.prune_sparsity is not None:
            s = self.prune_sparsity
            if isinstance(s, bool) or not isinstance(s, (int, float)) or not 0.0 < s < 1.0:  # NaN fails too
                raise ConfigError(f"prune sparsity must be a fraction between 0 and 1 (exclusive), got {s!r}")
            if not self.preserve_sparsity:
                # clustering a pruned model must keep its zeros: implied, not a second switch to forget
                object.__setattr__(self, "preserve_sparsity", True)
        if not isinstance(self.prune_epochs, int) or isinstance(self.prune_epochs, bool) or self.prune_epochs < 1:
            raise ConfigError(f"prune epochs must be a whole number >= 1, got {self.prune_epochs!r}")
        low = 3 if self.preserve_sparsity else MIN_CLUSTERS  # tfmot keeps one centroid at zero
        for what, k in [("clusters", self.clusters)] + [
            (f"clusters of layer rule '{r.pattern}'", r.clusters) for r in self.layer_rules if r.clusters is not None
        ]:
            if not isinstance(k, int) or isinstance(k, bool) or not low <= k <= MAX_CLUSTERS:
                extra = " with sparsity preservation" if self.preserve_sparsity else ""
                raise ConfigError(f"{what} must be an integer from {low} to {MAX_CLUSTERS}{extra}, got {k!r}")
        if not isinstance(self.epochs, int) or self.epochs < 0:
            raise ConfigError(f"epochs must be a whole number >= 0, got {self.epochs!r}")
        if not (isinstance(self.learning_rate, (int, float)) and 0 < self.learning_rate <= 1):
            raise ConfigError(f"learning rate must be in (0, 1], got {self.learning_rate!r}")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ConfigError(f"batch size must be a whole number >= 1, got {self.batch_size!r}")
        if not isinstance(self.seed, int) or not 0 <= self.seed < 2**32:
            raise ConfigError(f"seed must be a whole number from 0 to 2^32-1, got {self.seed!r}")
        for r in self.layer_rules:
            if not r.pattern:
                raise ConfigError("a layer rule needs a non-empty name pattern")

    def clusters_for(self, layer_name: str) -> tuple[int | None, LayerRule | None]:
        """(clusters, the rule that decided) for a layer; clusters None means skip."""
        for rule in self.layer_rules:
            if fnmatch.fnmatchcase(layer_name, rule.pattern):
                return rule.clusters, rule
        return self.clusters, None

    def to_dict(self) -> dict[str, Any]:
        return {
            "clusters": self.clusters,
            "layers": [r.to_dict() for r in self.layer_rules],
            "centroid_init": self.centroid_init.value,
            "per_channel": self.per_channel,
            "preserve_sparsity": self.preserve_sparsity,
            "prune": self.prune_sparsity,
            "prune_epochs": self.prune_epochs,
            "epochs": self.epochs,
            "learning_rate": self.learning_rate,
            "batch_size": self.batch_size,
            "seed": self.seed,
            "strategy": self.strategy.value,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any], what: str = "finetune config") -> FinetuneConfig:
        """From a config file's table (validated against schemas/finetune.schema.json)."""
        validate(raw, "finetune", what)
        kwargs: dict[str, Any] = {k: raw[k] for k in
                                  ("clusters", "per_channel", "preserve_sparsity", "prune_epochs", "epochs",
                                   "batch_size", "seed")
                                  if k in raw}
        if "prune" in raw:
            kwargs["prune_sparsity"] = float(raw["prune"])
        if "learning_rate" in raw:
            kwargs["learning_rate"] = float(raw["learning_rate"])
        if "centroid_init" in raw:
            kwargs["centroid_init"] = CentroidInit(raw["centroid_init"])
        if "strategy" in raw:
            kwargs["strategy"] = Strategy(raw["strategy"])
        rules = []
        for item in raw.get("layers", []):
            rules.append(LayerRule(item["pattern"], None if item.get("skip") else item["clusters"]))
        kwargs["layer_rules"] = tuple(rules)
        return cls(**kwargs)


def parse_layer_rule(text: str) -> LayerRule:
    """``PATTERN=K`` or ``PATTERN=skip`` (the --layer option)."""
    pattern, sep, value = text.rpartition("=")
    if not sep or not pattern:
        raise ConfigError(f"--layer {text!r}: expected PATTERN=CLUSTERS or PATTERN=skip")
    if value.strip().lower() == "skip":
        return LayerRule(pattern, None)
    try:
        return LayerRule(pattern, int(value))
    except ValueError:
        raise ConfigError(f"--layer {text!r}: '{value}' is neither a cluster count nor 'skip'") from None


@dataclass(frozen=True)
class ClusteredLayer:
    name: str
    layer_type: str
    clusters: int
    per_channel: bool
    distinct_values: int  # distinct float values in the clustered kernel, after stripping
    max_distinct_values_per_channel: int  # over output channels (the kernel's last axis)
    zero_fraction: float  # weights exactly zero (pruned ones stay zero with preserve_sparsity)


@dataclass(frozen=True)
class SkippedLayer:
    name: str
    layer_type: str
    reason: LayerSkipReason


def warn_user(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


# --- wrapping -------------------------------------------------------------------------------


def clusterable_weight_names(layer) -> list[str]:
    """Names of the weights tfmot would cluster in ``layer`` (empty: nothing to cluster)."""
    from tensorflow_model_optimization.python.core.clustering.keras import (
        clusterable_layer,
        clustering_registry,
    )

    if isinstance(layer, clusterable_layer.ClusterableLayer):
        return [name for name, _ in layer.get_clusterable_weights()]
    registry = clustering_registry.ClusteringRegistry
    if not registry.supports(layer):
        return []
    if layer.__class__ in registry._LAYERS_WEIGHTS_MAP:  # Conv*, Dense, Embedding, ...
        return list(registry._LAYERS_WEIGHTS_MAP[layer.__class__]) if layer.trainable_weights else []
    # RNNs and attention: tfmot has dedicated wrappers; report their kernels.
    return [w.name.split("/")[-1].split(":")[0] for w in layer.trainable_weights if len(w.shape) >= 2]


def _weights_per_cluster_unit(layer, names: list[str], per_channel: bool) -> int:
    """How many weights each clustering unit holds (the whole kernel, or one output channel)."""
    kernel = getattr(layer, names[0], None) if names else None
    if kernel is None:
        return 0
    size = int(np.prod(kernel.shape))
    if per_channel:
        return size // int(kernel.shape[-1])
    return size


@dataclass
class _Plan:
    clustered: dict[str, tuple[int, bool]] = field(default_factory=dict)  # name -> (clusters, per_channel)
    skipped: list[SkippedLayer] = field(default_factory=list)


def _wrap_layer(layer, config: FinetuneConfig, plan: _Plan):
    keras = import_keras()
    tfmot = import_tfmot()
    from tensorflow_model_optimization.python.core.clustering.keras import (
        cluster_wrapper,
    )

    if isinstance(layer, keras.Model):  # nested model: wrap its layers in a clone
        return keras.models.clone_model(layer, clone_function=lambda l: _wrap_layer(l, config, plan))
    kind = layer.__class__.__name__
    if not layer.trainable_weights:
        if getattr(layer, "kernel", None) is not None:  # a frozen layer with weights
            plan.skipped.append(SkippedLayer(layer.name, kind, LayerSkipReason.FROZEN))
            warn_user(f"layer '{layer.name}' ({kind}) is not clustered: {LayerSkipReason.FROZEN.value}")
        return layer  # pooling, activations, reshapes: nothing to cluster
    clusters, _ = config.clusters_for(layer.name)
    if clusters is None:
        plan.skipped.append(SkippedLayer(layer.name, kind, LayerSkipReason.RULE))
        return layer
    names = clusterable_weight_names(layer)
    if not names:
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            reason = LayerSkipReason.DEPTHWISE
        elif isinstance(layer, (keras.layers.BatchNormalization, keras.layers.LayerNormalization)):
            return layer  # normalisation parameters are not weights to cluster (BN folds into the conv)
        else:
            reason = LayerSkipReason.UNSUPPORTED
        plan.skipped.append(SkippedLayer(layer.name, kind, reason))
        warn_user(f"layer '{layer.name}' ({kind}) is not clustered: {reason.value}")
        return layer
    # Exactly Conv2D: a Conv2DTranspose kernel keeps its output channels on another axis.
    per_channel = config.per_channel and type(layer) is keras.layers.Conv2D
    unit_weights = _weights_per_cluster_unit(layer, names, per_channel)
    if unit_weights <= clusters:
        plan.skipped.append(SkippedLayer(layer.name, kind, LayerSkipReason.TOO_FEW_WEIGHTS))
        unit = "weights per output channel" if per_channel else "weights"
        warn_user(f"layer '{layer.name}' ({kind}) is not clustered: {unit_weights} {unit} for {clusters} clusters")
        return layer
    plan.clustered[layer.name] = (clusters, per_channel)
    params = {
        "number_of_clusters": clusters,
        "cluster_centroids_init": config.centroid_init.tfmot_value(),
        "preserve_sparsity": config.preserve_sparsity,
    }
    if isinstance(layer, keras.layers.Conv2D):
        # Not tfmot's cluster_weights: its weight-count check skips bias-less Conv2D
        # layers under per-channel clustering (see the module docstring); ours is above.
        return cluster_wrapper.ClusterWeights(layer, cluster_per_channel=per_channel, **params)
    return tfmot.clustering.keras.cluster_weights(layer, **params)


def cluster_model(model, config: FinetuneConfig):
    """A clone of ``model`` with clustering wrappers, and the plan of what was (not) wrapped."""
    keras = import_keras()
    fresh = keras.models.clone_model(model)  # wrapping needs layers that were never wrapped before
    fresh.set_weights(model.get_weights())
    plan = _Plan()
    clustered = keras.models.clone_model(fresh, clone_function=lambda l: _wrap_layer(l, config, plan))
    return clustered, plan


def strip_model(model):
    """The model without clustering wrappers (clustered weights kept); the model itself if it has none."""
    tfmot = import_tfmot()
    from tensorflow_model_optimization.python.core.clustering.keras import (
        cluster_wrapper,
    )

    has_wrappers = any(isinstance(l, cluster_wrapper.ClusterWeights) for l in all_layers(model))
    return tfmot.clustering.keras.strip_clustering(model) if has_wrappers else model


def all_layers(model):
    keras = import_keras()
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from all_layers(layer)


def distinct_values(kernel: np.ndarray) -> tuple[int, int]:
    """(distinct values in the whole kernel, the most in any output channel = last axis)."""
    k = np.asarray(kernel)
    total = int(np.unique(k).size)
    if k.ndim < 2:
        return total, total
    per_channel = k.reshape(-1, k.shape[-1])
    return total, max(int(np.unique(per_channel[:, c]).size) for c in range(per_channel.shape[1]))


def clustered_report(model, plan: _Plan) -> tuple[ClusteredLayer, ...]:
    layers = {l.name: l for l in all_layers(model)}
    out = []
    for name, (clusters, per_channel) in plan.clustered.items():
        layer = layers[name]
        names = clusterable_weight_names(layer) or ["kernel"]
        kernel = getattr(layer, names[0], None)
        if kernel is None:
            continue
        k = np.asarray(kernel)
        total, worst = distinct_values(k)
        out.append(ClusteredLayer(name, layer.__class__.__name__, clusters, per_channel, total, worst,
                                  round(float(np.mean(k == 0.0)), 6)))
    return tuple(out)
