"""Helpers shared by command modules (argument types, output paths)."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..core.errors import InputError


def positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got '{text}'") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {v}")
    return v


def refuse_overwriting_input(inp: str | os.PathLike[str], out: str | os.PathLike[str]) -> None:
    """Inputs are never modified: refuse an output path that is the input file."""
    try:
        if Path(out).exists() and Path(out).resolve() == Path(inp).resolve():
            raise InputError(f"output {out} is the input file; choose another path (inputs are never modified)")
    except OSError:
        pass
