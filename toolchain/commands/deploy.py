"""``toolchain deploy [MODEL] [--data DATA] [--clusters K] [--target T]... [--profile FILE] [--config FILE]``.

The whole pipeline into ``--build-dir`` (default build): see toolchain.pipeline.runner.
Imports no TensorFlow itself: only a Keras MODEL (or the example) loads it, inside the training stages.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HELP = "run the whole pipeline (finetune, quantize, recluster, palettise, compile, firmware, report) incrementally"


def _clusters(text: str) -> int:
    try:
        k = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of clusters, got '{text}'") from None
    if not 2 <= k <= 256:
        raise argparse.ArgumentTypeError(f"clusters must be from 2 to 256, got {k}")
    return k


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", nargs="?", metavar="MODEL",
                   help="a float Keras model (.keras/.h5: the full pipeline, needs --data) or an int8 .tflite "
                        "(starts at recluster, no data needed); default: the bundled example trained on MNIST")
    p.add_argument("--data", metavar="DATA",
                   help="an .npz (x_train, y_train, x_test, y_test) or a bundled dataset: mnist, fashion-mnist, "
                        "digits (default for the example: mnist); with an int8 .tflite it only adds accuracy")
    p.add_argument("--clusters", "-k", type=_clusters, metavar="K",
                   help="distinct values per weight tensor, for finetune and recluster (default 16)")
    p.add_argument("--target", action="append", default=[], metavar="NAME",
                   help="a built-in target or alias (see 'toolchain profiles'); repeatable (default ethos-u55)")
    p.add_argument("--profile", metavar="FILE", help="a hardware profile file of your own, added to the targets")
    p.add_argument("--config", metavar="FILE",
                   help="pipeline settings, TOML or JSON (schemas/pipeline.schema.json); unknown keys are refused")
    p.add_argument("--build-dir", default="build", metavar="DIR", help="where build/<model>/ goes (default build)")
    p.add_argument("--example-dir", metavar="DIR",
                   help="where the bundled example is trained and cached (default BUILD/example)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--quiet", "-q", action="store_true", help="print nothing on success (errors still go to stderr)")
    out.add_argument("--json", action="store_true",
                     help="print one JSON document (stages, reports, key figures) on stdout, for CI")


def run(args: argparse.Namespace) -> int:
    from ..core.errors import ToolchainError
    from ..pipeline.progress import OutputMode, Progress
    from ..pipeline.result import DeployOptions
    from ..pipeline.runner import run_pipeline
    from ..pipeline.summary import stage_summary, summary_table

    mode = OutputMode.JSON if args.json else OutputMode.QUIET if args.quiet else OutputMode.NORMAL
    progress = Progress(mode)
    options = DeployOptions(
        model=Path(args.model) if args.model else None,
        data=args.data,
        clusters=args.clusters,
        targets=tuple(args.target),
        profile=Path(args.profile) if args.profile else None,
        config=Path(args.config) if args.config else None,
        build_dir=Path(args.build_dir),
        example_dir=Path(args.example_dir) if args.example_dir else None,
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
            progress.line(f"report {t.target}: {t.report_dir / 'index.html'}")
        progress.line(f"dashboard: {result.dashboard}")
    try:
        result.raise_for_budget()
    except ToolchainError as exc:
        if mode is OutputMode.JSON:
            print(json.dumps(dict(result.to_json(), error=str(exc), exit_code=int(exc.exit_code)), indent=2,
                             sort_keys=True))
        raise
    if mode is OutputMode.JSON:
        print(json.dumps(dict(result.to_json(), error=None, exit_code=0), indent=2, sort_keys=True))
    sys.stdout.flush()
    return 0
