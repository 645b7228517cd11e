"""C source text for firmware: rows of bytes, integers and exact float constants, include guards.

Text from models (names, operator codes) goes into C through ``core.escape`` only.

Everything here is a pure function of its inputs (no dates, no absolute paths),
so generated sources are byte-identical between runs. The C is C99 and builds
warning-free with ``-Wall -Wextra -pedantic`` on gcc and arm-none-eabi-gcc.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from .escape import c_identifier

BYTES_PER_LINE = 16
VALUES_PER_LINE = 12


def _rows(items: Sequence[str], per_line: int, indent: str = "    ") -> str:
    lines = [indent + ", ".join(items[i : i + per_line]) + "," for i in range(0, len(items), per_line)]
    return "\n".join(lines)


def byte_rows(data: bytes, indent: str = "    ") -> str:
    return _rows([f"0x{b:02x}" for b in data], BYTES_PER_LINE, indent)


def int_rows(values: Iterable[int], indent: str = "    ") -> str:
    return _rows([str(int(v)) for v in values], VALUES_PER_LINE, indent)


def float32_literal(x: float) -> str:
    """An exact C literal of a float32 value (hexadecimal floating constant)."""
    v = float(np.float32(x))
    if not np.isfinite(v):
        raise ValueError(f"cannot write a non-finite float {x} as a C constant")
    return f"{v.hex()}f" if v != 0 else "0.0f"


def float_rows(values: Iterable[float], indent: str = "    ") -> str:
    return _rows([float32_literal(v) for v in values], 6, indent)


def include_guard(file_name: str) -> str:
    return c_identifier(file_name).upper() + "_"
