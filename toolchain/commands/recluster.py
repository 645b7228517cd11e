from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..core.fileio import canonical_json, read_input_bytes
from .common import add_output_options, clusters_or_auto, finite_number, fraction, positive_int, say, whole_number
from .plan_flags import add_recluster_plan_flags, plan_request

HELP = "rewrite weight tensors to at most K distinct int8 values each (shared palette), and verify"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL.tflite", help="a full-int8 .tflite model (never modified)")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="the rewritten .tflite")
    p.add_argument("--clusters", "-k", type=clusters_or_auto, metavar="K|auto",
                   help="distinct values per tensor, 2..256 (default 16); 'auto' picks the smallest K per tensor "
                        "(<= --max-clusters) keeping top-1 agreement >= 99.5%% and K=16's output noise on held-back "
                        "--calibration data, or meeting --min-sqnr")
    add_recluster_plan_flags(p)
    p.add_argument("--bias-correction", action="store_true",
                   help="fold the mean output shift into the biases (uses --calibration inputs)")
    p.add_argument("--fit", choices=["keep", "refit", "joint"], help="keep: scales fixed; refit: then refit scales; joint (default): also fit codes and scales jointly; the lowest-error result is kept")
    p.add_argument("--min-weights", type=positive_int, metavar="N", help="leave tensors with fewer weights alone (default 64)")
    p.add_argument("--refit-iterations", type=positive_int, metavar="N",
                   help="alternating least-squares rounds of the scale refit, 0..1000 (default 10)")
    p.add_argument("--include-depthwise", action="store_true", default=None, help="also recluster DEPTHWISE_CONV_2D")
    p.add_argument("--no-keep-zero", dest="keep_zero", action="store_false", default=None,
                   help="allow zeros to move (default: exact zeros stay zero)")
    p.add_argument("--rule", action="append", default=[], metavar="PATTERN=K|skip",
                   help="per-tensor override by name pattern (fnmatch), repeatable")
    p.add_argument("--op-rule", action="append", default=[], metavar="OP=K|skip",
                   help="per-op-type override, e.g. FULLY_CONNECTED=32 or CONV_2D=skip, repeatable")
    p.add_argument("--config", metavar="FILE", help="TOML/JSON file (schemas/recluster.schema.json); flags override it")
    p.add_argument("--calibration", metavar="FILE.npz",
                   help="representative inputs (docs/data.md): the fit then minimises each layer's output error on "
                        "them and K planners rank by it; one in eight (at least 32) is held back and the "
                        "verification runs on those (default: weight-space fit, random inputs: weak evidence)")
    p.add_argument("--verify-data", metavar="FILE.npz",
                   help="inputs the verification runs on instead (same format; with labels y, also accuracy)")
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
    p.add_argument("--samples", type=whole_number(1, 100_000), metavar="N",
                   help="verification samples (default: as many as ~20 s of LiteRT allow, 32-1024; 32 random)")
    p.add_argument("--seed", type=whole_number(0, 2**32 - 1), default=0, metavar="N", help="seed of the random verification inputs")
    p.add_argument("--no-verify", action="store_true", help="skip running both models in LiteRT")
    p.add_argument("--min-top1-agreement", type=fraction, metavar="FRACTION",
                   help="exit 5 when top-1 agreement with the original falls below this (or is not measurable)")
    p.add_argument("--min-output-sqnr", type=finite_number(-100.0, 300.0), metavar="DB",
                   help="exit 5 when an output's SQNR against the original falls below DB (or is not measurable)")
    p.add_argument("--output-kind", action="append", default=[], metavar="NAME=KIND",
                   help="what an output holds, where the guess is wrong: class_scores, detection_scores, mask, values")
    p.add_argument("--report", metavar="FILE.json", help="write the JSON report here (default: FILE with its suffix changed to .json)")
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


def run(args: argparse.Namespace) -> int:
    from ..core.last_good import rejected_path, write_unless_rejected
    from ..core.paths import check_paths
    from ..pipeline.progress import OutputMode, Progress
    from ..pipeline.target_sizer import sizer_for
    from ..reporting.fidelity import check_gates
    from ..reporting.recluster_text import recluster_text
    from ..rewrite.job import ReclusterJob, run_job
    from ..rewrite.verify import VerifyOptions
    from ..tflite.output_kind import parse_output_kind

    report_path = Path(args.report) if args.report else Path(args.output).with_suffix(".json")
    outputs = [Path(args.output), report_path]
    gates = (args.min_top1_agreement, args.min_output_sqnr)
    gated = [rejected_path(p) for p in outputs] if any(g is not None for g in gates) else []
    check_paths(inputs=[args.model, args.config, args.calibration, args.verify_data, args.profile],
                outputs=outputs + gated)
    kinds = dict(parse_output_kind(k) for k in args.output_kind)
    job = ReclusterJob(build_config(args), plan_request(args),
                       Path(args.calibration) if args.calibration else None, args.bias_correction,
                       VerifyOptions(not args.no_verify, args.samples, args.seed, kinds),
                       Path(args.verify_data) if args.verify_data else None)
    profile = None
    if args.profile or args.target:
        from ..targets.profiles import load_profile

        profile = load_profile(args.profile or args.target, args.replace_builtin)
    with Progress(OutputMode.QUIET if args.quiet or args.json else OutputMode.NORMAL).step_bar("recluster") as bar:
        rewritten, report = run_job(read_input_bytes(args.model, "model"), job, sizer_for(profile), bar)
    # a candidate that misses the gate goes beside OUTPUT as OUTPUT.rejected.tflite: OUTPUT keeps the last good one
    outcome = write_unless_rejected(
        {outputs[0]: rewritten, report_path: canonical_json(report.to_json()).encode()},
        lambda: check_gates(report.verification.to_json() if report.verification else None, *gates,
                            "--min-top1-agreement", "--min-output-sqnr"))
    if args.json:
        print(json.dumps(report.to_json(), indent=2, sort_keys=True))
    say(args, recluster_text(report, *outcome.written, args.min_top1_agreement, args.bias_correction,
                             args.min_output_sqnr))
    outcome.raise_if_rejected()
    return 0
