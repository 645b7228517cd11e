"""One clean error (exit 2, one line) for every bad value in a config, a profile or a flag.

JSON Schema as jsonschema implements it lets through what people and TOML produce: ``1e9``
where an integer is required, ``nan`` (never below a minimum), ``"name\\n"`` against a
pattern ending in ``$``, documents nested until Python's recursion limit. The strict
validator of toolchain.core.schemas closes each gap; these tests feed each one in.
"""
from __future__ import annotations

import contextlib
import io
import json

import pytest

from toolchain.cli import main
from toolchain.core.errors import ConfigError
from toolchain.core.schemas import MAX_NESTING, parse_config, validate
from toolchain.firmware.config import FirmwareConfig
from toolchain.pipeline.config import config_from_mapping
from toolchain.targets.profiles import load_profile

U55_BOARD = 'schema_version = 1\nname = "board"\nbase = "ethos-u55-128"\n'
CUSTOM_SYSTEM = (U55_BOARD + '[system]\ncore_clock_hz = 250_000_000\naxi0_port = "Sram"\naxi1_port = "OffChipFlash"\n'
                 "[system.Sram]\nclock_scale = 1.0\n[system.OffChipFlash]\n")
ETHOS_N = ('schema_version = 1\nname = "n78"\naccelerator = "ethos-n78-1tops-4ple"\npalette_limit = 32\n'
           "[budget]\nsram_bytes = 1048576\nflash_bytes = 4194304\n[ethos_n]\n")


@pytest.mark.parametrize("profile, message", [
    (CUSTOM_SYSTEM + "clock_scale = nan\n", "clock_scale: nan is not a finite number"),
    (CUSTOM_SYSTEM + "clock_scale = 1e-300\n", "clock_scale: 1e-300 is less than the minimum"),
    (CUSTOM_SYSTEM + "bandwidth_bytes_per_s = inf\n", "bandwidth_bytes_per_s: inf is not a finite number"),
    (CUSTOM_SYSTEM + "bandwidth_bytes_per_s = 1e-300\n", "bandwidth_bytes_per_s: 1e-300 is less than the minimum"),
    (ETHOS_N + "clock_hz = inf\n", "clock_hz: inf is not a finite number"),
    (ETHOS_N + "clock_hz = 1e9\n", "clock_hz: 1000000000.0 is not a whole number"),
    (ETHOS_N + "clock_hz = 99\n", "clock_hz: 99 is less than the minimum"),
    (U55_BOARD + "[budget]\nsram_bytes = 1e30\n", "sram_bytes: 1e\\+30 is not a whole number"),
    (U55_BOARD + "[budget]\nsram_bytes = 65536.0\n", "sram_bytes: 65536.0 is not a whole number"),
    ('schema_version = 1\nname = "board\\n"\nbase = "ethos-u55-128"\n', "at name: 'board\\\\n' does not match"),
    ("a = " + "[" * 2000 + "]" * 2000 + "\n", f"nests tables or arrays more than {MAX_NESTING} deep"),
])
def test_profile_values_are_finite_in_range_and_of_their_type(tmp_path, profile, message):
    path = tmp_path / "board.toml"
    path.write_text(profile)
    with pytest.raises(ConfigError, match=message):
        load_profile(path)


def test_a_json_profile_nested_past_the_recursion_limit_is_one_line(tmp_path):
    path = tmp_path / "board.json"
    path.write_text("[" * 100_000 + "]" * 100_000)  # json.loads: RecursionError
    with pytest.raises(ConfigError, match="nests tables or arrays"):
        load_profile(path)


@pytest.mark.parametrize("raw, message", [
    ({"verify": {"min_top1_agreement": float("nan")}}, "min_top1_agreement: nan is not a finite number"),
    ({"verify": {"min_top1_agreement": 1.5}}, "greater than the maximum"),
    ({"data": {"seed": 1e9}}, "seed: 1000000000.0 is not a whole number"),
    ({"data": {"seed": 1.0}}, "seed: 1.0 is not a whole number"),
    ({"compile": {"timeout_s": float("inf")}}, "timeout_s: inf is not a finite number"),
    ({"recluster": {"clusters": 16.0}}, "clusters: 16.0 is not a whole number"),
    ({"firmware": {"section": "sec\n"}}, "section"),
])
def test_pipeline_config_values(raw, message):
    with pytest.raises(ConfigError, match=message):
        config_from_mapping(raw, None, "pipeline config")


def test_integers_and_finite_numbers_still_pass():
    config_from_mapping({"data": {"seed": 7}, "verify": {"min_top1_agreement": 1}, "compile": {"timeout_s": 60}}, 8)
    validate({"clusters": 8}, "recluster", "recluster config")
    assert parse_config(json.dumps({"a": [[1, 2.5]]}).encode(), ".json", "x") == {"a": [[1, 2.5]]}


@pytest.mark.parametrize("kwargs, message", [
    ({"name": "fw\n"}, "--name must be a C identifier"),
    ({"name": "fw\r"}, "--name must be a C identifier"),
    ({"section": "network_model_sec\n"}, "--section must be a linker section name"),
    ({"section": ".data\n.globl x"}, "--section must be a linker section name"),
])
def test_firmware_names_with_a_trailing_newline_are_refused(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        FirmwareConfig(target="ethos-u55-128", **kwargs)


@pytest.mark.parametrize("argv, message", [
    (["recluster", "m.tflite", "-o", "o.tflite", "--seed", "1e9"], "--seed: expected a whole number"),
    (["recluster", "m.tflite", "-o", "o.tflite", "--seed", "-1"], "--seed: expected a whole number from 0"),
    (["recluster", "m.tflite", "-o", "o.tflite", "--min-sqnr", "nan"], "--min-sqnr: expected a number"),
    (["recluster", "m.tflite", "-o", "o.tflite", "--samples", "1e30"], "--samples: expected a whole number"),
    (["recluster", "m.tflite", "-o", "o.tflite", "--min-top1-agreement", "nan"], "expected a number from 0 to 1"),
    (["palettise", "m.tflite", "-o", "out", "--verify", "--verify-samples", "0"], "--verify-samples"),
    (["compile", "m.tflite", "--target", "ethos-u55-128", "--timeout", "nan"], "--timeout"),
])
def test_flags_refuse_non_finite_and_non_integer_values_in_one_line(argv, message):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    lines = err.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines


# --------------------------------------------------------------------------- values Python parses but cannot use

HUGE = "1" * 5000  # past Python's 4,300-digit limit of int(str): json and tomllib raise a plain ValueError


@pytest.mark.parametrize("text, suffix, message", [
    (f"clusters = {HUGE}\n", ".toml", "holds an integer with more than 4,300 digits"),
    (f'{{"clusters": {HUGE}}}', ".json", "holds an integer with more than 4,300 digits"),
    ('{"exclude": ["\\ud800"]}', ".json", "holds a string with a lone surrogate \\(\\\\ud800\\)"),
    ('{"\\udfff": 1}', ".json", "lone surrogate \\(\\\\udfff\\)"),  # keys too
])
def test_documents_python_parses_but_cannot_use_are_config_errors(text, suffix, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(text.encode(), suffix, "recluster config c" + suffix)


def test_a_5000_digit_integer_in_a_profile_is_one_line(tmp_path):
    path = tmp_path / "board.toml"
    path.write_text(U55_BOARD + f"[budget]\nsram_bytes = {HUGE}\n")
    with pytest.raises(ConfigError, match="board.toml holds an integer with more than 4,300 digits"):
        load_profile(path)


@pytest.mark.parametrize("argv", [
    ["recluster", "m.tflite", "-o", "o.tflite", "--rule", "a\udcffb=8"],  # a byte 0xff from the shell
    ["palettise", "m.tflite", "-o", "out", "--exclude", "\udcff"],
    ["inspect", "\ud800.tflite"],
])
def test_arguments_that_are_not_utf8_are_refused_before_parsing(argv):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(argv) == 2
    lines = err.getvalue().splitlines()
    assert len(lines) == 1 and "is not UTF-8 text" in lines[0], lines
    assert lines[0].isprintable()


@pytest.mark.parametrize("value", ["¹²⁸", "١٢٨", HUGE, "12345678901", " 128", "128\n", "-128", "0x80"])
def test_the_vela_memory_setting_takes_ascii_digits_only(value, monkeypatch):
    from toolchain.targets.vela_memory import MEMORY_ENV, machine_share_bytes

    monkeypatch.setenv(MEMORY_ENV, value)
    with pytest.raises(ConfigError, match="must be a whole number of MiB from 64"):
        machine_share_bytes()
    monkeypatch.setenv(MEMORY_ENV, "128")
    assert machine_share_bytes() == 128 << 20
