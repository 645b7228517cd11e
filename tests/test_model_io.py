"""The model layer: round trip, alignment, weight discovery, and refusal of bad files."""
from __future__ import annotations

import struct
import subprocess
import sys

import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema
from model_compare import diff_paths, to_plain

from toolchain.core.errors import ModelFormatError
from toolchain.tflite.graph import (
    Granularity,
    find_weight_tensors,
    require_int8_model,
    tensor_values,
)
from toolchain.tflite.model_io import read_model, write_model

pytestmark = pytest.mark.tf


@pytest.mark.parametrize("fixture", ["conv_bn_int8", "depthwise_int8", "dense_int8", "dense_float"])
def test_round_trip_keeps_content(fixture, request):
    data = request.getfixturevalue(fixture).read_bytes()
    model = read_model(data)
    out = write_model(model)
    assert diff_paths(to_plain(read_model(data)), to_plain(read_model(out))) == []
    # writing twice gives the same bytes, and re-reading is a fixed point
    assert write_model(read_model(out)) == out


def test_buffers_are_16_byte_aligned(conv_bn_int8):
    out = write_model(read_model(conv_bn_int8.read_bytes()))
    m = schema.Model.GetRootAs(out, 0)
    checked = 0
    for i in range(m.BuffersLength()):
        b = m.Buffers(i)
        if b.DataLength():
            # the data vector's first byte: the field holds an offset to the vector length
            o = b._tab.Offset(4)
            start = b._tab.Vector(o)
            assert start % 16 == 0, f"buffer {i} starts at {start}"
            checked += 1
    assert checked >= 3


def test_round_trip_runs_in_litert(conv_bn_int8):
    from toolchain.tflite import interpreter as rt
    from toolchain.tflite.inputs import random_inputs

    data = conv_bn_int8.read_bytes()
    out = write_model(read_model(data))
    inputs = random_inputs(rt.input_specs(data), 4, seed=1)
    for a, b in zip(rt.run_model(data, inputs), rt.run_model(out, inputs)):
        assert all(np.array_equal(x, y) for x, y in zip(a, b))


def test_write_does_not_modify_the_model_object(dense_int8):
    model = read_model(dense_int8.read_bytes())
    before = to_plain(model)
    write_model(model)
    assert to_plain(model) == before


def test_finds_conv_dense_depthwise_weights(depthwise_int8):
    model = read_model(depthwise_int8.read_bytes())
    ws = {w.op: w for w in find_weight_tensors(model)}
    assert set(ws) == {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"}
    dw = ws["DEPTHWISE_CONV_2D"]
    assert dw.quantization.granularity is Granularity.PER_CHANNEL
    assert dw.channel_axis == 3 and dw.shape[3] == dw.quantization.scales.size
    conv = ws["CONV_2D"]
    assert conv.channel_axis == 0 and conv.bias_tensor_index is not None
    values = tensor_values(model, model.subgraphs[0].tensors[conv.tensor_index])
    assert values.dtype == np.int8 and values.shape == conv.shape


def test_per_tensor_quantization_detected(model_dir):
    import model_factory as mf

    path = model_dir / "dense_per_tensor.tflite"
    if not path.exists():
        path.write_bytes(mf.convert_int8(mf.dense_model(), per_tensor=True))
    ws = find_weight_tensors(read_model(path.read_bytes()))
    assert ws and all(w.quantization.granularity is Granularity.PER_TENSOR for w in ws)


def _bad_inputs(good: bytes) -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    root = struct.unpack_from("<I", good, 0)[0]
    return {
        "empty": b"",
        "short": good[:10],
        "truncated_half": good[: len(good) // 2],
        "truncated_tail": good[:-7],
        "random": rng.integers(0, 256, 4096, dtype=np.uint8).tobytes(),
        "magic_then_junk": good[:8] + rng.integers(0, 256, 2000, dtype=np.uint8).tobytes(),
        "root_outside": struct.pack("<I", len(good) + 100) + good[4:],
        "text": b"this is not a model at all, just some text\n" * 10,
        "keras_h5": b"\x89HDF\r\n\x1a\n" + b"\0" * 100,
        "bad_root_pointer": struct.pack("<I", root + 3) + good[4:],
    }


def test_bad_files_raise_model_format_error(conv_bn_int8):
    good = conv_bn_int8.read_bytes()
    for label, data in _bad_inputs(good).items():
        try:
            model = read_model(data)
            # some corruptions still parse; later stages then must refuse them cleanly
            require_int8_model(model)
            for w in find_weight_tensors(model):
                tensor_values(model, model.subgraphs[w.subgraph].tensors[w.tensor_index])
        except ModelFormatError as exc:
            assert "\n" not in str(exc), label
        else:
            assert label not in ("empty", "short", "random", "text", "keras_h5", "root_outside"), label


def test_float_model_refused(dense_float):
    with pytest.raises(ModelFormatError, match="float model"):
        require_int8_model(read_model(dense_float.read_bytes()))


@pytest.mark.parametrize("label", ["empty", "truncated_half", "random", "magic_then_junk", "text"])
def test_cli_bad_model_exit_2_one_line(label, conv_bn_int8, tmp_path):
    bad = tmp_path / f"{label}.tflite"
    bad.write_bytes(_bad_inputs(conv_bn_int8.read_bytes())[label])
    for verb in (["inspect", str(bad)], ["recluster", str(bad), "-o", str(tmp_path / "o.tflite")]):
        proc = subprocess.run([sys.executable, "-m", "toolchain", *verb], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2, (label, verb, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
        assert "Traceback" not in proc.stderr
        assert not (tmp_path / "o.tflite").exists()


def test_bit_flips_never_escape_as_other_errors(dense_int8):
    """A small in-suite fuzz: random byte corruptions give ModelFormatError or a valid model."""
    good = dense_int8.read_bytes()
    rng = np.random.default_rng(1234)
    for _ in range(300):
        data = bytearray(good)
        for _ in range(int(rng.integers(1, 6))):
            pos = int(rng.integers(0, len(data)))
            data[pos] = int(rng.integers(0, 256))
        try:
            m = read_model(bytes(data))
            for w in find_weight_tensors(m):
                tensor_values(m, m.subgraphs[w.subgraph].tensors[w.tensor_index])
        except ModelFormatError:
            pass
