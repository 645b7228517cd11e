"""Docs that describe the code itself: docs/design.md's module and test indexes, the README's dashboard screenshot.

Each fails when the code moves and the page does not, naming what to add, remove or regenerate.
"""
from __future__ import annotations

import hashlib
import json
import re
import sys
from pathlib import Path

from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))

import dashboard_screenshot

DESIGN = REPO / "docs" / "design.md"
_MODULE_ROW = re.compile(r"^- `(toolchain(?:\.[\w]+)*)`: \S", re.MULTILINE)
_TEST_ROW = re.compile(r"^- `(tests/\w+\.py)`: \S", re.MULTILINE)


def _section(heading: str) -> str:
    text = DESIGN.read_text(encoding="utf-8")
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end != -1 else len(text)]


def package_modules(root: Path = REPO / "toolchain") -> set[str]:
    """Every module of the package by dotted name; a subpackage's __init__ is the package (the layer table's row)."""
    out = set()
    for path in root.rglob("*.py"):
        parts = ("toolchain", *path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            if len(parts) > 2:
                continue
            parts = parts[:-1]
        out.add(".".join(parts))
    return out


def _diff(named: list[str], real: set[str], what: str) -> str:
    twice = sorted({n for n in named if named.count(n) > 1})
    missing, gone = sorted(real - set(named)), sorted(set(named) - real)
    problems = []
    if missing:
        problems.append(f"{what} missing from docs/design.md (add one line each): {missing}")
    if gone:
        problems.append(f"named in docs/design.md but gone (remove the lines): {gone}")
    if twice:
        problems.append(f"named twice in docs/design.md: {twice}")
    return "; ".join(problems)


def test_module_index_names_every_module_once():
    named = _MODULE_ROW.findall(_section("Module index"))
    assert len(named) > 50  # the index was found and parsed
    problem = _diff(named, package_modules(), "modules")
    assert not problem, problem


def test_module_index_check_sees_a_new_module(tmp_path):
    """The comparison itself: a module added to a copy of the package shows up as missing."""
    import shutil

    copy = tmp_path / "toolchain"
    shutil.copytree(REPO / "toolchain", copy, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "rewrite" / "brand_new.py").write_text('"""A new module."""\n')
    named = _MODULE_ROW.findall(_section("Module index"))
    assert "toolchain.rewrite.brand_new" in _diff(named, package_modules(copy), "modules")


def test_test_index_names_every_test_file_once():
    named = _TEST_ROW.findall(_section("How the tests are organised"))
    real = {f"tests/{p.name}" for p in (REPO / "tests").glob("*.py")}
    problem = _diff(named, real, "test files")
    assert not problem, problem


# --------------------------------------------------------------------------- the README's screenshot


def test_dashboard_screenshot_is_newer_than_the_dashboard_code():
    """benchmarks/dashboard_screenshot.py records the hashes of the code that draws the dashboard next to the
    PNG; a change to that code (or a PNG replaced by hand) means the README shows another layout."""
    record = json.loads(dashboard_screenshot.RECORD.read_text(encoding="utf-8"))
    image = dashboard_screenshot.IMAGE
    assert record["image_sha256"] == hashlib.sha256(image.read_bytes()).hexdigest(), (
        f"{image.relative_to(REPO)} is not the image the screenshot script recorded: regenerate it")
    assert set(record["sources"]) == set(dashboard_screenshot.SOURCES)
    changed = [src for src in dashboard_screenshot.SOURCES
               if record["sources"][src] != hashlib.sha256((REPO / src).read_bytes()).hexdigest()]
    assert not changed, (
        f"{changed} changed since {image.relative_to(REPO)} was taken: rebuild the dashboard "
        "(make deploy TARGET=ethos-u55) and run .venv/bin/python benchmarks/dashboard_screenshot.py")
