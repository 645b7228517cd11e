"""C source text for firmware: palette tables with a reference decoder, and a model byte array.

Everything here is a pure function of its inputs (no dates, no absolute paths),
so generated sources are byte-identical between runs. The C is C99 and builds
warning-free with ``-Wall -Wextra -pedantic`` on gcc and arm-none-eabi-gcc.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Iterable, Sequence

import numpy as np

if TYPE_CHECKING:
    pass

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
BYTES_PER_LINE = 16
VALUES_PER_LINE = 12


def is_c_identifier(text: str) -> bool:
    return bool(_IDENT.match(text))


def c_identifier(text: str, fallback: str = "t") -> str:
    """A C identifier made from arbitrary text (tensor names hold '/', ':', ';' ...)."""
    ident = re.sub(r"[^A-Za-z0-9_]+", "_", text).strip("_")
    ident = re.sub(r"_+", "_", ident) or fallback
    return f"_{ident}" if ident[0].isdigit() else ident


def c_string(text: str) -> str:
    """A C string literal for any text (UTF-8 bytes escaped in octal; '?' escaped against trigraphs)."""
    out = []
    for b in text.encode("utf-8"):
        ch = chr(b)
        if ch in '\\"?':
            out.append("\\" + ch)
        elif 0x20 <= b < 0x7F:
            out.append(ch)
        else:
            out.append(f"\\{b:03o}")
    return '"' + "".join(out) + '"'


def c_comment(text: str) -> str:
    """Text safe inside a /* */ comment."""
    return "".join(ch if 0x20 <= ord(ch) < 0x7F else "?" for ch in text).replace("*/", "*\\/")


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
