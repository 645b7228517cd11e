"""The data a rewrite is checked on: held back from the fit, read with one set of dtype rules.

- ``hold_back``: a seeded split, at least 32 samples and one in eight held back (and every sample the
  fit would not use), disjoint from the fit's; below 64 samples the check is in-sample and says so.
- ``load_samples``: float data is the model's float input; integer data only in the input's own dtype
  (uint8 pixels for an int8 input are refused with the fix, never cast); float data outside the
  input's quantization range for more than 1% of values gives a warning with the figures; labels ``y``.
- ``default_check_samples``: bounded, from the model's size.
"""
from __future__ import annotations

import numpy as np
import pytest

from toolchain.core.errors import DataError
from toolchain.rewrite.calibration_set import (
    MAX_CHECK_SAMPLES,
    MIN_CHECK_SAMPLES,
    hold_back,
)
from toolchain.rewrite.result import Evidence
from toolchain.tflite.inputs import load_samples
from toolchain.tflite.interpreter import TensorSpec

INPUT = TensorSpec("image", (1, 4, 4, 1), np.dtype(np.int8), 1 / 255, -128)


def _rows(n: int) -> list:
    return [[np.full((1, 4), i, np.int32)] for i in range(n)]  # sample i holds the value i: identifiable


def _ids(rows: list) -> set[int]:
    return {int(r[0][0, 0]) for r in rows}


@pytest.mark.parametrize("n, fit_samples, held", [(64, 512, 32), (200, 512, 32), (512, 512, 64), (1000, 512, 488)])
def test_hold_back_sizes_and_disjoint(n, fit_samples, held):
    split = hold_back(_rows(n), "cal.npz", fit_samples, seed=3)
    assert split.check.evidence is Evidence.HELD_OUT and split.check.samples == held
    assert split.fit.samples == n - held and split.fit.samples <= fit_samples
    fit, check = _ids(split.fit.rows), _ids(split.check.rows)
    assert not fit & check and fit | check == set(range(n))
    assert split.check.source == f"{held} held-back samples of cal.npz"
    again = hold_back(_rows(n), "cal.npz", fit_samples, seed=3)
    assert _ids(again.check.rows) == check  # seeded
    assert _ids(hold_back(_rows(n), "cal.npz", fit_samples, seed=4).check.rows) != check


def test_too_few_samples_are_checked_in_sample_and_said_so():
    split = hold_back(_rows(40), "cal.npz", 512)
    assert split.check.evidence is Evidence.IN_SAMPLE and split.fit.samples == split.check.samples == 40
    assert "the same the fit used" in split.check.source and "64 or more" in split.check.source


def test_check_set_prefix_keeps_labels_and_recounts():
    split = hold_back(_rows(300), "cal.npz", 100, labels=np.arange(300))
    first = split.check.first(50)
    assert first.samples == 50 and first.source == "50 held-back samples of cal.npz"
    assert [int(r[0][0, 0]) for r in first.rows] == list(first.labels)  # labels follow their samples


def _npz(tmp_path, **arrays):
    path = tmp_path / "data.npz"
    np.savez(path, **arrays)
    return path


def test_uint8_pixels_for_an_int8_input_are_refused_with_the_fix(tmp_path):
    path = _npz(tmp_path, x=np.full((8, 4, 4, 1), 200, np.uint8))
    with pytest.raises(DataError, match=r"takes int8 and the data is uint8 \(values 200 to 200\).*/ 255"):
        load_samples(path, (INPUT,))


def test_integer_data_of_the_inputs_dtype_is_taken_as_quantized_values(tmp_path):
    x = np.random.default_rng(0).integers(-128, 128, (8, 4, 4, 1)).astype(np.int8)
    got = load_samples(_npz(tmp_path, x=x), (INPUT,))
    assert np.array_equal(np.concatenate([r[0] for r in got.rows]), x) and not got.warnings


def test_float_data_is_quantized_and_out_of_range_values_warn(tmp_path):
    x = np.linspace(0.0, 1.0, 8 * 16, dtype=np.float32).reshape(8, 4, 4, 1)
    got = load_samples(_npz(tmp_path, x=x, y=np.arange(8)), (INPUT,))
    expected = np.clip(np.round(x.astype(np.float64) * 255) - 128, -128, 127).astype(np.int8)
    assert np.array_equal(np.concatenate([r[0] for r in got.rows]), expected) and not got.warnings
    assert list(got.labels) == list(range(8))
    pixels = (x * 255).astype(np.float32)  # 0..255 where the model expects 0..1: nearly all clipped
    warned = load_samples(_npz(tmp_path, x=pixels), (INPUT,))
    (w,) = warned.warnings
    assert "99.2% of the values for input 'image' lie outside its quantization range [0, 1]" in w
    assert "data from 0 to 255" in w and "divided by 255" in w


def test_float_data_for_a_float_input_passes_and_integers_are_refused(tmp_path):
    spec = TensorSpec("x", (1, 3), np.dtype(np.float32), 0.0, 0)
    got = load_samples(_npz(tmp_path, x=np.ones((5, 3), np.float64)), (spec,))
    assert got.rows[0][0].dtype == np.float32 and not got.warnings
    with pytest.raises(DataError, match="takes float32 and the data is int64"):
        load_samples(_npz(tmp_path, x=np.ones((5, 3), np.int64)), (spec,))


def test_labels_must_be_one_class_per_sample(tmp_path):
    with pytest.raises(DataError, match="labels 'y' must be one integer class per sample"):
        load_samples(_npz(tmp_path, x=np.zeros((4, 16), np.float32), y=np.zeros((4, 2))), (INPUT,))


@pytest.mark.tf  # the model comes from the TFLite converter
def test_default_check_samples_bounded(dense_int8):
    from toolchain.rewrite.calibration_set import default_check_samples

    n = default_check_samples(dense_int8.read_bytes())
    assert MIN_CHECK_SAMPLES <= n <= MAX_CHECK_SAMPLES and n == MAX_CHECK_SAMPLES  # a tiny model: the cap
