"""toolchain compile: real Vela runs on small real models, and the Ethos-N78 estimate (tests/test_ethos_n.py has more)."""
from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fixtures_compile import *

from toolchain.cli import main
from toolchain.core.errors import BudgetExceeded, ToolError
from toolchain.core.fileio import sha256_file
from toolchain.core.schemas import validate
from toolchain.targets import vela_csv
from toolchain.targets.compile import compile_model
from toolchain.targets.compile_result import CompileStatus, EstimateKind
from toolchain.targets.ethos_n_calibration import estimate_label
from toolchain.targets.profiles import builtin_names, load_profile
from toolchain.targets.vela_run import run_vela
from toolchain.tflite.graph import find_weight_tensors, op_name
from toolchain.tflite.model_io import read_model, write_model

pytestmark = [pytest.mark.tf, pytest.mark.slow]

FAMILY_TARGETS = ("ethos-u55-128", "ethos-u65-256", "ethos-u85-256")


@pytest.fixture(scope="module")
def compiled(conv_bn_int8, tmp_path_factory):
    root = tmp_path_factory.mktemp("compiled")
    return {t: compile_model(conv_bn_int8, load_profile(t), root / t) for t in FAMILY_TARGETS}


def _files(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir()) if p.is_file()}


def _cli(argv, capsys):
    rc = main(argv)
    out = capsys.readouterr()
    assert "Traceback" not in out.err
    return rc, out.out, out.err


# --------------------------------------------------------------------------- every profile


@pytest.mark.parametrize("name", builtin_names())
def test_every_profile_compiles_a_small_model(name, conv_bn_int8, tmp_path):
    profile = load_profile(name)
    r = compile_model(conv_bn_int8, profile, tmp_path / "out")
    data = json.loads(r.compile_json.read_text())
    validate(data, "compile", "compile.json")
    assert data == r.report
    assert data["target"] == profile.name and data["npu_operators"] > 0
    assert r.sram_bytes > 0 and r.cycles_total > 0 and data["layers"]
    assert data["budget"]["within_budget"] and r.within_budget
    assert data["inference_time_s"] == pytest.approx(data["cycles_total"] / data["clock_hz"], rel=1e-3)
    if profile.family.compiled_by_vela:
        assert r.status is CompileStatus.OK and data["cpu_operators"] == 0
        assert r.estimate_kind is EstimateKind.VELA and data["estimate_label"] == "Vela compile"
        compiled_model = read_model(r.vela_model.read_bytes())
        assert "CUSTOM:ethos-u" in {op_name(compiled_model, op) for op in compiled_model.subgraphs[0].operators}
        assert data["vela_version"] == "5.2.0" and data["system_config"] == profile.system_config_name
    else:
        variant = profile.ethos_n.variant
        assert r.estimate_kind is EstimateKind.ANALYTICAL and data["estimate_label"] == estimate_label(variant)
        assert data["vela_model"] is None and r.vela_model is None and data["assumptions"]
        # TF 2.21 quantizes Dense per channel, which Arm's library does not run: named, with its reason
        assert r.status is CompileStatus.PARTIAL_CPU
        assert [(n["op"], n["source"]) for n in data["ethos_n"]["not_supported"]] == [("FULLY_CONNECTED",
                                                                                      "support library")]
        # never faster than peak MACs allow
        npu_macs = sum(la["macs"] for la in data["layers"] if la["target"] == "npu")
        assert data["cycles_total"] >= npu_macs / variant.hardware.macs_per_cycle


# --------------------------------------------------------------------------- Vela's CSVs, against its other outputs


def _stdout_kib(log: str, label: str) -> float | None:
    m = re.search(rf"^Total {label} used\s+([\d.]+) KiB", log, re.MULTILINE)
    return float(m.group(1)) if m else None


@pytest.mark.parametrize("target", FAMILY_TARGETS)
def test_summary_units_agree_with_vela_stdout(compiled, target):
    r = compiled[target]
    d = r.report
    log = (r.out_dir / d["files"]["log"]).read_text()
    # The CSV has KiB; stdout prints KiB rounded to 2 decimals: our bytes must agree with both.
    for label, key in (("SRAM", "sram_bytes"), ("Off-chip Flash", "off_chip_flash_bytes"), ("DRAM", "dram_bytes")):
        kib = _stdout_kib(log, label)
        if kib is None:
            assert d[key] == 0, label
        else:
            assert abs(d[key] / 1024 - kib) <= 0.006, label
            assert d[key] > 0
    # Vela's own operator count, beside the model's: the lines of its stdout, one subgraph here
    vela_counts = {k.lower(): int(n) for k, n in re.findall(r"^(NPU|CPU) operators = (\d+)", log, re.MULTILINE)}
    assert d["vela_operator_counts"] == {**vela_counts, "last_subgraph_only": False}
    assert f"Accelerator clock {d['clock_hz'] // 1_000_000:>33} MHz".split() == re.search(
        r"^Accelerator clock.*$", log, re.MULTILINE
    ).group(0).split()
    profile = load_profile(target)
    for area, bw in profile.bandwidths_bytes_per_s().items():
        key = {"Sram": "sram", "Dram": "dram", "OffChipFlash": "off_chip_flash", "OnChipFlash": "on_chip_flash"}[area]
        assert d["bandwidth_bytes_per_s"][key] == pytest.approx(bw, rel=1e-6)


@pytest.mark.parametrize("target", FAMILY_TARGETS)
def test_per_layer_figures_add_up_to_the_summary(compiled, conv_bn_int8, target):
    d = compiled[target].report
    layers = d["layers"]
    assert sum(la["cycles"] for la in layers) == d["cycles_total"]
    assert sum(la["npu_cycles"] for la in layers) == d["cycles_npu"]
    assert sum(la["macs"] for la in layers) == d["macs"]
    assert sum(la["encoded_weight_bytes"] for la in layers) == d["encoded_weight_bytes"]
    # Vela's rows name the input operators they came from: those on the NPU are the placement's NPU operators
    npu_rows = {la["source_operator"] for la in layers if la["target"] == "npu"}
    placed = {o["index"] for s in d["placement"]["subgraphs"] for o in s["npu"]}
    input_operators = len(read_model(conv_bn_int8.read_bytes()).subgraphs[0].operators)
    assert npu_rows <= placed and len(placed) == d["npu_operators"] == input_operators
    assert all(la["subgraph"] == 0 for la in layers)
    assert sum(d["cycles_by_memory"].values()) > 0
    # Per-layer original weights come from the input model; Vela's total also counts weights it
    # synthesises (the MEAN becomes a depthwise convolution with constant weights).
    model = read_model(conv_bn_int8.read_bytes())
    model_weight_bytes = sum(int(np.prod(w.shape)) for w in find_weight_tensors(model))
    assert sum(la["weight_bytes"] for la in layers) == model_weight_bytes
    assert d["original_weight_bytes"] >= model_weight_bytes
    assert 0 < d["encoded_weight_ratio"] < 1.5
    convs = [la for la in layers if la["op"] == "Conv2D"]
    assert len(convs) == 2 and all(la["weight_bytes"] > 0 and la["distinct_weight_values"] for la in convs)
    assert d["budget"]["flash_used_bytes"] == (compiled[target].out_dir / d["vela_model"]).stat().st_size


def test_per_layer_csv_parsed_like_a_csv_reader(compiled):
    r = compiled["ethos-u55-128"]
    path = r.out_dir / r.report["files"]["per_layer_csv"]
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    parsed = vela_csv.parse_per_layer_csv(path)
    assert len(parsed) == len(rows) == len(r.report["layers"])
    for row, layer in zip(rows, parsed):
        assert layer.name == row["Name"] and layer.op == row["NNG Operator"]
        assert layer.cycles == int(row["Op Cycles"]) and layer.access_cycles["sram"] == int(row["SRAM AC"])


def test_summary_csv_missing_a_column_is_a_tool_error(compiled, tmp_path):
    r = compiled["ethos-u65-256"]
    lines = (r.out_dir / r.report["files"]["summary_csv"]).read_text().splitlines()
    header, row = lines[0].split(","), lines[1].split(",")
    i = header.index("sram_memory_used")
    broken = tmp_path / "broken.csv"
    broken.write_text(",".join(header[:i] + header[i + 1 :]) + "\n" + ",".join(row[:i] + row[i + 1 :]) + "\n")
    with pytest.raises(ToolError, match="lacks column 'sram_memory_used'"):
        vela_csv.parse_summary_csv(broken)


def test_weights_stream_from_where_the_memory_mode_puts_them(compiled):
    u55, u65 = compiled["ethos-u55-128"].report, compiled["ethos-u65-256"].report
    assert u55["off_chip_flash_bytes"] > 0 and u55["dram_bytes"] == 0 and u55["cycles_by_memory"]["off_chip_flash"] > 0
    assert u65["dram_bytes"] > 0 and u65["off_chip_flash_bytes"] == 0 and u65["cycles_by_memory"]["dram"] > 0


def test_sram_only_mode_counts_weights_against_sram(conv_bn_int8, tmp_path):
    prof = tmp_path / "sram_only.toml"
    prof.write_text('schema_version = 1\nname = "sram-only"\nbase = "ethos-u85-256"\nmemory_mode = "Sram_Only"\n')
    d = compile_model(conv_bn_int8, load_profile(prof), tmp_path / "o").report
    # Vela calls the weights "on-chip flash" here, but they sit in the same SRAM as the arena
    assert d["constants_in_sram"] and d["on_chip_flash_bytes"] > 0 and d["off_chip_flash_bytes"] == 0
    assert d["budget"]["sram_used_bytes"] == d["sram_bytes"] + d["on_chip_flash_bytes"]


# --------------------------------------------------------------------------- reruns, inputs, command line


def test_rerun_is_byte_identical_and_input_untouched(conv_bn_int8, tmp_path):
    before = sha256_file(conv_bn_int8)
    out = tmp_path / "u85"
    compile_model(conv_bn_int8, load_profile("ethos-u85"), out)
    first = _files(out)
    compile_model(conv_bn_int8, load_profile("ethos-u85"), out)
    assert _files(out) == first
    assert sha256_file(conv_bn_int8) == before
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary directory left


def test_recorded_command_reproduces_the_vela_model(compiled, conv_bn_int8, tmp_path):
    """The command names the model by file name only (compile.json is the same wherever the model lives):
    run beside a copy of the model so named, it writes the same files."""
    r = compiled["ethos-u55-128"]
    cmd = r.report["command"]
    assert cmd[0] == "vela" and cmd[1] == conv_bn_int8.name and not any(Path(a).is_absolute() for a in cmd)
    shutil.copyfile(conv_bn_int8, tmp_path / cmd[1])
    proc = subprocess.run([sys.executable, "-m", "ethosu.vela", *cmd[1:]], cwd=tmp_path, capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    before, after = _files(r.out_dir), _files(tmp_path)
    for key in ("vela_model", "summary_csv", "per_layer_csv"):
        name = r.report["files"][key]
        assert after[name] == before[name], name


def test_custom_system_profile_compiles_through_a_rendered_ini(conv_bn_int8, tmp_path):
    prof = tmp_path / "board.toml"
    prof.write_text(
        'schema_version = 1\nname = "board"\nbase = "ethos-u55-128"\n'
        "[system]\nname = \"Board_Sys\"\ncore_clock_hz = 250_000_000\naxi0_port = \"Sram\"\naxi1_port = \"OffChipFlash\"\n"
        "[system.Sram]\nclock_scale = 1.0\nburst_length_bytes = 32\nread_latency_cycles = 32\n"
        "[system.OffChipFlash]\nbandwidth_bytes_per_s = 1e8\nburst_length_bytes = 128\nread_latency_cycles = 64\n"
    )
    profile = load_profile(prof)
    out = tmp_path / "out"
    slow = compile_model(conv_bn_int8, profile, out).report
    fast = compile_model(conv_bn_int8, load_profile("ethos-u55-128"), tmp_path / "ref").report
    assert (out / "board.ini").is_file() and slow["files"]["vela_ini"] == "board.ini"
    assert slow["system_config"] == "Board_Sys" and slow["clock_hz"] == 250_000_000
    assert "./board.ini" in slow["command"]
    assert (out / "conv_bn_int8_summary_Board_Sys.csv").is_file()
    assert slow["bandwidth_bytes_per_s"]["off_chip_flash"] == pytest.approx(1e8, rel=1e-6)
    # a 5x slower flash at half the clock: weight streaming dominates, the inference takes longer
    assert slow["cycles_by_memory"]["off_chip_flash"] > fast["cycles_by_memory"]["off_chip_flash"]
    assert slow["inference_time_s"] > fast["inference_time_s"]


# --------------------------------------------------------------------------- CPU fallback


def test_partly_cpu_model_is_reported_not_hidden(gather_int8, tmp_path, capsys):
    rc, out, err = _cli(["compile", str(gather_int8), "--target", "ethos-u55", "-o", str(tmp_path)], capsys)
    assert rc == 0
    ops = [op_name(m, op) for m in [read_model(gather_int8.read_bytes())] for op in m.subgraphs[0].operators]
    assert len(ops) == 6 and ops.count("GATHER") == 1
    assert "WARNING: 1 of 6 operators per inference run on the CPU (1 compute: GATHER)" in err
    assert "partial_cpu" in out and "in the model: NPU 5 / CPU 1 per inference (1 compute on the CPU)" in out
    d = json.loads((tmp_path / "compile.json").read_text())
    assert d["status"] == "partial_cpu" and d["cpu_operators"] == 1 and d["init_operators"] == 0
    rc, out, err = _cli(["compile", str(gather_int8), "--target", "ethos-u55", "-o", str(tmp_path), "-q"], capsys)
    assert rc == 0 and out == "" and err == ""  # --quiet: nothing on success, not even the warning
    assert [c["op"] for c in d["cpu_fallback"]] == ["GATHER"] and d["cpu_fallback"][0]["reason"]
    cpu_layers = [la for la in d["layers"] if la["target"] == "cpu"]
    assert len(cpu_layers) == 1 and cpu_layers[0]["cycles"] == 0


def test_mostly_cpu_model_fails_loudly(hybrid_int8, tmp_path, capsys):
    rc, out, err = _cli(["compile", str(hybrid_int8), "--target", "ethos-u65", "-o", str(tmp_path)], capsys)
    assert rc == 2 and out == ""
    assert "runs mostly on the CPU on ethos-u65-256: 3 of 3 compute operations per inference" in err
    assert "float activations" in err and err.count("\n") == 1 and "--allow-cpu" in err
    d = json.loads((tmp_path / "compile.json").read_text())
    assert d["status"] == "mostly_cpu" and d["npu_operators"] == 0 and d["cycles_total"] == 0
    assert d["placement"]["cpu_macs"] > 0 == d["placement"]["npu_macs"]
    rc, out, _ = _cli(["compile", str(hybrid_int8), "--target", "ethos-u65", "-o", str(tmp_path), "--allow-cpu"], capsys)
    assert rc == 0 and "mostly_cpu" in out and "in the model: NPU 0 / CPU 3" in out


# --------------------------------------------------------------------------- bad input: exit 2, one line, nothing written


@pytest.fixture
def bad_models(conv_bn_int8, tmp_path):
    good = conv_bn_int8.read_bytes()
    rng = np.random.default_rng(0)
    made = {
        "random": rng.integers(0, 256, 4000, dtype=np.uint8).tobytes(),
        "junk_after_magic": good[:8] + rng.integers(0, 256, 4000, dtype=np.uint8).tobytes(),
        "truncated": good[: len(good) // 3],
        "empty": b"",
    }
    paths = {}
    for name, data in made.items():
        paths[name] = tmp_path / f"{name}.tflite"
        paths[name].write_bytes(data)
    return paths


@pytest.mark.parametrize(
    "which, message",
    [
        ("random", "not a .tflite model"),
        ("junk_after_magic", "junk_after_magic.tflite: malformed"),
        ("truncated", "truncated.tflite: malformed or truncated"),
        ("empty", "empty file"),
    ],
)
def test_corrupt_models_exit_2_before_vela(bad_models, tmp_path, capsys, which, message):
    out = tmp_path / "out"
    rc, stdout, err = _cli(["compile", str(bad_models[which]), "--target", "ethos-u55", "-o", str(out)], capsys)
    assert rc == 2 and stdout == ""
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not out.exists()


def test_float_model_exit_2(dense_float, tmp_path, capsys):
    rc, _, err = _cli(["compile", str(dense_float), "--target", "ethos-u85", "-o", str(tmp_path / "o")], capsys)
    assert rc == 2 and "dense_float.tflite is a float model" in err and "toolchain quantize" in err
    assert not (tmp_path / "o").exists()


def test_wrong_target_exit_2(conv_bn_int8, tmp_path, capsys):
    rc, _, err = _cli(["compile", str(conv_bn_int8), "--target", "ethos-u57", "-o", str(tmp_path / "o")], capsys)
    assert rc == 2 and "unknown target 'ethos-u57'" in err and "ethos-u55-128" in err
    prof = tmp_path / "p.toml"
    prof.write_text('schema_version = 1\nname = "p"\nbase = "ethos-u55-64"\n')
    rc, _, err = _cli(["compile", str(conv_bn_int8), "--target", "ethos-u85", "--profile", str(prof)], capsys)
    assert rc == 2 and "does not match profile file p.toml" in err
    rc, _, err = _cli(["compile", str(conv_bn_int8)], capsys)
    assert rc == 2 and "--target" in err


def test_already_compiled_model_exit_2(compiled, tmp_path, capsys):
    vela_model = compiled["ethos-u55-128"].vela_model
    rc, _, err = _cli(["compile", str(vela_model), "--target", "ethos-u85", "-o", str(tmp_path / "o")], capsys)
    assert rc == 2 and "already compiled by Vela" in err


# --------------------------------------------------------------------------- Vela failing: exit 3


def test_vela_crash_on_truncated_input_is_contained(bad_models, tmp_path):
    # Bypass validation on purpose: Vela segfaults on this file, and only its subprocess dies.
    with pytest.raises(ToolError, match=r"Vela crashed \(SIGSEGV\)"):
        run_vela(bad_models["truncated"], load_profile("ethos-u55"), tmp_path / "o", timeout_s=120)
    with pytest.raises(ToolError, match=r"Vela failed \(exit 1\)"):
        run_vela(bad_models["random"], load_profile("ethos-u55"), tmp_path / "o", timeout_s=120)
    assert [p.name for p in (tmp_path / "o").iterdir()] == []


def test_vela_timeout_exit_3(conv_bn_int8, tmp_path, capsys):
    rc, _, err = _cli(["compile", str(conv_bn_int8), "--target", "ethos-u55", "-o", str(tmp_path), "--timeout", "0.01"], capsys)
    assert rc == 3 and "did not finish" in err


# --------------------------------------------------------------------------- budget: exit 4


def test_budget_gate(conv_bn_int8, tmp_path, capsys):
    prof = tmp_path / "tiny.toml"
    prof.write_text('schema_version = 1\nname = "tiny"\nbase = "ethos-u55"\n[budget]\nsram_bytes = 4096\nflash_bytes = 2000\n')
    out = tmp_path / "o"
    rc, stdout, err = _cli(["compile", str(conv_bn_int8), "--profile", str(prof), "-o", str(out)], capsys)
    assert rc == 4 and stdout == ""
    d = json.loads((out / "compile.json").read_text())
    sram, flash = d["budget"]["sram_used_bytes"], d["budget"]["flash_used_bytes"]
    assert f"SRAM {sram:,} B > budget 4,096 B" in err and f"flash (compiled model file) {flash:,} B > budget 2,000 B" in err
    assert not d["budget"]["within_budget"] and d["budget"]["enforced"]
    rc, stdout, _ = _cli(["compile", str(conv_bn_int8), "--profile", str(prof), "-o", str(out), "--no-budget"], capsys)
    assert rc == 0 and "OVER BUDGET" in stdout
    d = json.loads((out / "compile.json").read_text())
    assert not d["budget"]["within_budget"] and not d["budget"]["enforced"]
    with pytest.raises(BudgetExceeded, match="does not fit tiny"):
        compile_model(conv_bn_int8, load_profile(prof), out)


def test_cli_json_output_is_compile_json(conv_bn_int8, tmp_path, capsys):
    rc, stdout, _ = _cli(["compile", str(conv_bn_int8), "--target", "ethos-n78-4tops-2ple", "-o", str(tmp_path), "--json",
                          "--allow-cpu"], capsys)
    assert rc == 0 and json.loads(stdout) == json.loads((tmp_path / "compile.json").read_text())


# --------------------------------------------------------------------------- palettes: Vela and the Ethos-N78 estimate


def test_few_distinct_values_encode_smaller_on_vela_and_ethos_n(few_values_int8, dense_int8, tmp_path):
    few = compile_model(few_values_int8, load_profile("ethos-u55"), tmp_path / "few").report
    rand = compile_model(dense_int8, load_profile("ethos-u55"), tmp_path / "rand").report
    assert all(w["distinct_values"] <= 8 and w["within_palette_limit"] for w in few["weight_tensors"])
    assert few["tensors_over_palette_limit"] == 0 and rand["tensors_over_palette_limit"] == 3
    # Vela's palette mode: 8 values -> about a third of the int8 size, random weights -> little gain
    assert few["encoded_weight_ratio"] < 0.5 < rand["encoded_weight_ratio"]

    # Arm's encoder on the same layers (per-tensor scales: Arm's library runs these fully connected layers): a
    # palette of the 8 values per output channel; the same layers with uniform random weights encode larger
    n = compile_model(few_values_int8, load_profile("ethos-n78"), tmp_path / "n").report
    assert n["status"] == "ok" and not n["ethos_n"]["not_supported"]
    assert not any("distinct values" in w for w in n["warnings"])
    assert n["encoded_weight_bytes"] == sum(la["encoded_weight_bytes"] for la in n["layers"])
    model = read_model(few_values_int8.read_bytes())
    rng = np.random.default_rng(0)
    for w in find_weight_tensors(model):
        buf = model.buffers[model.subgraphs[w.subgraph].tensors[w.tensor_index].buffer]
        buf.data = rng.integers(-127, 128, size=len(buf.data), dtype=np.int8).view(np.uint8)
    random_path = tmp_path / "random_weights.tflite"
    random_path.write_bytes(write_model(model))
    n_rand = compile_model(random_path, load_profile("ethos-n78"), tmp_path / "nr").report
    assert any("more than 32 distinct values" in w for w in n_rand["warnings"])
    assert n["original_weight_bytes"] == n_rand["original_weight_bytes"]
    assert n["encoded_weight_bytes"] < n_rand["encoded_weight_bytes"]
