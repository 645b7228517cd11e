"""The one escaping function per sink (toolchain.core.escape): each holds its promise for any text.

These are the properties every writer relies on; test_hostile_names.py checks the sinks themselves
(generated C compiled for real, report.md, terminal output, file names) on renamed real models.
"""
from __future__ import annotations

import re
import subprocess
import xml.etree.ElementTree as ET

from conftest import need_executable
from hypothesis import given, settings
from hypothesis import strategies as st

from toolchain.core.escape import (
    C_COMMENT_MAX_CHARS,
    C_IDENTIFIER_MAX_CHARS,
    C_STRING_MAX_BYTES,
    CIdentifiers,
    c_comment,
    c_identifier,
    c_string,
    file_name_component,
    is_c_identifier,
    markdown_cell,
    terminal_text,
    xml_text,
)

ANY_TEXT = st.text(st.characters(codec=None), max_size=300) | st.sampled_from(
    ["X */ int injected = 1; /*", "a\n#include <stdio.h>", "??/\n", "/*/", "*/*", "\\", "\x1b]0;x\x07", "\u202e",
     "a" * 10_000, "\ud800 lone surrogate", "| a | b |", "<b>&amp;</b>", "..", "-rf", ""])


@settings(max_examples=300, derandomize=True, database=None)
@given(ANY_TEXT)
def test_every_sink_function_holds_its_promise(text):
    ident = c_identifier(text)
    assert is_c_identifier(ident) and len(ident) <= C_IDENTIFIER_MAX_CHARS
    comment = c_comment(text)
    assert "*/" not in comment and "/*" not in comment and "??" not in comment and not comment.endswith("\\")
    assert all(0x20 <= ord(ch) < 0x7F for ch in comment) and len(comment) <= C_COMMENT_MAX_CHARS + 1
    literal = c_string(text)  # printable ASCII but '"', '?', backslash; those three and every other byte escaped
    assert re.fullmatch(r'"(?:\\[0-7]{3}|\\[\\"?]|[\x20\x21\x23-\x3e\x40-\x5b\x5d-\x7e])*"', literal), literal[:80]
    assert len(re.findall(r"\\[0-7]{3}|\\.|.", literal[1:-1])) <= C_STRING_MAX_BYTES
    cell = markdown_cell(text)
    assert "\n" not in cell and "\r" not in cell and not re.search(r"(?<!\\)\|", cell) and "<" not in cell
    line = terminal_text(text)
    assert all(ch.isprintable() for ch in line)
    name = file_name_component(text)
    assert re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9._-]*", name) and len(name.encode()) <= 96
    element = ET.fromstring(f'<a v="{xml_text(text)}">{xml_text(text)}</a>')  # well-formed, whatever the text
    if "\r" not in text and "\ufffd" not in xml_text(text):
        assert (element.text or "") == text


def test_identifiers_that_sanitise_alike_stay_distinct():
    ids = CIdentifiers(reserved=("P_TENSOR_COUNT",))
    made = [ids.make(n, prefix="P_INDEX_", upper=True) for n in ("a_b", "a_b_2", "a.b", "A.B", "x" * 500, "x" * 499 + "y")]
    assert len(set(made)) == len(made), made
    assert made[:4] == ["P_INDEX_A_B", "P_INDEX_A_B_2", "P_INDEX_A_B_3", "P_INDEX_A_B_4"]
    assert all(len(m) <= C_IDENTIFIER_MAX_CHARS and is_c_identifier(m) for m in made)
    assert ids.make("tensor_count", prefix="P_", upper=True) == "P_TENSOR_COUNT_2"  # a reserved name is never reused


def test_trailing_newline_is_not_an_identifier():
    assert is_c_identifier("model") and not is_c_identifier("model\n") and not is_c_identifier("1x")


def test_hostile_text_compiles_warning_free_in_each_c_sink(tmp_path):
    """A comment, a string and an identifier from each hostile text: C99, -Wall -Wextra -pedantic, gcc and arm."""
    texts = ["X */ int injected = 1; /*", "a\n#include \"/etc/passwd\"\n", "/* nested /* */", "??/", "??=", "\\",
             "é✓\x00\x1b[2J", "q\"uote", "x" * 10_000]
    ids = CIdentifiers()
    names = [ids.make(t, prefix="s_") for t in texts]
    body = [f"/* {c_comment(t)} */\nconst char *const {n} = {c_string(t)};" for t, n in zip(texts, names)]
    src = tmp_path / "sinks.c"
    src.write_text("\n".join(body) + "\n")
    for cc, extra in ((need_executable("gcc", "gcc"), ()),
                      (need_executable("arm-none-eabi-gcc", "gcc-arm-none-eabi"), ("-mcpu=cortex-m55", "-mthumb"))):
        proc = subprocess.run([cc, *extra, "-std=c99", "-Wall", "-Wextra", "-pedantic", "-Werror", "-Wtrigraphs",
                               "-c", str(src), "-o", str(tmp_path / "sinks.o")], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr[-3000:]
    nm = subprocess.run(["nm", "--defined-only", "-g", str(tmp_path / "sinks.o")], capture_output=True, text=True)
    assert sorted(ln.split()[-1] for ln in nm.stdout.splitlines()) == sorted(names)  # nothing injected
