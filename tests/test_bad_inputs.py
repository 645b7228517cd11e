"""Bad inputs through ``python -m toolchain <verb>``: one line on stderr, a documented exit code, no output.

Each case runs in a fresh directory holding only its inputs. The test asserts the
exit code, that stderr is exactly one line starting with ``error:`` (no traceback),
that the message names the problem, that no file appeared (except the diagnostics a
case documents, e.g. compile.json of an over-budget compile) and that every input
file is byte-identical afterwards. ``CASES`` is also the source of the table in
docs/robustness.md (benchmarks/bad_inputs_table.py runs them into benchmarks/results/bad_inputs.json,
from which benchmarks/render_docs.py renders the table).
"""
from __future__ import annotations

import fnmatch
import hashlib
import math
import os
import random
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import fuzz_mutators as fm
import pytest
from fixtures_compile import compile_models_dir, hybrid_int8  # noqa: F401
from fixtures_robustness import int16x8_model, robustness_models_dir  # noqa: F401

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "robustness.md"
TABLE_START = "<!-- generated: bad-inputs -->"
TABLE_END = "<!-- /generated: bad-inputs -->"
TIMEOUT_S = 120


@dataclass(frozen=True)
class Models:
    """Real models every case may copy into its directory."""

    int8: Path  # conv + BN, per-channel int8 (converter)
    dense: Path  # dense int8 (converter)
    depthwise: Path  # conv, depthwise, reshape, dense int8 (converter)
    float: Path  # float32 (converter)
    hybrid: Path  # dynamic-range: int8 weights, float activations (converter)
    int16x8: Path  # 16-bit activations, int8 weights (converter's 16x8 mode)
    vela: Path  # conv + BN compiled by Vela for ethos-u55-128
    compile_dir: Path  # that compile's output directory
    tflm: Path  # TFLM LUT-compressed model (toolchain palettise)
    reclustered: Path  # conv + BN reclustered to 8 values per tensor (palettises)
    build: Path  # a deploy build directory holding build/model/ (the dense model, ethos-u55-128)


@dataclass(frozen=True)
class BadInput:
    id: str
    what: str  # the table's description of the input
    argv: tuple[str, ...]  # after 'toolchain'
    exit_code: int
    message: str  # regex the error line must match
    setup: Callable[[Path, Models], None] = field(default=lambda d, m: None, repr=False)
    diagnostics: tuple[str, ...] = ()  # glob patterns of files the case is documented to leave
    note: str = ""
    env: tuple[tuple[str, str], ...] = ()  # environment variables the command runs with
    cleanup: Callable[[Path], None] = field(default=lambda d: None, repr=False)  # after the command, pass or fail
    wrapper: tuple[str, ...] = ()  # a command the toolchain runs under (prlimit, unshare)
    show_wrapper: bool = True  # the table shows the wrapper in the command
    shown: str = ""  # the command as the table shows it, where the real one is unreadable (5,000 digits)


# --------------------------------------------------------------------------- inputs the cases create


def _copy(name: str, attr: str):
    def setup(d: Path, m: Models) -> None:
        shutil.copyfile(getattr(m, attr), d / name)
    return setup


def _write(name: str, make: Callable[[Models], bytes | str]):
    def setup(d: Path, m: Models) -> None:
        data = make(m)
        (d / name).write_bytes(data.encode() if isinstance(data, str) else data)
    return setup


def _both(*setups):
    def setup(d: Path, m: Models) -> None:
        for s in setups:
            s(d, m)
    return setup


def _mkdir(name: str):
    def setup(d: Path, m: Models) -> None:
        (d / name).mkdir()
    return setup


def _copytree(name: str, attr: str):
    def setup(d: Path, m: Models) -> None:
        shutil.copytree(getattr(m, attr), d / name)
    return setup


def _edit(attr: str, edit: Callable[[bytes], bytes]):
    return lambda m: edit(getattr(m, attr).read_bytes())


def _npz_uint8(m: Models) -> bytes:
    import io

    import numpy as np

    buf = io.BytesIO()
    np.savez(buf, x=np.arange(8 * 256, dtype=np.int64).reshape(8, 16, 16, 1).__mod__(256).astype(np.uint8))
    return buf.getvalue()


def _npz_bad_labels(m: Models) -> bytes:
    import io

    import numpy as np

    buf = io.BytesIO()
    np.savez(buf, x=np.zeros((4, 16, 16, 1), np.float32), y=np.zeros((4, 10), np.float32))
    return buf.getvalue()


def _npz(dtype: str, **shapes: tuple[int, ...]) -> Callable[[Models], bytes]:
    """An .npz of zero arrays of the given shapes and dtype."""
    def make(m: Models) -> bytes:
        import io

        import numpy as np

        buf = io.BytesIO()
        np.savez(buf, **{k: np.zeros(v, dtype) for k, v in shapes.items()})
        return buf.getvalue()
    return make


def _npz_bad_shape(m: Models) -> bytes:
    import io

    import numpy as np

    buf = io.BytesIO()
    np.savez(buf, x=np.zeros((4, 7), np.float32))
    return buf.getvalue()


TINY_PROFILE = """\
# a board with 1 KiB of SRAM and 4 KiB of flash
schema_version = 1
name = "tiny-board"
base = "ethos-u55-128"

[budget]
sram_bytes = 1024
flash_bytes = 4096
"""

CONTRADICTORY_PROFILE = """\
schema_version = 1
name = "u55-on-u85-system"
accelerator = "ethos-u55-128"
system_config = "Ethos_U85_SYS_Flash_High"
memory_mode = "Shared_Sram"
palette_limit = 32

[budget]
sram_bytes = 1048576
flash_bytes = 4194304
"""

MODEL = "model.tflite"
CASES: tuple[BadInput, ...] = (
    # ---- files
    BadInput("missing-file", "model file that does not exist", ("inspect", "missing.tflite"), 2, "model not found"),
    BadInput("directory", "a directory instead of a model", ("recluster", "models", "-o", "out.tflite"), 2,
             "is a directory", _mkdir("models")),
    BadInput("empty", "empty file", ("inspect", "empty.tflite"), 2, "empty file", _write("empty.tflite", lambda m: b"")),
    BadInput("truncated", "int8 model cut to half its size", ("recluster", "half.tflite", "-o", "out.tflite"), 2,
             "malformed|truncated", _write("half.tflite", lambda m: m.int8.read_bytes()[: m.int8.stat().st_size // 2])),
    BadInput("random-bytes", "4 KB of random bytes", ("compile", "random.tflite", "--target", "ethos-u55-128", "-o", "out"),
             2, "not a .tflite model", _write("random.tflite", lambda m: random.Random(0).randbytes(4096))),
    BadInput("magic-then-junk", "'TFL3' identifier followed by junk (crashes Vela)",
             ("compile", "junk.tflite", "--target", "ethos-u55-128", "-o", "out"), 2, "malformed",
             _write("junk.tflite", lambda m: b"\x20\x00\x00\x00TFL3" + bytes(range(256)) * 8)),
    BadInput("keras-file", "a Keras .keras file (a zip archive)", ("inspect", "model.keras"), 2,
             "not a .tflite model.*toolchain quantize",
             _write("model.keras", lambda m: b"PK\x03\x04" + b"\x00" * 60 + b"config.json")),
    BadInput("amplification", "40 KB flatbuffer whose 4,000 tensors share one 4,000-entry table",
             ("inspect", "bomb.tflite"), 2, "claims more elements than the file can hold",
             _write("bomb.tflite", lambda m: fm.shared_table_amplifier(4000, 4000))),
    # ---- models the toolchain does not process
    BadInput("float-model", "float32 model", ("recluster", "float.tflite", "-o", "out.tflite"), 2,
             "float model.*toolchain quantize", _copy("float.tflite", "float")),
    BadInput("float-no-calibration", "float32 model to quantize without calibration data",
             ("quantize", "float.tflite", "-o", "out.tflite"), 2,
             "float model.*--calibration.*random inputs give meaningless activation ranges",
             _copy("float.tflite", "float")),
    BadInput("float-unquantizable", "float32 model whose custom operator LiteRT lacks (the quantizer cannot "
             "calibrate it)", ("quantize", "custom.tflite", "--synthetic-calibration", "-o", "out.tflite"), 3,
             "ai-edge-quantizer cannot quantize custom.tflite: LiteRT cannot run its MyUnknownOp",
             _write("custom.tflite", _edit("float", fm.custom_op))),
    BadInput("float-calibration-shape", "calibration .npz whose samples do not fit the float model's input",
             ("quantize", "float.tflite", "--calibration", "cal.npz", "-o", "out.tflite"), 2,
             r"calibration array for input '.*' has shape \(4, 7\), model expects samples of \(1, 64\)",
             _both(_copy("float.tflite", "float"), _write("cal.npz", _npz_bad_shape))),
    BadInput("float-calibration-dtype", "calibration .npz of uint8 images for a float model",
             ("quantize", "float.tflite", "--calibration", "cal.npz", "-o", "out.tflite"), 2,
             "calibration array for input '.*' holds uint8 values; this float model expects float samples",
             _both(_copy("float.tflite", "float"), _write("cal.npz", _npz("uint8", x=(4, 64))))),
    BadInput("calibration-key", "calibration .npz with two arrays, neither named after the input nor 'x'",
             ("quantize", "float.tflite", "--calibration", "cal.npz", "-o", "out.tflite"), 2,
             "no array named '.*', 'x' or 'x_test' \\(it holds a, b\\)",
             _both(_copy("float.tflite", "float"), _write("cal.npz", _npz("float32", a=(1, 64), b=(1, 64))))),
    BadInput("int4-weights", "model with int4 weight tensors", ("recluster", "int4.tflite", "-o", "out.tflite"), 2,
             "int4 weights are not supported", _write("int4.tflite", _edit("dense", fm.weights_as_int4))),
    BadInput("hybrid-model", "dynamic-range model (int8 weights, float activations)",
             ("compile", "hybrid.tflite", "--target", "ethos-u55-128", "-o", "out"), 2, "runs mostly on the CPU",
             _copy("hybrid.tflite", "hybrid"), diagnostics=("out/*",),
             note="compile.json, with status mostly_cpu, and Vela's files are kept to explain it"),
    BadInput("int16-weights", "model with int16 weight tensors", ("recluster", "int16w.tflite", "-o", "out.tflite"), 2,
             "weights .* are INT16; only int8 weights are supported", _write("int16w.tflite", _edit("dense", fm.weights_as_int16))),
    BadInput("int16x8", "16x8 model (int16 activations, int8 weights)", ("recluster", "int16x8.tflite", "-o", "out.tflite"),
             0, "", _copy("int16x8.tflite", "int16x8"), diagnostics=("out.tflite", "out.json"),
             note="supported: its int8 weights are reclustered, verified in int16 output steps"),
    BadInput("weights-stripped", "model whose weight buffers were stripped",
             ("recluster", "stripped.tflite", "-o", "out.tflite"), 2, "holds no data.*weights missing",
             _write("stripped.tflite", _edit("dense", fm.weights_stripped))),
    BadInput("unknown-custom-op", "custom operator LiteRT cannot resolve",
             ("recluster", "custom.tflite", "-o", "out.tflite"), 0, "",
             _write("custom.tflite", _edit("dense", fm.custom_op)), diagnostics=("out.tflite", "out.json"),
             note="rewritten by the weight-space fit; the verification says `not run: custom operator MyUnknownOp`"),
    BadInput("custom-op-gate", "custom operator LiteRT cannot resolve, with a top-1 gate",
             ("recluster", "custom.tflite", "-o", "out.tflite", "--min-top1-agreement", "0.9"), 5,
             "verification not run: custom operator MyUnknownOp", _write("custom.tflite", _edit("dense", fm.custom_op)),
             diagnostics=("out*",)),
    BadInput("writes-input", "operator writing the model's input (crashes LiteRT)",
             ("recluster", "cyclic.tflite", "-o", "out.tflite"), 2, "an input of the subgraph",
             _write("cyclic.tflite", _edit("dense", fm.op_writes_model_input))),
    BadInput("huge-dimension", "input dimension of 2^31-1", ("inspect", "huge.tflite"), 2, "over the 2 GiB limit",
             _write("huge.tflite", _edit("dense", lambda b: fm.input_dimension(b, 2**31 - 1)))),
    BadInput("huge-activations", "20 KB model declaring a 1M x 64 input (266 MiB of tensors)",
             ("recluster", "big.tflite", "-o", "out.tflite"), 2, "MiB limit.*--no-verify",
             _write("big.tflite", _edit("dense", lambda b: fm.input_dimension(b, 2**20 + 1)))),
    BadInput("nan-scale", "weight quantization scale NaN", ("recluster", "nan.tflite", "-o", "out.tflite"), 2,
             "quantization scale nan", _write("nan.tflite", _edit("dense", lambda b: fm.weight_scale(b, math.nan)))),
    BadInput("vela-output", "model already compiled by Vela",
             ("compile", "model_vela.tflite", "--target", "ethos-u55-128", "-o", "out"), 2, "already compiled by Vela",
             _copy("model_vela.tflite", "vela")),
    BadInput("tflm-output", "TFLM LUT-compressed model", ("compile", "model_tflm.tflite", "--target", "ethos-u55-128",
             "-o", "out"), 2, "TFLM LUT-compressed", _copy("model_tflm.tflite", "tflm")),
    # ---- targets, profiles, configs, options
    BadInput("unknown-target", "unknown target name", ("compile", MODEL, "--target", "ethos-u99", "-o", "out"), 2,
             "ethos-u99", _copy(MODEL, "int8")),
    BadInput("profile-syntax", "hardware profile that is not valid TOML",
             ("compile", MODEL, "--profile", "board.toml", "-o", "out"), 2, "board.toml",
             _both(_copy(MODEL, "int8"), _write("board.toml", lambda m: "name = 'x\n[budget\n"))),
    BadInput("profile-contradiction", "profile pairing an Ethos-U55 with an Ethos-U85 system config",
             ("compile", MODEL, "--profile", "board.toml", "-o", "out"), 2, "Ethos_U85_SYS_Flash_High|U85",
             _both(_copy(MODEL, "int8"), _write("board.toml", lambda m: CONTRADICTORY_PROFILE))),
    BadInput("config-unknown-key", "recluster config with an unknown key",
             ("recluster", MODEL, "-o", "out.tflite", "--config", "recluster.toml"), 2, "clusterz",
             _both(_copy(MODEL, "int8"), _write("recluster.toml", lambda m: "clusterz = 16\n"))),
    BadInput("k-too-small", "K = 1", ("recluster", MODEL, "-o", "out.tflite", "-k", "1"), 2, "from 2 to 256, got 1",
             _copy(MODEL, "int8")),
    BadInput("k-too-large", "K = 300", ("recluster", MODEL, "-o", "out.tflite", "-k", "300"), 2, "from 2 to 256, got 300",
             _copy(MODEL, "int8")),
    BadInput("depthwise-sqnr-nan", "depthwise SQNR floor NaN (was an internal error writing the report)",
             ("recluster", MODEL, "-o", "out.tflite", "--depthwise-min-output-sqnr-db", "nan"), 2,
             "depthwise_min_output_sqnr_db must be a finite number from -100 to 300 dB, got nan", _copy(MODEL, "int8")),
    BadInput("budget-below-floor", "weight budget below the smallest encoded weights reachable",
             ("recluster", MODEL, "-o", "out.tflite", "--weight-budget", "100", "--target", "ethos-u55-128"), 4,
             "below the smallest encoded weights reachable on ethos-u55-128, [0-9]+ bytes", _copy(MODEL, "int8"),
             note="the line names the smallest size the plan can reach; nothing is written"),
    BadInput("budget-zero", "weight budget of 0 bytes", ("recluster", MODEL, "-o", "out.tflite", "--weight-budget", "0"),
             2, "positive whole number of bytes, got 0", _copy(MODEL, "int8")),
    BadInput("rate-lambda-nan", "rate price NaN", ("recluster", MODEL, "-o", "out.tflite", "--rate-lambda", "nan"), 2,
             "--rate-lambda: expected a number from 0 to 64", _copy(MODEL, "int8")),
    BadInput("rate-lambda-in-config", "rate price out of range in a recluster config",
             ("recluster", MODEL, "-o", "out.tflite", "--config", "recluster.toml"), 2, "rate_lambda",
             _both(_copy(MODEL, "int8"), _write("recluster.toml", lambda m: "rate_lambda = 1e9\n"))),
    BadInput("agreement-floor-out-of-range", "top-1 agreement floor 1.5",
             ("recluster", MODEL, "-o", "out.tflite", "--clusters", "auto", "--min-agreement", "1.5"), 2,
             "--min-agreement: expected a number from 0 to 1", _copy(MODEL, "int8")),
    BadInput("agreement-floor-without-data", "agreement floor without calibration data",
             ("recluster", MODEL, "-o", "out.tflite", "--clusters", "auto", "--min-agreement", "0.99"), 2,
             "give --calibration", _copy(MODEL, "int8")),
    BadInput("deploy-two-goals", "deploy with both a weight budget and --clusters auto",
             ("deploy", MODEL, "--clusters", "auto", "--weight-budget", "5000", "--build-dir", "b"), 2,
             "choose one of auto, weight_budget_bytes", _copy(MODEL, "int8")),
    BadInput("bits-out-of-range", "palette index width 9 bits", ("palettise", MODEL, "-o", "out", "--bits", "9"), 2,
             "--bits must be an integer from 1 to 7", _copy(MODEL, "int8")),
    BadInput("too-many-values", "--bits 2 on a model with up to 255 distinct values per tensor",
             ("palettise", MODEL, "-o", "out", "--bits", "2"), 2, "distinct", _copy(MODEL, "int8")),
    BadInput("calibration-not-npz", "calibration file that is not an .npz",
             ("recluster", MODEL, "-o", "out.tflite", "--calibration", "calib.npz"), 2, "not a readable .npz",
             _both(_copy(MODEL, "int8"), _write("calib.npz", lambda m: "x,y\n1,2\n"))),
    BadInput("calibration-shape", "calibration samples of the wrong shape",
             ("recluster", MODEL, "-o", "out.tflite", "--calibration", "calib.npz"), 2, "has shape",
             _both(_copy(MODEL, "int8"), _write("calib.npz", _npz_bad_shape))),
    BadInput("calibration-uint8", "uint8 pixels (0-255) as calibration data of an int8 input (was cast: 200 -> -56)",
             ("recluster", MODEL, "-o", "out.tflite", "--calibration", "calib.npz"), 2,
             r"takes int8 and the data is uint8 \(values 0 to 255\).*divided by 255",
             _both(_copy(MODEL, "int8"), _write("calib.npz", _npz_uint8))),
    BadInput("deploy-calibration-uint8", "the same uint8 file given to deploy --calibration",
             ("deploy", MODEL, "--calibration", "calib.npz", "--target", "ethos-u55-128", "--build-dir", "b"), 2,
             "takes int8 and the data is uint8", _both(_copy(MODEL, "int8"), _write("calib.npz", _npz_uint8)),
             diagnostics=("b/*",)),
    BadInput("deploy-calibration-keras", "deploy --calibration with a Keras model (its fit calibrates on --data)",
             ("deploy", "model.keras", "--calibration", "calib.npz", "--data", "mnist", "--build-dir", "b"), 2,
             "--calibration is for a .tflite MODEL",
             _both(_write("model.keras", lambda m: "not looked at\n"), _write("calib.npz", _npz_uint8))),
    BadInput("verify-data-labels", "--verify-data whose labels are not one class per sample",
             ("recluster", MODEL, "-o", "out.tflite", "--verify-data", "check.npz"), 2,
             "labels 'y' must be one integer class per sample", _both(_copy(MODEL, "int8"),
                                                                       _write("check.npz", _npz_bad_labels))),
    BadInput("output-kind-unknown", "--output-kind with a kind that does not exist",
             ("recluster", MODEL, "-o", "out.tflite", "--output-kind", "Identity=boxes"), 2,
             "unknown output kind 'boxes'", _copy(MODEL, "int8")),
    BadInput("output-kind-no-such-output", "--output-kind naming an output the model does not have",
             ("recluster", MODEL, "-o", "out.tflite", "--output-kind", "nosuch=values"), 2,
             "no output named 'nosuch'", _copy(MODEL, "int8")),
    # ---- outputs
    BadInput("output-dir-blocked", "output directory that cannot be created (a file is in the way)",
             ("recluster", MODEL, "-o", "blocker/out.tflite"), 2, "cannot create output directory",
             _both(_copy(MODEL, "int8"), _write("blocker", lambda m: "a file\n"))),
    BadInput("output-is-directory", "output path that is an existing directory",
             ("recluster", MODEL, "-o", "existing"), 2, "is a directory", _both(_copy(MODEL, "int8"), _mkdir("existing"))),
    BadInput("output-is-input", "output path equal to the input", ("recluster", MODEL, "-o", MODEL), 2,
             "is the input file", _copy(MODEL, "int8")),
    BadInput("over-budget", "model over the profile's SRAM and flash budget",
             ("compile", MODEL, "--profile", "tiny.toml", "-o", "out"), 4, "does not fit tiny-board",
             _both(_copy(MODEL, "int8"), _write("tiny.toml", lambda m: TINY_PROFILE)), diagnostics=("out/*",),
             note="compile.json and Vela's files are kept with the figures; --no-budget accepts"),
    BadInput("firmware-no-compile-dir", "firmware from a compile directory that does not exist",
             ("firmware", "--target", "ethos-u55-128", "--compile-dir", "nowhere", "-o", "fw"), 2,
             "compile directory not found"),
    BadInput("firmware-wrong-target", "firmware for another target than the one compiled for",
             ("firmware", "--target", "ethos-u85-256", "--compile-dir", "compiled", "-o", "fw"), 2,
             "does not match the compile directory's target", _copytree("compiled", "compile_dir")),
    BadInput("firmware-check-no-build", "firmware-check of a model that was never deployed",
             ("firmware-check", MODEL, "--build-dir", "nowhere"), 2, "no deploy build at nowhere/model"),
    BadInput("firmware-check-some-dirs", "firmware-check given some of the four directories",
             ("firmware-check", "--firmware-dir", "fw"), 2, "give all of --firmware-dir, --compile-dir"),
    BadInput("firmware-check-other-model", "firmware-check of palettes and a model other than the compiled one",
             ("firmware-check", "--firmware-dir", "build/model/ethos-u55-128/firmware", "--compile-dir",
              "build/model/ethos-u55-128/compile/after", "--palettes", "palettes", "--model-file", "reclustered.tflite"),
             2, "was compiled from another model than reclustered.tflite",
             _both(_copytree("build", "build"), lambda d, m: shutil.copytree(m.tflm.parent, d / "palettes"),
                   _copy("reclustered.tflite", "reclustered"))),
)


# --------------------------------------------------------------------------- hostile inputs (second round)

HOSTILE_OP = b"X */ int injected = 1; /*\n#include <stdio.h>"
FORGED = "w\nerror: forged second line \x1b[2J"


def _hostile_names(b: bytes) -> bytes:
    """Tensor names holding escape sequences and Markdown/C syntax; the first operator a custom one named C code."""
    def edit(m):
        for i, t in enumerate(m.subgraphs[0].tensors):
            t.name = f"\x1b]0;pwned\x07 | t{i} */ \n# x".encode()
    return fm.custom_op(fm.edited_model(b, edit), HOSTILE_OP)


def _quoted_output_names(b: bytes) -> bytes:
    def edit(m):
        for op in m.subgraphs[0].operators:
            t = m.subgraphs[0].tensors[int(op.outputs[0])]
            t.name = b'out"q]]>&<x' + t.name
    return fm.edited_model(b, edit)


def _int16_named(b: bytes) -> bytes:
    from toolchain.tflite.graph import find_weight_tensors

    def edit(m):
        for w in find_weight_tensors(m):
            m.subgraphs[0].tensors[w.tensor_index].name = FORGED.encode()
    return fm.weights_as_int16(fm.edited_model(b, edit))


def _quant(edit_name: str):
    import test_quantization_rules as q

    return lambda b: fm.edited_model(b, getattr(q, edit_name))


def _fifo(name: str):
    def setup(d: Path, m: Models) -> None:
        os.mkfifo(d / name)
    return setup


def _symlink(name: str, target: str):
    def setup(d: Path, m: Models) -> None:
        (d / name).symlink_to(target)
    return setup


def _copy_to(rel: str, attr: str):
    def setup(d: Path, m: Models) -> None:
        (d / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(getattr(m, attr), d / rel)
    return setup


def _corrupt_history(d: Path, m: Models) -> None:
    """A deploy build whose history.jsonl gained lines of the wrong shape; its dashboard is to be re-rendered."""
    shutil.copytree(m.build, d / "build")
    with open(d / "build" / "model" / "history.jsonl", "a", encoding="utf-8") as fh:
        fh.write('{"targets": {"ethos-u55-128": 1}, "build": "x"}\n' + "[" * 100_000 + "\n" + "NaN\n"
                 '{"build": 9, "time_utc": 1, "clusters": 16, "targets": {}}\n')
    (d / "build" / "model" / "index.html").unlink()


def _read_only_dir(name: str):
    """Mode 555, and immutable for root (to whom permission bits do not apply)."""
    def setup(d: Path, m: Models) -> None:
        (d / name).mkdir()
        (d / name).chmod(0o555)
        if os.geteuid() == 0:
            subprocess.run([shutil.which("chattr") or "chattr", "+i", str(d / name)], check=True)
    return setup


def _writable_again(name: str):
    def cleanup(d: Path) -> None:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(d / name)], check=True)
        (d / name).chmod(0o755)
    return cleanup


_HOLDERS: dict[Path, subprocess.Popen] = {}
_HOLD_LOCK = ("import sys, time; from pathlib import Path\nfrom toolchain.pipeline.build_lock import model_dir_lock\n"
              "with model_dir_lock(Path(sys.argv[1])):\n    print('held', flush=True); time.sleep(300)")


def _deploy_running(mdir: str):
    """Another real process holds the deploy lock of ``mdir`` while the command runs."""
    def setup(d: Path, m: Models) -> None:
        proc = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, mdir], cwd=d, stdout=subprocess.PIPE, text=True,
                                env=dict(os.environ, PYTHONPATH=str(REPO)))
        _HOLDERS[d] = proc
        assert proc.stdout.readline().strip() == "held"
    return setup


def _stop_deploy(d: Path) -> None:
    proc = _HOLDERS.pop(d, None)
    if proc is not None:
        proc.kill()
        proc.wait()


def _profile(body: str):
    return lambda m: "schema_version = 1\nname = \"board\"\n" + body


CUSTOM_SYSTEM = ('base = "ethos-u55-128"\n[system]\ncore_clock_hz = 250_000_000\naxi0_port = "Sram"\n'
                 'axi1_port = "OffChipFlash"\n[system.Sram]\nclock_scale = 1.0\n[system.OffChipFlash]\n')
def _ethos_n(sram: str = "1048576", clock: str = "1_000_000_000") -> str:
    return (f'accelerator = "ethos-n78-1tops-4ple"\npalette_limit = 32\n[budget]\nsram_bytes = {sram}\n'
            f"flash_bytes = 4194304\n[ethos_n]\nclock_hz = {clock}\n")
DEEP_TOML = "a = " + "[" * 5000 + "]" * 5000 + "\n"
COMPILE = ("--target", "ethos-u55-128", "-o", "out")

HOSTILE_CASES: tuple[BadInput, ...] = (
    # ---- text from a model reaching C, documents and terminals
    BadInput("c-injection-op-code", "custom operator code `X */ int injected = 1; /*` + newline + `#include`, tensor "
             "names with escape sequences, `|` and newlines", ("palettise", "hostile.tflite", "-o", "out", "--no-tflm"), 0,
             "", _write("hostile.tflite", _edit("reclustered", _hostile_names)), diagnostics=("out/*",),
             note="names reach palettes.c only escaped (C compiles warning-free, defines nothing else); the terminal "
                  "shows escape sequences as \\x1b"),
    BadInput("quote-in-output-name", "operator output names holding `\"`, `]]>`, `&`, `<` (Vela writes them "
             "unescaped into its debug XML)", ("compile", "quote.tflite", *COMPILE), 0, "",
             _write("quote.tflite", _edit("dense", _quoted_output_names)), diagnostics=("out/*",),
             note="Vela compiles a copy with placeholder names; compile.json and the Vela model carry the real ones"),
    BadInput("xml-in-file-name", "model file named `a&b<c\"d.tflite`", ("compile", 'a&b<c"d.tflite', *COMPILE), 0, "",
             _copy('a&b<c"d.tflite', "dense"), diagnostics=("out/*",),
             note="Vela reads a copy named a_b_c_d.tflite; its files are named after that"),
    BadInput("forged-error-line", "weight tensor named `w` + newline + `error: forged second line` + ESC[2J",
             ("recluster", "named.tflite", "-o", "out.tflite"), 2, r"weights 'w\\nerror: forged second line \\x1b",
             _write("named.tflite", _edit("dense", _int16_named))),
    # ---- never write over what is not ours
    BadInput("output-dev-null", "output /dev/null (the atomic rename replaced it as root)",
             ("recluster", MODEL, "-o", "/dev/null"), 2, "under /dev", _copy(MODEL, "int8")),
    BadInput("output-fifo", "output path that is a FIFO", ("recluster", MODEL, "-o", "fifo.tflite"), 2, "is a FIFO",
             _both(_copy(MODEL, "int8"), _fifo("fifo.tflite"))),
    BadInput("output-under-proc", "output under /proc", ("recluster", MODEL, "-o", "/proc/model.tflite"), 2,
             "under /proc", _copy(MODEL, "int8")),
    BadInput("deploy-input-in-build-tree", "deploy of a model inside its own build tree",
             ("deploy", "build/model/recluster/model.tflite", "--build-dir", "build"), 2, "lies inside build/model",
             _copy_to("build/model/recluster/model.tflite", "dense")),
    BadInput("report-path-is-input", "a .tflite named x.json: its report (x.json) would replace it",
             ("recluster", "x.json", "-o", "x.tflite"), 2, "output x.json is the input file", _copy("x.json", "int8")),
    BadInput("report-flag-is-input", "--report equal to the input", ("recluster", MODEL, "-o", "out.tflite",
             "--report", MODEL), 2, "is the input file", _copy(MODEL, "int8")),
    BadInput("compile-into-own-directory", "compile of DIR/compile.json (a model so named) into DIR",
             ("compile", "dir/compile.json", "--target", "ethos-u55-128", "-o", "dir"), 2, "is the input file",
             _copy_to("dir/compile.json", "int8")),
    BadInput("long-output-name", "252-character output file name (its temporary name was too long)",
             ("recluster", MODEL, "-o", "a" * 245 + ".tflite", "--no-verify"), 0, "", _copy(MODEL, "int8"),
             diagnostics=("a*",),
             note="written: long names get a short temporary name"),
    # ---- one clean error for every bad value
    BadInput("profile-name-newline", "profile name with a trailing newline (`$` accepted it)",
             ("compile", MODEL, "--profile", "board.toml", "-o", "out"), 2, "does not match",
             _both(_copy(MODEL, "int8"), _write("board.toml", lambda m: 'schema_version = 1\nname = "board\\n"\n'
                                                'base = "ethos-u55-128"\n'))),
    BadInput("firmware-name-newline", "firmware --name with a trailing newline",
             ("firmware", "--target", "ethos-u55-128", "--compile-dir", "compiled", "-o", "fw", "--name", "fw\n"), 2,
             "--name must be a C identifier", _copytree("compiled", "compile_dir")),
    BadInput("firmware-section-newline", "firmware --section holding a newline and an assembler directive",
             ("firmware", "--target", "ethos-u55-128", "--compile-dir", "compiled", "-o", "fw", "--section",
              "sec\n.globl x"), 2, "--section must be a linker section name", _copytree("compiled", "compile_dir")),
    BadInput("nan-clock-scale", "profile with clock_scale = nan", ("compile", MODEL, "--profile", "board.toml", "-o",
             "out"), 2, "not a finite number", _both(_copy(MODEL, "int8"), _write("board.toml", _profile(
                 CUSTOM_SYSTEM + "clock_scale = nan\n")))),
    BadInput("ethos-n-clock-inf", "Ethos-N profile with clock_hz = inf", ("compile", MODEL, "--profile",
             "board.toml", "-o", "out"), 2, "not a finite number", _both(_copy(MODEL, "int8"), _write(
                 "board.toml", _profile(_ethos_n(clock="inf"))))),
    BadInput("ethos-n-sram-size", "Ethos-N profile with an SRAM size its variant cannot have (1,000,000 bytes)",
             ("compile", MODEL, "--profile", "board.toml", "-o", "out"), 2, "8 SRAM controllers",
             _both(_copy(MODEL, "int8"), _write("board.toml", _profile(_ethos_n(sram="1000000"))))),
    BadInput("ethos-n-library-missing", "--ethosn-support-library naming no file",
             ("compile", MODEL, "--target", "ethos-n78", "-o", "out", "--ethosn-support-library", "nowhere.so"), 2,
             "nowhere.so: no such file or directory", _copy(MODEL, "int8")),
    BadInput("ethos-n-library-not-a-library", "--ethosn-support-library naming a text file called libEthosNSupport.so",
             ("compile", MODEL, "--target", "ethos-n78", "-o", "out", "--ethosn-support-library", "libEthosNSupport.so"),
             2, r"libEthosNSupport.so is not an Ethos-N support library \(not a shared or static library\)",
             _both(_copy(MODEL, "int8"), _write("libEthosNSupport.so", lambda m: "not a library\n"))),
    BadInput("ethos-n-library-for-vela-target", "--ethosn-support-library with an Ethos-U target",
             ("compile", MODEL, "--target", "ethos-u55-128", "-o", "out", "--ethosn-support-library", "lib.so"), 2,
             "applies to Ethos-N78 targets", _copy(MODEL, "int8")),
    BadInput("float-for-integer", "profile with budget sram_bytes = 1e30 (a float)", ("compile", MODEL, "--profile",
             "board.toml", "-o", "out"), 2, "not a whole number", _both(_copy(MODEL, "int8"), _write(
                 "board.toml", _profile('base = "ethos-u55-128"\n[budget]\nsram_bytes = 1e30\n')))),
    BadInput("float-seed", "deploy config with [data] seed = 1e9", ("deploy", MODEL, "--config", "deploy.toml",
             "--build-dir", "build"), 2, "seed: 1000000000.0 is not a whole number",
             _both(_copy(MODEL, "dense"), _write("deploy.toml", lambda m: "[data]\nseed = 1e9\n"))),
    BadInput("nan-min-top1-agreement", "deploy config with [verify] min_top1_agreement = nan (turned the gate off)",
             ("deploy", MODEL, "--config", "deploy.toml", "--build-dir", "build"), 2, "not a finite number",
             _both(_copy(MODEL, "dense"), _write("deploy.toml", lambda m: "[verify]\nmin_top1_agreement = nan\n"))),
    BadInput("deep-toml", "config nesting arrays 5,000 deep (RecursionError)", ("recluster", MODEL, "-o", "out.tflite",
             "--config", "deep.toml"), 2, "nests tables or arrays more than 32 deep",
             _both(_copy(MODEL, "int8"), _write("deep.toml", lambda m: DEEP_TOML))),
    BadInput("deep-json", "JSON profile nesting arrays 100,000 deep", ("compile", MODEL, "--profile", "deep.json", "-o",
             "out"), 2, "nests tables or arrays", _both(_copy(MODEL, "int8"), _write(
                 "deep.json", lambda m: "[" * 100_000 + "]" * 100_000))),
    BadInput("rank-1001", "tensor of rank 1001", ("inspect", "rank.tflite"), 2, "has 1001 dimensions",
             _write("rank.tflite", _edit("dense", _quant("rank_1001")))),
    BadInput("build-dir-is-file", "--build-dir that is a file", ("deploy", MODEL, "--build-dir", "blocker"), 2,
             "--build-dir blocker is a file", _both(_copy(MODEL, "dense"), _write("blocker", lambda m: "x\n"))),
    BadInput("build-dir-dangling-link", "--build-dir that is a dangling symbolic link", ("deploy", MODEL, "--build-dir",
             "build"), 2, "broken symbolic link", _both(_copy(MODEL, "dense"), _symlink("build", "nowhere"))),
    BadInput("build-dir-read-only", "--build-dir that is read-only", ("deploy", MODEL, "--build-dir", "build"), 2,
             "--build-dir build is not writable", _both(_copy(MODEL, "dense"), _read_only_dir("build")),
             cleanup=_writable_again("build")),
    BadInput("corrupt-history", "build history with lines of the wrong shape, nested 100,000 deep, NaN",
             ("report", "build/model"), 0, "", _corrupt_history, diagnostics=("build/model/index.html",),
             note="lines that are not entries as deploy writes them are left out; the dashboard is re-rendered"),
    BadInput("zero-weight-scale", "weight channel with scale 0 (recluster wrote a NaN bias scale)",
             ("recluster", "zero.tflite", "-o", "out.tflite"), 2, "have quantization scale 0 in channel 0",
             _write("zero.tflite", _edit("dense", _quant("zero_weight_scale")))),
    BadInput("bias-scale-count", "3 bias scales for 16 channels (LiteRT refuses it)", ("compile", "bias.tflite",
             *COMPILE), 2, "has 3 quantization scales for the 16 channels",
             _write("bias.tflite", _edit("int8", _quant("three_bias_scales")))),
    BadInput("per-channel-activation", "activation quantized per channel (LiteRT refuses it)",
             ("compile", "act.tflite", *COMPILE), 2, "is an activation \\(or input\\) with 16 quantization scales",
             _write("act.tflite", _edit("int8", _quant("per_channel_activation")))),
    BadInput("input-two-scales", "model input with 2 scales (LiteRT refuses it)", ("compile", "in.tflite", *COMPILE),
             2, "has 2 quantization scales", _write("in.tflite", _edit("int8", _quant("input_with_two_scales")))),
    BadInput("fc-weights-axis-1", "FULLY_CONNECTED weights quantized on axis 1 (LiteRT refuses it)",
             ("compile", "fc.tflite", *COMPILE), 2, "along dimension 1; this operator takes them along dimension 0",
             _write("fc.tflite", _edit("dense", _quant("fc_weights_on_axis_1")))),
    # ---- resources
    BadInput("vela-declared-activations", "21 KB model declaring a 512 MiB input, TOOLCHAIN_VELA_MEMORY_MIB=1024 "
             "(Vela grew to 14 GB)", ("compile", "big.tflite", *COMPILE), 2, "declares 512.0 MiB of tensors",
             _write("big.tflite", _edit("dense", lambda b: fm.input_dimension(b, 2**23))),
             env=(("TOOLCHAIN_VELA_MEMORY_MIB", "1024"),)),
    BadInput("vela-out-of-memory", "Vela allowed 64 MiB (TOOLCHAIN_VELA_MEMORY_MIB=64)", ("compile", MODEL, *COMPILE),
             3, "Vela ran out of the 64 MiB it was allowed", _copy(MODEL, "int8"),
             env=(("TOOLCHAIN_VELA_MEMORY_MIB", "64"),)),
    BadInput("model-is-dev-zero", "model that is a link to /dev/zero (read until MemoryError)",
             ("inspect", "zero.tflite"), 2, "is a character device, not a regular file",
             _symlink("zero.tflite", "/dev/zero")),
    BadInput("model-is-fifo", "model that is a FIFO (the read hung)", ("inspect", "fifo.tflite"), 2,
             "is a FIFO, not a regular file", _fifo("fifo.tflite")),
    BadInput("config-is-dev-zero", "--config linking to /dev/zero", ("recluster", MODEL, "-o", "out.tflite", "--config",
             "zero.toml"), 2, "is a character device", _both(_copy(MODEL, "int8"), _symlink("zero.toml", "/dev/zero"))),
    BadInput("profile-is-dev-zero", "--profile linking to /dev/zero", ("compile", MODEL, "--profile", "zero.toml", "-o",
             "out"), 2, "is a character device", _both(_copy(MODEL, "int8"), _symlink("zero.toml", "/dev/zero"))),
    BadInput("calibration-is-dev-zero", "--calibration linking to /dev/zero", ("recluster", MODEL, "-o", "out.tflite",
             "--calibration", "zero.npz"), 2, "is a character device",
             _both(_copy(MODEL, "int8"), _symlink("zero.npz", "/dev/zero"))),
    BadInput("concurrent-deploy", "a second deploy into a model directory another deploy is using",
             ("deploy", MODEL, "--build-dir", "build"), 2, "another deploy is using build/model",
             _both(_copy(MODEL, "dense"), _deploy_running("build/model")), cleanup=_stop_deploy),
    # ---- sweeps beyond one machine, distributed fine-tunes
    BadInput("sweep-ray-unreachable", "RAY_ADDRESS where no Ray cluster listens (Ray itself retried for minutes)",
             ("sweep", MODEL, "--clusters", "4", "--executor", "ray"), 2,
             r"cannot reach the Ray cluster at 127\.0\.0\.1:1 \(--ray-address / RAY_ADDRESS\)", _copy(MODEL, "dense"),
             env=(("RAY_ADDRESS", "127.0.0.1:1"),)),
    BadInput("sweep-address-without-ray", "--ray-address without --executor ray",
             ("sweep", MODEL, "--ray-address", "10.0.0.1:6379"), 2, "--ray-address goes with --executor ray",
             _copy(MODEL, "dense")),
    BadInput("sweep-k-twice", "the same K twice in a sweep", ("sweep", MODEL, "--clusters", "8", "8"), 2,
             "K given twice in --clusters 8 8", _copy(MODEL, "dense")),
    BadInput("sweep-models-same-name", "two models of a sweep with the same file name (one build directory)",
             ("sweep", MODEL, f"sub/{MODEL}", "--clusters", "8"), 2, "would share build directory 'model'",
             _both(_copy(MODEL, "dense"), _copy_to(f"sub/{MODEL}", "dense"))),
    BadInput("tf-config-not-json", "finetune --strategy multiworker with a TF_CONFIG that is not JSON",
             ("finetune", "m.keras", "--data", "digits", "-o", "out.keras", "--strategy", "multiworker"), 2,
             "TF_CONFIG is not valid JSON", env=(("TF_CONFIG", "{cluster: worker}"),)),
)
from bad_inputs_third import THIRD_CASES  # after the helpers above, which its rows use

CASES = CASES + HOSTILE_CASES + THIRD_CASES


# --------------------------------------------------------------------------- running a case


@dataclass(frozen=True)
class Outcome:
    case: BadInput
    returncode: int
    stderr: str
    stdout: str
    created: tuple[str, ...]  # files that appeared
    changed: tuple[str, ...]  # input files whose bytes changed


def _snapshot(d: Path) -> dict[str, str]:
    return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.rglob("*")) if p.is_file()}


def run_case(case: BadInput, models: Models, directory: Path) -> Outcome:
    directory.mkdir(parents=True, exist_ok=True)
    case.setup(directory, models)
    before = _snapshot(directory)
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3", **dict(case.env))
    env.pop("TOOLCHAIN_DEBUG", None)
    try:
        proc = subprocess.run([*case.wrapper, sys.executable, "-m", "toolchain", *case.argv], cwd=directory, capture_output=True,
                              text=True, timeout=TIMEOUT_S, env=env, stdin=subprocess.DEVNULL)
        after = _snapshot(directory)
    finally:
        case.cleanup(directory)
    return Outcome(
        case=case,
        returncode=proc.returncode,
        stderr=proc.stderr,
        stdout=proc.stdout,
        created=tuple(sorted(set(after) - set(before))),
        changed=tuple(sorted(p for p in before if after.get(p) != before[p])),
    )


def build_models(directory: Path, int8: Path, dense: Path, depthwise: Path, float_: Path, hybrid: Path,
                 int16x8: Path) -> Models:
    """Copy the converter-made models and make the Vela and TFLM outputs from the int8 one (in-process)."""
    from toolchain.palettes.palettise import palettise_file
    from toolchain.palettes.table import PalettiseConfig
    from toolchain.rewrite.config import ReclusterConfig
    from toolchain.rewrite.recluster import recluster_model
    from toolchain.targets.compile import compile_model
    from toolchain.targets.profiles import load_profile

    directory.mkdir(parents=True, exist_ok=True)
    src = directory / "src"
    src.mkdir(exist_ok=True)
    paths = {}
    for name, path in (("int8", int8), ("dense", dense), ("depthwise", depthwise), ("float", float_),
                       ("hybrid", hybrid), ("int16x8", int16x8)):
        paths[name] = src / f"{name}.tflite"
        shutil.copyfile(path, paths[name])
    model = src / "model.tflite"
    shutil.copyfile(int8, model)
    compile_dir = directory / "compiled"
    result = compile_model(model, load_profile("ethos-u55-128"), compile_dir)
    rewritten, _ = recluster_model(int8.read_bytes(), ReclusterConfig(clusters=8))
    reclustered = src / "reclustered.tflite"
    reclustered.write_bytes(rewritten)
    palettise_file(reclustered, directory / "palettes", PalettiseConfig())
    from toolchain.api import deploy
    from toolchain.pipeline.result import DeployOptions

    (src / "deployed").mkdir(exist_ok=True)
    shutil.copyfile(dense, src / "deployed" / "model.tflite")
    deploy(DeployOptions(model=src / "deployed" / "model.tflite", targets=("ethos-u55-128",), build_dir=directory / "build"))
    return Models(vela=result.vela_model, compile_dir=compile_dir, tflm=directory / "palettes" / "model_tflm.tflite",
                  float=paths.pop("float"), reclustered=reclustered, build=directory / "build", **paths)


def error_line(outcome: Outcome, directory: Path | None = None) -> str:
    """The one line the user saw, with the case directory removed from paths."""
    line = outcome.stderr.strip()
    if directory is not None:
        line = line.replace(str(directory) + os.sep, "").replace(str(directory), ".")
    return line


# --------------------------------------------------------------------------- the tests

pytestmark = [pytest.mark.tf, pytest.mark.slow]  # converter-made inputs; a few cases run Vela


@pytest.fixture(scope="module")
def models(tmp_path_factory, conv_bn_int8, dense_int8, depthwise_int8, dense_float, hybrid_int8, int16x8_model) -> Models:
    return build_models(tmp_path_factory.mktemp("bad_input_models"), conv_bn_int8, dense_int8, depthwise_int8,
                        dense_float, hybrid_int8, int16x8_model)


def test_at_least_15_distinct_bad_inputs():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))
    assert sum(c.exit_code != 0 for c in CASES) >= 15


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: BadInput, models: Models, tmp_path):
    out = run_case(case, models, tmp_path / "case")
    assert out.returncode == case.exit_code, (out.returncode, out.stderr[-2000:])
    controls = {repr(ch) for ch in out.stdout + out.stderr if not ch.isprintable() and ch not in "\n\t"}
    assert not controls, f"control characters reached the terminal: {controls}"
    assert out.changed == (), f"inputs modified: {out.changed}"
    unexpected = [p for p in out.created if not any(fnmatch.fnmatch(p, g) for g in case.diagnostics)]
    assert unexpected == [], f"files created: {unexpected}"
    if case.exit_code == 0:
        assert out.created, "an accepted input must produce its outputs"
        return
    lines = out.stderr.splitlines()
    assert len(lines) == 1, f"stderr is not one line:\n{out.stderr[-3000:]}"
    assert lines[0].startswith("error: "), lines[0]
    assert "Traceback" not in out.stderr and "internal error" not in out.stderr
    assert re.search(case.message, lines[0]), (case.message, lines[0])


def test_documented_table_lists_every_case():
    """docs/robustness.md holds the table benchmarks/bad_inputs_table.py generates from CASES."""
    text = DOC.read_text(encoding="utf-8")
    assert TABLE_START in text and TABLE_END in text
    table = text.split(TABLE_START, 1)[1].split(TABLE_END, 1)[0]
    for case in CASES:
        row = next((ln for ln in table.splitlines() if f"`{case.id}`" in ln), None)
        assert row is not None, f"case {case.id} missing from {DOC.name}"
        assert f"| {case.exit_code} |" in row, row
