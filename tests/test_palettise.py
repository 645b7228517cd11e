"""toolchain palettise: tables, JSON/NPZ, C decode (host gcc, bit-exact), TFLM LUT model (tflite-micro)."""
from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import need_executable, need_module
from fixtures_palettise import (  # noqa: F401  (fixtures)
    build_and_run_decoder,
    conv_bn_k16,
    depthwise_k8,
    per_tensor_k8,
    recluster_bytes,
    weight_values,
)

from toolchain.cli import main
from toolchain.core.errors import InputError, VerificationError
from toolchain.core.schemas import validate
from toolchain.palettes.table import PalettiseConfig, build_palette_set
from toolchain.tflite.model_io import read_model

pytestmark = pytest.mark.tf  # the input models are made with the TFLite converter

OUTPUTS = ("palettes.json", "palettes.npz", "palettes.h", "palettes.c", "model_tflm.tflite")


def _palettise(model: Path, out: Path, *extra: str) -> int:
    return main(["palettise", str(model), "-o", str(out), *extra])


def _doc(out: Path) -> dict:
    return json.loads((out / "palettes.json").read_text())


@pytest.fixture(scope="module")
def conv_bn_out(tmp_path_factory, conv_bn_k16):
    out = tmp_path_factory.mktemp("pal_conv_bn")
    assert _palettise(conv_bn_k16, out, "--verify") == 0
    return out


def test_tables_decode_to_the_model_values(conv_bn_k16, depthwise_k8, per_tensor_k8):
    for path, k in ((conv_bn_k16, 16), (depthwise_k8, 8), (per_tensor_k8, 8)):
        data = path.read_bytes()
        pset = build_palette_set(data, PalettiseConfig())
        original = weight_values(data)
        assert {(t.subgraph, t.tensor_index) for t in pset.tables} == set(original)
        assert not pset.skipped
        for t in pset.tables:
            q = original[(t.subgraph, t.tensor_index)]
            np.testing.assert_array_equal(t.decode(), q)
            assert t.palette_size == np.unique(q).size <= k
            assert t.index_bits == max(1, (t.palette_size - 1).bit_length())
            assert t.packed_index_bytes == (q.size * t.index_bits + 7) // 8
            assert t.palettised_bytes == t.palette_size + t.packed_index_bytes
            assert t.raw_bytes == q.size


def test_outputs_valid_deterministic_and_input_untouched(tmp_path, conv_bn_k16, conv_bn_out):
    before = hashlib.sha256(conv_bn_k16.read_bytes()).hexdigest()
    doc = _doc(conv_bn_out)
    validate(doc, "palette", "palettes.json")
    assert doc["schema_version"] == 1 and doc["bit_order"] == "msb-first"
    assert doc["source_model"] == {"file": conv_bn_k16.name, "bytes": conv_bn_k16.stat().st_size, "sha256": before}
    assert doc["tflm"]["status"] == "written" and doc["tflm"]["verified"] is True
    # A second run, from a copy of the model elsewhere, gives byte-identical files.
    copy = tmp_path / "in" / conv_bn_k16.name
    copy.parent.mkdir()
    shutil.copy(conv_bn_k16, copy)
    again = tmp_path / "again"
    assert _palettise(copy, again, "--verify") == 0
    for name in OUTPUTS:
        assert (conv_bn_out / name).read_bytes() == (again / name).read_bytes(), name
    assert hashlib.sha256(conv_bn_k16.read_bytes()).hexdigest() == before


def test_json_and_npz_agree_with_the_model(conv_bn_k16, conv_bn_out):
    doc = _doc(conv_bn_out)
    original = weight_values(conv_bn_k16.read_bytes())
    npz = np.load(conv_bn_out / "palettes.npz", allow_pickle=False)
    assert list(npz["names"]) == [t["name"] for t in doc["tensors"]]
    totals = {"raw": 0, "pal": 0}
    for t in doc["tensors"]:
        p = t["npz_prefix"]
        q = original[(t["subgraph"], t["tensor_index"])]
        palette = np.array(t["palette"], dtype=np.int8)
        packed = base64.b64decode(t["packed_indices"])
        assert packed == npz[f"{p}_packed_indices"].tobytes()
        np.testing.assert_array_equal(npz[f"{p}_palette"], palette)
        assert list(npz[f"{p}_shape"]) == t["shape"] == list(q.shape)
        assert int(npz[f"{p}_index_bits"]) == t["index_bits"]
        np.testing.assert_array_equal(npz[f"{p}_scales"], np.array(t["quantization"]["scales"], dtype=np.float32))
        # Independent decoder of the documented bit order (MSB-first bit stream).
        bits = np.unpackbits(np.frombuffer(packed, np.uint8))[: q.size * t["index_bits"]].reshape(q.size, -1)
        idx = bits @ (1 << np.arange(t["index_bits"] - 1, -1, -1))
        np.testing.assert_array_equal(palette[idx].reshape(q.shape), q)
        assert t["raw_bytes"] == q.size and t["palettised_bytes"] == palette.size + len(packed)
        totals["raw"] += t["raw_bytes"]
        totals["pal"] += t["palettised_bytes"]
    assert doc["totals"]["raw_bytes"] == totals["raw"] and doc["totals"]["palettised_bytes"] == totals["pal"]


def test_c_tables_decode_bit_exact_with_host_gcc(tmp_path, conv_bn_k16, conv_bn_out):
    gcc = need_executable("gcc", "gcc")
    out = build_and_run_decoder(gcc, conv_bn_out, "palettes.h", "palettes.c", "palette", tmp_path)
    model = read_model(conv_bn_k16.read_bytes())
    original = weight_values(conv_bn_k16.read_bytes())
    pos = 0
    for t in _doc(conv_bn_out)["tensors"]:  # c_index order
        q = original[(t["subgraph"], t["tensor_index"])]
        got = np.frombuffer(out, dtype=np.int8, count=q.size, offset=pos)
        pos += q.size
        np.testing.assert_array_equal(got.reshape(q.shape), q)
        tensor = model.subgraphs[t["subgraph"]].tensors[t["tensor_index"]]
        scales = np.frombuffer(out, dtype=np.float32, count=len(tensor.quantization.scale), offset=pos)
        pos += scales.nbytes
        assert scales.tobytes() == np.asarray(tensor.quantization.scale, dtype=np.float32).tobytes()
        shape = np.frombuffer(out, dtype=np.int32, count=q.ndim, offset=pos)
        pos += shape.nbytes
        assert tuple(shape) == q.shape
    assert pos == len(out)


def test_c_tables_compile_for_cortex_m55(tmp_path, conv_bn_out):
    gcc = need_executable("arm-none-eabi-gcc", "gcc-arm-none-eabi")
    proc = subprocess.run(
        [gcc, "-mcpu=cortex-m55", "-mthumb", "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic",
         "-c", str(conv_bn_out / "palettes.c"), "-o", str(tmp_path / "palettes.o")],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr


def _tflm_outputs(model_bytes: bytes, inputs: list[np.ndarray]) -> list[np.ndarray]:
    from tflite_micro.python.tflite_micro import runtime

    interp = runtime.Interpreter.from_bytes(model_bytes, arena_size=1 << 20)
    outs = []
    for x in inputs:
        interp.set_input(x, 0)
        interp.invoke()
        outs.append(np.array(interp.get_output(0), copy=True))
    return outs


def _inputs(model_bytes: bytes, n: int = 6) -> list[np.ndarray]:
    from tflite_micro.python.tflite_micro import runtime

    d = runtime.Interpreter.from_bytes(model_bytes, arena_size=1 << 20).get_input_details(0)
    scale = float(d["quantization_parameters"]["scales"][0])
    zp = int(d["quantization_parameters"]["zero_points"][0])
    rng = np.random.default_rng(7)
    return [np.clip(np.round(rng.standard_normal(d["shape"]) / scale) + zp, -128, 127).astype(np.int8) for _ in range(n)]


@pytest.mark.parametrize("fixture", ["conv_bn_k16", "depthwise_k8", "per_tensor_k8"])
def test_tflm_model_runs_identical_to_the_uncompressed_one(request, tmp_path, fixture):
    need_module("tflite_micro", "tflm")
    model_path = request.getfixturevalue(fixture)
    assert _palettise(model_path, tmp_path) == 0
    doc = _doc(tmp_path)
    original = model_path.read_bytes()
    compressed = (tmp_path / "model_tflm.tflite").read_bytes()
    assert len(compressed) < len(original)
    # Mode follows quantization: per-channel tables on the quantized axis, else one table.
    compressed_count = 0
    for t in doc["tensors"]:
        q = t["quantization"]
        if q["granularity"] == "per-channel":
            assert (t["tflm"]["mode"], t["tflm"]["axis"]) == ("per-channel", q["axis"])
        else:
            assert (t["tflm"]["mode"], t["tflm"]["axis"]) == ("per-tensor", None)
        compressed_count += t["tflm"]["compressed"]
    assert compressed_count == doc["tflm"]["compressed_tensors"] >= 1
    if fixture == "depthwise_k8":
        dw = [t for t in doc["tensors"] if t["op"] == "DEPTHWISE_CONV_2D"]
        assert dw and dw[0]["tflm"]["axis"] == 3
    cmodel = read_model(compressed)
    ops = [cmodel.operatorCodes[o.opcodeIndex].customCode for o in cmodel.subgraphs[0].operators]
    assert ops.count(b"TFLM_DECODE") == compressed_count
    inputs = _inputs(original)
    ref = _tflm_outputs(original, inputs)
    got = _tflm_outputs(compressed, inputs)
    assert len({r.tobytes() for r in ref}) > 1, "the test inputs must exercise the model"
    for r, g in zip(ref, got):
        np.testing.assert_array_equal(r, g)


def test_per_tensor_indices_are_exactly_tflm_encoding(tmp_path, per_tensor_k8):
    # For one value table, TFLM's encoded buffer is our packed index stream, byte for byte.
    need_module("tflite_micro", "tflm")
    assert _palettise(per_tensor_k8, tmp_path) == 0
    compressed = read_model((tmp_path / "model_tflm.tflite").read_bytes())
    sg = compressed.subgraphs[0]
    checked = 0
    for t in _doc(tmp_path)["tensors"]:
        assert t["tflm"]["mode"] == "per-tensor"
        if t["tflm"]["compressed"]:
            tensor = sg.tensors[t["tensor_index"]]
            assert tensor.name.decode() == t["name"]
            assert bytes(compressed.buffers[tensor.buffer].data) == base64.b64decode(t["packed_indices"])
            checked += 1
    assert checked >= 2


def test_wrong_lut_mode_would_be_silently_wrong(conv_bn_k16):
    # Why the mode must follow quantization: per-tensor tables on per-channel weights change outputs.
    need_module("tflite_micro", "tflm")
    from dataclasses import replace

    from toolchain.palettes import tflm_model as tc

    data = conv_bn_k16.read_bytes()
    pset = build_palette_set(data, PalettiseConfig())
    plans = [tc.plan_for(t) for t in pset.tables]
    assert any(p.compressed and p.mode is tc.LutMode.PER_CHANNEL for p in plans)
    wrong = [replace(p, mode=tc.LutMode.PER_TENSOR, axis=None, compressed=True) for p in plans]
    right = tc.compress_model(data, pset.tables, plans).model_bytes
    bad = tc.compress_model(data, pset.tables, wrong).model_bytes
    inputs = _inputs(data)
    ref = _tflm_outputs(data, inputs)
    assert all(np.array_equal(r, g) for r, g in zip(ref, _tflm_outputs(right, inputs)))
    assert not all(np.array_equal(r, g) for r, g in zip(ref, _tflm_outputs(bad, inputs)))
    tc.verify_same_outputs(data, right, samples=3)
    with pytest.raises(VerificationError):
        tc.verify_same_outputs(data, bad, samples=3)


def test_forced_bits(tmp_path, conv_bn_k16):
    assert _palettise(conv_bn_k16, tmp_path, "--bits", "6", "--no-tflm") == 0
    doc = _doc(tmp_path)
    assert doc["bits_requested"] == 6 and doc["tflm"] == {"status": "disabled"}
    assert not (tmp_path / "model_tflm.tflite").exists()
    original = weight_values(conv_bn_k16.read_bytes())
    for t in doc["tensors"]:
        assert t["index_bits"] == 6
        q = original[(t["subgraph"], t["tensor_index"])]
        assert t["packed_index_bytes"] == (q.size * 6 + 7) // 8


def test_too_many_values_for_bits_is_refused(tmp_path, conv_bn_int8, capsys):
    assert _palettise(conv_bn_int8, tmp_path / "o", "--bits", "4") == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "distinct int8 values" in err and "toolchain recluster" in err
    assert not (tmp_path / "o").exists()
    with pytest.raises(InputError, match="recluster"):
        build_palette_set(recluster_bytes(conv_bn_int8.read_bytes(), 16), PalettiseConfig(bits=3))


def test_auto_bits_skips_and_lists_tensors_over_128_values(tmp_path, conv_bn_int8, capsys):
    # The unclustered model: conv1 (144 weights) has <= 128 values, the others more.
    data = conv_bn_int8.read_bytes()
    counts = {k: np.unique(v).size for k, v in weight_values(data).items()}
    small = {k for k, n in counts.items() if n <= 128}
    assert small and len(small) < len(counts)
    assert _palettise(conv_bn_int8, tmp_path) == 0
    out = capsys.readouterr().out
    doc = _doc(tmp_path)
    assert {(t["subgraph"], t["tensor_index"]) for t in doc["tensors"]} == small
    assert {(s["subgraph"], s["tensor_index"]) for s in doc["skipped"]} == set(counts) - small
    for s in doc["skipped"]:
        assert s["reason"] == "too-many-values" and s["distinct_values"] == counts[(s["subgraph"], s["tensor_index"])]
        assert s["name"] in out
    assert "skipped" in out


def test_exclude_pattern(tmp_path, conv_bn_k16):
    assert _palettise(conv_bn_k16, tmp_path, "--exclude", "*dense*", "--no-tflm") == 0
    doc = _doc(tmp_path)
    assert doc["skipped"] and all(s["reason"] == "excluded" and "dense" in s["name"] for s in doc["skipped"])
    assert all("dense" not in t["name"] for t in doc["tensors"])


def test_stale_tflm_model_is_removed(tmp_path, conv_bn_k16):
    assert _palettise(conv_bn_k16, tmp_path) == 0
    assert (tmp_path / "model_tflm.tflite").exists()
    assert _palettise(conv_bn_k16, tmp_path, "--no-tflm") == 0
    assert not (tmp_path / "model_tflm.tflite").exists()


def test_after_the_rewriter(tmp_path, conv_bn_int8):
    # The real rewriter's output goes straight in: every rewritten tensor fits 3-bit indices.
    from toolchain import recluster
    from toolchain.rewrite.config import ReclusterConfig

    rewritten, _ = recluster(conv_bn_int8.read_bytes(), ReclusterConfig(clusters=8, min_weights=0))
    path = tmp_path / "rewritten.tflite"
    path.write_bytes(rewritten)
    assert _palettise(path, tmp_path / "out", "--bits", "3", "--verify") == 0
    doc = _doc(tmp_path / "out")
    assert doc["tensors"] and all(len(t["palette"]) <= 8 for t in doc["tensors"])


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--bits", "8"], "--bits must be"),
        (["--bits", "0"], "--bits must be"),
    ],
)
def test_bad_options(tmp_path, conv_bn_k16, capsys, args, fragment):
    assert _palettise(conv_bn_k16, tmp_path / "o", *args) == 2
    assert fragment in capsys.readouterr().err


def test_bad_models(tmp_path, dense_float, capsys):
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"\x00" * 64)
    for path, fragment in ((tmp_path / "missing.tflite", "not found"), (junk, "not a .tflite"), (dense_float, "float model")):
        assert _palettise(path, tmp_path / "o") == 2
        err = capsys.readouterr().err
        assert fragment in err and "Traceback" not in err


def test_palettise_imports_no_tensorflow(tmp_path, conv_bn_k16):
    code = (
        "import sys\nfrom toolchain.cli import main\n"
        f"rc = main(['palettise', {str(conv_bn_k16)!r}, '-o', {str(tmp_path / 'out')!r}, '--verify'])\n"
        "assert 'tensorflow' not in sys.modules, 'palettise imported TensorFlow'\nsys.exit(rc)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_output_directory_holding_the_input_is_refused(tmp_path, conv_bn_k16, capsys):
    model = tmp_path / "model_tflm.tflite"
    shutil.copy(conv_bn_k16, model)
    assert _palettise(model, tmp_path) == 2
    assert "is the input file" in capsys.readouterr().err
    assert model.read_bytes() == conv_bn_k16.read_bytes()


def test_any_tensor_name_becomes_valid_c(tmp_path):
    # Names with quotes, backslashes, trigraph look-alikes and UTF-8 survive into C unchanged.
    from toolchain.algorithms.packing import pack_indices
    from toolchain.palettes.c_source import emit_palette_sources
    from toolchain.palettes.table import PaletteTable
    from toolchain.tflite.graph import Granularity

    gcc = need_executable("gcc", "gcc")
    name = 'w"x\\y??=z/é*/ 1'
    q = np.array([[-3, 5, -3], [5, 0, 0]], dtype=np.int8)
    palette, idx = np.unique(q, return_inverse=True)
    table = PaletteTable(name, 0, 7, "CONV_2D", q.shape, Granularity.PER_CHANNEL, np.array([0.5, 0.25], np.float32),
                         np.zeros(2, np.int64), 0, palette.astype(np.int8), 2, pack_indices(idx.ravel(), 2))
    h, c = emit_palette_sources([table, table], header_name="t.h", prefix="odd", origin="a */ test")
    (tmp_path / "t.h").write_text(h)
    (tmp_path / "t.c").write_text(c)
    (tmp_path / "main.c").write_text(
        '#include <stdio.h>\n#include "t.h"\nint main(void) { int8_t v[6]; int i;\n'
        "  if (odd_decode(&odd_tensors[1], v, 6) != 0) return 1;\n"
        '  fputs(odd_tensors[0].name, stdout); for (i = 0; i < 6; ++i) printf(" %d", v[i]);\n'
        '  printf(" %a", (double)odd_tensors[0].scales[1]); return 0; }\n'
    )
    proc = subprocess.run([gcc, "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-Wtrigraphs", str(tmp_path / "t.c"),
                           str(tmp_path / "main.c"), "-o", str(tmp_path / "t")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    out = subprocess.run([str(tmp_path / "t")], capture_output=True, timeout=30).stdout.decode("utf-8")
    assert out == name + " -3 5 -3 5 0 0 0x1p-2"
    assert "ODD_INDEX_W_X_Y_Z_1 0u" in h and "ODD_INDEX_W_X_Y_Z_1_2 1u" in h  # duplicate names stay distinct


def test_without_tflite_micro_everything_else_is_written(tmp_path, conv_bn_k16):
    """A core install (no tflm extra): exit 0, tflm.status 'unavailable', the column says why; --verify exits 3.
    The package is made unimportable in a fresh interpreter, as it is where it was never installed."""
    def run(*extra: str) -> subprocess.CompletedProcess:
        code = ("import sys\nsys.modules['tflite_micro'] = None\nfrom toolchain.cli import main\n"
                f"sys.exit(main(['palettise', {str(conv_bn_k16)!r}, '-o', {str(tmp_path / 'out')!r}, *{extra!r}]))\n")
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)

    proc = run()
    assert proc.returncode == 0, proc.stderr
    assert _doc(tmp_path / "out")["tflm"] == {"status": "unavailable"}
    assert not (tmp_path / "out" / "model_tflm.tflite").exists()
    rows = [line for line in proc.stdout.splitlines() if "CONV_2D" in line]
    assert rows and all(line.endswith("tflite-micro not installed") for line in rows)
    assert "note: model_tflm.tflite not written: the tflite-micro package is not installed" in proc.stdout
    proc = run("--verify")
    assert proc.returncode == 3 and proc.stderr.startswith("error: --verify runs the TFLM interpreter"), proc.stderr
