"""The per-target report (report.json against its schema, report.md), the build history, the sweep's
Pareto table and plot, and ``toolchain report``."""
from __future__ import annotations

import copy
import hashlib
import io
import json
import re
from contextlib import redirect_stderr, redirect_stdout
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fixtures_pipeline import *
from fixtures_pipeline import TARGETS, deploy, tree_digest

from toolchain.cli import main
from toolchain.core.errors import ConfigError
from toolchain.core.schemas import validate
from toolchain.reporting.history import read_history, record_build
from toolchain.reporting.sweep import SweepPoint, mark_pareto

pytestmark = pytest.mark.tf  # every input model is made with the TFLite converter


def _report(model_dir: Path, target: str) -> dict:
    return json.loads((model_dir / target / "report" / "report.json").read_text())


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        rc = main(list(argv))
    return rc, out.getvalue(), err.getvalue()


# ----------------------------------------------------------------------------- report.json


@pytest.mark.slow
@pytest.mark.parametrize("target", TARGETS)
def test_example_report_compares_plain_before_and_after(example_deploy, target):
    from toolchain.pipeline.config import load_pipeline_config
    from toolchain.pipeline.inputs import load_data
    from toolchain.tflite.accuracy import evaluate_tflite

    m = example_deploy.model_dir
    doc = _report(m, target)
    validate(doc, "report", "report.json")
    assert doc["entry"] == "example" and doc["clusters"] == 16 and doc["target"]["name"] == target
    assert doc["target"]["estimate_kind"] == "vela" and doc["data"] == {"name": "mnist", "test_samples": 300}
    plain, before, after = (doc["models"][v] for v in ("plain", "before", "after"))
    # what the rewriter is for: the tfmot flow leaves more than K values per tensor, the rewriter K
    assert before["max_distinct_values"] > 16 >= after["max_distinct_values"]
    assert plain["max_distinct_values"] > before["max_distinct_values"]
    assert after["encoded_weight_bytes"] < before["encoded_weight_bytes"] < plain["encoded_weight_bytes"]
    assert after["deflate_bytes"] < before["deflate_bytes"] < plain["deflate_bytes"]
    assert after["flash_bytes"] < plain["flash_bytes"]
    # the figures are the files' and the compiler's, not copies of something else
    for v, entry in doc["models"].items():
        path = m / entry["file"]
        assert entry["file_bytes"] == path.stat().st_size
        assert entry["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        c = json.loads((m / entry["compile_dir"] / "compile.json").read_text())
        assert entry["flash_bytes"] == c["budget"]["flash_used_bytes"] and entry["sram_bytes"] == c["budget"]["sram_used_bytes"]
        assert entry["cycles_total"] == c["cycles_total"] and entry["encoded_weight_bytes"] == c["encoded_weight_bytes"]
        assert entry["inference_time_s"] == c["inference_time_s"] and entry["npu_operators"] == c["npu_operators"] > 0
        assert entry["cpu_operators"] == 0 and entry["within_budget"]
        assert sum(la["models"][v]["encoded_weight_bytes"] for la in doc["layers"]) == entry["encoded_weight_bytes"]
        assert 0.5 < entry["accuracy"] <= 1.0
        ratios = entry["compression_vs_float"]
        assert ratios["file_ratio"] == pytest.approx(doc["float_model"]["file_bytes"] / entry["file_bytes"], abs=1e-5)
        assert ratios["deflate_ratio"] > 3  # float32 weights: at least 4 bytes where int8 has 1
    # accuracy of the reclustered model, measured again on the same 300 test images
    config = load_pipeline_config(Path(example_deploy.args[example_deploy.args.index("--config") + 1]), 16)
    data = load_data("mnist", config)
    assert evaluate_tflite((m / after["file"]).read_bytes(), data.x_test, data.y_test) == after["accuracy"]
    assert doc["comparison"]["after_vs_before"]["encoded_weight_bytes_ratio"] == pytest.approx(
        after["encoded_weight_bytes"] / before["encoded_weight_bytes"], abs=1e-6)
    layers = [la for la in doc["layers"] if la["models"]["after"]["encoded_weight_bytes"]]
    assert [la["label"] for la in layers] == ["conv1/Conv2D", "conv2/Conv2D", "conv3/Conv2D", "logits/MatMul"]
    assert all(la["models"]["after"]["distinct_weight_values"] <= 16 for la in layers)
    assert doc["finetune"]["epochs"] == 1 and doc["recluster"]["tensors_rewritten"] >= 3
    assert doc["firmware"]["dir"] == f"{target}/firmware" and doc["firmware"]["arena_bytes"] > after["sram_bytes"]


@pytest.mark.slow
def test_report_markdown_shows_the_three_models(example_deploy):
    doc = _report(example_deploy.model_dir, TARGETS[0])
    md = (example_deploy.model_dir / TARGETS[0] / "report" / "report.md").read_text()
    assert md.startswith(f"# example on {TARGETS[0]} (")
    assert "| | plain int8 | before (tfmot) | after (reclustered) | after / before |" in md.replace("|  |", "| |")
    assert f"| flash: compiled model file (bytes) | {doc['models']['plain']['flash_bytes']:,} | " \
           f"{doc['models']['before']['flash_bytes']:,} | {doc['models']['after']['flash_bytes']:,} |" in md
    assert "## Per layer" in md and "| conv2/Conv2D | Conv2D | npu |" in md
    assert "## Distinct int8 values per weight tensor" in md


def test_flash_and_operator_counts_are_labelled_everywhere(tflite_deploy, tmp_path):
    """The compiled model file beside Vela's off-chip flash; the model's operators beside Vela's own count."""
    m = tflite_deploy.model_dir
    target = TARGETS[0]
    doc = _report(m, target)
    after = doc["models"]["after"]
    cdir = m / after["compile_dir"]
    c = json.loads((cdir / "compile.json").read_text())
    log = (cdir / c["files"]["log"]).read_text()
    # Vela's figures, as its stdout prints them: "Total Off-chip Flash used  6.45 KiB", "NPU operators = 9"
    kib = float(re.search(r"^Total Off-chip Flash used\s+([\d.]+) KiB", log, re.MULTILINE).group(1))
    vela = {k.lower(): int(n) for k, n in re.findall(r"^(NPU|CPU) operators = (\d+)", log, re.MULTILINE)}
    assert abs(after["off_chip_flash_bytes"] / 1024 - kib) <= 0.006
    assert after["vela_operator_counts"] == c["vela_operator_counts"] == {**vela, "last_subgraph_only": False}
    model_file = (cdir / c["vela_model"]).stat().st_size
    assert after["flash_bytes"] == model_file > after["off_chip_flash_bytes"] > 0  # both right, and different
    assert vela["npu"] != after["npu_operators"]  # Vela counts its own operations: why both need a label

    md = (m / target / "report" / "report.md").read_text()
    cells = f"{doc['models']['before']['flash_bytes']:,} | {model_file:,} |"
    assert f"| flash: compiled model file (bytes) | {cells}" in md
    vela_flash = f"{doc['models']['before']['off_chip_flash_bytes']:,} | {after['off_chip_flash_bytes']:,} |"
    assert f"| flash: Vela's off-chip flash used (bytes) | {vela_flash}" in md
    before = doc["models"]["before"]
    ops = f"NPU {after['npu_operators']} / CPU {after['cpu_operators']}"
    before_ops = f"NPU {before['npu_operators']} / CPU {before['cpu_operators']}"
    assert f"| operators in the model: NPU / CPU per inference | {before_ops} | {ops} |" in md
    before_vela = f"NPU {before['vela_operator_counts']['npu']} / CPU {before['vela_operator_counts']['cpu']}"
    assert (f"| Vela's operator count (its own operations): NPU / CPU | {before_vela} | "
            f"NPU {vela['npu']} / CPU {vela['cpu']} |") in md

    page = (m / target / "report" / "index.html").read_text()
    assert "Flash: compiled model file" in page and "Vela&#x27;s off-chip flash used" in page
    assert f"<td>NPU {vela['npu']} / CPU {vela['cpu']}</td>" in page
    combined = (m / "index.html").read_text()
    assert "flash after: model file (bytes)" in combined and "flash after: Vela&#x27;s off-chip flash used (bytes)" in combined
    assert f"<td>{model_file:,}</td><td>{after['off_chip_flash_bytes']:,}</td>" in combined
    assert f"<td>{ops}</td><td>NPU {vela['npu']} / CPU {vela['cpu']}</td>" in combined

    # the terminal: deploy's progress line and summary, 'toolchain compile'
    run = deploy(*tflite_deploy.args)
    assert run.rc == 0, run.stderr
    line = next(ln for ln in run.stdout.splitlines() if f"compile {target} after" in ln)
    assert f"flash: model file {model_file:,} B / Vela off-chip {after['off_chip_flash_bytes']:,} B" in line
    assert f"operators in the model: {ops}, Vela's count: NPU {vela['npu']} / CPU {vela['cpu']}" in line
    assert "flash: compiled file B" in run.stdout and "Vela off-chip flash B" in run.stdout
    rc, out, _ = cli("compile", str(m / after["file"]), "--target", target, "-o", str(tmp_path / "c"))
    assert rc == 0
    assert (f"model file {model_file:,} B (what the firmware embeds); Vela's off-chip flash used "
            f"{after['off_chip_flash_bytes']:,} B") in out
    assert f"in the model: {ops} per inference" in out and f"Vela's count (its own operations): NPU {vela['npu']}" in out


def test_numeric_fields_carry_their_unit(tflite_deploy):
    doc = _report(tflite_deploy.model_dir, TARGETS[0])
    unitless = {"weights", "weight_tensors", "max_distinct_values", "npu_operators", "cpu_operators",
                "cpu_compute_operators", "init_operators", "accuracy",
                "inferences_per_second", "cycles_total", "cycles_npu", "encoded_weight_ratio"}
    for entry in (doc["models"]["before"], doc["models"]["after"]):
        for k, v in entry.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                assert k in unitless or k.endswith(("_bytes", "_s")), k
    for k in doc["comparison"]["after_vs_before"]:
        assert k.endswith("_ratio") or k == "accuracy_change"


def test_schema_refuses_a_report_that_drifted(tflite_deploy):
    doc = _report(tflite_deploy.model_dir, TARGETS[0])
    validate(doc, "report", "report.json")
    missing = copy.deepcopy(doc)
    del missing["models"]["after"]["flash_bytes"]
    with pytest.raises(ConfigError, match="flash_bytes"):
        validate(missing, "report", "report.json")
    extra = copy.deepcopy(doc)
    extra["models"]["after"]["flash"] = 1
    with pytest.raises(ConfigError, match="'flash' was unexpected"):
        validate(extra, "report", "report.json")
    wrong = copy.deepcopy(doc)
    wrong["models"]["before"]["accuracy"] = 98.7  # a percentage where a fraction belongs
    with pytest.raises(ConfigError, match="accuracy"):
        validate(wrong, "report", "report.json")


# ----------------------------------------------------------------------------- history


def test_history_appends_one_entry_per_changed_build(tflite_deploy):
    entries = read_history(tflite_deploy.model_dir / "history.jsonl")
    assert [e["build"] for e in entries] == [1, 2] and [e["clusters"] for e in entries] == [16, 8]
    assert entries[0]["digest"] != entries[1]["digest"]
    for e in entries:
        datetime.strptime(e["time_utc"], "%Y-%m-%dT%H:%M:%SZ")
        assert set(e["targets"]) == set(TARGETS)
        assert e["targets"][TARGETS[0]]["plain"] is None
    assert entries[1]["targets"][TARGETS[0]]["after"]["max_distinct_values"] <= 8


def test_record_build_only_appends_changes_and_survives_a_torn_line(tmp_path):
    path = tmp_path / "history.jsonl"
    t0 = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    figures = {"u55": {"after": {"flash_bytes": 100}}}
    assert record_build(path, 16, figures, t0).appended
    assert not record_build(path, 16, figures, t0).appended
    assert len(path.read_text().splitlines()) == 1
    with open(path, "a") as fh:
        fh.write('{"build": 2, "targ')  # a crash mid-write
    update = record_build(path, 8, figures, t0)
    assert update.appended and [e["build"] for e in update.entries] == [1, 2]
    assert [e["build"] for e in read_history(path)] == [1, 2]
    assert read_history(path)[0]["time_utc"] == "2025-01-02T03:04:05Z"


# ----------------------------------------------------------------------------- sweep


def _point(target, variant, k, acc, flash, cycles):
    return SweepPoint(target, "m", variant, k, acc, flash, cycles, 0, 0, 0, f"{target}{variant}{k}", "r")


def test_pareto_marks_exactly_the_undominated_points():
    pts = [
        _point("t", "after", 4, 0.90, 100, 1000),  # smallest flash: optimal
        _point("t", "after", 8, 0.97, 150, 1100),  # optimal (more accurate)
        _point("t", "after", 16, 0.96, 200, 1200),  # dominated by K=8
        _point("t", "before", 16, 0.97, 150, 1100),  # equal to K=8: neither dominates
        _point("u", "after", 8, 0.50, 999, 9999),  # another target: compared only with its own
    ]
    marked = {(p.target, p.variant, p.clusters): p.pareto for p in mark_pareto(pts)}
    assert marked == {("t", "after", 4): True, ("t", "after", 8): True, ("t", "after", 16): False,
                      ("t", "before", 16): True, ("u", "after", 8): True}
    no_acc = mark_pareto([_point("t", "after", 4, None, 100, 1000), _point("t", "after", 8, None, 150, 1000)])
    assert [p.pareto for p in no_acc] == [True, False]


def test_sweep_writes_a_pareto_table_and_plot(conv_bn_int8, tmp_path):
    cells = []
    for k in (4, 16):
        cell = tmp_path / f"k{k}"
        run = deploy(str(conv_bn_int8), "--clusters", str(k), "--target", TARGETS[0], "--target", TARGETS[1],
                     "--build-dir", str(cell), "-q")
        assert run.rc == 0, run.stderr
        cells.append(str(cell))
    rc, out, err = cli("report", "--sweep", *cells, "-o", str(tmp_path / "sweep"))
    assert rc == 0, err
    doc = json.loads((tmp_path / "sweep" / "pareto.json").read_text())
    pts = doc["points"]
    # per target: the one given model (before, counted once) and the reclustered model at each K
    assert sorted((p["target"], p["variant"], p["clusters"]) for p in pts) == sorted(
        [(t, "before", None) for t in TARGETS] + [(t, "after", k) for t in TARGETS for k in (4, 16)])
    for t in TARGETS:
        mine = [p for p in pts if p["target"] == t]
        smallest = min(mine, key=lambda p: p["flash_bytes"])
        assert smallest["clusters"] == 4 and smallest["pareto"]
        for p in mine:  # brute force: optimal exactly when nothing else is as good in both and better in one
            dominated = any(q["flash_bytes"] <= p["flash_bytes"] and q["cycles_total"] <= p["cycles_total"]
                            and (q["flash_bytes"], q["cycles_total"]) != (p["flash_bytes"], p["cycles_total"])
                            for q in mine)
            assert p["pareto"] == (not dominated)
    md = (tmp_path / "sweep" / "pareto.md").read_text()
    assert f"## {TARGETS[0]}" in md and "| after (reclustered) | 4 |" in md
    png = (tmp_path / "sweep" / "pareto.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000
    assert "K" in out and "Pareto" in out
    # deterministic: the same cells give the same bytes
    digest = tree_digest(tmp_path / "sweep")
    assert cli("report", "--sweep", *cells, "-o", str(tmp_path / "sweep"), "--json")[0] == 0
    assert tree_digest(tmp_path / "sweep") == digest


def test_sweep_of_a_directory_without_reports_exits_2(tmp_path):
    rc, _, err = cli("report", "--sweep", str(tmp_path))
    assert rc == 2 and "no report.json" in err


# ----------------------------------------------------------------------------- toolchain report


def test_report_command_shows_and_rerenders_a_build_unchanged(tflite_deploy):
    before = tree_digest(tflite_deploy.model_dir)
    rc, out, err = cli("report", str(tflite_deploy.model_dir))
    assert rc == 0, err
    assert TARGETS[0] in out and "after (reclustered)" in out and "2 build(s)" in out
    assert tree_digest(tflite_deploy.model_dir) == before
    rc, out, _ = cli("report", str(tflite_deploy.model_dir), "--json")
    assert rc == 0 and [d["target"]["name"] for d in json.loads(out)["reports"]] == list(TARGETS)
    rc, _, err = cli("report", str(tflite_deploy.model_dir / "nothing-here"))
    assert rc == 2 and "not found" in err
