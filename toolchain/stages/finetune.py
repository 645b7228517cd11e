"""Weight clustering with tfmot: wrap, fine-tune, strip, measure.

The tfmot pitfalls of DESIGN.md 4 are handled here rather than left to the user:
legacy Keras, a fresh clone before wrapping (wrapping a model twice
fails), layers tfmot cannot cluster are skipped with a warning that names them,
and ``cluster_per_channel`` is applied to Conv2D layers without a bias, which
tfmot's own check skips by mistake (it takes the last trainable weight, the
bias, as the channel count; without a bias that is the kernel itself).

This module is also the training side's one door to TensorFlow, legacy Keras (tf_keras)
and tfmot, and holds the Keras model I/O the other training stages share. tfmot 0.8.1 only
works with Keras 2: ``TF_USE_LEGACY_KERAS=1`` must be set before TensorFlow is first
imported, otherwise ``tf.keras`` is Keras 3 and tfmot's ``cluster_weights`` silently
returns None. Callers import through ``import_tf``/``import_keras``/``import_tfmot``,
inside their own functions, so importing a stage or command module never pays for
TensorFlow.
"""
from __future__ import annotations

import fnmatch
import io
import json
import os
import re
import sys
import tempfile
import time
import warnings
import zipfile
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from ..core.errors import ConfigError, DataError, InputError, ModelFormatError, ToolError
from ..core.fileio import atomic_write_bytes, atomic_write_json, read_input_bytes, sha256_bytes, sha256_file
from ..core.schemas import validate
from .datasets import Dataset, check_fits_model

# --------------------------------------------------------------------------- the Keras environment

_TRAIN_EXTRA_HINT = "install the training extra: pip install -e '.[train]'"


def _prepare_environment() -> None:
    if "tensorflow" not in sys.modules:
        os.environ["TF_USE_LEGACY_KERAS"] = "1"
        # TensorFlow's C++ start-up chatter (oneDNN, CUDA stubs) is noise for a CLI user.
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    elif os.environ.get("TF_USE_LEGACY_KERAS") not in ("1", "true", "True"):
        raise ToolError(
            "TensorFlow was imported before TF_USE_LEGACY_KERAS=1 was set, so tf.keras is Keras 3 "
            "and tfmot cannot work: set TF_USE_LEGACY_KERAS=1 before importing TensorFlow"
        )


# Lines TensorFlow's native code prints straight to fd 2 whatever TF_CPP_MIN_LOG_LEVEL says
# (TF 2.21 logs before absl is initialised): start-up notes and converter chatter.
_NATIVE_NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\)"
    r"|[IW]\d{4} [\d:. ]+\d+ \S+\.cc:\d+\]"
    r"|To enable the following instructions:"
    r"|fully_quantize: \d"
    r"|INFO: Created TensorFlow Lite)"
)


@contextmanager
def native_stderr_filtered():
    """Capture fd 2 (native code bypasses sys.stderr) and replay all but known noise lines."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no usable fd 2 (embedded use): nothing to filter
        yield
        return
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            for line in captured.read().decode("utf-8", errors="replace").splitlines():
                if not _NATIVE_NOISE.match(line):
                    print(line, file=sys.stderr)


def import_tf() -> ModuleType:
    """``tensorflow``, imported with the legacy-Keras switch set."""
    _prepare_environment()
    try:
        with native_stderr_filtered():
            import tensorflow as tf
    except ImportError as exc:
        raise ToolError(f"TensorFlow is not installed ({exc}); {_TRAIN_EXTRA_HINT}") from None
    # tfmot's CQAT trains centroids, not kernels, so TF warns on every step that kernels get
    # no gradient: expected, and noise to a user.
    tf.get_logger().setLevel("ERROR")
    return tf


def import_keras() -> ModuleType:
    """``tf_keras`` (Keras 2), the Keras that tfmot and the TFLite converter agree on."""
    import_tf()
    try:
        with native_stderr_filtered():
            import tf_keras as keras
    except ImportError as exc:
        raise ToolError(f"tf-keras is not installed ({exc}); {_TRAIN_EXTRA_HINT}") from None
    return keras


def import_tfmot() -> ModuleType:
    """``tensorflow_model_optimization`` (clustering, cluster-preserving QAT)."""
    import_keras()
    try:
        with native_stderr_filtered():
            import tensorflow_model_optimization as tfmot
    except ImportError as exc:
        raise ToolError(f"tensorflow-model-optimization is not installed ({exc}); {_TRAIN_EXTRA_HINT}") from None
    return tfmot


def seed_everything(seed: int) -> None:
    """Python, NumPy and TensorFlow seeds plus deterministic kernels, for repeatable runs."""
    tf = import_tf()
    keras = import_keras()
    keras.utils.set_random_seed(int(seed))
    try:
        tf.config.experimental.enable_op_determinism()
    except Exception:  # older TF or already enabled: determinism is best effort here
        pass


def tool_versions() -> dict[str, str]:
    """Versions of the training stack, recorded in every summary this side writes."""
    from importlib import metadata

    versions = {}
    for dist in ("tensorflow", "tf-keras", "tensorflow-model-optimization", "ai-edge-litert"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    return versions


# --- Keras model files -------------------------------------------------------------------

KERAS_SUFFIXES = (".keras", ".h5")
_ZIP_MAGIC = b"PK\x03\x04"
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
# A fixed zip entry time: the archive's content must not depend on when it was written.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (TensorFlow's can run to pages)."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def load_keras_model(path: str | os.PathLike[str]):
    """A compiled-free tf_keras model from a .keras or .h5 file (clustering/QAT wrappers allowed)."""
    p = Path(path)
    if p.suffix.lower() not in KERAS_SUFFIXES:
        raise ModelFormatError(f"{p}: expected a Keras model file ending in .keras or .h5")
    head = read_input_bytes(p, "Keras model")[:8]
    magic = _ZIP_MAGIC if p.suffix.lower() == ".keras" else _HDF5_MAGIC
    if not head.startswith(magic):
        kind = "zip archive (.keras)" if p.suffix.lower() == ".keras" else "HDF5 file (.h5)"
        raise ModelFormatError(f"{p} is not a Keras model: not a {kind}")
    keras = import_keras()
    tfmot = import_tfmot()
    try:
        # The scopes let a model saved with clustering or QAT wrappers load; we strip them later.
        with tfmot.clustering.keras.cluster_scope(), tfmot.quantization.keras.quantize_scope():
            model = keras.models.load_model(p, compile=False)
    except Exception as exc:  # Keras raises many types (ValueError, KeyError, OSError, TypeError...)
        raise ModelFormatError(f"cannot load Keras model {p}: {first_line(exc)}") from None
    if not isinstance(model, keras.Model):
        raise ModelFormatError(f"{p} did not load as a Keras model")
    return model


def check_classifier(model, what: str = "model") -> tuple[tuple[int | None, ...], int]:
    """(sample shape without batch, number of classes) of a single-input, single-output classifier."""
    keras = import_keras()
    if not getattr(model, "_is_graph_network", False) and not isinstance(model, keras.Sequential):
        raise ModelFormatError(f"{what} is a subclassed Keras model: save a Functional or Sequential model")
    if not model.inputs or not model.outputs:
        raise ModelFormatError(f"{what} has no defined input shape (an unbuilt Sequential model?)")
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ModelFormatError(
            f"{what} has {len(model.inputs)} inputs and {len(model.outputs)} outputs; a classifier with one "
            "input and one output is expected"
        )
    in_shape = tuple(model.inputs[0].shape)[1:]
    out_shape = tuple(model.outputs[0].shape)
    if len(out_shape) != 2 or out_shape[1] is None or out_shape[1] < 2:
        raise ModelFormatError(f"{what} output has shape {out_shape}; expected (batch, classes) with classes >= 2")
    if any(d is None for d in in_shape):
        raise ModelFormatError(f"{what} input has unknown dimensions {in_shape}: fix the input shape first")
    return tuple(int(d) for d in in_shape), int(out_shape[1])


def outputs_probabilities(model) -> bool:
    """True when the last layer applies softmax (loss without from_logits), False for logits."""
    keras = import_keras()
    last = model.layers[-1]
    if isinstance(last, keras.layers.Softmax):
        return True
    act = getattr(last, "activation", None)
    return act is keras.activations.softmax or getattr(act, "__name__", "") == "softmax"


def keras_accuracy(model, x: np.ndarray, y: np.ndarray, batch_size: int = 256) -> float:
    """Top-1 accuracy (0..1) of a Keras classifier in inference mode."""
    if len(x) == 0:
        raise DataError("cannot measure accuracy on zero samples")
    logits = model.predict(x, batch_size=batch_size, verbose=0)
    return float(np.mean(np.argmax(logits, axis=1) == np.asarray(y).reshape(-1)))


def _normalise_keras_zip(data: bytes) -> bytes:
    """Rewrite a .keras archive without its save date and with fixed entry times."""
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as dst:
        for name in sorted(src.namelist()):
            content = src.read(name)
            if name == "metadata.json":
                meta = json.loads(content)
                meta.pop("date_saved", None)
                content = json.dumps(meta, sort_keys=True).encode()
            info = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            dst.writestr(info, content)
    return out.getvalue()


def keras_model_bytes(model, suffix: str = ".keras") -> bytes:
    """The bytes of ``model`` saved as .keras (normalised, no timestamps) or .h5."""
    suffix = suffix.lower()
    if suffix not in KERAS_SUFFIXES:
        raise InputError(f"output must end in .keras or .h5, got '{suffix}'")
    if getattr(model, "optimizer", None) is not None:
        # Optimizer state would double the file and means nothing downstream: save a clean copy.
        keras = import_keras()
        clean = keras.models.clone_model(model)
        clean.set_weights(model.get_weights())
        model = clean
    with tempfile.TemporaryDirectory(prefix="toolchain-keras-") as tmp:
        path = Path(tmp) / f"model{suffix}"
        with warnings.catch_warnings():
            # .h5 is what the user asked for: Keras' "legacy format" advice is noise here.
            warnings.filterwarnings("ignore", message="You are saving your model as an HDF5 file")
            model.save(path)
        data = path.read_bytes()
    return _normalise_keras_zip(data) if suffix == ".keras" else data


def save_keras_model(model, path: str | os.PathLike[str]) -> bytes:
    """Save atomically; returns the bytes written."""
    data = keras_model_bytes(model, Path(path).suffix)
    atomic_write_bytes(path, data)
    return data


# --------------------------------------------------------------------------- clustering

MIN_CLUSTERS = 2
MAX_CLUSTERS = 256  # an int8 tensor cannot hold more distinct values


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


class SkipReason(Enum):
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
    epochs: int = 2
    learning_rate: float = 1e-4
    batch_size: int = 32
    seed: int = 0

    def __post_init__(self) -> None:
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
            "epochs": self.epochs,
            "learning_rate": self.learning_rate,
            "batch_size": self.batch_size,
            "seed": self.seed,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any], what: str = "finetune config") -> "FinetuneConfig":
        """From a config file's table (validated against schemas/finetune.schema.json)."""
        validate(raw, "finetune", what)
        kwargs: dict[str, Any] = {k: raw[k] for k in
                                  ("clusters", "per_channel", "preserve_sparsity", "epochs", "batch_size", "seed")
                                  if k in raw}
        if "learning_rate" in raw:
            kwargs["learning_rate"] = float(raw["learning_rate"])
        if "centroid_init" in raw:
            kwargs["centroid_init"] = CentroidInit(raw["centroid_init"])
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


@dataclass(frozen=True)
class SkippedLayer:
    name: str
    layer_type: str
    reason: SkipReason


@dataclass(frozen=True)
class FinetuneResult:
    accuracy_before: float  # top-1 on the test split, 0..1
    accuracy_after: float
    clustered_layers: tuple[ClusteredLayer, ...]
    skipped_layers: tuple[SkippedLayer, ...]
    epochs: int
    train_samples: int
    test_samples: int
    elapsed_s: float = field(compare=False)

    def summary(self) -> dict[str, Any]:
        """Deterministic content for the JSON summary (no times)."""
        return {
            "accuracy_before": self.accuracy_before,
            "accuracy_after": self.accuracy_after,
            "clustered_layers": [asdict(c) for c in self.clustered_layers],
            "skipped_layers": [
                {"name": s.name, "layer_type": s.layer_type, "reason": s.reason.value} for s in self.skipped_layers
            ],
            "epochs": self.epochs,
            "train_samples": self.train_samples,
            "test_samples": self.test_samples,
        }


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


# --- wrapping -------------------------------------------------------------------------------


def _clusterable_weight_names(layer) -> list[str]:
    """Names of the weights tfmot would cluster in ``layer`` (empty: nothing to cluster)."""
    from tensorflow_model_optimization.python.core.clustering.keras import clusterable_layer, clustering_registry

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
    from tensorflow_model_optimization.python.core.clustering.keras import cluster_wrapper

    if isinstance(layer, keras.Model):  # nested model: wrap its layers in a clone
        return keras.models.clone_model(layer, clone_function=lambda l: _wrap_layer(l, config, plan))
    kind = layer.__class__.__name__
    if not layer.trainable_weights:
        if getattr(layer, "kernel", None) is not None:  # a frozen layer with weights
            plan.skipped.append(SkippedLayer(layer.name, kind, SkipReason.FROZEN))
            _warn(f"layer '{layer.name}' ({kind}) is not clustered: {SkipReason.FROZEN.value}")
        return layer  # pooling, activations, reshapes: nothing to cluster
    clusters, _ = config.clusters_for(layer.name)
    if clusters is None:
        plan.skipped.append(SkippedLayer(layer.name, kind, SkipReason.RULE))
        return layer
    names = _clusterable_weight_names(layer)
    if not names:
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            reason = SkipReason.DEPTHWISE
        elif isinstance(layer, (keras.layers.BatchNormalization, keras.layers.LayerNormalization)):
            return layer  # normalisation parameters are not weights to cluster (BN folds into the conv)
        else:
            reason = SkipReason.UNSUPPORTED
        plan.skipped.append(SkippedLayer(layer.name, kind, reason))
        _warn(f"layer '{layer.name}' ({kind}) is not clustered: {reason.value}")
        return layer
    # Exactly Conv2D: a Conv2DTranspose kernel keeps its output channels on another axis.
    per_channel = config.per_channel and type(layer) is keras.layers.Conv2D
    unit_weights = _weights_per_cluster_unit(layer, names, per_channel)
    if unit_weights <= clusters:
        plan.skipped.append(SkippedLayer(layer.name, kind, SkipReason.TOO_FEW_WEIGHTS))
        unit = "weights per output channel" if per_channel else "weights"
        _warn(f"layer '{layer.name}' ({kind}) is not clustered: {unit_weights} {unit} for {clusters} clusters")
        return layer
    plan.clustered[layer.name] = (clusters, per_channel)
    params = dict(
        number_of_clusters=clusters,
        cluster_centroids_init=config.centroid_init.tfmot_value(),
        preserve_sparsity=config.preserve_sparsity,
    )
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
    from tensorflow_model_optimization.python.core.clustering.keras import cluster_wrapper

    has_wrappers = any(isinstance(l, cluster_wrapper.ClusterWeights) for l in _all_layers(model))
    return tfmot.clustering.keras.strip_clustering(model) if has_wrappers else model


def _all_layers(model):
    keras = import_keras()
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)


def distinct_values(kernel: np.ndarray) -> tuple[int, int]:
    """(distinct values in the whole kernel, the most in any output channel = last axis)."""
    k = np.asarray(kernel)
    total = int(np.unique(k).size)
    if k.ndim < 2:
        return total, total
    per_channel = k.reshape(-1, k.shape[-1])
    return total, max(int(np.unique(per_channel[:, c]).size) for c in range(per_channel.shape[1]))


def _clustered_report(model, plan: _Plan) -> tuple[ClusteredLayer, ...]:
    layers = {l.name: l for l in _all_layers(model)}
    out = []
    for name, (clusters, per_channel) in plan.clustered.items():
        layer = layers[name]
        names = _clusterable_weight_names(layer) or ["kernel"]
        kernel = getattr(layer, names[0], None)
        if kernel is None:
            continue
        total, worst = distinct_values(np.asarray(kernel))
        out.append(ClusteredLayer(name, layer.__class__.__name__, clusters, per_channel, total, worst))
    return tuple(out)


# --- training -------------------------------------------------------------------------------


def epoch_line_callback(epochs: int):
    keras = import_keras()

    class EpochLine(keras.callbacks.Callback):
        """One line per epoch (quiet mode), instead of Keras' progress bar."""

        def on_epoch_begin(self, epoch, logs=None):
            self._t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            print(
                f"epoch {epoch + 1}/{epochs}: loss {logs.get('loss', float('nan')):.4f}, "
                f"train accuracy {logs.get('accuracy', float('nan')):.4f}, {time.perf_counter() - self._t0:.1f} s",
                flush=True,
            )

    return EpochLine()


def compile_for_training(model, learning_rate) -> None:
    """Adam (``learning_rate``: a float or a Keras schedule), sparse cross-entropy, accuracy."""
    keras = import_keras()
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=not outputs_probabilities(model)),
        metrics=["accuracy"],
    )


def fit(model, data: Dataset, epochs: int, batch_size: int, quiet: bool) -> None:
    """Keras' progress output, or one line per epoch when ``quiet``."""
    if epochs <= 0:
        return
    model.fit(
        data.x_train,
        data.y_train,
        epochs=epochs,
        batch_size=batch_size,
        shuffle=True,
        verbose=0 if quiet else 1,
        callbacks=[epoch_line_callback(epochs)] if quiet else [],
    )


def finetune_model(model, data: Dataset, config: FinetuneConfig, quiet: bool = False):
    """Cluster, fine-tune and strip a loaded Keras classifier. Returns (stripped model, result).

    ``data`` is checked against the model (shapes, label range) before any training.
    """
    t0 = time.perf_counter()
    in_shape, classes = check_classifier(model)
    data = check_fits_model(data, in_shape, classes)
    seed_everything(config.seed)
    model = strip_model(model)  # a model saved with wrappers still in it
    accuracy_before = keras_accuracy(model, data.x_test, data.y_test)
    clustered, plan = cluster_model(model, config)
    if not plan.clustered:
        _warn("no layer was clustered: the output is the input model, fine-tuned")
    compile_for_training(clustered, config.learning_rate)
    fit(clustered, data, config.epochs, config.batch_size, quiet)
    stripped = strip_model(clustered)
    accuracy_after = keras_accuracy(stripped, data.x_test, data.y_test)
    result = FinetuneResult(
        accuracy_before=accuracy_before,
        accuracy_after=accuracy_after,
        clustered_layers=_clustered_report(stripped, plan),
        skipped_layers=tuple(plan.skipped),
        epochs=config.epochs,
        train_samples=int(len(data.x_train)),
        test_samples=int(len(data.x_test)),
        elapsed_s=time.perf_counter() - t0,
    )
    return stripped, result


def summary_path(output: str | Path) -> Path:
    """Where the JSON summary of an output goes: next to it, ``<output>.json``."""
    p = Path(output)
    return p.with_name(p.name + ".json")


def finetune_file(
    model_path: str | Path, data: Dataset, output: str | Path, config: FinetuneConfig, quiet: bool = False
) -> FinetuneResult:
    """``toolchain finetune``: load, cluster + fine-tune, save OUT (.keras/.h5) and OUT.json."""
    out = Path(output)
    if out.suffix.lower() not in (".keras", ".h5"):
        raise ConfigError(f"output {out} must end in .keras or .h5")
    if out.resolve() == Path(model_path).resolve():
        raise InputError(f"output {out} would overwrite the input model: choose another path")
    model = load_keras_model(model_path)
    stripped, result = finetune_model(model, data, config, quiet=quiet)
    data_bytes = keras_model_bytes(stripped, out.suffix)
    atomic_write_bytes(out, data_bytes)
    atomic_write_json(
        summary_path(out),
        {
            "stage": "finetune",
            "input_model": {"file": Path(model_path).name, "sha256": sha256_file(model_path)},
            "data": data.describe(),
            "config": config.to_dict(),
            "result": result.summary(),
            "output_model": {"file": out.name, "sha256": sha256_bytes(data_bytes), "bytes": len(data_bytes)},
            "tool_versions": tool_versions(),
        },
    )
    return result
