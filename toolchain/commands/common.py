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


def fraction(text: str) -> float:
    """A number in [0, 1] (an agreement or accuracy threshold); NaN and infinities refused."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number from 0 to 1, got '{text}'") from None
    if not 0.0 <= v <= 1.0:  # also false for NaN
        raise argparse.ArgumentTypeError(f"expected a number from 0 to 1, got {text}")
    return v


def refuse_overwriting_input(inp: str | os.PathLike[str], out: str | os.PathLike[str]) -> None:
    """Inputs are never modified: refuse an output path that is the input file."""
    try:
        if Path(out).exists() and Path(out).resolve() == Path(inp).resolve():
            raise InputError(f"output {out} is the input file; choose another path (inputs are never modified)")
    except OSError:
        pass
