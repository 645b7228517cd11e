"""``toolchain example [-o DIR]``: train (or reuse) the bundled example ConvNet on MNIST.

TensorFlow is imported inside ``run`` only.
"""
from __future__ import annotations

import argparse

from .common import add_output_options, print_json_file, say, training_output

HELP = "build the bundled example: a small ConvNet with BatchNorm trained on MNIST (cached)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output-dir", default="build/example", metavar="DIR",
                   help="where example.keras and example.keras.json go (default build/example)")
    p.add_argument("--force", action="store_true", help="train again even when a matching cached build exists")
    p.add_argument("--epoch-lines", action="store_true", help="one line per epoch instead of Keras' progress output")
    add_output_options(p, "print the JSON summary (example.keras.json) instead of the text summary")


def run(args: argparse.Namespace) -> int:
    from ..training.example import build_example
    from ..training.tf_env import require_training_stack

    require_training_stack()
    with training_output(args):
        result = build_example(args.output_dir, force=args.force, quiet=args.epoch_lines or args.quiet or args.json)
    if args.json:
        print_json_file(result.summary_path)
    how = "reused the cached build" if result.reused else "trained"
    say(args, f"{how}: {result.model_path} ({result.parameters} parameters), float accuracy "
              f"{result.float_accuracy:.2%} on {result.test_samples} test digits, in {result.elapsed_s:.1f} s\n"
              f"summary: {result.summary_path}")
    return 0
