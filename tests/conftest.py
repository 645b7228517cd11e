"""Shared fixtures: small real int8 models made once per session with the TFLite converter (and one written with
the flatbuffer object API, for tests the core install runs); skips that fail under CI."""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

REPO = Path(__file__).resolve().parents[1]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
# Arm's Ethos-N support library, when the machine has one (tests/test_ethos_n_bridge.py). Every other test runs
# without it, so Ethos-N figures are the calibrated model's wherever the suite runs.
ETHOSN_SUPPORT_LIBRARY = os.environ.pop("ETHOSN_SUPPORT_LIBRARY", None)


def need_system(what: str, ok: bool, install_hint: str) -> None:
    """Skip on a user's machine that lacks a Debian package; fail under CI (make test installs it)."""
    if ok:
        return
    msg = f"{what} is not installed ({install_hint})"
    if IN_CI:
        pytest.fail(f"CI=true but {msg}")
    pytest.skip(msg)


def need_executable(name: str, package: str) -> str:
    path = shutil.which(name)
    need_system(name, path is not None, f"apt-get install {package}")
    return path  # type: ignore[return-value]


def need_module(name: str, extra: str):
    """The Python module of an extra (``make test`` installs every extra): skip without it, fail under CI."""
    import importlib

    try:
        module = importlib.import_module(name)
    except ImportError:
        module = None
    need_system(name, module is not None, f"pip install -e '.[{extra}]'")
    return module


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("models")


def _cached(model_dir: Path, name: str, build) -> Path:
    path = model_dir / name
    if not path.exists():
        path.write_bytes(build())
    return path


@pytest.fixture(scope="session")
def conv_bn_int8(model_dir) -> Path:
    """Conv+BN (folded, per-channel int8), conv, global pool, dense: 3 weight tensors."""
    import model_factory as mf

    return _cached(model_dir, "conv_bn_int8.tflite", lambda: mf.convert_int8(mf.conv_bn_model()))


@pytest.fixture(scope="session")
def depthwise_int8(model_dir) -> Path:
    import model_factory as mf

    return _cached(model_dir, "depthwise_int8.tflite", lambda: mf.convert_int8(mf.depthwise_model()))


@pytest.fixture(scope="session")
def dense_int8(model_dir) -> Path:
    import model_factory as mf

    return _cached(model_dir, "dense_int8.tflite", lambda: mf.convert_int8(mf.dense_model()))


@pytest.fixture(scope="session")
def dense_float(model_dir) -> Path:
    import model_factory as mf

    return _cached(model_dir, "dense_float.tflite", lambda: mf.convert_float(mf.dense_model()))


@pytest.fixture(scope="session")
def core_dense_int8(model_dir) -> Path:
    """An int8 Dense stack like ``dense_int8``, written with the flatbuffer object API (no TensorFlow)."""
    import flatbuffer_models as fm

    return _cached(model_dir, "core_dense_int8.tflite", fm.dense_int8_model)
