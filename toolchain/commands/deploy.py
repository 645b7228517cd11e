"""``toolchain deploy [MODEL] [--data DATA] [--clusters K] [--target T]... [--profile FILE] [--config FILE]``.

The whole pipeline into ``-o/--output-dir`` (default build): see toolchain.pipeline.runner.
Imports no TensorFlow itself: only a Keras MODEL (or the example) loads it, inside the training stages.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .common import add_output_options, deploy_settings, fraction, output_kind_arg, positive_int
from .finetune import DATA_METAVAR
from .plan_flags import DEPLOY_PLAN_KEYS, add_deploy_plan_flags, clusters_or_auto_arg

HELP = "run the whole pipeline (finetune, quantize, recluster, palettise, compile, firmware, report) incrementally"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", nargs="?", metavar="MODEL",
                   help="a float Keras model (.keras/.h5: the full pipeline, needs --data), an int8 .tflite "
                        "(starts at recluster, no data needed) or a float .tflite (quantized first: needs "
                        "--calibration); default: the bundled example trained on MNIST")
    p.add_argument("--data", metavar=DATA_METAVAR,
                   help="labelled data: an .npz (x_train, y_train, x_test, y_test) or a bundled dataset: mnist, "
                        "fashion-mnist, digits (default for the example: mnist); with a .tflite the fit "
                        "calibrates on training samples and the check and accuracy use the test split")
    p.add_argument("--calibration", metavar="FILE.npz",
                   help="a .tflite MODEL's unlabelled representative inputs, as recluster --calibration (docs/data.md): "
                        "a float MODEL is quantized on them (ai-edge-quantizer); the rewrite fits on them, one in "
                        "eight held back for the check unless --data or --verify-data gives one")
    p.add_argument("--synthetic-calibration", action="store_true",
                   help="quantize a float .tflite MODEL on seeded random inputs instead (activation ranges then do "
                        "not come from real data; every report and the dashboard say so)")
    p.add_argument("--verify-data", metavar="FILE.npz",
                   help="inputs the check of after vs before runs on (same format; labels y add accuracy)")
    p.add_argument("--clusters", "-k", type=clusters_or_auto_arg, metavar="K|auto",
                   help="K per weight tensor, for finetune and recluster (default 16); 'auto': [plan] auto (per tensor)")
    p.add_argument("--target", action="append", default=[], metavar="NAME",
                   help="a built-in target or alias (see 'toolchain profiles'); repeatable (default ethos-u55)")
    p.add_argument("--profile", metavar="FILE", help="a hardware profile file of your own, added to the targets")
    p.add_argument("--replace-builtin", action="store_true",
                   help="let a --profile file named like a built-in target replace it (refused otherwise)")
    p.add_argument("--trust-model-code", action="store_true",
                   help="load a Keras MODEL holding Lambda layers or custom objects: Python code that runs on loading")
    p.add_argument("--config", metavar="FILE",
                   help="pipeline settings, TOML or JSON (schemas/pipeline.schema.json); unknown keys are refused")
    p.add_argument("-o", "--output-dir", "--build-dir", dest="build_dir", default="build", metavar="DIR",
                   help="the build directory: DIR/<model>/... (default build; --build-dir is its older name)")
    p.add_argument("--example-dir", metavar="DIR",
                   help="where the bundled example is trained and cached (default BUILD/example)")
    add_output_options(p, "print one JSON document (stages, reports, key figures) on stdout, for CI")
    s = p.add_argument_group("settings (each is also a CONFIG key; a flag wins over the file)")
    s.add_argument("--train-samples", type=positive_int, metavar="N", help="[data] train_samples: a seeded subset")
    s.add_argument("--test-samples", type=positive_int, metavar="N", help="[data] test_samples: a seeded subset")
    s.add_argument("--data-seed", type=positive_int, metavar="N", help="[data] seed of the subsets (default 0)")
    add_deploy_plan_flags(s)
    s.add_argument("--objective", choices=["weights", "outputs"],
                   help="[recluster] objective: what the fit minimises (default: outputs with data, else weights)")
    s.add_argument("--verify-samples", type=positive_int, metavar="N",
                   help="[verify] samples: inputs of the LiteRT check of after vs before (default: about 20 s "
                        "of LiteRT, 32-1024; 32 random inputs); 0: no check")
    s.add_argument("--min-top1-agreement", type=fraction, metavar="FRACTION",
                   help="[verify] min_top1_agreement: exit 5 when after vs before agree on fewer top-1 answers "
                        "(or the check cannot show it)")
    s.add_argument("--min-output-sqnr", type=float, metavar="DB",
                   help="[verify] min_output_sqnr_db: exit 5 when an output's SQNR is lower (or not measurable)")
    s.add_argument("--output-kind", action="append", type=output_kind_arg, metavar="NAME=KIND",
                   help="[verify] output_kinds: class_scores, detection_scores, mask or values (repeatable)")
    s.add_argument("--bits", type=positive_int, metavar="B", help="[palettise] bits: index width 1-7 for every tensor")
    s.add_argument("--exclude", action="append", metavar="PATTERN",
                   help="[palettise] exclude: leave tensors matching this fnmatch pattern out (repeatable)")
    s.add_argument("--no-tflm", dest="tflm", action="store_const", const=False,
                   help="[palettise] tflm = false: no TFLM LUT-compressed model")
    s.add_argument("--allow-cpu", action="store_const", const=True,
                   help="[compile] allow_cpu: accept a model whose compute runs mostly on the CPU (otherwise exit 2)")
    s.add_argument("--no-budget", dest="enforce_budget", action="store_const", const=False,
                   help="[compile] enforce_budget = false: report SRAM/flash over budget, do not exit 4")
    s.add_argument("--timeout", type=float, metavar="S", help="[compile] timeout_s: give up on Vela after S seconds")
    s.add_argument("--section", metavar="NAME", help="[firmware] section: linker section of the model array")
    s.add_argument("--arena-margin-percent", type=positive_int, metavar="P", help="[firmware] arena_margin_percent")
    s.add_argument("--arena-overhead-bytes", type=positive_int, metavar="B", help="[firmware] arena_overhead_bytes")


# deploy flag (argparse dest) -> the config key it sets
CONFIG_OF_FLAG = {
    "train_samples": ("data", "train_samples"), "test_samples": ("data", "test_samples"),
    "data_seed": ("data", "seed"), "verify_samples": ("verify", "samples"), "objective": ("recluster", "objective"),
    "min_top1_agreement": ("verify", "min_top1_agreement"), "min_output_sqnr": ("verify", "min_output_sqnr_db"),
    "output_kind": ("verify", "output_kinds"), "bits": ("palettise", "bits"), **DEPLOY_PLAN_KEYS,
    "exclude": ("palettise", "exclude"), "tflm": ("palettise", "tflm"), "allow_cpu": ("compile", "allow_cpu"),
    "enforce_budget": ("compile", "enforce_budget"), "timeout": ("compile", "timeout_s"),
    "section": ("firmware", "section"), "arena_margin_percent": ("firmware", "arena_margin_percent"),
    "arena_overhead_bytes": ("firmware", "arena_overhead_bytes"),
}


def run(args: argparse.Namespace) -> int:
    from ..core.errors import ToolchainError
    from ..core.escape import terminal_text
    from ..pipeline.progress import OutputMode, Progress
    from ..pipeline.result import DeployOptions
    from ..pipeline.runner import run_pipeline
    from ..pipeline.summary import stage_summary, summary_table

    mode = OutputMode.JSON if args.json else OutputMode.QUIET if args.quiet else OutputMode.NORMAL
    progress = Progress(mode)
    options = DeployOptions(
        model=Path(args.model) if args.model else None,
        data=args.data,
        calibration=Path(args.calibration) if args.calibration else None,
        verify_data=Path(args.verify_data) if args.verify_data else None,
        clusters=None if args.clusters == "auto" else args.clusters,
        targets=tuple(args.target),
        profile=Path(args.profile) if args.profile else None,
        config=Path(args.config) if args.config else None,
        build_dir=Path(args.build_dir),
        example_dir=Path(args.example_dir) if args.example_dir else None,
        replace_builtin=args.replace_builtin,
        trust_model_code=args.trust_model_code,
        synthetic_calibration=args.synthetic_calibration,
        settings=deploy_settings(args, CONFIG_OF_FLAG),
    )
    try:
        result = run_pipeline(options, progress)
    except ToolchainError as exc:
        if mode is OutputMode.JSON:
            print(json.dumps({"error": str(exc), "exit_code": int(exc.exit_code),
                              "stages": [r.to_json() for r in progress.records]}, indent=2, sort_keys=True))
        raise
    if mode is OutputMode.NORMAL:
        progress.line()
        progress.line(summary_table(result))
        progress.line()
        progress.line(stage_summary(result))
        for t in result.targets:
            progress.line(terminal_text(f"report {t.target}: {t.report_dir / 'index.html'}"))
        progress.line(terminal_text(f"dashboard: {result.dashboard}"))
    try:
        result.raise_for_gates()
    except ToolchainError as exc:
        if mode is OutputMode.JSON:
            print(json.dumps(dict(result.to_json(), error=str(exc), exit_code=int(exc.exit_code)), indent=2,
                             sort_keys=True))
        raise
    if mode is OutputMode.JSON:
        print(json.dumps(dict(result.to_json(), error=None, exit_code=0), indent=2, sort_keys=True))
    sys.stdout.flush()
    return 0
