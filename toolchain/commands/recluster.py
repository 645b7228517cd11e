from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..core.errors import ConfigError
from ..core.fileio import atomic_write_bytes, atomic_write_json, read_input_bytes
from .common import add_output_options, clusters_or_auto, finite_number, fraction, positive_int, say, whole_number

HELP = "rewrite weight tensors to at most K distinct int8 values each (shared palette), and verify"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="a full-int8 .tflite model (never modified)")
    p.add_argument("-o", "--output", required=True, help="the rewritten .tflite")
    p.add_argument("--clusters", "-k", type=clusters_or_auto, metavar="K|auto",
                   help="distinct values per tensor, 2..256 (default 16); 'auto' picks the smallest K per tensor "
                        "(<= --max-clusters) keeping top-1 agreement >= 99.5%% on --calibration data, or meeting "
                        "--min-sqnr")
    p.add_argument("--min-sqnr", type=finite_number(-100.0, 300.0), metavar="DB",
                   help="with --clusters auto: per-tensor SQNR floor in dB (default without data: 30); with "
                        "--calibration the SQNR of each layer's output")
    p.add_argument("--max-clusters", type=positive_int, metavar="K",
                   help="with --clusters auto: the largest K a tensor may get (default 32, Vela's palette)")
    p.add_argument("--min-agreement", type=fraction, metavar="FRACTION",
                   help="with --clusters auto and --calibration: the fewest encoded bytes keeping top-1 agreement "
                        ">= FRACTION on held-back calibration samples (default 0.995)")
    p.add_argument("--min-output-sqnr", type=finite_number(0.0, 120.0), metavar="DB",
                   help="with --clusters auto and --calibration: the fewest bytes keeping the output's SQNR >= DB")
    p.add_argument("--weight-budget", type=positive_int, metavar="BYTES",
                   help="K and rate price per tensor for the least output error with Vela's encoded weights on "
                        "--target (default ethos-u55-128) <= BYTES, checked by compiling the result")
    p.add_argument("--flash-budget", type=positive_int, metavar="BYTES",
                   help="choose K per tensor so the Vela-compiled model fits BYTES of flash on --target "
                        "(checked by compiling; default budget: the target profile's)")
    p.add_argument("--target", metavar="NAME", help="hardware profile whose encoder sizes weights (e.g. "
                   "ethos-u85-256); alone, a flash budget plan for its profile's budget")
    p.add_argument("--profile", metavar="FILE", help="custom hardware profile file (as --target)")
    p.add_argument("--rate-lambda", type=finite_number(0.0, 64.0), metavar="F",
                   help="price of code bits in the fit, 0..64: a bit is worth F x the palette's mean squared "
                        "error (default 0; size goals choose it per tensor)")
    p.add_argument("--bias-correction", action="store_true",
                   help="fold the mean output shift into the biases (uses --calibration inputs)")
    p.add_argument("--fit", choices=["keep", "refit", "joint"], help="keep: scales fixed; refit: then refit scales; joint (default): also fit codes and scales jointly; the lowest-error result is kept")
    p.add_argument("--min-weights", type=positive_int, help="leave tensors with fewer weights alone (default 64)")
    p.add_argument("--refit-iterations", type=positive_int, metavar="N",
                   help="alternating least-squares rounds of the scale refit, 0..1000 (default 10)")
    p.add_argument("--include-depthwise", action="store_true", default=None, help="also recluster DEPTHWISE_CONV_2D")
    p.add_argument("--no-keep-zero", dest="keep_zero", action="store_false", default=None,
                   help="allow zeros to move (default: exact zeros stay zero)")
    p.add_argument("--rule", action="append", default=[], metavar="PATTERN=K|skip",
                   help="per-tensor override by name pattern (fnmatch), repeatable")
    p.add_argument("--op-rule", action="append", default=[], metavar="OP=K|skip",
                   help="per-op-type override, e.g. FULLY_CONNECTED=32 or CONV_2D=skip, repeatable")
    p.add_argument("--config", help="TOML/JSON file (schemas/recluster.schema.json); flags override it")
    p.add_argument("--calibration", metavar="FILE.npz",
                   help="representative inputs (training data, never the test split): the fit then minimises each "
                        "layer's output error on them, K planners rank by it, and verification runs on them "
                        "(default: weight-space fit, seeded random verification inputs)")
    p.add_argument("--objective", choices=["weights", "outputs"],
                   help="what the fit minimises (default: outputs with --calibration, else weights)")
    p.add_argument("--calibration-samples", type=positive_int, metavar="N",
                   help="calibration samples the output-aware fit uses (default 512)")
    p.add_argument("--segments", type=positive_int, metavar="N",
                   help="layer groups fitted in sequence on the rewritten prefix (default: as many as about 30 s of "
                        "LiteRT passes allow, estimated from the model's size; 1: every layer on the original "
                        "model's inputs)")
    p.add_argument("--damping", type=float, metavar="F",
                   help="output-aware fit: damping as a fraction of the mean Hessian diagonal, (0, 10] (default 0.01)")
    p.add_argument("--max-rows-per-layer", type=positive_int, metavar="N",
                   help="output-aware fit: calibration rows a layer's statistics use, >= 16 (default 65536)")
    p.add_argument("--depthwise-min-output-sqnr-db", type=float, metavar="DB",
                   help="with calibration data and no --include-depthwise: a depthwise tensor is rewritten when the "
                        "output noise its rewrite adds is at most the median of the layers before it and its SQNR "
                        "reaches this (default 15)")
    p.add_argument("--calibration-seed", type=positive_int, metavar="N",
                   help="which calibration samples and positions the output-aware fit uses (default 0)")
    p.add_argument("--samples", type=whole_number(0, 100_000), default=32, help="verification samples (default 32)")
    p.add_argument("--seed", type=whole_number(0, 2**32 - 1), default=0, help="seed of the random verification inputs")
    p.add_argument("--no-verify", action="store_true", help="skip running both models in LiteRT")
    p.add_argument("--min-top1-agreement", type=fraction, metavar="FRACTION",
                   help="exit 5 when top-1 agreement with the original falls below this")
    p.add_argument("--report", help="write the JSON report here (default: OUTPUT with .json suffix)")
    add_output_options(p, "print the JSON report instead of a table")


def build_config(args: argparse.Namespace):
    from ..rewrite.choose_k import AUTO_MAX_CLUSTERS
    from ..rewrite.config import Objective, ReclusterConfig, ScaleFit
    from ..rewrite.config_file import apply_overrides, load_recluster_config, parse_rule

    base = load_recluster_config(args.config) if args.config else ReclusterConfig()
    rules = tuple(parse_rule(r, by_op=False) for r in args.rule) + tuple(parse_rule(r, by_op=True) for r in args.op_rule)
    same = ("min_weights", "refit_iterations", "include_depthwise", "keep_zero", "calibration_samples", "segments",
            "damping", "max_rows_per_layer", "depthwise_min_output_sqnr_db", "calibration_seed", "rate_lambda")
    return apply_overrides(
        base, clusters=(args.max_clusters or AUTO_MAX_CLUSTERS) if args.clusters == "auto" else args.clusters,
        fit=ScaleFit(args.fit) if args.fit else None, rules=rules,
        objective=Objective(args.objective) if args.objective else None, **{k: getattr(args, k) for k in same})


def plan_request(args: argparse.Namespace):
    from ..rewrite.planner import PlanRequest, SizeGoal

    auto = args.clusters == "auto"
    if sum([auto, args.weight_budget is not None, args.flash_budget is not None]) > 1:
        raise ConfigError("choose one of --clusters auto, --weight-budget, --flash-budget")
    flash = args.flash_budget is not None or (bool(args.target or args.profile) and not auto
                                              and args.weight_budget is None)
    if flash and not (args.profile or args.target):
        raise ConfigError("--flash-budget needs --target NAME or --profile FILE")
    goal = (SizeGoal.AUTO if auto else SizeGoal.WEIGHT_BUDGET if args.weight_budget is not None
            else SizeGoal.FLASH_BUDGET if flash else SizeGoal.FIXED)
    return PlanRequest(goal, min_sqnr_db=args.min_sqnr, weight_budget_bytes=args.weight_budget,
                       flash_budget_bytes=args.flash_budget, min_top1_agreement=args.min_agreement,
                       min_output_sqnr_db=args.min_output_sqnr, max_clusters=args.max_clusters)


def run(args: argparse.Namespace) -> int:
    from ..core.paths import check_paths
    from ..pipeline.target_sizer import sizer_for
    from ..reporting.fidelity import check_top1_gate
    from ..reporting.recluster_text import recluster_text
    from ..rewrite.job import ReclusterJob, VerifyOptions, run_job

    report_path = Path(args.report) if args.report else Path(args.output).with_suffix(".json")
    check_paths(inputs=[args.model, args.config, args.calibration, args.profile], outputs=[args.output, report_path])
    job = ReclusterJob(build_config(args), plan_request(args),
                       Path(args.calibration) if args.calibration else None, args.bias_correction,
                       VerifyOptions(not args.no_verify, args.samples, args.seed))
    profile = None
    if args.profile or args.target:
        from ..targets.profiles import load_profile

        profile = load_profile(args.profile or args.target)
    rewritten, report = run_job(read_input_bytes(args.model, "model"), job, sizer_for(profile))
    atomic_write_bytes(args.output, rewritten)
    atomic_write_json(report_path, report.to_json())
    if args.json:
        print(json.dumps(report.to_json(), indent=2, sort_keys=True))
    say(args, recluster_text(report, args.output, report_path, args.min_top1_agreement, args.bias_correction))
    check_top1_gate(report.verification.to_json() if report.verification else None, args.min_top1_agreement,
                    "--min-top1-agreement")
    return 0
