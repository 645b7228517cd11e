"""``toolchain firmware --compile-dir DIR [-o DIR] [--target NAME]``: C sources and build fragments for a firmware.

The target is the one compile.json records; ``--target`` is a check (exit 2 when it names another).
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from ..core.escape import terminal_text
from .common import add_output_options, say

HELP = "turn a compile directory into firmware sources: model C array, arena size, CMake/Make fragments"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..firmware.config import (
        DEFAULT_ARENA_MARGIN_PERCENT,
        DEFAULT_ARENA_OVERHEAD_BYTES,
        DEFAULT_SECTION,
    )
    from .common import positive_int

    parser.add_argument("--compile-dir", required=True, metavar="DIR", help="output directory of 'toolchain compile' (compile.json + *_vela.tflite)")
    parser.add_argument("-o", "--output-dir", metavar="DIR",
                        help="directory for the generated files, created if missing (default: firmware/ beside the "
                             "compile directory, as deploy lays out build/MODEL/TARGET/)")
    parser.add_argument("--target", metavar="NAME",
                        help="optional check: the target compile.json records must be this one (aliases followed)")
    parser.add_argument("--name", metavar="PREFIX", help="C name prefix: files <name>_model.c/.h, symbol <name>_model (default: the Vela model's file name)")
    parser.add_argument("--section", default=DEFAULT_SECTION, metavar="NAME", help=f"linker section of the model array (default {DEFAULT_SECTION})")
    parser.add_argument("--palettes", metavar="DIR", help="output directory of 'toolchain palettise': adds palette tables for weights on the CPU path")
    parser.add_argument("--arena-margin-percent", type=positive_int, default=DEFAULT_ARENA_MARGIN_PERCENT, metavar="P",
                        help=f"tensor arena = Vela SRAM + P%% + overhead (default {DEFAULT_ARENA_MARGIN_PERCENT})")
    parser.add_argument("--arena-overhead-bytes", type=positive_int, default=DEFAULT_ARENA_OVERHEAD_BYTES, metavar="B",
                        help=f"fixed bytes added for TFLM's own allocations (default {DEFAULT_ARENA_OVERHEAD_BYTES})")
    add_output_options(parser, "print firmware.json and the files written instead of the summary")


def run(args: argparse.Namespace) -> int:
    from ..firmware.config import FirmwareConfig
    from ..firmware.firmware import firmware_from_compile_dir

    out = args.output_dir or Path(os.path.abspath(args.compile_dir)).parent / "firmware"
    config = FirmwareConfig(
        target=args.target,
        name=args.name,
        section=args.section,
        arena_margin_percent=args.arena_margin_percent,
        arena_overhead_bytes=args.arena_overhead_bytes,
    )
    bundle, written = firmware_from_compile_dir(args.compile_dir, out, config, args.palettes)
    m = bundle.manifest
    if args.json:
        print(json.dumps({"firmware": m, "files": [str(p) for p in written], "notes": list(bundle.notes)}, indent=2,
                         sort_keys=True))
    a = m["arena"]
    lines = [
        (f"model: {m['model']['symbol']}[{m['model']['size_bytes']}] aligned {m['model']['alignment_bytes']} "
         f"in section {m['model']['section']}"),
        (f"arena: {a['macro']} = {a['bytes']} bytes (Vela SRAM {a['vela_sram_bytes']} + {a['margin_percent']}% + "
         f"{a['overhead_bytes']})"),
        f"operators: {m['npu_operators']} on the NPU, {m['cpu_operators']} on the CPU per inference",
    ]
    if m["palette_tensors"]:
        lines.append(f"palette tables for {len(m['palette_tensors'])} CPU-path tensor(s)")
    lines += [f"note: {terminal_text(note)}" for note in bundle.notes]
    lines.append(terminal_text(f"wrote {len(written)} file(s) to {out}: " + ", ".join(p.name for p in written)))
    say(args, "\n".join(lines))
    return 0
