"""Helpers shared by command modules (argument types, output paths)."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..core.errors import ConfigError


def positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got '{text}'") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {v}")
    return v


def fraction(text: str) -> float:
    """A number in [0, 1] (an agreement or accuracy threshold); NaN and infinities refused."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number from 0 to 1, got '{text}'") from None
    if not 0.0 <= v <= 1.0:  # also false for NaN
        raise argparse.ArgumentTypeError(f"expected a number from 0 to 1, got {text}")
    return v


def default_output_dir(model: str | os.PathLike[str], *parts: str) -> Path:
    """Where ``deploy`` puts a stage's directory for MODEL (build/<model>/...): a verb's default ``-o DIR``, so a
    verb run by hand fills the tree a deploy would."""
    from ..core.escape import file_name_component

    return Path("build", file_name_component(Path(model).stem), *parts)


def add_output_options(p: argparse.ArgumentParser, json_help: str = "print JSON instead of the summary") -> None:
    """``--quiet/-q`` and ``--json``, the same on every verb that prints."""
    out = p.add_mutually_exclusive_group()
    out.add_argument("--quiet", "-q", action="store_true",
                     help="print nothing on success (errors still go to stderr, one line)")
    out.add_argument("--json", action="store_true", help=json_help)


def say(args: argparse.Namespace, text: str) -> None:
    """Print the human-readable summary unless --quiet or --json."""
    if not getattr(args, "quiet", False) and not getattr(args, "json", False):
        print(text)


def training_output(args: argparse.Namespace):
    """Where a training verb's own progress goes: stdout normally, stderr with --json, nowhere with --quiet."""
    import contextlib
    import io
    import sys

    if getattr(args, "json", False):
        return contextlib.redirect_stdout(sys.stderr)
    if getattr(args, "quiet", False):
        return contextlib.redirect_stdout(io.StringIO())
    return contextlib.nullcontext()


def print_json_file(path: str | os.PathLike[str]) -> None:
    """--json of a verb that writes a JSON summary: that summary, as written."""
    print(Path(path).read_text(encoding="utf-8").rstrip("\n"))


def whole_number(lo: int, hi: int):
    """An argparse type: a whole number from ``lo`` to ``hi`` (``1e9`` and ``1.5`` refused, not truncated)."""
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number from {lo} to {hi}, got '{text}'") from None
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"expected a whole number from {lo} to {hi}, got {v}")
        return v
    return parse


def finite_number(lo: float, hi: float):
    """An argparse type: a number from ``lo`` to ``hi``; NaN and infinities refused."""
    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number from {lo:g} to {hi:g}, got '{text}'") from None
        if not lo <= v <= hi:  # also false for NaN
            raise argparse.ArgumentTypeError(f"expected a number from {lo:g} to {hi:g}, got {text}")
        return v
    return parse


def clusters_or_auto(text: str) -> int | str:
    """An argparse type: K as a whole number, or 'auto' (the planner chooses K per tensor)."""
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer K or 'auto', got '{text}'") from None


def clusters_arg(text: str) -> int:
    """A fixed K, 2..256 (deploy's --clusters)."""
    try:
        k = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of clusters, got '{text}'") from None
    if not 2 <= k <= 256:
        raise argparse.ArgumentTypeError(f"clusters must be from 2 to 256, got {k}")
    return k


def output_kind_arg(text: str) -> tuple[str, str]:
    """NAME=KIND (--output-kind) as (name, kind value)."""
    from ..tflite.output_kind import parse_output_kind

    try:
        name, kind = parse_output_kind(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return name, kind.value


def deploy_settings(args: argparse.Namespace, config_of_flag: dict[str, tuple[str, str]]) -> tuple:
    """(section, key, value) of every deploy flag given (``config_of_flag``: dest -> config key), and [plan] auto
    for ``--clusters auto``."""
    given = tuple((*config_of_flag[dest], dict(v) if dest == "output_kind" else v)
                  for dest, v in ((d, getattr(args, d)) for d in config_of_flag) if v is not None)
    return given + ((("plan", "auto", True),) if args.clusters == "auto" else ())
