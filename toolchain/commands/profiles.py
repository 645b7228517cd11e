"""``toolchain profiles [NAME_OR_FILE ...] [--json] [--ini]``."""
from __future__ import annotations

import argparse
import json

from ..core.escape import terminal_text
from .common import add_output_options, say

HELP = "list the hardware profiles (targets), or check and show given ones"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("profiles", nargs="*", metavar="NAME_OR_FILE", help="built-in names, aliases or profile files to check and show")
    add_output_options(p, "print JSON")
    p.add_argument("--ini", action="store_true", help="also print the Vela .ini a custom system is rendered into")
    p.add_argument("--replace-builtin", action="store_true",
                   help="accept a profile file named like a built-in target but describing another (refused otherwise)")


def _mib(n: int) -> str:
    return f"{n / 1024:,.0f} KiB" if n < 1024 * 1024 else f"{n / (1024 * 1024):,.4g} MiB"


def _row(p) -> tuple[str, ...]:
    if p.ethos_n is not None:
        system = f"{p.ethos_n.variant.value}: {p.ethos_n.variant.hardware.macs_per_cycle} MACs/cycle"
        mode = "-"
    else:
        system = p.system_config_name + ("" if p.system_config.bundled else " (custom)")
        mode = p.memory_mode_name + ("" if p.memory_mode.bundled else " (custom)")
    return (
        p.name,
        ", ".join(p.aliases) or "-",
        p.accelerator,
        system,
        mode,
        f"{p.clock_hz / 1e6:g} MHz",
        _mib(p.sram_budget_bytes),
        _mib(p.flash_budget_bytes),
        str(p.palette_limit),
    )


def profiles_table(profiles) -> str:
    header = ("target", "aliases", "accelerator", "system", "memory mode", "clock", "SRAM budget", "flash budget", "palette")
    rows = [header] + [_row(p) for p in profiles]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def format_details(p, with_ini: bool) -> str:
    lines = [f"{p.name}: {terminal_text(p.description)}" if p.description else p.name]  # a user's file: any text
    lines.append(f"  family        {p.family.value}  accelerator {p.accelerator}  clock {p.clock_hz:,} Hz")
    lines.append(f"  budget        SRAM {p.sram_budget_bytes:,} B, flash {p.flash_budget_bytes:,} B; palette limit {p.palette_limit}")
    if p.aliases:
        lines.append(f"  aliases       {', '.join(p.aliases)}")
    if p.base:
        lines.append(f"  base          {p.base}")
    if p.ethos_n is not None:
        from ..targets.ethos_n_calibration import estimate_label

        v = p.ethos_n.variant
        hw = v.hardware
        lines.append(
            f"  ethos-n       {v.value}: {hw.engines} engines, {hw.macs_per_cycle} MACs/cycle "
            f"({2 * hw.macs_per_cycle * p.clock_hz / 1e12:.3g} TOPS at {p.clock_hz / 1e9:g} GHz), {hw.ple_lanes} PLE "
            f"lane(s); {estimate_label(v)}"
        )
    else:
        bw = ", ".join(f"{k} {v / 1e9:.3g} GB/s" for k, v in p.bandwidths_bytes_per_s().items())
        lines.append(f"  system        {p.system_config_name} (axi0 {p.system_config.axi0_port.value}, axi1 {p.system_config.axi1_port.value}; {bw})")
        mm = p.memory_mode
        cache = f", cache {mm.arena_cache_size_bytes:,} B" if mm.arena_cache_size_bytes is not None else ""
        lines.append(
            f"  memory mode   {mm.name} (constants {mm.const_mem_area.value}, arena {mm.arena_mem_area.value}, "
            f"cache {mm.cache_mem_area.value}{cache})"
        )
        lines.append("  vela options  " + " ".join(p.vela_config_arguments()))
        ini = p.vela_ini_text()
        if ini is not None and with_ini:
            lines.append(f"  {p.ini_file_name}:")
            lines += ["    " + ln for ln in ini.rstrip("\n").splitlines()]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from ..targets.profiles import list_profiles, load_profile

    profiles = [load_profile(n, args.replace_builtin) for n in args.profiles] if args.profiles else list_profiles()
    if args.json:
        out = []
        for p in profiles:
            d = p.to_dict()
            if args.ini and p.vela_ini_text() is not None:
                d["vela_ini"] = p.vela_ini_text()
            out.append(d)
        print(json.dumps(out, indent=2, sort_keys=True))
    elif args.profiles:
        say(args, "\n\n".join(format_details(p, args.ini) for p in profiles))
    else:
        say(args, profiles_table(profiles))
    return 0
