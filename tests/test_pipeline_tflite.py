"""``toolchain deploy MODEL.tflite``: the post-training entry (no TensorFlow, no data), its incremental
rebuild, and the errors a user meets (bad MODEL, unknown TARGET, over budget, bad CONFIG), each with
its message and exit code."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from fixtures_pipeline import *
from fixtures_pipeline import TARGETS, deploy, ran_stages, tree_digest

pytestmark = pytest.mark.tf  # the input models are made with the TFLite converter (conftest)


def test_tflite_entry_never_imports_tensorflow(conv_bn_int8, tmp_path):
    code = (
        "import sys\n"
        "from toolchain.cli import main\n"
        f"rc = main(['deploy', {str(conv_bn_int8)!r}, '--target', 'ethos-u55-128', '--build-dir', {str(tmp_path)!r}, '-q'])\n"
        "assert rc == 0, rc\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tf_keras', 'keras', 'tensorflow_model_optimization'))\n"
        "assert not bad, bad[:5]\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""  # --quiet
    report = json.loads((tmp_path / "conv_bn_int8" / "ethos-u55-128" / "report" / "report.json").read_text())
    assert report["entry"] == "tflite" and report["data"] is None and report["float_model"] is None
    assert report["models"]["plain"] is None and report["finetune"] is None
    assert report["models"]["before"]["accuracy"] is None and report["models"]["after"]["accuracy"] is None


def test_tflite_entry_builds_every_post_training_stage(tflite_deploy):
    first_names = [s["name"] for s in tflite_deploy.first.json["stages"]]
    assert first_names[0].startswith("recluster") and "palettise" in first_names
    assert not any(n.startswith(("baseline", "finetune", "quantize", "evaluate", "example")) for n in first_names)
    m = tflite_deploy.model_dir
    for t in TARGETS:
        assert not (m / t / "compile" / "plain").exists()
        for v in ("before", "after"):
            assert (m / t / "compile" / v / "compile.json").is_file()
        assert (m / t / "firmware" / "firmware.json").is_file()
        assert (m / t / "report" / "index.html").is_file()


def test_changing_clusters_redoes_exactly_recluster_and_downstream(conv_bn_int8, tmp_path):
    base = (str(conv_bn_int8), *[a for t in TARGETS for a in ("--target", t)], "--build-dir", str(tmp_path))
    first = deploy(*base, "--clusters", "16", "--json")
    assert first.rc == 0, first.stderr
    assert ran_stages(first) == {s["name"] for s in first.json["stages"]}  # a fresh build runs everything
    same = deploy(*base, "--clusters", "16")
    assert same.rc == 0 and "nothing to do" in same.stdout
    changed = deploy(*base, "--clusters", "8", "--json")
    assert changed.rc == 0, changed.stderr
    expected = {"recluster (K=8)", "palettise", "dashboard (all targets)"}
    for t in TARGETS:
        expected |= {f"compile {t} after", f"firmware {t}", f"report {t}"}
    assert ran_stages(changed) == expected
    assert {s["name"] for s in changed.json["stages"] if s["status"] == "up to date"} == {
        f"compile {t} before" for t in TARGETS}
    again = deploy(*base, "--clusters", "8", "--json")
    assert ran_stages(again) == set()
    # a changed output file (here: deleted) is noticed and rebuilt, nothing else
    (tmp_path / "conv_bn_int8" / TARGETS[1] / "firmware" / "firmware.json").unlink()
    repaired = deploy(*base, "--clusters", "8", "--json")
    assert ran_stages(repaired) == {f"firmware {TARGETS[1]}"}


def test_changed_input_model_redoes_everything_downstream(conv_bn_int8, depthwise_int8, tmp_path):
    model = tmp_path / "net.tflite"
    model.write_bytes(conv_bn_int8.read_bytes())
    args = (str(model), "--target", "ethos-u55-128", "--build-dir", str(tmp_path / "b"), "--json")
    assert deploy(*args).rc == 0
    model.write_bytes(depthwise_int8.read_bytes())
    run = deploy(*args)
    assert run.rc == 0, run.stderr
    assert ran_stages(run) == {s["name"] for s in run.json["stages"]}


def test_rerun_leaves_every_file_byte_identical(tflite_deploy):
    before = tree_digest(tflite_deploy.build_dir)
    run = deploy(*tflite_deploy.args)
    assert run.rc == 0 and "nothing to do" in run.stdout
    assert tree_digest(tflite_deploy.build_dir) == before


def test_json_output_lists_stages_reports_and_figures(tflite_deploy):
    doc = tflite_deploy.first.json
    assert doc["exit_code"] == 0 and doc["over_budget"] == [] and doc["clusters"] == 8
    for s in doc["stages"]:
        assert s["status"] in ("ran", "up to date", "skipped") and s["time_s"] >= 0
    for t in doc["targets"]:
        assert Path(t["index_html"]).is_file() and Path(t["report_json"]).is_file()
        after = t["models"]["after"]
        assert after["max_distinct_values"] <= 8 and after["flash_bytes"] > 0 and after["cycles_total"] > 0


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("missing.tflite", None, "MODEL not found"),
        ("junk.tflite", b"TFL3" + bytes(range(256)) * 4, "tflite"),
        ("model.onnx", b"onnx", "must be a Keras model (.keras, .h5) or an int8 .tflite"),
    ],
)
def test_bad_model_exits_2_with_a_message(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    run = deploy(str(path), "--build-dir", str(tmp_path / "build"))
    assert run.rc == 2
    assert run.stderr.startswith("error: ") and message.lower() in run.stderr.lower()
    assert "Traceback" not in run.stderr
    assert not (tmp_path / "build").exists()  # refused before any stage ran


def test_float_model_without_calibration_is_refused(dense_float, tmp_path):
    run = deploy(str(dense_float), "--build-dir", str(tmp_path))
    assert run.rc == 2 and "is a float model" in run.stderr and "--calibration" in run.stderr
    assert "Traceback" not in run.stderr


def test_keras_model_without_data_is_refused_before_tensorflow(tmp_path):
    path = tmp_path / "net.keras"
    path.write_bytes(b"PK\x03\x04 not really a model")
    run = deploy(str(path), "--build-dir", str(tmp_path / "build"))
    assert run.rc == 2 and "needs DATA" in run.stderr


@pytest.mark.parametrize("name", ["net.keras", "net.h5"])
def test_file_that_is_no_keras_model_is_refused_before_any_stage(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"\x00" * 64)
    run = deploy(str(path), "--data", "digits", "--build-dir", str(tmp_path / "build"))
    assert run.rc == 2 and "is not a Keras model" in run.stderr
    assert not (tmp_path / "build").exists()


def test_unknown_target_exits_2_and_names_the_known_ones(conv_bn_int8, tmp_path):
    run = deploy(str(conv_bn_int8), "--target", "ethos-u55-128", "--target", "ethos-u99", "--build-dir", str(tmp_path / "b"))
    assert run.rc == 2
    assert "unknown target 'ethos-u99'" in run.stderr and "ethos-u85-256" in run.stderr
    assert not (tmp_path / "b").exists()


def test_over_budget_exits_4_after_writing_the_report(conv_bn_int8, tmp_path):
    profile = tmp_path / "tiny.toml"
    profile.write_text('schema_version = 1\nname = "tiny-board"\nbase = "ethos-u55-128"\n\n'
                       "[budget]\nsram_bytes = 1024\nflash_bytes = 4_194_304\n")
    run = deploy(str(conv_bn_int8), "--profile", str(profile), "--build-dir", str(tmp_path / "b"), "--json")
    assert run.rc == 4
    assert "does not fit tiny-board" in run.stderr and "SRAM" in run.stderr
    doc = run.json
    assert doc["exit_code"] == 4 and doc["over_budget"] == ["tiny-board"]
    assert [t["target"] for t in doc["targets"]] == ["tiny-board"]  # PROFILE alone: only the custom target
    report = json.loads((tmp_path / "b" / "conv_bn_int8" / "tiny-board" / "report" / "report.json").read_text())
    assert report["budget"]["within_budget"] is False and report["budget"]["sram_budget_bytes"] == 1024
    assert report["budget"]["sram_bytes"] > 1024
    # accepted when the config says so
    cfg = tmp_path / "accept.toml"
    cfg.write_text("[compile]\nenforce_budget = false\n")
    ok = deploy(str(conv_bn_int8), "--profile", str(profile), "--config", str(cfg), "--build-dir", str(tmp_path / "b"))
    assert ok.rc == 0 and "NO" in ok.stdout


@pytest.mark.parametrize(
    "text, message",
    [
        ("[recluster]\nclusterz = 8\n", "'clusterz' was unexpected"),
        ("[compile]\nallow_cpu = 'yes'\n", "compile/allow_cpu"),
        ("[wishes]\nfast = true\n", "'wishes' was unexpected"),
        ("[finetune]\nepochs = -1\n", "finetune/epochs"),
        ("not toml at all = = =\n", "not valid TOML"),
    ],
)
def test_bad_config_exits_2_naming_the_key(conv_bn_int8, tmp_path, text, message):
    cfg = tmp_path / "pipeline.toml"
    cfg.write_text(text)
    run = deploy(str(conv_bn_int8), "--config", str(cfg), "--build-dir", str(tmp_path / "b"))
    assert run.rc == 2 and message in run.stderr, run.stderr
    assert not (tmp_path / "b").exists()


def test_bad_clusters_option_exits_2(conv_bn_int8, tmp_path):
    run = deploy(str(conv_bn_int8), "--clusters", "1", "--build-dir", str(tmp_path))
    assert run.rc == 2 and "clusters must be from 2 to 256" in run.stderr


def test_verification_limit_exits_5(conv_bn_int8, tmp_path):
    cfg = tmp_path / "strict.toml"
    cfg.write_text("[verify]\nmin_top1_agreement = 1.0\nsamples = 64\n")
    run = deploy(str(conv_bn_int8), "--clusters", "2", "--config", str(cfg), "--build-dir", str(tmp_path / "b"))
    assert run.rc == 5 and "top-1 agreement" in run.stderr
