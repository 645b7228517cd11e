"""README.md and docs/*.md: generated tables match their results, links and names resolve, nothing stale.

Fast and without TensorFlow: the tables are rendered by benchmarks/render_docs.py from
benchmarks/results/*.json (standard library only), and module names are checked with
importlib.util.find_spec and the modules' source, not by importing them.
"""
from __future__ import annotations

import ast
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))

import render_docs

DOCS = render_docs.doc_files(REPO)
README = REPO / "README.md"
MAX_README_LINES = 250
# File names that look like dotted module names: the firmware's build fragments, and the package
# data a wheel installs as toolchain.schemas / toolchain.hw_profiles (setup.py; no module in a checkout).
NOT_MODULES = {"toolchain.cmake", "toolchain.mk", "toolchain.schemas", "toolchain.hw_profiles"}
STALE = [
    (re.compile(r"toolchain[./]stages\b"), "the old toolchain.stages package"),
    (re.compile(r"DESIGN\.md"), "DESIGN.md, which does not exist"),
    (re.compile(r"\bissues?\s+#?\d+", re.IGNORECASE), "an internal issue number"),
    (re.compile(r"(?<![\w&#/])#\d+\b"), "an internal issue number"),
]
_FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_DOTTED = re.compile(r"(?<![\w./-])toolchain(?:\.[A-Za-z_][A-Za-z0-9_]*)+")
_REPO_PATH = re.compile(r"`((?:toolchain|tests|benchmarks|schemas|hw_profiles|docs)/[^`\s]*)`")


def _rel(path: Path) -> str:
    return str(path.relative_to(REPO))


def _prose(text: str) -> str:
    """The document without its fenced code blocks (links and anchors live outside them)."""
    return _FENCE.sub("", text)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", lambda m: m.group(1) or "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    return {_slug(m.group(1)) for m in re.finditer(r"^#{1,6} (.+)$", _prose(path.read_text(encoding="utf-8")),
                                                  re.MULTILINE)}


# --------------------------------------------------------------------------- generated blocks


@pytest.mark.parametrize("path", DOCS, ids=_rel)
def test_generated_blocks_equal_their_rendering(path):
    """Every block between <!-- generated: NAME --> markers is what its results JSON renders to."""
    text = path.read_text(encoding="utf-8")
    _, stale = render_docs.render_text(text, _rel(path))
    assert not stale, f"{_rel(path)}: stale generated blocks {stale}: run 'make docs' (benchmarks/render_docs.py)"


def test_every_renderer_is_used_and_every_block_has_one():
    """find_blocks refuses unknown names and unclosed markers; no renderer is left without a block."""
    used = {b.name for p in DOCS for b in render_docs.find_blocks(p.read_text(encoding="utf-8"), _rel(p))}
    assert used == set(render_docs.BLOCKS), f"renderers without a block: {set(render_docs.BLOCKS) - used}"


@pytest.mark.parametrize("text, problem", [
    ("a\n<!-- generated: fuzz-figures -->\nrows\n", "never closed"),
    ("<!-- generated: fuzz-figures -->\nrows\nthe end <!-- /generated: fuzz-figures -->\n", "never closed"),
    ("<!-- generated: no-such-table -->\n<!-- /generated: no-such-table -->\n", "no renderer"),
    ("<!-- /generated: fuzz-figures -->\n", "without its opening marker"),
    ("<!-- generated: fuzz-figures -->\n<!-- generated: compile-speed -->\n", "opens inside"),
    ("<!-- generated: fuzz-figures -->\n<!-- /generated: compile-speed -->\n", "without its opening marker"),
])
def test_bad_markers_are_refused(text, problem):
    with pytest.raises(render_docs.MarkerError, match=problem):
        render_docs.find_blocks(text, "doc.md")


def test_a_hand_edited_block_is_stale_and_rerendered():
    fresh = render_docs.render_block("fuzz-figures")
    edited = f"x\n<!-- generated: fuzz-figures -->{fresh.replace('| 0 |', '| 1 |')}<!-- /generated: fuzz-figures -->\ny\n"
    new, stale = render_docs.render_text(edited, "doc.md")
    assert stale == ["fuzz-figures"]
    assert new == f"x\n<!-- generated: fuzz-figures -->{fresh}<!-- /generated: fuzz-figures -->\ny\n"
    assert render_docs.render_text(new, "doc.md") == (new, [])


def test_rendering_imports_neither_tensorflow_nor_vela():
    code = (
        "import sys\n"
        f"sys.path.insert(0, {str(REPO / 'benchmarks')!r})\n"
        "import render_docs\n"
        "for name in render_docs.BLOCKS: render_docs.render_block(name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tf_keras', 'keras', 'ethosu', 'toolchain'))\n"
        "assert not bad, bad[:5]\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]


# --------------------------------------------------------------------------- links and names


@pytest.mark.parametrize("path", DOCS, ids=_rel)
def test_relative_links_point_to_files_that_exist(path):
    missing = []
    for target in _LINK.findall(_prose(path.read_text(encoding="utf-8"))):
        if re.match(r"[a-z]+:", target):
            continue  # http:, https:, mailto:
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        if not dest.exists():
            missing.append(target)
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            missing.append(f"{target} (no such heading)")
    assert not missing, f"{_rel(path)}: broken links {missing}"


@pytest.mark.parametrize("path", DOCS, ids=_rel)
def test_repository_paths_named_in_code_spans_exist(path):
    """`tests/test_x.py`, `benchmarks/x.py`, `schemas/x.json`, ...: placeholders (<name>, *) aside."""
    missing = [p for p in _REPO_PATH.findall(path.read_text(encoding="utf-8"))
               if not re.search(r"[<>*{}]", p) and not (REPO / p).exists()]
    assert not missing, f"{_rel(path)}: no such files {missing}"


@pytest.mark.parametrize("path", DOCS, ids=_rel)
def test_no_stale_references(path):
    text = path.read_text(encoding="utf-8")
    found = [f"line {text.count(chr(10), 0, m.start()) + 1}: {m.group(0)!r} ({why})"
             for pattern, why in STALE for m in pattern.finditer(text)]
    assert not found, f"{_rel(path)}: " + "; ".join(found)


def _module_and_rest(dotted: str) -> tuple[str | None, list[str]]:
    """The longest importable module prefix of a dotted name (find_spec, no import of the module) and the rest."""
    parts = dotted.split(".")
    for n in range(len(parts), 0, -1):
        name = ".".join(parts[:n])
        try:
            if importlib.util.find_spec(name) is not None:
                return name, parts[n:]
        except (ModuleNotFoundError, ValueError):
            continue  # a parent is a module, not a package
    return None, parts


def _top_level_names(module: str) -> set[str]:
    """Names a module defines or imports at its top level (read from its source, not imported)."""
    tree = ast.parse(Path(importlib.util.find_spec(module).origin).read_text(encoding="utf-8"))
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {a.asname or a.name.split(".")[0] for a in node.names}
    return names


@pytest.mark.parametrize("path", DOCS, ids=_rel)
def test_dotted_toolchain_names_resolve(path):
    """toolchain.x.y names a module that exists; a trailing name is defined in it (or is public API)."""
    import toolchain

    bad = []
    for dotted in sorted(set(_DOTTED.findall(path.read_text(encoding="utf-8"))) - NOT_MODULES):
        module, rest = _module_and_rest(dotted)
        if module is None or module == "toolchain" and not rest:
            bad.append(dotted)
        elif rest and rest[0] not in _top_level_names(module) and not (module == "toolchain" and rest[0] in toolchain.__all__):
            bad.append(f"{dotted} ({rest[0]} is not in {module})")
    assert not bad, f"{_rel(path)}: names that do not resolve: {bad}"


# --------------------------------------------------------------------------- the front page and the API page


def test_readme_is_a_front_page():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) < MAX_README_LINES, f"README.md has {len(lines)} lines: move detail into docs/"


def test_readme_links_every_docs_file():
    text = README.read_text(encoding="utf-8")
    unlinked = [p.name for p in sorted((REPO / "docs").glob("*.md"))
                if not p.name.startswith("_") and f"(docs/{p.name})" not in text]
    assert not unlinked, f"README.md does not link {unlinked}"


def test_api_page_names_every_public_name():
    import toolchain

    text = (REPO / "docs" / "api.md").read_text(encoding="utf-8")
    missing = [n for n in toolchain.__all__ if f"`{n}`" not in text and f"`{n}(" not in text
               and f"`toolchain.{n}`" not in text]
    assert not missing, f"docs/api.md does not name {missing}"
