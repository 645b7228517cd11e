"""The K-planning flags of ``recluster`` and ``deploy`` (toolchain.rewrite.planner's goals), defined once for both.

recluster maps them onto a ``PlanRequest`` (``plan_request``); deploy onto the pipeline config's [plan] section
(``DEPLOY_PLAN_KEYS``), which builds the same request. The verification gates (--min-top1-agreement,
--min-output-sqnr: exit 5) are not planning floors: the planner's are --min-agreement and --plan-output-sqnr.
"""
from __future__ import annotations

import argparse

from ..core.errors import ConfigError
from .common import clusters_arg, finite_number, fraction, positive_int

# deploy flag (argparse dest) -> the pipeline config key it sets
DEPLOY_PLAN_KEYS = {
    "weight_budget": ("plan", "weight_budget_bytes"), "flash_budget": ("plan", "flash_budget_bytes"),
    "plan_target": ("plan", "target"), "min_agreement": ("plan", "min_top1_agreement"),
    "plan_output_sqnr": ("plan", "min_output_sqnr_db"), "min_sqnr": ("plan", "min_sqnr_db"),
    "max_clusters": ("plan", "max_clusters"), "rate_lambda": ("recluster", "rate_lambda"),
}


def clusters_or_auto_arg(text: str) -> int | str:
    """deploy's --clusters: a fixed K, 2..256, or 'auto' ([plan] auto)."""
    if text == "auto":
        return text
    try:
        int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of clusters or 'auto', got '{text}'") from None
    return clusters_arg(text)


def add_recluster_plan_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--min-sqnr", type=finite_number(-100.0, 300.0), metavar="DB",
                   help="with --clusters auto: per-tensor SQNR floor in dB (default without data: 30); with "
                        "--calibration the SQNR of each layer's output")
    p.add_argument("--max-clusters", type=positive_int, metavar="K",
                   help="with --clusters auto: the largest K a tensor may get (default 32, Vela's palette)")
    p.add_argument("--min-agreement", type=fraction, metavar="FRACTION",
                   help="with --clusters auto and --calibration: the fewest encoded bytes keeping top-1 agreement "
                        ">= FRACTION on held-back calibration samples, the only floor (default: 0.995 and no more "
                        "output noise than K=16)")
    p.add_argument("--plan-output-sqnr", type=finite_number(0.0, 120.0), metavar="DB",
                   help="with --clusters auto and --calibration: the fewest bytes keeping the output's SQNR >= DB "
                        "on held-back calibration samples (a planning floor; --min-output-sqnr is the exit-5 gate)")
    p.add_argument("--weight-budget", type=positive_int, metavar="BYTES",
                   help="K and rate price per tensor for the least output error with Vela's encoded weights on "
                        "--target (default ethos-u55-128) <= BYTES, checked by compiling the result")
    p.add_argument("--flash-budget", type=positive_int, metavar="BYTES",
                   help="choose K per tensor so the Vela-compiled model fits BYTES of flash on --target "
                        "(checked by compiling; default budget: the target profile's)")
    p.add_argument("--target", metavar="NAME", help="hardware profile whose encoder sizes weights (e.g. "
                   "ethos-u85-256); alone, a flash budget plan for its profile's budget")
    p.add_argument("--profile", metavar="FILE", help="custom hardware profile file (as --target)")
    p.add_argument("--replace-builtin", action="store_true",
                   help="let a --profile file named like a built-in target replace it (refused otherwise)")
    p.add_argument("--rate-lambda", type=finite_number(0.0, 64.0), metavar="F",
                   help="price of code bits in the fit, 0..64: a bit is worth F x the palette's mean squared "
                        "error (default 0; size goals choose it per tensor)")


def add_deploy_plan_flags(s: argparse._ArgumentGroup) -> None:
    s.add_argument("--weight-budget", type=positive_int, metavar="BYTES", help="[plan] weight_budget_bytes: K and "
                   "rate price per tensor for the least output error with Vela's encoded weights <= BYTES")
    s.add_argument("--flash-budget", type=positive_int, metavar="BYTES",
                   help="[plan] flash_budget_bytes: the same for the compiled model's flash")
    s.add_argument("--plan-target", metavar="NAME", help="[plan] target: whose encoder sizes them (default: 1st)")
    s.add_argument("--min-agreement", type=fraction, metavar="F", help="[plan] min_top1_agreement (auto, DATA)")
    s.add_argument("--plan-output-sqnr", type=float, metavar="DB", help="[plan] min_output_sqnr_db (auto, DATA)")
    s.add_argument("--min-sqnr", type=float, metavar="DB", help="[plan] min_sqnr_db: per-tensor floor (auto)")
    s.add_argument("--max-clusters", type=positive_int, metavar="K", help="[plan] max_clusters (auto)")
    s.add_argument("--rate-lambda", type=float, metavar="F", help="[recluster] rate_lambda: bit price, 0..64")


def plan_request(args: argparse.Namespace):
    """recluster's K goal from its flags: --clusters auto, --weight-budget or --flash-budget (one); --target alone
    is a flash budget plan for its profile's budget, with --weight-budget or auto it names whose encoder sizes."""
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
                       min_output_sqnr_db=args.plan_output_sqnr, max_clusters=args.max_clusters)
