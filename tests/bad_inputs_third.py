"""Bad inputs, third round (issue 23): model files that are code, decompression bombs, planted links, foreign
reports, values Python parses but cannot use, graphs out of order, Vela's disk and a shadowed built-in target.

Rows of ``tests/test_bad_inputs.py``'s CASES (imported there after the helpers they use are defined), so the
test and benchmarks/bad_inputs_table.py run them like every other case.
"""
from __future__ import annotations

import io
import json
import shutil
import subprocess
import zipfile
from functools import cache
from pathlib import Path

import fuzz_mutators as fm
import npz_bombs
import numpy as np
import pytest
from test_bad_inputs import COMPILE, MODEL, BadInput, Models, _both, _copy, _copy_to, _edit, _symlink, _write

GIB = 1 << 30
HUGE = "1" * 5000  # past Python's 4,300-digit limit of int(str)
MARKER = "pwned"  # what a model's code creates in the case directory when it runs: the case then fails

# --------------------------------------------------------------------------- Keras files holding code


@cache
def _keras_bytes(kind: str, suffix: str) -> bytes:
    """A small tf_keras classifier (8x8x1 -> 10) whose second layer is code: a Python lambda touching MARKER,
    or a custom layer class."""
    import contextlib
    import tempfile

    from toolchain.training.tf_env import import_keras

    keras = import_keras()
    with tempfile.TemporaryDirectory() as tmp, contextlib.chdir(tmp):  # building calls the lambda once: not here
        inp = keras.Input((8, 8, 1))
        x = keras.layers.Flatten()(inp)
        if kind == "lambda":
            x = keras.layers.Lambda(lambda t: (__import__("pathlib").Path(MARKER).touch(), t)[1], name="lambda")(x)
        else:
            class Scale(keras.layers.Layer):  # a custom object: code from wherever it was defined
                def call(self, t):
                    return t * 2.0

            x = Scale()(x)
        model = keras.Model(inp, keras.layers.Dense(10, activation="softmax")(x))
        path = Path(tmp) / f"m{suffix}"
        model.save(path)
        return path.read_bytes()


def _keras(name: str, kind: str):
    return _write(name, lambda m: _keras_bytes(kind, Path(name).suffix))


# --------------------------------------------------------------------------- archives


def _calibration_bomb(m: Models) -> bytes:
    """3 MB: x holds 2 GiB of zero samples for the conv model's 16x16x1 input, junk 1 GiB nobody uses."""
    return npz_bombs.bomb_npz({"x": ((1 << 21, 16, 16, 1), "float32"), "junk": ((1 << 28,), "float32")})


def _declared_only(shape: tuple[int, ...]) -> bytes:
    """An .npz whose only array declares ``shape`` (float32) in its header and holds 64 bytes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("x.npy", npz_bombs._npy_header(shape, "float32") + bytes(64))
    return buf.getvalue()


def _data(x_train: tuple[tuple[int, ...], str], corrupt: str | None = None) -> bytes:
    """A --data .npz for the dense model (64 features): x_train a bomb of zeros, the rest small real arrays."""
    rng = np.random.default_rng(0)
    return npz_bombs.bomb_npz({"x_train": x_train, "y_train": ((x_train[0][0],), "uint8")}, corrupt=corrupt,
                              arrays={"x_test": rng.random((20, 64), np.float32), "y_test": np.arange(20) % 10})


# --------------------------------------------------------------------------- a build with planted links and foreign files


def _dirs(*names: str):
    def setup(d: Path, m: Models) -> None:
        for n in names:
            (d / n).mkdir(parents=True, exist_ok=True)
    return setup


def _build_copy(d: Path, m: Models) -> Path:
    shutil.copytree(m.build, d / "build")
    (d / "build" / "model" / "index.html").unlink()
    return d / "build" / "model"


def _report_edit(edit):
    """The deploy build, its ethos-u55-128 report.json changed by ``edit(doc) -> text``."""
    def setup(d: Path, m: Models) -> None:
        path = _build_copy(d, m) / "ethos-u55-128" / "report" / "report.json"
        path.write_text(edit(json.loads(path.read_text())), encoding="utf-8")
    return setup


def _set(doc: dict, keys: tuple, value) -> str:
    node = doc
    for k in keys[:-1]:
        node = node[k]
    node[keys[-1]] = value
    return json.dumps(doc)


def _hostile_history(d: Path, m: Models) -> None:
    mdir = _build_copy(d, m)
    good = json.loads((mdir / "history.jsonl").read_text().splitlines()[0])
    lines = [json.dumps(dict(good, build=2, targets={"javascript:alert(1)//": good["targets"]["ethos-u55-128"]})),
             json.dumps(dict(good, build=3, time_utc="\ud800")),  # json.dumps writes the escape \ud800
             json.dumps(dict(good, build=4)).replace('"build": 4', f'"build": {HUGE}')]
    with open(mdir / "history.jsonl", "a", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")


def _planted_report_link(d: Path, m: Models) -> None:
    """build/model/ethos-u55-128/report is a link to a directory outside the build (its pages would go there)."""
    mdir = _build_copy(d, m)
    shutil.move(str(mdir / "ethos-u55-128" / "report"), str(d / "elsewhere"))
    (mdir / "ethos-u55-128" / "report").symlink_to(d / "elsewhere")


def _compile_json_edit(d: Path, m: Models) -> None:
    shutil.copytree(m.compile_dir, d / "compiled")
    text = (d / "compiled" / "compile.json").read_text()
    doc = json.loads(text)
    (d / "compiled" / "compile.json").write_text(text.replace(f'"sram_bytes": {doc["sram_bytes"]}',
                                                              f'"sram_bytes": {HUGE}'))


# --------------------------------------------------------------------------- Vela's disk


def _unshare_ok() -> bool:
    try:
        return subprocess.run(["unshare", "-rm", "true"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _tiny_disk(d: Path, m: Models) -> None:
    if not _unshare_ok():
        pytest.skip("unshare -rm (a user and mount namespace for a private tmpfs) is not permitted here")
    shutil.copyfile(m.int8, d / MODEL)
    (d / "out").mkdir()


# Vela's outputs of the conv model take ~40 KB; 24 KiB holds the copy of the model it reads, not what it writes.
TINY_DISK = ("unshare", "-rm", "sh", "-c", 'mount -t tmpfs -o size=24k tmpfs out && exec "$@"', "sh")
SHADOW_PROFILE = 'schema_version = 1\nname = "ethos-u55-128"\nbase = "ethos-u55-128"\n[budget]\nsram_bytes = 1048576\n' \
                 "flash_bytes = 1048576\n"
PRLIMIT = ("prlimit", f"--as={2 * GIB}", "--")

THIRD_CASES: tuple[BadInput, ...] = (
    # ---- model files are data
    BadInput("h5-lambda", "tf_keras .h5 model with a Lambda layer (its code touched a file when loaded)",
             ("quantize", "model.h5", "--data", "digits", "-o", "out.tflite"), 2,
             "holds a Lambda layer 'lambda' \\(Python code\\).*--trust-model-code", _keras("model.h5", "lambda")),
    BadInput("h5-lambda-deploy", "the same .h5 given to deploy", ("deploy", "model.h5", "--data", "digits",
             "--build-dir", "build"), 2, "Lambda layer.*--trust-model-code", _keras("model.h5", "lambda")),
    BadInput("h5-custom-layer", "tf_keras .h5 model with a custom layer class", ("finetune", "model.h5", "--data",
             "digits", "-o", "out.keras"), 2, "holds a custom object 'Scale'.*--trust-model-code",
             _keras("model.h5", "custom")),
    BadInput("keras-lambda", "a .keras model with the same Lambda layer (refused before Keras' safe mode)",
             ("quantize", "model.keras", "--data", "digits", "-o", "out.tflite"), 2, "Lambda layer",
             _keras("model.keras", "lambda")),
    # ---- bounded archives
    BadInput("calibration-bomb", "3 MB calibration .npz: x inflates to 2 GiB, an unused member to 1 GiB; 2 GiB "
             "address space (was 2.5 GB peak, MemoryError under a limit)",
             ("recluster", MODEL, "-o", "out.tflite", "--calibration", "bomb.npz"), 0, "",
             _both(_copy(MODEL, "int8"), _write("bomb.npz", _calibration_bomb)), diagnostics=("out.tflite", "out.json"),
             note="only the samples used are inflated, the unused member never", wrapper=PRLIMIT),
    BadInput("calibration-declared-huge", "calibration array whose header declares 2^40 samples",
             ("recluster", MODEL, "-o", "out.tflite", "--calibration", "big.npz"), 2, "over the 4 GiB limit",
             _both(_copy(MODEL, "int8"), _write("big.npz", lambda m: _declared_only((1 << 40, 16, 16, 1))))),
    BadInput("data-bomb-float64", "2 MB --data .npz: float64 x_train inflates to 1.5 GiB, 2 GiB address space "
             "(was MemoryError, exit 1)", ("deploy", MODEL, "--data", "data.npz", "--build-dir", "build"), 2,
             "y_train holds a single class", _both(_copy(MODEL, "dense"), _write(
                 "data.npz", lambda m: _data(((3 << 20, 64), "float64")))), wrapper=PRLIMIT,
             note="read as float32 (0.75 GiB), then validated"),
    BadInput("data-over-memory", "--data .npz whose x_train needs 3 GiB, 2 GiB address space", (
             "deploy", MODEL, "--data", "data.npz", "--build-dir", "build"), 2,
             "array 'x_train' needs 3 GiB .*more memory than this process can get",
             _both(_copy(MODEL, "dense"), _write("data.npz", lambda m: _data(((3 << 22, 64), "float32")))),
             wrapper=PRLIMIT),
    BadInput("data-corrupt-member", "--data .npz with a corrupt compressed member (zlib.error was an internal error)",
             ("deploy", MODEL, "--data", "data.npz", "--build-dir", "build"), 2, "not a readable .npz \\(zlib.error",
             _both(_copy(MODEL, "dense"), _write("data.npz", lambda m: _data(((64, 64), "float32"), "x_train")))),
    # ---- never through a planted link
    BadInput("planted-stage-link", "build/model/recluster planted as a link to the input's folder (deploy wrote "
             "over its own input)", ("deploy", "models/model.tflite", "--build-dir", "build"), 2,
             "build/model/recluster is a symbolic link", _both(_copy_to("models/model.tflite", "dense"), _dirs("build/model"),
                                                               _symlink("build/model/recluster", "../../models"))),
    BadInput("planted-history-link", "build/model/history.jsonl planted as a link outside the build",
             ("deploy", MODEL, "--build-dir", "build"), 2, "history.jsonl is a symbolic link",
             _both(_copy(MODEL, "dense"), _write("notes.txt", lambda m: "mine\n"), _dirs("build/model"),
                   _symlink("build/model/history.jsonl", "../../notes.txt"))),
    BadInput("report-planted-link", "toolchain report on a build whose report directory links outside it",
             ("report", "build/model"), 2, "report is a symbolic link", _planted_report_link),
    # ---- foreign reports
    BadInput("report-javascript-target", "downloaded report.json naming its target `javascript:alert(1)//` "
             "(became a clickable href)", ("report", "build/model"), 2, "target/name: 'javascript:alert\\(1\\)//' "
             "does not match", _report_edit(lambda d: _set(d, ("target", "name"), "javascript:alert(1)//"))),
    BadInput("report-escape-label", "report.json with ESC[2J in a model's short label (reached the terminal raw)",
             ("report", "build/model"), 2, "short_label.*does not match",
             _report_edit(lambda d: _set(d, ("models", "after", "short_label"), "after\x1b[2J"))),
    BadInput("report-huge-integer", "report.json with a 5,000-digit integer", ("report", "build/model"), 2,
             "more than 4,300 digits", _report_edit(lambda d: json.dumps(d).replace('"clusters": 16', f'"clusters": {HUGE}'))),
    BadInput("history-hostile-lines", "history.jsonl lines with a `javascript:` target, a lone surrogate, a "
             "5,000-digit integer", ("report", "build/model"), 0, "", _hostile_history,
             diagnostics=("build/model/index.html",), note="those lines are left out; the dashboard is re-rendered"),
    BadInput("compile-json-huge-integer", "compile.json with a 5,000-digit sram_bytes", ("firmware", "--target",
             "ethos-u55-128", "--compile-dir", "compiled", "-o", "fw"), 2, "more than 4,300 digits", _compile_json_edit),
    # ---- every bad value exits 2
    BadInput("profile-huge-integer", "profile with a 5,000-digit sram_bytes", ("compile", MODEL, "--profile",
             "board.toml", "-o", "out"), 2, "more than 4,300 digits", _both(_copy(MODEL, "int8"), _write(
                 "board.toml", lambda m: f'schema_version = 1\nname = "board"\nbase = "ethos-u55-128"\n[budget]\n'
                                         f"sram_bytes = {HUGE}\n"))),
    BadInput("config-huge-integer", "JSON recluster config with a 5,000-digit integer", ("recluster", MODEL, "-o",
             "out.tflite", "--config", "c.json"), 2, "more than 4,300 digits",
             _both(_copy(MODEL, "int8"), _write("c.json", lambda m: f'{{"clusters": {HUGE}}}'))),
    BadInput("config-lone-surrogate", "JSON deploy config holding `\\ud800`", ("deploy", MODEL, "--config", "c.json",
             "--build-dir", "build"), 2, "lone surrogate", _both(_copy(MODEL, "dense"), _write(
                 "c.json", lambda m: '{"palettise": {"exclude": ["\\ud800"]}}'))),
    BadInput("profile-lone-surrogate", "JSON profile whose description holds `\\ud800`", ("compile", MODEL, "--profile",
             "board.json", "-o", "out"), 2, "lone surrogate", _both(_copy(MODEL, "int8"), _write(
                 "board.json", lambda m: '{"schema_version": 1, "name": "board", "base": "ethos-u55-128", '
                                         '"description": "\\ud800"}'))),
    BadInput("argv-not-utf8", "--rule with a byte that is not UTF-8 (recluster wrote the model, then failed on "
             "its report)", ("recluster", MODEL, "-o", "out.tflite", "--rule", "a\udcffb=8"), 2,
             "argument 6 \\(a\\\\xffb=8\\) is not UTF-8 text", _copy(MODEL, "int8")),
    BadInput("vela-memory-superscript", "TOOLCHAIN_VELA_MEMORY_MIB=¹²⁸ (isdigit() accepted it)", ("compile", MODEL,
             *COMPILE), 2, "must be a whole number of MiB", _copy(MODEL, "int8"),
             env=(("TOOLCHAIN_VELA_MEMORY_MIB", "¹²⁸"),)),
    BadInput("vela-memory-5000-digits", "TOOLCHAIN_VELA_MEMORY_MIB of 5,000 digits", ("compile", MODEL, *COMPILE), 2,
             "must be a whole number of MiB", _copy(MODEL, "int8"), env=(("TOOLCHAIN_VELA_MEMORY_MIB", HUGE),),
             shown="TOOLCHAIN_VELA_MEMORY_MIB=$(printf '1%.0s' {1..5000}) toolchain compile model.tflite --target "
                   "ethos-u55-128 -o out"),
    # ---- graphs
    BadInput("operators-out-of-order", "operators 0 and 1 swapped: each reads what a later one writes (three "
             "runs, three reports)", ("recluster", "order.tflite", "-o", "out.tflite"), 2,
             "operator 0 of subgraph 0 \\(FULLY_CONNECTED\\) reads tensor 4 .* before it is written",
             _write("order.tflite", _edit("dense", fm.operators_swapped))),
    BadInput("operator-cycle", "operator 0 reads operator 1's output (a cycle)", ("recluster", "cycle.tflite", "-o",
             "out.tflite"), 2, "written by operator 1, which runs later", _write(
                 "cycle.tflite", _edit("dense", fm.operator_cycle))),
    BadInput("control-flow-subgraph-index", "CALL_ONCE running subgraph 99 of 1 (compile accepted it)",
             ("compile", "cf.tflite", *COMPILE), 2, "names subgraph 99 as its initSubgraphIndex",
             _write("cf.tflite", _edit("dense", lambda b: fm.control_flow_op(b, 99)))),
    # ---- Vela's disk, built-in targets
    BadInput("vela-disk-full", "output directory on a 24 KiB tmpfs: Vela's writes fail with ENOSPC (was 'Vela "
             "failed', exit 3)", ("compile", MODEL, *COMPILE), 2, "no space left on the device of out",
             _tiny_disk, wrapper=TINY_DISK, show_wrapper=False, note="out is a 24 KiB tmpfs of a private mount namespace"),
    BadInput("profile-shadows-builtin", "profile file named `ethos-u55-128` with other budgets (replaced the "
             "built-in without notice)", ("compile", MODEL, "--profile", "board.toml", "-o", "out"), 2,
             "named 'ethos-u55-128', like a built-in target.*--replace-builtin",
             _both(_copy(MODEL, "int8"), _write("board.toml", lambda m: SHADOW_PROFILE))),
    BadInput("profile-replace-builtin", "the same profile with --replace-builtin", ("compile", MODEL, "--profile",
             "board.toml", "-o", "out", "--replace-builtin"), 0, "",
             _both(_copy(MODEL, "int8"), _write("board.toml", lambda m: SHADOW_PROFILE)), diagnostics=("out/*",),
             note="the user's word: the file replaces the built-in target"),
    BadInput("sweep-profile-shadows-builtin", "the same profile given to sweep (every point would have failed on it)",
             ("sweep", MODEL, "--clusters", "8", "--profile", "board.toml"), 2,
             "named 'ethos-u55-128', like a built-in target.*--replace-builtin",
             _both(_copy(MODEL, "int8"), _write("board.toml", lambda m: SHADOW_PROFILE))),
    BadInput("sweep-planted-link", "build/sweep/k8 planted as a link outside the build (the points and the Pareto "
             "files would be written through it)", ("sweep", MODEL, "--clusters", "8"), 2,
             "build/sweep/k8 is a symbolic link",
             _both(_copy(MODEL, "int8"), _dirs("elsewhere", "build/sweep"), _symlink("build/sweep/k8", "../../elsewhere"))),
)

