"""One command line: every verb prints quietly or as JSON the same way; -o names a FILE (required) or a DIR
(defaulted to deploy's layout); --debug goes before or after the verb; every placeholder has a name; firmware
reads its target from compile.json; and what a config file can set, a flag can set, and the other way round
(with the deliberate exceptions listed and explained here). The grammar is documented in docs/cli.md."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from toolchain.cli import build_parser
from toolchain.core.package_data import DataFolder, data_files


def _verb_parsers() -> dict[str, argparse.ArgumentParser]:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def _options(parser: argparse.ArgumentParser) -> set[str]:
    return {s for a in parser._actions for s in a.option_strings}


def _schema(name: str) -> dict:
    return json.loads(data_files(DataFolder.SCHEMAS, ".schema.json")[name].read_text())


def _keys(schema: dict) -> set[str]:
    return set(schema["properties"])


VERBS = ("inspect", "recluster", "palettise", "profiles", "compile", "firmware", "firmware-check", "finetune", "quantize",
         "example", "deploy", "report", "sweep")


def test_every_verb_is_checked_here():
    assert set(_verb_parsers()) == set(VERBS)


@pytest.mark.parametrize("verb", VERBS)
def test_every_verb_takes_quiet_and_json(verb):
    parser = _verb_parsers()[verb]
    assert {"--quiet", "-q", "--json"} <= _options(parser)
    quiet = next(a for a in parser._actions if "--quiet" in a.option_strings)
    assert quiet.help.startswith("print nothing on success")  # one meaning on every verb
    # and never both at once: one mutually exclusive group holds the two
    assert any({"--quiet", "--json"} <= {s for a in g._group_actions for s in a.option_strings}
               for g in parser._mutually_exclusive_groups)


# ----------------------------------------------------------------------------- the -o grammar (docs/cli.md)


class Writes:
    FILE = "FILE"  # one file: -o/--output FILE, required (its name is the user's; no layout to put it in)
    DIR = "DIR"  # a directory: -o/--output-dir DIR, defaulted to where deploy puts it under build/
    NOTHING = "nothing"  # prints only


WRITES = {"inspect": Writes.NOTHING, "profiles": Writes.NOTHING, "firmware-check": Writes.NOTHING, "recluster": Writes.FILE, "finetune": Writes.FILE,
          "quantize": Writes.FILE, "palettise": Writes.DIR, "compile": Writes.DIR, "firmware": Writes.DIR,
          "example": Writes.DIR, "deploy": Writes.DIR, "report": Writes.DIR, "sweep": Writes.DIR}


def _action(parser: argparse.ArgumentParser, option: str) -> argparse.Action | None:
    return next((a for a in parser._actions if option in a.option_strings), None)


@pytest.mark.parametrize("verb", VERBS)
def test_o_names_a_required_file_or_a_defaulted_directory(verb):
    parser = _verb_parsers()[verb]
    o = _action(parser, "-o")
    if WRITES[verb] == Writes.NOTHING:
        assert o is None
        return
    assert o is not None, f"{verb} writes a {WRITES[verb]}: it takes -o"
    if WRITES[verb] == Writes.FILE:
        assert o.option_strings[:2] == ["-o", "--output"] and o.metavar == "FILE" and o.required
        assert _action(parser, "--output-dir") is None
    else:
        assert o.option_strings[:2] == ["-o", "--output-dir"] and o.metavar == "DIR"
        assert not o.required and "default" in o.help, f"{verb}: say where DIR defaults to"
        assert _action(parser, "--output") is None


@pytest.mark.parametrize("verb", VERBS)
def test_debug_goes_before_or_after_the_verb(verb):
    parser = build_parser()
    required = {"recluster": ["m", "-o", "o"], "finetune": ["m", "--data", "d", "-o", "o"], "quantize": ["m", "-o", "o"],
                "firmware": ["--compile-dir", "c"], "inspect": ["m"], "compile": ["m"], "report": ["d"], "palettise": ["m"]}
    args = [verb, *required.get(verb, [])]
    assert parser.parse_args(["--debug", *args]).debug is True
    assert parser.parse_args([*args, "--debug"]).debug is True
    assert parser.parse_args(args).debug is False


def _placeholders(parser: argparse.ArgumentParser) -> list[tuple[str, str | None]]:
    """(option or positional, metavar) of every argument that takes a value and shows a raw placeholder: no
    metavar (argparse prints the dest), or a metavar that is just the upper-cased dest. Choices print as {a,b}."""
    raw = []
    for a in parser._actions:
        if a.nargs == 0 or a.choices is not None and a.metavar is None or isinstance(a, argparse._SubParsersAction):
            continue
        name = "/".join(a.option_strings) or a.dest
        if a.metavar is None or (a.option_strings and a.metavar == a.dest.upper()):
            raw.append((name, a.metavar))
    return raw


@pytest.mark.parametrize("verb", VERBS)
def test_every_placeholder_has_a_name(verb):
    """Help shows FILE, DIR, N, NAME|FILE.npz ..., never MIN_WEIGHTS, SAMPLES or REPORT."""
    raw = _placeholders(_verb_parsers()[verb])
    assert not raw, f"{verb}: give these a metavar that says what goes there: {raw}"


def test_placeholder_check_sees_a_raw_one():
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("--min-weights", type=int)
    p.add_argument("--samples", metavar="SAMPLES")
    p.add_argument("--fit", choices=["a", "b"])
    p.add_argument("--clusters", metavar="K")
    p.add_argument("--quiet", action="store_true")
    assert _placeholders(p) == [("model", None), ("--min-weights", None), ("--samples", "SAMPLES")]


# ----------------------------------------------------------------------------- firmware reads its target


@pytest.fixture(scope="module")
def compiled_u55(tmp_path_factory, core_dense_int8):
    from toolchain.cli import main

    out = tmp_path_factory.mktemp("compiled") / "m" / "ethos-u55-128" / "compile"
    assert main(["compile", str(core_dense_int8), "--target", "ethos-u55-128", "-o", str(out), "--quiet"]) == 0
    return out


def test_firmware_takes_the_target_from_compile_json(compiled_u55, capsys):
    from toolchain.cli import main

    assert main(["firmware", "--compile-dir", str(compiled_u55), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["firmware"]["target"] == "ethos-u55-128"
    # -o defaults to firmware/ beside the compile directory: deploy's build/MODEL/TARGET/firmware
    assert {Path(f).parent for f in doc["files"]} == {compiled_u55.parent / "firmware"}


@pytest.mark.parametrize("target, code", [("ethos-u55-128", 0), ("ethos-u55", 0), ("ethos-u85-256", 2)])
def test_firmware_target_is_a_check(compiled_u55, tmp_path, capsys, target, code):
    from toolchain.cli import main

    assert main(["firmware", "--compile-dir", str(compiled_u55), "--target", target, "-o", str(tmp_path),
                 "--quiet"]) == code
    err = capsys.readouterr().err
    assert (err == "") if code == 0 else err.startswith("error: --target ethos-u85-256 does not match")


def test_palettise_defaults_to_deploys_layout(core_dense_int8, tmp_path, monkeypatch):
    from toolchain.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["recluster", str(core_dense_int8), "-o", "m_k16.tflite", "--samples", "2", "--quiet"]) == 0
    assert main(["palettise", "m_k16.tflite", "--no-tflm", "--quiet"]) == 0
    assert (tmp_path / "build" / "m_k16" / "palettise" / "palettes.json").is_file()

# ----------------------------------------------------------------------------- deploy <-> pipeline config

# pipeline config key -> the deploy flag that sets it
DEPLOY_FLAG_OF_KEY = {
    ("data", "train_samples"): "--train-samples",
    ("data", "test_samples"): "--test-samples",
    ("data", "seed"): "--data-seed",  # plain --seed would read as the seed of every stage
    ("verify", "samples"): "--verify-samples",
    ("verify", "min_top1_agreement"): "--min-top1-agreement",
    ("verify", "min_output_sqnr_db"): "--min-output-sqnr",
    ("verify", "output_kinds"): "--output-kind",  # repeatable NAME=KIND, one table entry each
    ("recluster", "objective"): "--objective",  # the one recluster key deploy sets by flag: stateful models need it
    ("palettise", "bits"): "--bits",
    ("palettise", "exclude"): "--exclude",
    ("palettise", "tflm"): "--no-tflm",  # the flag states the non-default
    ("compile", "enforce_budget"): "--no-budget",
    ("compile", "allow_cpu"): "--allow-cpu",
    ("compile", "timeout_s"): "--timeout",  # as on 'toolchain compile'
    ("firmware", "section"): "--section",
    ("firmware", "arena_margin_percent"): "--arena-margin-percent",
    ("firmware", "arena_overhead_bytes"): "--arena-overhead-bytes",
    ("finetune", "clusters"): "--clusters",  # CLUSTERS: the K of both finetune and recluster
    ("recluster", "clusters"): "--clusters",
    ("recluster", "rate_lambda"): "--rate-lambda",
    ("plan", "auto"): "--clusters",  # --clusters auto
    ("plan", "weight_budget_bytes"): "--weight-budget",  # as on 'toolchain recluster'
    ("plan", "flash_budget_bytes"): "--flash-budget",
    ("plan", "min_top1_agreement"): "--min-agreement",
    ("plan", "min_output_sqnr_db"): "--plan-output-sqnr",
    ("plan", "min_sqnr_db"): "--min-sqnr",
    ("plan", "max_clusters"): "--max-clusters",
    ("plan", "target"): "--plan-target",  # --target names the deploy's targets
}
# Deliberate exceptions, config only: the format's version is no setting; the finetune, quantize and
# recluster sections are those stages' own config formats (a section can be copied from a stage's
# config file), set on deploy through CONFIG; their verbs take every one of them as a flag (below).
CONFIG_ONLY_SECTIONS = {"finetune", "quantize", "recluster"}
CONFIG_ONLY_KEYS = {("schema_version",)}
# Deliberate exceptions, flags only: what deploy works on (MODEL, DATA, targets, the config file itself),
# where it writes, and how it prints; none of them is a setting of a stage.
# The deploy's inputs (model, data, calibration and check samples, targets, files), where it writes and its output
# modes are flags and Makefile variables, not config keys: a config describes how to process, not what.
# The user's word on trusting inputs (code in a Keras model, a profile replacing a built-in) is never a setting
# a config file can give.
DEPLOY_FLAG_ONLY = {"-h", "--help", "--data", "--calibration", "--synthetic-calibration", "--verify-data", "--target",
                    "--profile", "--config", "-o", "--output-dir", "--build-dir", "--example-dir", "--quiet", "-q",
                    "--json", "-k", "--debug", "--trust-model-code", "--replace-builtin"}


def _pipeline_keys() -> set[tuple[str, ...]]:
    schema = _schema("pipeline")
    keys: set[tuple[str, ...]] = set()
    for section, spec in schema["properties"].items():
        if "properties" in spec:
            keys |= {(section, k) for k in spec["properties"]}
        elif "$ref" in spec:
            keys |= {(section, k) for k in _keys(_schema(spec["$ref"].removesuffix(".schema.json")))}
        else:
            keys.add((section,))
    return keys


def test_every_pipeline_config_key_is_a_deploy_flag():
    flags = _options(_verb_parsers()["deploy"])
    missing = []
    for key in sorted(_pipeline_keys()):
        if key in CONFIG_ONLY_KEYS or (key[0] in CONFIG_ONLY_SECTIONS and key not in DEPLOY_FLAG_OF_KEY):
            continue
        if DEPLOY_FLAG_OF_KEY.get(key) not in flags:
            missing.append(".".join(key))
    assert not missing, f"config keys without a deploy flag: {missing}"


def test_every_deploy_flag_is_a_pipeline_config_key():
    keys = _pipeline_keys()
    assert set(DEPLOY_FLAG_OF_KEY) <= keys  # the table names real keys
    flag_keys = set(DEPLOY_FLAG_OF_KEY.values())
    extra = sorted(f for f in _options(_verb_parsers()["deploy"]) if f not in flag_keys and f not in DEPLOY_FLAG_ONLY)
    assert not extra, f"deploy flags that no config key sets: {extra}"


def test_a_deploy_flag_sets_its_config_key():
    from toolchain.commands.common import deploy_settings
    from toolchain.commands.deploy import CONFIG_OF_FLAG
    from toolchain.pipeline.config import load_pipeline_config

    parser = _verb_parsers()["deploy"]
    args = parser.parse_args(["m.tflite", "--allow-cpu", "--no-budget", "--timeout", "30", "--min-top1-agreement",
                              "0.95", "--verify-samples", "7", "--no-tflm", "--bits", "4", "--exclude", "a*",
                              "--test-samples", "20", "--section", "s", "--arena-margin-percent", "5",
                              "--objective", "weights", "--min-output-sqnr", "20", "--output-kind", "boxes=values",
                              "--output-kind", "scores=detection_scores", "--clusters", "auto",
                              "--plan-output-sqnr", "25", "--plan-target", "ethos-u85-256"])
    c = load_pipeline_config(None, None, deploy_settings(args, CONFIG_OF_FLAG))
    # the planner's floors and the verification's gates are different keys
    assert (c.plan.auto, c.plan.min_output_sqnr_db, c.plan.target) == (True, 25.0, "ethos-u85-256")
    assert (c.compile.allow_cpu, c.compile.enforce_budget, c.compile.timeout_s) == (True, False, 30.0)
    assert (c.verify.min_top1_agreement, c.verify.samples, c.verify.min_output_sqnr_db) == (0.95, 7, 20.0)
    assert c.verify.output_kinds == (("boxes", "values"), ("scores", "detection_scores"))
    assert c.recluster.objective.value == "weights"
    assert (c.palettise.tflm, c.palettise.bits, c.palettise.exclude) == (False, 4, ("a*",))
    assert c.data.test_samples == 20 and c.firmware.section == "s" and c.firmware.arena_margin_percent == 5


# ----------------------------------------------------------------------------- stage verbs <-> their config files

RENAMED = {  # config key -> flag, where the flag is not --key-with-dashes
    "recluster": {"rules": "--rule", "keep_zero": "--no-keep-zero"},  # --op-rule sets rules too
    "finetune": {"layers": "--layer", "prune": "--prune"},
    "quantize": {},
}
FORMAT_VERSION = {"schema_version", "version"}  # the file format's version: no setting
# Deliberate exceptions, flags only, per verb:
VERB_FLAG_ONLY = {
    # inputs, outputs, printing; verification (inputs, samples, gate: [verify] and DATA in a deploy config);
    # how K is planned per tensor and bias correction, which need data or a target and exist on this verb only
    "recluster": {"-h", "--help", "--debug", "-o", "--output", "--report", "--config", "--quiet", "-q", "--json", "-k",
                  "--calibration", "--verify-data", "--samples", "--seed", "--no-verify", "--min-top1-agreement",
                  "--min-output-sqnr", "--output-kind",
                  "--min-sqnr", "--max-clusters", "--weight-budget", "--flash-budget", "--target", "--profile",
                  "--min-agreement", "--plan-output-sqnr",
                  "--bias-correction", "--op-rule", "--replace-builtin"},
    "finetune": {"-h", "--help", "--debug", "--data", "-o", "--output", "--config", "--quiet", "-q", "--json", "--epoch-lines",
                 "--no-per-channel", "--no-preserve-sparsity", "--trust-model-code"},
    # the float .tflite path (ai-edge-quantizer): its calibration input, sample count and I/O type
    "quantize": {"-h", "--help", "--debug", "--data", "-o", "--output", "--quiet", "-q", "--json", "--epoch-lines",
                 "--calibration", "--synthetic-calibration", "--calibration-samples", "--float-io", "--trust-model-code"},
}


def _flag(section: str, key: str) -> str:
    return RENAMED[section].get(key, "--" + key.replace("_", "-"))


@pytest.mark.parametrize("verb", ["recluster", "finetune", "quantize"])
def test_stage_config_keys_and_verb_flags_match_both_ways(verb):
    if verb == "quantize":
        keys = set(_schema("pipeline")["properties"]["quantize"]["properties"])
    else:
        keys = _keys(_schema(verb))
    keys -= FORMAT_VERSION
    flags = _options(_verb_parsers()[verb])
    missing = sorted(k for k in keys if _flag(verb, k) not in flags)
    assert not missing, f"{verb}: config keys without a flag: {missing}"
    wanted = {_flag(verb, k) for k in keys}
    extra = sorted(f for f in flags if f not in wanted and f not in VERB_FLAG_ONLY[verb])
    assert not extra, f"{verb}: flags that no config key sets: {extra}"
