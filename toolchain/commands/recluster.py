from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from ..core.errors import VerificationError
from ..core.fileio import atomic_write_bytes, atomic_write_json, read_input_bytes
from .common import positive_int, refuse_overwriting_input

HELP = "rewrite weight tensors to at most K distinct int8 values each (shared palette), and verify"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="a full-int8 .tflite model (never modified)")
    p.add_argument("-o", "--output", required=True, help="the rewritten .tflite")
    p.add_argument("--clusters", "-k", type=int, help="K, distinct values per tensor, 2..256 (default 16)")
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
    p.add_argument("--min-top1-agreement", type=float, metavar="FRACTION",
                   help="exit 5 when top-1 agreement with the original falls below this")
    p.add_argument("--report", help="write the JSON report here (default: OUTPUT with .json suffix)")
    p.add_argument("--json", action="store_true", help="print the JSON report instead of a table")


def build_config(args: argparse.Namespace):
    from ..stages.recluster import ReclusterConfig, ScaleFit
    from ..stages.recluster_config import apply_overrides, load_recluster_config, parse_rule

    base = load_recluster_config(args.config) if args.config else ReclusterConfig()
    rules = tuple(parse_rule(r, by_op=False) for r in args.rule) + tuple(parse_rule(r, by_op=True) for r in args.op_rule)
    return apply_overrides(
        base,
        clusters=args.clusters,
        fit=ScaleFit(args.fit) if args.fit else None,
        min_weights=args.min_weights,
        include_depthwise=args.include_depthwise,
        keep_zero=args.keep_zero,
        rules=rules,
    )


def run(args: argparse.Namespace) -> int:
    from ..stages.recluster import recluster_model, verify, with_verification

    refuse_overwriting_input(args.model, args.output)
    config = build_config(args)
    original = read_input_bytes(args.model, "model")
    rewritten, report = recluster_model(original, config)
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
