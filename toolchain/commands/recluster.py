from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..core.fileio import atomic_write_bytes, atomic_write_json, read_input_bytes
from .common import (
    add_output_options,
    finite_number,
    fraction,
    positive_int,
    say,
    whole_number,
)

HELP = "rewrite weight tensors to at most K distinct int8 values each (shared palette), and verify"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="a full-int8 .tflite model (never modified)")
    p.add_argument("-o", "--output", required=True, help="the rewritten .tflite")
    p.add_argument("--clusters", "-k", type=_clusters_arg, metavar="K|auto",
                   help="distinct values per tensor, 2..256 (default 16); 'auto' picks the smallest K per tensor "
                        "(<= --max-clusters) keeping top-1 agreement >= 99.5%% on --calibration data, or meeting "
                        "--min-sqnr")
    p.add_argument("--min-sqnr", type=finite_number(-100.0, 300.0), metavar="DB",
                   help="with --clusters auto: per-tensor SQNR floor in dB (default without data: 30); with "
                        "--calibration the SQNR of each layer's output")
    p.add_argument("--max-clusters", type=positive_int, metavar="K",
                   help="with --clusters auto: the largest K a tensor may get (default 32, Vela's palette)")
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


def _sensitivity(original: bytes, config, calibration, ks: tuple[int, ...]):
    """Per-tensor output errors on the calibration data for the K planners (None without data)."""
    if calibration is None:
        return None
    from ..rewrite.sensitivity import measure_sensitivity

    return measure_sensitivity(original, config, calibration, tuple(k for k in ks if k <= config.clusters))


def _objective_line(report) -> str:
    c = report.calibration
    if c is None:
        return "objective: weights (weight-space fit; accuracy was not checked on calibration data)"
    won = sum(1 for t in report.rewritten if (t.method or "").startswith("outputs"))
    return (f"objective: outputs on {c.samples} calibration samples ({c.source}), {c.segments} segment(s), "
            f"{c.litert_passes} LiteRT passes; the output-aware fit won on {won} of {len(report.rewritten)} "
            "rewritten tensors, the weight-space fit on the rest")


def _clusters_arg(text: str):
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer K or 'auto', got '{text}'") from None


def build_config(args: argparse.Namespace):
    from ..rewrite.choose_k import AUTO_MAX_CLUSTERS
    from ..rewrite.config import Objective, ReclusterConfig, ScaleFit
    from ..rewrite.config_file import apply_overrides, load_recluster_config, parse_rule

    base = load_recluster_config(args.config) if args.config else ReclusterConfig()
    rules = tuple(parse_rule(r, by_op=False) for r in args.rule) + tuple(parse_rule(r, by_op=True) for r in args.op_rule)
    return apply_overrides(
        base,
        clusters=(args.max_clusters or AUTO_MAX_CLUSTERS) if args.clusters == "auto" else args.clusters,
        fit=ScaleFit(args.fit) if args.fit else None,
        min_weights=args.min_weights,
        refit_iterations=args.refit_iterations,
        include_depthwise=args.include_depthwise,
        keep_zero=args.keep_zero,
        rules=rules,
        objective=Objective(args.objective) if args.objective else None,
        calibration_samples=args.calibration_samples,
        segments=args.segments,
        damping=args.damping,
        max_rows_per_layer=args.max_rows_per_layer,
        depthwise_min_output_sqnr_db=args.depthwise_min_output_sqnr_db,
        calibration_seed=args.calibration_seed,
    )


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from ..core.errors import ConfigError
    from ..core.paths import check_paths
    from ..rewrite.recluster import recluster_model
    from ..rewrite.verify import calibration_inputs, verify, with_verification

    report_path = Path(args.report) if args.report else Path(args.output).with_suffix(".json")
    check_paths(inputs=[args.model, args.config, args.calibration, args.profile], outputs=[args.output, report_path])
    if args.min_sqnr is not None and args.clusters != "auto":
        raise ConfigError("--min-sqnr goes with --clusters auto")
    modes = [args.clusters == "auto", args.weight_budget is not None, bool(args.flash_budget or args.target or args.profile)]
    if sum(modes) > 1:
        raise ConfigError("choose one of --clusters auto, --weight-budget, --flash-budget/--target")
    if args.bias_correction and not args.calibration:
        raise ConfigError("--bias-correction needs --calibration data (representative inputs)")
    if args.max_clusters is not None and args.clusters != "auto":
        raise ConfigError("--max-clusters goes with --clusters auto")
    config = build_config(args)
    original = read_input_bytes(args.model, "model")
    calibration = None
    if args.calibration and config.objective_for(True).value == "outputs":
        from ..rewrite.output_aware import calibration_from_file

        calibration = calibration_from_file(original, args.calibration, config)
    plan = None
    if any(modes):
        from ..pipeline.flash_budget import plan_flash_budget
        from ..rewrite.choose_k import (
            BUDGET_CANDIDATES,
            config_with_plan,
            plan_agreement,
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
                                    args.flash_budget, calibration=calibration)
            plan = fit
            config = config_with_plan(config, fit.plan)
        elif args.weight_budget is not None:
            plan_cfg = replace(config, clusters=min(config.clusters, 64))
            plan = plan_weight_budget(original, plan_cfg, args.weight_budget, encoded_bytes,
                                      sensitivity=_sensitivity(original, plan_cfg, calibration, BUDGET_CANDIDATES))
        elif calibration is not None and args.min_sqnr is None:
            plan = plan_agreement(original, config, calibration, max_clusters=config.clusters)
        else:
            sens = _sensitivity(original, config, calibration, BUDGET_CANDIDATES)
            plan = plan_min_sqnr(original, config, 30.0 if args.min_sqnr is None else args.min_sqnr, sens)
        if not modes[2]:
            config = config_with_plan(config, plan)
    rewritten, report = recluster_model(original, config, calibration)
    report = replace(report, plan=plan)
    if args.bias_correction and report.calibration is None:  # the output-aware fit's bias is already optimal
        from ..rewrite.bias_correction import correct_biases

        inputs, _ = calibration_inputs(original, args.calibration, max(args.samples, 1), args.seed)
        rewritten, corrections = correct_biases(original, rewritten, inputs)
        report = replace(report, bias_corrections=corrections)
    if not args.no_verify:
        report = with_verification(report, verify(original, rewritten, args.calibration, args.samples, args.seed))
    atomic_write_bytes(args.output, rewritten)
    atomic_write_json(report_path, report.to_json())
    if args.json:
        print(json.dumps(report.to_json(), indent=2, sort_keys=True))
    say(args, format_report(report, args.output, report_path, args.min_top1_agreement, args.bias_correction))
    from ..reporting.fidelity import check_top1_gate

    check_top1_gate(report.verification.to_json() if report.verification else None, args.min_top1_agreement,
                    "--min-top1-agreement")
    return 0


def format_report(report, output, report_path, min_top1: float | None = None, bias_correction: bool = False) -> str:
    from ..core.escape import terminal_text
    from ..reporting.fidelity import verification_text
    from ..rewrite.choose_k import PlanGoal
    from ..rewrite.config import Objective
    from ..rewrite.outcome_text import rewrite_summary

    lines = [f"{'tensor':40}  {'op':18}  {'before':>6}  {'after':>5}  {'SQNR dB':>8}  action"]
    for t in report.tensors:
        name = terminal_text(t.name)
        name = name if len(name) <= 40 else "..." + name[-37:]
        sq = "lossless" if t.sqnr_db is None else f"{t.sqnr_db:.1f}"
        action = t.action.value + (f" ({terminal_text(t.reason)})" if t.reason else "") + (" +scales" if t.scales_refit else "")
        lines.append(f"{name:40}  {terminal_text(t.op):18}  {t.distinct_before:6d}  {t.distinct_after:5d}  {sq:>8}  {action}")
    if report.plan is not None and hasattr(report.plan, "actual_flash_bytes"):
        f = report.plan
        lines.append(f"K chosen per tensor for {f.flash_budget_bytes} bytes of flash on {f.target}: predicted "
                     f"{f.predicted_flash_bytes}, compiled by Vela {f.actual_flash_bytes} bytes "
                     f"(encoded weights {f.actual_encoded_weight_bytes} bytes)")
    elif report.plan is not None:
        p = report.plan
        what = {PlanGoal.SQNR: f"SQNR >= {p.target:g} dB",
                PlanGoal.AGREEMENT: f"top-1 agreement >= {p.target:g} on the calibration data"}.get(
            p.mode, f"encoded weights <= {int(p.target)} bytes")
        pred = f", predicted encoded weights {p.predicted_encoded_bytes} bytes" if p.mode is PlanGoal.BUDGET else ""
        if p.mode is PlanGoal.AGREEMENT:
            pred = f" (measured with the planned fits: {p.predicted_top1_agreement:.4f})"
            if p.attainable_top1_agreement is not None:
                pred += (f"; {p.target:g} is not reachable on these samples even with every tensor at the largest K "
                         f"(near-ties of the original flip under any rewrite), so the floor was that agreement, "
                         f"{p.attainable_top1_agreement:.4f}")
        elif p.error_measure is Objective.OUTPUTS:
            pred += ", errors measured on the layers' outputs"
        lines.append(f"K chosen per tensor for {what}{pred}")
    if report.bias_corrections is not None:
        done = sum(b.corrected for b in report.bias_corrections)
        lines.append(f"bias correction applied to {done} of {len(report.bias_corrections)} changed layers")
    elif report.calibration is not None and bias_correction:
        lines.append("bias correction not applied: the output-aware fit already refits each bias by least squares")
    lines.append(rewrite_summary(report.tensors))
    lines.append(_objective_line(report))
    v = report.verification
    if v is not None:
        lines.append(terminal_text(f"verification: {verification_text(v.to_json(), min_top1)}"))
    lines.append(terminal_text(f"wrote {output} and {report_path}"))
    return "\n".join(lines)
