from __future__ import annotations

import argparse
import json

from ..core.fileio import read_input_bytes
from .common import add_output_options, say

HELP = "per-tensor weight statistics: distinct int8 values, Vela palette fit, entropy, sizes"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL.tflite", help="an int8 .tflite model")
    add_output_options(p, "print JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    from ..rewrite.inspect import format_table, inspect_model

    stats = inspect_model(read_input_bytes(args.model, "model"))
    if args.json:
        print(json.dumps(stats.to_json(), indent=2, sort_keys=True))
    say(args, format_table(stats))
    return 0
