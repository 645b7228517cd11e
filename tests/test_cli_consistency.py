"""One command line: every verb prints quietly or as JSON the same way, and what a config file can set,
a flag can set, and the other way round (with the deliberate exceptions listed and explained here)."""
from __future__ import annotations

import argparse
import json

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


VERBS = ("inspect", "recluster", "palettise", "profiles", "compile", "firmware", "finetune", "quantize", "example",
         "deploy", "report")


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


# ----------------------------------------------------------------------------- deploy <-> pipeline config

# pipeline config key -> the deploy flag that sets it
DEPLOY_FLAG_OF_KEY = {
    ("data", "train_samples"): "--train-samples",
    ("data", "test_samples"): "--test-samples",
    ("data", "seed"): "--data-seed",  # plain --seed would read as the seed of every stage
    ("verify", "samples"): "--verify-samples",
    ("verify", "min_top1_agreement"): "--min-top1-agreement",
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
    ("plan", "min_output_sqnr_db"): "--min-output-sqnr",
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
DEPLOY_FLAG_ONLY = {"-h", "--help", "--data", "--target", "--profile", "--config", "--build-dir", "--example-dir",
                    "--quiet", "-q", "--json", "-k"}


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
    from toolchain.commands.deploy import CONFIG_OF_FLAG
    from toolchain.pipeline.config import load_pipeline_config

    parser = _verb_parsers()["deploy"]
    args = parser.parse_args(["m.tflite", "--allow-cpu", "--no-budget", "--timeout", "30", "--min-top1-agreement",
                              "0.95", "--verify-samples", "7", "--no-tflm", "--bits", "4", "--exclude", "a*",
                              "--test-samples", "20", "--section", "s", "--arena-margin-percent", "5"])
    settings = tuple((*CONFIG_OF_FLAG[d], getattr(args, d)) for d in CONFIG_OF_FLAG if getattr(args, d) is not None)
    c = load_pipeline_config(None, None, settings)
    assert (c.compile.allow_cpu, c.compile.enforce_budget, c.compile.timeout_s) == (True, False, 30.0)
    assert (c.verify.min_top1_agreement, c.verify.samples) == (0.95, 7)
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
    "recluster": {"-h", "--help", "-o", "--output", "--report", "--config", "--quiet", "-q", "--json", "-k",
                  "--calibration", "--samples", "--seed", "--no-verify", "--min-top1-agreement",
                  "--min-sqnr", "--max-clusters", "--weight-budget", "--flash-budget", "--target", "--profile",
                  "--min-agreement", "--min-output-sqnr",
                  "--bias-correction", "--op-rule"},
    "finetune": {"-h", "--help", "--data", "-o", "--output", "--config", "--quiet", "-q", "--json", "--epoch-lines",
                 "--no-per-channel", "--no-preserve-sparsity"},
    "quantize": {"-h", "--help", "--data", "-o", "--output", "--quiet", "-q", "--json", "--epoch-lines"},
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
