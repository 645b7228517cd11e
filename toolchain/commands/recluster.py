from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..core.errors import VerificationError
from ..core.fileio import atomic_write_bytes, atomic_write_json, read_input_bytes
from .common import fraction, positive_int, refuse_overwriting_input

HELP = "rewrite weight tensors to at most K distinct int8 values each (shared palette), and verify"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="a full-int8 .tflite model (never modified)")
    p.add_argument("-o", "--output", required=True, help="the rewritten .tflite")
    p.add_argument("--clusters", "-k", type=_clusters_arg, metavar="K|auto",
                   help="distinct values per tensor, 2..256 (default 16); 'auto' picks the smallest K per tensor "
                        "meeting --min-sqnr")
    p.add_argument("--min-sqnr", type=float, metavar="DB",
                   help="with --clusters auto: per-tensor SQNR floor in dB (default 30)")
    p.add_argument("--weight-budget", type=positive_int, metavar="BYTES",
                   help="choose K per tensor (2..64) to minimise error with Vela-encoded weights <= BYTES")
    p.add_argument("--flash-budget", type=positive_int, metavar="BYTES",
                   help="choose K per tensor so the Vela-compiled model fits BYTES of flash on --target "
                        "(checked by compiling; default budget: the target profile's)")
    p.add_argument("--target", metavar="NAME", help="hardware profile for --flash-budget (e.g. ethos-u55-128)")
    p.add_argument("--profile", metavar="FILE", help="custom hardware profile file for --flash-budget")
    p.add_argument("--bias-correction", action="store_true",
                   help="fold the mean output shift into the biases (uses --calibration inputs)")
    p.add_argument("--fit", choices=["keep", "refit", "joint"], help="keep: scales fixed; refit: then refit scales; joint (default): also fit codes and scales jointly; the lowest-error result is kept")
    p.add_argument("--min-weights", type=positive_int, help="leave tensors with fewer weights alone (default 64)")
    p.add_argument("--include-depthwise", action="store_true", default=None, help="also recluster DEPTHWISE_CONV_2D")
    p.add_argument("--no-keep-zero", dest="keep_zero", action="store_false", default=None,
                   help="allow zeros to move (default: exact zeros stay zero)")
    p.add_argument("--rule", action="append", default=[], metavar="PATTERN=K|skip",
                   help="per-tensor override by name pattern (fnmatch), repeatable")
    p.add_argument("--op-rule", action="append", default=[], metavar="OP=K|skip",
                   help="per-op-type override, e.g. FULLY_CONNECTED=32 or CONV_2D=skip, repeatable")
    p.add_argument("--config", help="TOML/JSON file (schemas/recluster.schema.json); flags override it")
    p.add_argument("--calibration", help=".npz of inputs for verification (default: seeded random inputs)")
    p.add_argument("--samples", type=positive_int, default=32, help="verification samples (default 32)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random verification inputs")
    p.add_argument("--no-verify", action="store_true", help="skip running both models in LiteRT")
    p.add_argument("--min-top1-agreement", type=fraction, metavar="FRACTION",
                   help="exit 5 when top-1 agreement with the original falls below this")
    p.add_argument("--report", help="write the JSON report here (default: OUTPUT with .json suffix)")
    p.add_argument("--json", action="store_true", help="print the JSON report instead of a table")


def _clusters_arg(text: str):
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer K or 'auto', got '{text}'") from None


def build_config(args: argparse.Namespace):
    from ..rewrite.config import ReclusterConfig, ScaleFit
    from ..rewrite.config_file import apply_overrides, load_recluster_config, parse_rule

    base = load_recluster_config(args.config) if args.config else ReclusterConfig()
    rules = tuple(parse_rule(r, by_op=False) for r in args.rule) + tuple(parse_rule(r, by_op=True) for r in args.op_rule)
    return apply_overrides(
        base,
        clusters=256 if args.clusters == "auto" else args.clusters,
        fit=ScaleFit(args.fit) if args.fit else None,
        min_weights=args.min_weights,
        include_depthwise=args.include_depthwise,
        keep_zero=args.keep_zero,
        rules=rules,
    )


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from ..core.errors import ConfigError
    from ..rewrite.recluster import recluster_model
    from ..rewrite.verify import calibration_inputs, verify, with_verification

    refuse_overwriting_input(args.model, args.output)
    if args.min_sqnr is not None and args.clusters != "auto":
        raise ConfigError("--min-sqnr goes with --clusters auto")
    modes = [args.clusters == "auto", args.weight_budget is not None, bool(args.flash_budget or args.target or args.profile)]
    if sum(modes) > 1:
        raise ConfigError("choose one of --clusters auto, --weight-budget, --flash-budget/--target")
    if args.bias_correction and not args.calibration:
        raise ConfigError("--bias-correction needs --calibration data (representative inputs)")
    config = build_config(args)
    original = read_input_bytes(args.model, "model")
    plan = None
    if any(modes):
        from ..pipeline.flash_budget import plan_flash_budget
        from ..rewrite.choose_k import (
            config_with_plan,
            plan_min_sqnr,
            plan_weight_budget,
        )
        from ..targets.weight_encoding import encoded_bytes

        if modes[2]:
            from ..targets.profiles import load_profile

            if not (args.profile or args.target):
                raise ConfigError("--flash-budget needs --target NAME or --profile FILE")
            profile = load_profile(args.profile or args.target)
            fit = plan_flash_budget(original, replace(config, clusters=min(config.clusters, 64)), profile,
                                    args.flash_budget)
            plan = fit
            config = config_with_plan(config, fit.plan)
        elif args.weight_budget is not None:
            plan = plan_weight_budget(original, replace(config, clusters=min(config.clusters, 64)), args.weight_budget,
                                      encoded_bytes)
        else:
            plan = plan_min_sqnr(original, config, 30.0 if args.min_sqnr is None else args.min_sqnr)
        if not modes[2]:
            config = config_with_plan(config, plan)
    rewritten, report = recluster_model(original, config)
    report = replace(report, plan=plan)
    if args.bias_correction:
        from ..rewrite.bias_correction import correct_biases

        inputs, _ = calibration_inputs(original, args.calibration, max(args.samples, 1), args.seed)
        rewritten, corrections = correct_biases(original, rewritten, inputs)
        report = replace(report, bias_corrections=corrections)
    if not args.no_verify:
        report = with_verification(report, verify(original, rewritten, args.calibration, args.samples, args.seed))
    atomic_write_bytes(args.output, rewritten)
    report_path = Path(args.report) if args.report else Path(args.output).with_suffix(".json")
    atomic_write_json(report_path, report.to_json())
    if args.json:
        print(json.dumps(report.to_json(), indent=2, sort_keys=True))
    else:
        print(format_report(report, args.output, report_path))
    agreement = report.verification.agreement if report.verification else None
    if args.min_top1_agreement is not None and agreement is not None and agreement.top1_agreement is not None:
        if agreement.top1_agreement < args.min_top1_agreement:
            raise VerificationError(
                f"top-1 agreement {agreement.top1_agreement:.3f} is below --min-top1-agreement {args.min_top1_agreement}"
            )
    return 0


def format_report(report, output, report_path) -> str:
    lines = [f"{'tensor':40}  {'op':18}  {'before':>6}  {'after':>5}  {'SQNR dB':>8}  action"]
    for t in report.tensors:
        name = t.name if len(t.name) <= 40 else "..." + t.name[-37:]
        sq = "lossless" if t.sqnr_db is None else f"{t.sqnr_db:.1f}"
        action = t.action.value + (f" ({t.reason})" if t.reason else "") + (" +scales" if t.scales_refit else "")
        lines.append(f"{name:40}  {t.op:18}  {t.distinct_before:6d}  {t.distinct_after:5d}  {sq:>8}  {action}")
    if report.plan is not None and hasattr(report.plan, "actual_flash_bytes"):
        f = report.plan
        lines.append(f"K chosen per tensor for {f.flash_budget_bytes} bytes of flash on {f.target}: predicted "
                     f"{f.predicted_flash_bytes}, compiled by Vela {f.actual_flash_bytes} bytes "
                     f"(encoded weights {f.actual_encoded_weight_bytes} bytes)")
    elif report.plan is not None:
        p = report.plan
        what = f"SQNR >= {p.target:g} dB" if p.mode == "sqnr" else f"encoded weights <= {int(p.target)} bytes"
        pred = f", predicted encoded weights {p.predicted_encoded_bytes} bytes" if p.mode == "budget" else ""
        lines.append(f"K chosen per tensor for {what}{pred}")
    if report.bias_corrections is not None:
        done = sum(b.corrected for b in report.bias_corrections)
        lines.append(f"bias correction applied to {done} of {len(report.bias_corrections)} changed layers")
    v = report.verification
    if v is not None:
        a = v.agreement
        top1 = "n/a" if a.top1_agreement is None else f"{a.top1_agreement:.3f}"
        lines.append(
            f"verification on {a.samples} inputs, {v.inputs}: top-1 agreement {top1}, "
            f"max |diff| {a.max_abs_diff_steps:g} output steps (mean {a.mean_abs_diff_steps:.2f})"
        )
    lines.append(f"wrote {output} and {report_path}")
    return "\n".join(lines)
