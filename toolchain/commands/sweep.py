"""``toolchain sweep [MODEL...] --clusters K... [--target T]... [--executor local|ray] [--ray-address ADDR]``.

One ``deploy`` per model and K (each into ``BUILD/sweep/k<K>/<model>/``), on a pool of local
processes or as Ray tasks, then the Pareto table of ``toolchain report --sweep``: see
toolchain.pipeline.sweep_runner.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .common import add_output_options, positive_int, whole_number
from .finetune import DATA_METAVAR

HELP = "deploy every model x K of a sweep (local processes or Ray tasks) and write its Pareto table"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("models", nargs="*", metavar="MODEL",
                   help="Keras models (with --data) or int8 .tflite files; default: the bundled example")
    p.add_argument("--data", metavar=DATA_METAVAR, help="as for deploy: an .npz or mnist, fashion-mnist, digits")
    p.add_argument("--clusters", "-k", nargs="+", type=whole_number(2, 256), default=[8, 16, 32], metavar="K",
                   help="the K of each point (default 8 16 32)")
    p.add_argument("--target", action="append", default=[], metavar="NAME",
                   help="a built-in target or alias, repeatable (default ethos-u55); every point builds every target")
    p.add_argument("--profile", metavar="FILE", help="a hardware profile file of your own, added to the targets")
    p.add_argument("--replace-builtin", action="store_true",
                   help="let a --profile file named like a built-in target replace it (refused otherwise)")
    p.add_argument("--trust-model-code", action="store_true",
                   help="load Keras MODELs holding Lambda layers or custom objects: Python code that runs on loading")
    p.add_argument("--config", metavar="FILE", help="the pipeline config of every point (as for deploy)")
    p.add_argument("-o", "--output-dir", "--build-dir", dest="build_dir", default="build", metavar="DIR",
                   help="points go to DIR/sweep/k<K>/<model>/, the Pareto files to DIR/sweep/ (default build; "
                        "--build-dir is its older name)")
    p.add_argument("--executor", choices=("local", "ray"), default="local",
                   help="local: fresh processes on this machine; ray: Ray tasks (the distributed extra)")
    p.add_argument("--jobs", "-j", type=positive_int, default=0, metavar="N",
                   help="local: points at a time; ray: CPUs of the local Ray cluster (default: every core)")
    p.add_argument("--ray-address", metavar="ADDR",
                   help="with --executor ray: an existing cluster (HOST:PORT, ray://HOST:PORT, auto); "
                        "default RAY_ADDRESS, else a local cluster started and shut down here")
    add_output_options(p, "print one JSON document (points, where they ran, the Pareto points) on stdout")


def run(args: argparse.Namespace) -> int:
    from ..core.errors import InputError
    from ..core.escape import terminal_text
    from ..pipeline.sweep_points import Executor, SweepOptions
    from ..pipeline.sweep_runner import run_sweep

    if args.ray_address is not None and args.executor != "ray":
        raise InputError("--ray-address goes with --executor ray")
    options = SweepOptions(
        models=tuple(Path(m) for m in args.models), data=args.data, clusters=tuple(args.clusters),
        targets=tuple(args.target), profile=Path(args.profile) if args.profile else None,
        config=Path(args.config) if args.config else None, build_dir=Path(args.build_dir),
        executor=Executor(args.executor), jobs=args.jobs, ray_address=args.ray_address,
        trust_model_code=args.trust_model_code, replace_builtin=args.replace_builtin)
    stream = sys.stderr if args.json else sys.stdout

    def log(line: str) -> None:
        if not args.quiet:
            print("\n".join(terminal_text(part) for part in line.splitlines()), file=stream, flush=True)

    result = run_sweep(options, log)
    if args.json:
        print(json.dumps({
            "executor": result.executor.value, "where": result.where, "wall_s": round(result.wall_s, 3),
            "connect_s": round(result.connect_s, 3),
            "points": [{"name": p.name, "node": p.node, "ok": p.ok, "attempts": p.attempts, "error": p.error,
                        "exit_code": p.exit_code, "deploy_s": round(p.deploy_s, 3), "task_s": round(p.task_s, 3),
                        "reports": [rel for rel, _ in p.reports]} for p in result.points],
            "pareto": None if result.pareto is None else [str(f) for f in result.pareto.files],
        }, indent=2, sort_keys=True))
    elif result.pareto is not None:
        from ..reporting.formatting import fmt_int, fmt_pct, table

        rows = [[p.target, p.model, p.label, "-" if p.clusters is None else str(p.clusters), fmt_pct(p.accuracy),
                 fmt_int(p.flash_bytes), fmt_int(p.cycles_total), "yes" if p.pareto else ""]
                for p in result.pareto.points]
        log(table(["target", "model", "variant", "K", "accuracy", "flash B", "cycles", "Pareto"], rows,
                  right={3, 4, 5, 6}))
        log("wrote " + ", ".join(str(f) for f in result.pareto.files)
            + f" ({len(result.points)} point(s) in {result.wall_s:.1f} s on {result.executor.value})")
        if result.pareto.plot_note:
            log(f"note: {result.pareto.plot_note}")
    result.raise_for_failures()
    return 0
