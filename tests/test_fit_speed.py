"""The output-aware fit's fast paths compute what the plain ones do: exact Hessians, blockwise input
quantisation, LiteRT running ahead in a thread, fits two at a time, per-value lookups; and the bytes
do not depend on how many threads BLAS is allowed."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO
from threadpoolctl import threadpool_info, threadpool_limits

from toolchain.algorithms.gram import augmented_gram, exact_block_rows
from toolchain.algorithms.joint import distinct_per_row
from toolchain.algorithms.palette import solve_palette, value_weights
from toolchain.algorithms.refit import refit_scales
from toolchain.core.threads import one_blas_thread
from toolchain.tflite import interpreter as rt
from toolchain.tflite.interpreter import QUANTIZE_BLOCK, TensorSpec, quantize_input


def _exact(x: np.ndarray) -> np.ndarray:
    """[x, 1]^T [x, 1] in Python integers' arithmetic (int64 products and sums), per channel for 3-D x."""
    xi = np.rint(x).astype(np.int64)
    z = np.concatenate([xi, np.ones(xi.shape[:-1] + (1,), np.int64)], axis=-1)
    return np.matmul(np.swapaxes(z, -1, -2), z).astype(np.float64)


def test_gram_is_exact_where_one_float32_product_rounds():
    # 1,000 rows of the widest int8 offsets: any float32 sum of them passes 2^24 and rounds
    x = np.full((1000, 3), 255.0, np.float32)
    x[::7, 1] = -255.0
    x[::3, 2] = 17.0
    naive = (x.T @ x).astype(np.float64)
    assert not np.array_equal(naive, _exact(x)[:3, :3])  # the plain float32 product does round here
    np.testing.assert_array_equal(augmented_gram(x), _exact(x))
    rng = np.random.default_rng(0)
    per_channel = rng.integers(-255, 256, (5, 700, 9)).astype(np.float32)
    np.testing.assert_array_equal(augmented_gram(per_channel), _exact(per_channel))
    wide = rng.integers(-32768, 32768, (300, 4)).astype(np.float32)  # int16 activations: float64 products
    np.testing.assert_array_equal(augmented_gram(wide), _exact(wide))
    assert exact_block_rows(255) == 258 and exact_block_rows(5000) == 0


def test_gram_bytes_do_not_depend_on_blas_threads():
    x = np.random.default_rng(1).integers(-128, 128, (3000, 300)).astype(np.float32)
    with threadpool_limits(1, user_api="blas"):
        one = augmented_gram(x)
    with threadpool_limits(2, user_api="blas"):
        two = augmented_gram(x)
    assert one.tobytes() == two.tobytes()


def test_one_blas_thread_inside_the_block_only():
    before = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
    with one_blas_thread():
        assert all(i["num_threads"] == 1 for i in threadpool_info() if i["user_api"] == "blas")
    assert [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"] == before


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16])
def test_blockwise_quantisation_equals_the_whole_array_expression(dtype):
    rng = np.random.default_rng(2)
    spec = TensorSpec("x", (1, 7), np.dtype(dtype), 0.0123, 3)
    x = rng.normal(0, 2, (QUANTIZE_BLOCK // 7 + 5, 7)).astype(np.float32)  # over one block, not a multiple of it
    x[0, :3] = [0.5 * 0.0123, 2.5 * 0.0123, -1.5 * 0.0123]  # halves: round to even
    info = np.iinfo(dtype)
    expected = np.clip(np.round(x.astype(np.float64) / 0.0123) + 3, info.min, info.max).astype(dtype)
    got = quantize_input(x, spec)
    assert got.dtype == np.dtype(dtype) and got.shape == x.shape
    np.testing.assert_array_equal(got, expected)
    assert quantize_input(np.zeros((0, 7), np.float32), spec).shape == (0, 7)


def test_distinct_per_row_counts_like_unique():
    q = np.random.default_rng(3).integers(-128, 128, (40, 70)).astype(np.int8)
    q[5] = 7
    np.testing.assert_array_equal(distinct_per_row(q), [np.unique(r).size for r in q])


def test_refit_with_per_value_lookup_is_the_same_refit():
    rng = np.random.default_rng(4)
    q = rng.integers(-127, 128, (12, 600)).astype(np.int8)
    q[:, :50] = 0
    scales = rng.uniform(0.001, 0.01, 12)
    f = scales[:, None] * q.astype(np.float64)
    values, weights = value_weights(q, scales**2, 0)
    sol = solve_palette(values, weights, 8)
    lut = np.arange(-128, 128)
    lut[values + 128] = sol.palette[sol.point_to_entry]
    codes = lut[q.astype(np.int64) + 128]
    plain = refit_scales(f, codes, scales, sol.palette)
    fast = refit_scales(f, codes, scales, sol.palette, values=q)
    assert plain.iterations > 1
    np.testing.assert_array_equal(fast.codes, plain.codes)
    np.testing.assert_array_equal(fast.scales, plain.scales)
    assert fast.error == plain.error


@pytest.mark.tf
def test_capture_ahead_gives_each_batch_in_order_and_stops_cleanly(conv_bn_int8):
    from toolchain.rewrite.layers import FitLayer, describe_layer
    from toolchain.tflite.activations import ActivationCapture, capture_batches
    from toolchain.tflite.graph import find_weight_tensors
    from toolchain.tflite.inputs import random_inputs
    from toolchain.tflite.model_io import read_model

    data = conv_bn_int8.read_bytes()
    model = read_model(data)
    rows = random_inputs(rt.input_specs(data), 11, 0)
    layers = [describe_layer(model, w) for w in find_weight_tensors(model)]
    tensors = sorted({la.input_index for la in layers if isinstance(la, FitLayer)})  # what the fit captures
    got = list(capture_batches(data, rows, tensors, 4))
    assert [s for s, _ in got] == [0, 4, 8]
    one = ActivationCapture(data)
    for start, batch in got:
        for j in range(len(batch[tensors[0]])):
            ref = one.run([rows[start + j]], tensors)
            for t in tensors:
                np.testing.assert_array_equal(batch[t][j], ref[t][0])
    for _ in capture_batches(data, rows, tensors, 4):
        break  # the batch running ahead is waited for, not left behind


_FIT = """
import hashlib, sys
from pathlib import Path
from toolchain.rewrite.config import ReclusterConfig
from toolchain.rewrite.output_aware import Calibration
from toolchain.rewrite.recluster import recluster_model
from toolchain.tflite import interpreter as rt
from toolchain.tflite.inputs import random_inputs
data = Path(sys.argv[1]).read_bytes()
rows = random_inputs(rt.input_specs(data), 48, 0)
out, _ = recluster_model(data, ReclusterConfig(clusters=4, include_depthwise=True, segments=2), Calibration(rows, "r"))
print(hashlib.sha256(out).hexdigest())
"""


@pytest.mark.tf
def test_output_aware_bytes_do_not_depend_on_blas_threads(depthwise_int8):
    """Two segments: the second sees the first's rewrite (the cross statistics), and layers are fitted in pairs."""
    digests = set()
    for threads in ("1", "2"):
        env = dict(os.environ, OPENBLAS_NUM_THREADS=threads, OMP_NUM_THREADS=threads, PYTHONPATH=str(REPO))
        r = subprocess.run([sys.executable, "-c", _FIT, str(depthwise_int8)], env=env, capture_output=True, text=True,
                           check=True)
        digests.add(r.stdout.strip())
    assert len(digests) == 1
    assert len(next(iter(digests))) == len(hashlib.sha256().hexdigest())


@pytest.mark.tf
def test_weight_space_fits_two_at_a_time_write_what_one_at_a_time_writes(conv_bn_int8, depthwise_int8):
    from toolchain.rewrite.config import ReclusterConfig, clusters_for
    from toolchain.rewrite.recluster import recluster_model, rewrite_on_weights
    from toolchain.tflite.editor import ModelEditor
    from toolchain.tflite.graph import find_weight_tensors, tensor_values
    from toolchain.tflite.model_io import read_model, write_model

    for path in (conv_bn_int8, depthwise_int8):
        data = path.read_bytes()
        config = ReclusterConfig(clusters=4, include_depthwise=True, min_weights=0)
        model = read_model(data)
        editor = ModelEditor(model)
        fitted = 0
        for w in find_weight_tensors(model):  # the plain loop: fit and write each tensor in turn
            q = tensor_values(model, model.subgraphs[0].tensors[w.tensor_index])
            k, _ = clusters_for(w, config)
            if k is not None and np.unique(q).size > k:
                base = {"name": w.name, "op": w.op, "shape": w.shape, "granularity": "", "distinct_before": 0}
                rewrite_on_weights(editor, w, q, k, config, base)
                fitted += 1
        assert fitted >= 2
        assert recluster_model(data, config)[0] == write_model(model)


@pytest.mark.tf
def test_progress_hears_each_layer_once_in_layer_order_while_fits_run_two_at_a_time(depthwise_int8):
    """The fits of a segment run FIT_THREADS at a time, largest first; progress still hears of each layer
    once, in operator order, as done counts 1, 2, ... n (the step bar never goes back or skips)."""
    from toolchain.rewrite.config import ReclusterConfig
    from toolchain.rewrite.layers import FitLayer, describe_layer
    from toolchain.rewrite.output_aware import Calibration
    from toolchain.rewrite.recluster import recluster_model
    from toolchain.tflite.graph import find_weight_tensors
    from toolchain.tflite.inputs import random_inputs
    from toolchain.tflite.model_io import read_model

    data = depthwise_int8.read_bytes()
    model = read_model(data)
    layers = [la for w in find_weight_tensors(model) if isinstance(la := describe_layer(model, w), FitLayer)]
    in_op_order = [la.weight.name for la in sorted(layers, key=lambda la: la.op_index)]
    assert len(in_op_order) >= 3
    heard = []
    config = ReclusterConfig(clusters=4, include_depthwise=True, segments=1, min_weights=0)
    recluster_model(data, config, Calibration(random_inputs(rt.input_specs(data), 16, 0), "r"),
                    lambda what, done, total: heard.append((what, done, total)))
    fitted = [(what.removeprefix("fitted "), done, total) for what, done, total in heard if what.startswith("fitted ")]
    n = len(in_op_order)
    assert fitted == [(name, i + 1, n) for i, name in enumerate(in_op_order)]
