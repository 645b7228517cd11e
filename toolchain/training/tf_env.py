"""The training side's one door to TensorFlow, legacy Keras (tf_keras) and tfmot.

tfmot 0.8.1 only works with Keras 2: ``TF_USE_LEGACY_KERAS=1`` must be set before
TensorFlow is first imported, otherwise ``tf.keras`` is Keras 3 and tfmot's
``cluster_weights`` silently returns None. Callers import through ``import_tf`` /
``import_keras`` / ``import_tfmot`` inside their own functions, so importing a module
never pays for TensorFlow."""
from __future__ import annotations

import os
import re
import sys
import tempfile
from contextlib import contextmanager, suppress
from types import ModuleType

from ..core.errors import ToolError

_NATIVE_NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\)"
    r"|[IW]\d{4} [\d:. ]+\d+ \S+\.cc:\d+\]"
    r"|To enable the following instructions:"
    r"|fully_quantize: \d"
    r"|INFO: Created TensorFlow Lite)"
)

# --------------------------------------------------------------------------- the Keras environment

_TRAIN_EXTRA_HINT = "install the training extra: pip install 'ethos-palette-toolchain[train]' (in a checkout: pip install -e '.[train]')"


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


TRAINING_PACKAGES = ("tensorflow", "tf_keras", "tensorflow_model_optimization")


def require_training_stack() -> None:
    """Refuse early, with the install line, when the training extra is not installed (no import, no cost)."""
    from importlib.util import find_spec

    missing = [name for name in TRAINING_PACKAGES if find_spec(name) is None]
    if missing:
        raise ToolError(f"{', '.join(missing)} not installed: {_TRAIN_EXTRA_HINT}")


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
    # best effort: a TensorFlow before 2.8 has no enable_op_determinism (calling it again is harmless)
    with suppress(AttributeError):
        tf.config.experimental.enable_op_determinism()


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


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (TensorFlow's can run to pages)."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
