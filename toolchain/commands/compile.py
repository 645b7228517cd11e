"""``toolchain compile MODEL --target NAME [--profile FILE] [-o DIR] [--no-budget]``."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..core.escape import terminal_text
from .common import add_output_options, default_output_dir, finite_number, say

HELP = "compile an int8 .tflite with Vela for an Ethos-U target (or estimate it for Ethos-N78); writes compile.json"
LIBRARY_HELP = ("Arm's Ethos-N support library (libEthosNSupport.so, its build folder or the driver stack checkout): "
                "its estimator prices Ethos-N78 targets (default: $ETHOSN_SUPPORT_LIBRARY; else the calibrated model)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL.tflite", help="a full-int8 .tflite model (not yet compiled by Vela)")
    p.add_argument("--target", metavar="NAME", help="a built-in target or alias (see 'toolchain profiles'), e.g. ethos-u55-128")
    p.add_argument("--profile", metavar="FILE", help="a hardware profile file of your own (.toml or .json)")
    p.add_argument("--replace-builtin", action="store_true",
                   help="let a --profile file named like a built-in target replace it (refused otherwise)")
    p.add_argument("-o", "--output-dir", metavar="DIR", help="where Vela's files and compile.json go (default build/MODEL/TARGET/compile)")
    p.add_argument("--no-budget", action="store_true", help="report SRAM/flash over the profile's budget but do not fail (exit 0)")
    p.add_argument("--allow-cpu", action="store_true", help="accept a model that runs mostly on the CPU (otherwise exit 2)")
    p.add_argument("--timeout", type=finite_number(0.001, 86400), default=600.0, metavar="S", help="give up on Vela after S seconds (default 600)")
    p.add_argument("--ethosn-support-library", metavar="PATH", help=LIBRARY_HELP)
    add_output_options(p, "print compile.json instead of the summary")


def resolve_profile(target: str | None, profile_file: str | None, replace_builtin: bool = False):
    from ..core.errors import ConfigError
    from ..targets.profiles import load_profile

    if profile_file is None and target is None:
        raise ConfigError("give --target NAME (see 'toolchain profiles') or --profile FILE")
    if profile_file is None:
        return load_profile(target)  # type: ignore[arg-type]
    profile = load_profile(Path(profile_file), replace_builtin)
    if target is not None and target != profile.name and target not in profile.aliases:
        raise ConfigError(
            f"--target {target} does not match profile file {Path(profile_file).name}, which is named '{profile.name}'"
        )
    return profile


def _bytes(n: int | None) -> str:
    return "-" if n is None else f"{n:,} B"


def _placement_line(r: dict) -> str:
    """'in the model: NPU 42 / CPU 19 per inference (0 compute on the CPU), 12 init (CALL_ONCE); Vela's count: ...'."""
    from ..targets.op_placement import vela_count_label

    p = r["placement"]
    line = (f"in the model: NPU {p['npu_operators']} / CPU {p['cpu_operators']} per inference "
            f"({p['cpu_compute_operators']} compute on the CPU)")
    if p["init_operators"]:
        line += f", {p['init_operators']} init (CALL_ONCE)"
    if r["estimate_kind"] != "vela":  # an Ethos-N78 estimate: no Vela run, no Vela count
        return line + " (estimate)"
    return line + f"; Vela's count (its own operations): {vela_count_label(r['vela_operator_counts'])}"


def _flash_line(r: dict) -> str:
    """The compiled model file (what the firmware embeds) beside Vela's off-chip flash figure."""
    b = r["budget"]
    if r["estimate_kind"] != "vela":
        return (f"{_bytes(b['flash_used_bytes'])} model, weights as Arm's encoder packs them (estimate); "
                f"budget {_bytes(b['flash_bytes'])}")
    return (f"model file {_bytes(b['flash_used_bytes'])} (what the firmware embeds); Vela's off-chip flash used "
            f"{_bytes(r['off_chip_flash_bytes'])}; budget {_bytes(b['flash_bytes'])} (model file)")


def format_summary(result, model: str) -> str:
    r = result.report
    b = r["budget"]
    analytical = r["estimate_kind"] != "vela"
    if analytical:
        head = (f"ESTIMATE (not a compile) of {model} for {r['target']} at {r['clock_hz'] / 1e6:g} MHz: "
                f"{r['estimate_label']}")
    else:
        head = (
            f"{model} compiled for {r['target']} by Vela {r['vela_version']} "
            f"({r['system_config']}, {r['memory_mode']}, {r['clock_hz'] / 1e6:g} MHz)"
        )
    t = r["inference_time_s"]
    ips = r["inferences_per_second"]
    by_mem = ", ".join(f"{k} {v:,}" for k, v in sorted(r["cycles_by_memory"].items()) if v)
    ratio = f" ({r['encoded_weight_ratio']:.3f})" if r["encoded_weight_ratio"] is not None else ""
    lines = [
        head,
        f"  output          {terminal_text(str(result.out_dir))}",
        f"  status          {r['status']}",
        f"  operators       {_placement_line(r)}",
        f"  SRAM            {_bytes(b['sram_used_bytes']):>16}   budget {_bytes(b['sram_bytes'])}",
        f"  flash           {_flash_line(r)}",
    ]
    for key, label in (("on_chip_flash_bytes", "on-chip flash"), ("dram_bytes", "DRAM")):
        if r[key]:
            lines.append(f"  {label:<15} {_bytes(r[key]):>16}")
    lines += [
        f"  cycles          {r['cycles_total']:>14,}     NPU {r['cycles_npu']:,}" + (f"; memory access: {by_mem}" if by_mem else ""),
        f"  inference       {t * 1e6:>14,.1f} us  " + (f"({ips:,.0f} inferences/s)" if ips else ""),
        f"  weights         {_bytes(r['original_weight_bytes']):>16} -> {_bytes(r['encoded_weight_bytes'])} encoded{ratio}",
    ]
    if r["tensors_over_palette_limit"]:
        lines.append(
            f"  palette         {r['tensors_over_palette_limit']} of {len(r['weight_tensors'])} weight tensors have more "
            f"than {r['palette_limit']} distinct values"
        )
    if not b["within_budget"]:
        lines.append("  OVER BUDGET (accepted with --no-budget)")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from ..core.errors import ConfigError
    from ..core.paths import check_paths
    from ..targets.compile import COMPILE_JSON, compile_model
    from ..targets.ethos_n_bridge import library_from_option
    from ..targets.vela_run import vela_output_files

    profile = resolve_profile(args.target, args.profile, args.replace_builtin)
    if args.ethosn_support_library and profile.family.compiled_by_vela:
        raise ConfigError(f"--ethosn-support-library applies to Ethos-N78 targets only, not {profile.name}")
    library = library_from_option(args.ethosn_support_library) if not profile.family.compiled_by_vela else None
    model = Path(args.model)
    out = Path(args.output_dir) if args.output_dir else default_output_dir(model, profile.name, "compile")
    written = (COMPILE_JSON, *(vela_output_files(model, profile) if profile.family.compiled_by_vela else ()))
    check_paths(inputs=[model, args.profile], outputs=[out / f for f in written], output_dirs=[out])
    result = compile_model(
        model, profile, out, enforce_budget=not args.no_budget, allow_cpu=args.allow_cpu, timeout_s=args.timeout,
        ethosn_library=library,
    )
    if not args.quiet:
        for w in result.warnings:
            print(f"WARNING: {terminal_text(w)}", file=sys.stderr)
    if args.json:
        print(json.dumps(result.report, indent=2, sort_keys=True))
    say(args, format_summary(result, terminal_text(model.name)))
    return 0
