"""Foreign reports are untrusted: a report.json, compile.json or history line may come from anywhere (a
downloaded CI artifact), so each is validated strictly against its schema before it is rendered, links in
the dashboard are relative paths the tool builds itself, and every string reaches the terminal and HTML
through their escapers. The CLI cases (toolchain report, firmware) are rows of tests/test_bad_inputs.py.
"""
from __future__ import annotations

import copy
import json

import pytest
from fixtures_pipeline import *
from fixtures_pipeline import TARGETS

from toolchain.core.errors import ConfigError, InputError
from toolchain.reporting.dashboard import relative_href, render_combined_page
from toolchain.reporting.formatting import table
from toolchain.reporting.history import read_history, well_formed
from toolchain.reporting.sweep import load_report

GOOD = {"build": 1, "time_utc": "2026-01-02T03:04:05Z", "toolchain_version": "0.1.0", "clusters": 16,
        "digest": "0" * 64, "targets": {"ethos-u55-128": {"plain": None, "after": {"flash_bytes": 12, "accuracy": 0.5}}}}


@pytest.mark.parametrize("change", [
    {"targets": {"javascript:alert(1)//": GOOD["targets"]["ethos-u55-128"]}},
    {"targets": {"../../etc": GOOD["targets"]["ethos-u55-128"]}},
    {"time_utc": "2026-01-02T03:04:05Z\n"},
    {"build": 0},
    {"build": 10**30},
    {"clusters": 1},
    {"targets": {"ethos-u55-128": {"after": {"flash_bytes": -1}}}},
    {"targets": {"ethos-u55-128": {"after": {"flash bytes": 1}}}},
    {"targets": {"ethos-u55-128": {"later": None}}},
    {"extra": 1},
])
def test_history_entries_of_another_shape_are_not_well_formed(change):
    assert well_formed(GOOD)
    assert not well_formed({**GOOD, **change})


def test_history_lines_python_cannot_use_are_left_out(tmp_path):
    path = tmp_path / "history.jsonl"
    lines = [json.dumps(GOOD), json.dumps({**GOOD, "build": 2}).replace('"build": 2', '"build": ' + "9" * 5000),
             json.dumps({**GOOD, "build": 3, "time_utc": "\ud800"}), "[" * 100_000, json.dumps({**GOOD, "build": 4})]
    path.write_text("\n".join(lines) + "\n")
    assert [e["build"] for e in read_history(path)] == [1, 4]


def test_dashboard_links_are_relative_and_encoded():
    assert relative_href("ethos-u55-128", "report", "index.html") == "./ethos-u55-128/report/index.html"
    assert relative_href("javascript:alert(1)//", "x") == "./javascript%3Aalert%281%29%2F%2F/x"  # no scheme
    for bad in ("..", ".", ""):
        with pytest.raises(ValueError):
            relative_href(bad, "index.html")


def test_terminal_tables_escape_every_cell():
    out = table(["model\x1b[31m", "K"], [["after\x1b[2J", "16"], ["a\nb", "\u202e8"]])
    assert out.isprintable() or all(line.isprintable() for line in out.splitlines())
    assert "\\x1b[2J" in out and "a\\nb" in out and "\\u202e8" in out
    assert len(out.splitlines()) == 4  # header, rule, two rows: a newline in a cell forged no line


# --------------------------------------------------------------------------- report.json from a real deploy


def _doc(build) -> dict:
    return json.loads((build.model_dir / TARGETS[0] / "report" / "report.json").read_text())


@pytest.mark.tf
@pytest.mark.parametrize("path, value, message", [
    (("target", "name"), "javascript:alert(1)//", "target/name: 'javascript:alert\\(1\\)//' does not match"),
    (("target", "name"), "Ethos U55", "target/name"),
    (("model",), "../model", "model: '../model' does not match"),
    (("models", "after", "short_label"), "after\x1b[2J", "short_label"),
    (("models", "after", "label"), "x" * 201, "label"),
    (("models", "after", "flash_bytes"), 2**64, "flash_bytes"),
    (("warnings",), ["w" * 70000], "warnings/0"),
    (("target", "clock_hz"), 10**13, "clock_hz"),
])
def test_foreign_report_values_are_refused_by_the_schema(tflite_deploy, tmp_path, path, value, message):
    doc = _doc(tflite_deploy)
    node = doc
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value
    p = tmp_path / "report.json"
    p.write_text(json.dumps(doc))
    with pytest.raises(ConfigError, match=message):
        load_report(p)


@pytest.mark.tf
def test_foreign_report_numbers_and_text_python_cannot_use_are_one_line(tflite_deploy, tmp_path):
    doc = _doc(tflite_deploy)
    p = tmp_path / "report.json"
    p.write_text(json.dumps(doc).replace('"clusters": 8', '"clusters": ' + "1" * 5000, 1))
    with pytest.raises(InputError, match="more than 4,300 digits"):
        load_report(p)
    p.write_text(json.dumps({**doc, "warnings": ["\ud800"]}))  # written as the escape \ud800
    with pytest.raises(InputError, match="lone surrogate"):
        load_report(p)


@pytest.mark.tf
def test_the_combined_page_links_each_target_below_itself(tflite_deploy):
    doc = _doc(tflite_deploy)
    hostile = copy.deepcopy(doc)
    hostile["target"]["name"] = "x\" onmouseover=\"alert(1)"  # bypassing the schema: still escaped and encoded
    page = render_combined_page("model", [doc, hostile], [])
    hrefs = [h.split('"')[0] for h in page.split('href="')[1:]]
    assert hrefs and all(h.startswith("./") for h in hrefs), hrefs
    assert 'onmouseover="' not in page
