"""``toolchain deploy``: the whole pipeline on the bundled example (one U55 and one U85 target), and
the incremental rebuild (nothing redone when nothing changed; exactly the downstream stages otherwise)."""
from __future__ import annotations

import json

import pytest
from fixtures_pipeline import *
from fixtures_pipeline import TARGETS, copy_build, deploy, ran_stages, tree_digest

pytestmark = [pytest.mark.tf, pytest.mark.slow]

STAGE_FILES = [
    "baseline/model_float.tflite", "baseline/model_int8.tflite", "baseline/manifest.json",
    "finetune/model.keras", "finetune/model.keras.json", "finetune/manifest.json",
    "quantize/model_int8.tflite", "quantize/manifest.json",
    "recluster/model.tflite", "recluster/recluster.json", "recluster/manifest.json",
    "palettise/palettes.json", "palettise/palettes.c", "palettise/manifest.json",
    "history.jsonl", "index.html", "manifest.json",
]


def test_example_runs_every_stage_for_a_u55_and_a_u85_target(example_deploy):
    doc = example_deploy.first.json
    assert doc["exit_code"] == 0 and doc["error"] is None and doc["model"] == "example"
    names = [s["name"] for s in doc["stages"]]
    assert names[:4] == ["example", "baseline (float, plain int8)", "finetune (K=16)", "quantize (tfmot flow)"]
    assert "recluster (K=16)" in names and "palettise" in names and names[-1] == "dashboard (all targets)"
    for t in TARGETS:
        for stage in (f"compile {t} plain", f"compile {t} before", f"compile {t} after", f"firmware {t}", f"report {t}"):
            assert stage in names
    # the example was trained by the session fixture: the pipeline takes it from its cache
    statuses = {s["name"]: s["status"] for s in doc["stages"]}
    assert statuses["example"] == "up to date"
    assert all(v == "ran" for k, v in statuses.items() if k != "example")
    m = example_deploy.model_dir
    for f in STAGE_FILES:
        assert (m / f).is_file(), f
    for t in TARGETS:
        for v in ("plain", "before", "after"):
            assert (m / t / "compile" / v / "compile.json").is_file()
            assert json.loads((m / t / "compile" / v / "manifest.json").read_text())["key"]["stage"] == "compile"
        fw = json.loads((m / t / "firmware" / "firmware.json").read_text())
        assert fw["target"] == t and fw["name"] == "example"
        assert (m / t / "firmware" / "example_model.c").is_file()
        for f in ("report.json", "report.md", "index.html"):
            assert (m / t / "report" / f).is_file()
    assert [t["target"] for t in doc["targets"]] == list(TARGETS)
    # the float and plain models come from the unclustered model, the before model from the clustered one
    manifest = json.loads((m / "finetune" / "manifest.json").read_text())
    assert manifest["key"]["config"]["clusters"] == 16 and manifest["key"]["config"]["epochs"] == 1
    assert manifest["result"]["train_samples"] == 600
    assert "tensorflow" in manifest["key"]["tool_versions"]
    compiled = json.loads((m / TARGETS[0] / "compile" / "after" / "manifest.json").read_text())
    assert "ethos-u-vela" in compiled["key"]["tool_versions"] and "tensorflow" not in compiled["key"]["tool_versions"]


def test_second_run_redoes_nothing_and_says_so(example_deploy, tmp_path):
    # a copy: manifests hold content hashes, not paths, so a moved build is still up to date
    build = copy_build(example_deploy.build_dir, tmp_path / "build")
    args = [a if a != str(example_deploy.build_dir) else str(build) for a in example_deploy.args]
    before = tree_digest(build)
    run = deploy(*args)
    assert run.rc == 0, run.stderr
    n = len(example_deploy.first.json["stages"])
    assert f"nothing to do: all {n} stages up to date" in run.stdout
    assert run.stdout.count("up to date") >= n
    assert tree_digest(build) == before  # reports, dashboards and history byte-identical
    assert len((build / "example" / "history.jsonl").read_text().splitlines()) == 1


def test_changed_recluster_setting_redoes_exactly_recluster_and_downstream(example_deploy, tmp_path, small_config):
    build = copy_build(example_deploy.build_dir, tmp_path / "build")
    config = tmp_path / "k8.toml"
    config.write_text(small_config.read_text() + "\n[recluster]\nclusters = 8\n")
    args = [str(build) if a == str(example_deploy.build_dir) else str(config) if a == str(small_config) else a
            for a in example_deploy.args]
    before = tree_digest(build / "example")
    run = deploy(*args, "--json")
    assert run.rc == 0, run.stderr
    expected = {"recluster (K=8)", "palettise", "dashboard (all targets)"}
    for t in TARGETS:
        expected |= {f"compile {t} after", f"firmware {t}", f"report {t}"}
    assert ran_stages(run) == expected
    after = tree_digest(build / "example")
    for untouched in ("baseline/", "finetune/", "quantize/", *[f"{t}/compile/before/" for t in TARGETS],
                      *[f"{t}/compile/plain/" for t in TARGETS]):
        assert {k: v for k, v in after.items() if k.startswith(untouched)} == \
               {k: v for k, v in before.items() if k.startswith(untouched)}, untouched
    assert after["recluster/model.tflite"] != before["recluster/model.tflite"]
    report = json.loads((build / "example" / TARGETS[0] / "report" / "report.json").read_text())
    assert report["clusters"] == 8 and report["models"]["after"]["max_distinct_values"] <= 8
    assert report["finetune"]["clusters"] == 16  # the section's own K wins for recluster only
    history = (build / "example" / "history.jsonl").read_text().splitlines()
    assert [json.loads(h)["clusters"] for h in history] == [16, 8]


def test_post_training_entry_with_data_measures_accuracy(example_deploy, tmp_path, small_config):
    """The tfmot-flow model of the example as an int8 .tflite entry, with DATA for accuracy."""
    model = example_deploy.model_dir / "quantize" / "model_int8.tflite"
    run = deploy(str(model), "--data", "mnist", "--config", str(small_config), "--target", "ethos-u55-128",
                 "--build-dir", str(tmp_path), "--json")
    assert run.rc == 0, run.stderr
    names = [s["name"] for s in run.json["stages"]]
    assert names[0] == "evaluate input model" and not any(n.startswith(("finetune", "baseline")) for n in names)
    report = json.loads((tmp_path / "model_int8" / "ethos-u55-128" / "report" / "report.json").read_text())
    assert report["entry"] == "tflite" and report["models"]["plain"] is None
    assert report["data"] == {"name": "mnist", "test_samples": 300}
    before, after = report["models"]["before"], report["models"]["after"]
    # the same model and the same 300 images as the Keras run: the same accuracy
    full = json.loads((example_deploy.model_dir / "ethos-u55-128" / "report" / "report.json").read_text())
    assert before["accuracy"] == full["models"]["before"]["accuracy"]
    assert after["accuracy"] == full["models"]["after"]["accuracy"]
    assert after["accuracy"] > 0.8
    # with data, the LiteRT check runs on real test images rather than random inputs
    assert report["recluster"]["verification"]["inputs"] == "8 test samples of mnist"
    assert report["recluster"]["verification"]["evidence"] == "held_out"
    assert report["recluster"]["verification"]["samples"] == 8
