"""Names from a model (tensor names, custom operator codes) and its file name, chosen by an attacker, through
every sink: generated C, Markdown, the terminal, file names, Vela's debug XML.

The property test renames a real converter-made int8 model's tensors and one operator code with arbitrary
strings (or bytes, which must be refused cleanly when they are not UTF-8), gives the file an arbitrary name,
and runs the real CLI in-process: inspect, palettise, and either compile + firmware (a custom operator: LiteRT
cannot run it) or the whole deploy. Then every sink is checked: the C compiles with gcc and arm-none-eabi-gcc
under ``-std=c99 -Wall -Wextra -pedantic -Werror`` and defines only the symbols the toolchain writes, with no
directive a name could have added; report.md's tables keep their shape and show no name raw; the terminal
output holds no control character; every file the toolchain names after the model is a safe file name.
"""
from __future__ import annotations

import contextlib
import io
import re
import subprocess
from pathlib import Path

import fuzz_mutators as fm
import pytest
from conftest import need_executable
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from toolchain.cli import main

pytestmark = pytest.mark.tf  # the seed model is made with the TFLite converter

C_FLAGS = ("-std=c99", "-Wall", "-Wextra", "-pedantic", "-Werror", "-c")
ARM_FLAGS = ("-mcpu=cortex-m55", "-mthumb")
# The directives the C templates write; a name can add none (it never reaches C as a line of its own).
DIRECTIVE = re.compile(r"#(include \"[A-Za-z0-9_.-]+\"|include <std(def|int)\.h>|define [A-Za-z_][A-Za-z0-9_]*( .*)?|"
                       r"ifndef [A-Z0-9_]+|ifdef __cplusplus|endif( /\* .* \*/)?|if !defined\(__GNUC__\) && "
                       r"!defined\(__clang__\) && !defined\(__ARMCC_VERSION\)|error \".*\")")
SAFE_FILE_NAME = re.compile(r"\.?[A-Za-z0-9_][A-Za-z0-9._-]*")  # our own hidden files: .deploy.lock
HOSTILE = (
    "X */ int injected = 1; /*", "a\n#include \"/etc/passwd\"\n", "/* nested", "??/", "\\", "\"quote", "]]>",
    "a & b < c > d", "| cell | break |", "\n# Heading\n", "<script>alert(1)</script>", "\x1b]0;pwned\x07",
    "\x1b[2J\x1b[H", "\r\nerror: forged line", "\u202egnp.exe", "a_b", "a_b_2", "a.b", "\x00nul", "é✓",
)
name = st.one_of(
    st.binary(max_size=24),  # not always UTF-8: the reader must refuse those in one line
    st.text(max_size=24),
    st.builds(lambda a, b: a + b, st.sampled_from(HOSTILE), st.text(max_size=8)),
)
file_name = st.text(st.characters(blacklist_characters="/\x00", blacklist_categories=("Cs",)), min_size=1,
                    max_size=40).filter(lambda s: s not in (".", "..") and len(s.encode()) <= 200)


@pytest.fixture(scope="module")
def seed_model(dense_int8) -> bytes:
    """The dense int8 model reclustered to 8 values per tensor, so every weight tensor palettises."""
    from toolchain.rewrite.config import ReclusterConfig
    from toolchain.rewrite.recluster import recluster_model

    return recluster_model(dense_int8.read_bytes(), ReclusterConfig(clusters=8))[0]


def renamed(seed: bytes, names: list[bytes], custom: bytes | None) -> bytes:
    """Every tensor renamed (names reused in turn, so some repeat); the first operator made ``custom``."""
    def edit(m):
        for i, t in enumerate(m.subgraphs[0].tensors):
            t.name = names[i % len(names)]

    data = fm.edited_model(seed, edit)
    return fm.custom_op(data, custom) if custom is not None else data


def run_cli(*argv: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(list(argv))
    text = out.getvalue() + err.getvalue()
    controls = sorted({repr(ch) for ch in text if not ch.isprintable() and ch != "\n"})
    assert not controls, f"control characters reached the terminal: {controls}"
    if rc:
        lines = err.getvalue().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), err.getvalue()
    return rc, text


def check_c_sources(directory: Path, symbol_prefix: str) -> None:
    """Every generated .c compiles warning-free for the host and a Cortex-M55, and defines only our symbols."""
    gcc = need_executable("gcc", "gcc")
    arm = need_executable("arm-none-eabi-gcc", "gcc-arm-none-eabi libnewlib-arm-none-eabi")
    sources = sorted(directory.glob("*.c"))
    assert sources
    for src in sources:
        for line in src.read_text().splitlines() + (directory / (src.stem + ".h")).read_text().splitlines():
            if line.lstrip().startswith("#"):
                assert DIRECTIVE.fullmatch(line.strip()), f"unexpected directive in {src.name}: {line[:200]!r}"
        obj = src.with_suffix(".o")
        for cc, extra in ((arm, ARM_FLAGS), (gcc, ())):  # the host object last: nm reads it
            proc = subprocess.run([cc, *extra, *C_FLAGS, str(src), "-o", str(obj)], capture_output=True, text=True)
            assert proc.returncode == 0, f"{Path(cc).name} {src.name}: {proc.stderr[-3000:]}"
        nm = subprocess.run(["nm", "--defined-only", "-g", str(obj)], capture_output=True, text=True, check=True)
        defined = [ln.split()[-1] for ln in nm.stdout.splitlines() if ln.strip()]
        assert defined and all(s.startswith(symbol_prefix) for s in defined), defined  # nothing injected
        obj.unlink()


def _firmware_name(directory: Path) -> str:
    import json

    return json.loads((directory / "firmware.json").read_text())["name"]


def check_markdown(path: Path, raw_names: set[str]) -> None:
    """Tables keep their column count; a name that Markdown would interpret never appears unescaped."""
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    pipes = lambda ln: len(re.findall(r"(?<!\\)\|", ln))
    for i, ln in enumerate(lines):
        if ln.startswith("|--"):  # a table's delimiter row
            width = pipes(lines[i - 1])
            for row in lines[i + 1:]:
                if not row.startswith("|"):
                    break
                assert pipes(row) == width, (row[:200], width)
    for n in raw_names:
        if re.search(r"[|<>&*`\[\]\n\r#\\]", n) and len(n) > 2:
            assert n not in text, f"name reached report.md unescaped: {n!r}"


@settings(max_examples=5, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(names=st.lists(name, min_size=1, max_size=6), custom=st.none() | name, model_name=file_name)
@example(names=[b"X */ int injected = 1; /*", b"a\n#include \"/etc/passwd\"\n", b"a_b", b"a_b_2", b"a.b"],
         custom=b"X */ int injected = 1; /*\n#include <stdio.h>", model_name='a&b<c"d')
@example(names=[b"\x1b]0;pwned\x07\r\nerror: forged | cell |\n# Heading <b>", b"x" * 10_000, b"/*", b"a\"q"],
         custom=None, model_name="m\nodel \x1b[2J")
def test_hostile_names_reach_every_sink_escaped(seed_model, tmp_path_factory, names, custom, model_name):
    from toolchain.core.errors import ModelFormatError
    from toolchain.tflite.model_io import read_model

    d = tmp_path_factory.mktemp("hostile")
    names = [n if isinstance(n, bytes) else n.encode("utf-8") for n in names]
    custom = custom.encode("utf-8") if isinstance(custom, str) else custom
    model = d / f"{model_name}.tflite"
    model.write_bytes(renamed(seed_model, names, custom))
    try:
        read_model(model.read_bytes())
    except ModelFormatError:  # a name that is not UTF-8: refused by every verb, in one line
        rc, _ = run_cli("inspect", str(model))
        assert rc == 2
        return
    text_names = {n.decode("utf-8") for n in names} | ({custom.decode("utf-8")} if custom else set())

    assert run_cli("inspect", str(model))[0] == 0
    assert run_cli("palettise", str(model), "-o", str(d / "pal"), "--no-tflm")[0] == 0
    check_c_sources(d / "pal", "palette_")
    if custom is not None:  # LiteRT cannot run a custom operator: compile and firmware only
        assert run_cli("compile", str(model), "--target", "ethos-u55-128", "-o", str(d / "c"), "--allow-cpu")[0] == 0
        assert run_cli("firmware", "--target", "ethos-u55-128", "--compile-dir", str(d / "c"), "-o", str(d / "fw"),
                       "--palettes", str(d / "pal"))[0] == 0
        check_c_sources(d / "fw", _firmware_name(d / "fw") + "_")
        built = d / "c"
    else:
        rc, _ = run_cli("deploy", str(model), "--build-dir", str(d / "b"), "--target", "ethos-u55-128")
        assert rc == 0
        (mdir,) = (d / "b").iterdir()
        check_c_sources(mdir / "ethos-u55-128" / "firmware", _firmware_name(mdir / "ethos-u55-128" / "firmware") + "_")
        check_markdown(mdir / "ethos-u55-128" / "report" / "report.md", text_names)
        built = d / "b"
    for p in built.rglob("*"):
        assert SAFE_FILE_NAME.fullmatch(p.name), f"unsafe file name {p.name!r}"
