"""Models for the robustness tests (fuzzing, bad inputs, determinism), made with the real converter.

Import the fixtures into a test module with ``from fixtures_robustness import *``.
"""
from __future__ import annotations

import pytest

__all__ = ["fuzz_seeds_dir", "int16x8_model", "robustness_models_dir"]


@pytest.fixture(scope="session")
def robustness_models_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("robustness_models")


def int16x8_bytes() -> bytes:
    """The conv+BN model in the converter's 16x8 mode: int16 activations, int8 weights, int64 biases."""
    import model_factory as mf

    return mf.convert_int16x8(mf.conv_bn_model(), samples=16)


@pytest.fixture(scope="session")
def int16x8_model(robustness_models_dir):
    path = robustness_models_dir / "int16x8.tflite"
    if not path.exists():
        path.write_bytes(int16x8_bytes())
    return path


@pytest.fixture(scope="session")
def fuzz_seeds_dir(robustness_models_dir, conv_bn_int8, depthwise_int8, dense_int8):
    """The fuzz worker's seeds: the small real int8 models of conftest."""
    import fuzz_mutators as fm

    return fm.write_seeds(
        robustness_models_dir / "seeds",
        {"conv_bn_int8": conv_bn_int8, "depthwise_int8": depthwise_int8, "dense_int8": dense_int8},
    )
