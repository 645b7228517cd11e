"""Reading what ``toolchain compile`` wrote (compile.json and the Vela model) for the firmware stage."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..core.errors import InputError
from ..core.fileio import read_input_bytes, sha256_bytes
from ..core.schemas import parse_json
from ..targets.compile import COMPILE_JSON
from ..tflite.model_io import read_model

_TARGET = re.compile(r"[A-Za-z0-9_.+-]+")  # fullmatch; goes into C, CMake and Make text unquoted-safe
_REQUIRED_INT_KEYS = ("sram_bytes", "off_chip_flash_bytes", "cpu_operators", "npu_operators")
_MAX_INT = 2**63 - 1  # as compile.schema.json's counts: they become C literals


@dataclass(frozen=True)
class CompileOutput:
    """What firmware generation needs from ``toolchain compile``'s directory."""

    target: str
    vela_file: str
    vela_model: bytes = field(repr=False)
    sram_bytes: int
    off_chip_flash_bytes: int
    cpu_operators: int
    npu_operators: int
    compile_json_sha256: str
    memory_mode: str | None = None  # Vela's memory mode, when compile.json names it
    constants_in_sram: bool = False  # Sram_Only: Vela expects the model itself in SRAM

    @property
    def dedicated_sram(self) -> bool:
        """The NPU owns the SRAM as a cache (U65/U85 Dedicated_Sram*): the tensor arena lives in DRAM."""
        return bool(self.memory_mode and self.memory_mode.startswith("Dedicated_Sram"))


def read_compile_dir(directory: str | os.PathLike[str]) -> CompileOutput:
    d = Path(directory)
    if not d.is_dir():
        raise InputError(f"compile directory not found: {d}")
    path = d / COMPILE_JSON
    raw = read_input_bytes(path, f"{COMPILE_JSON} (run 'toolchain compile' first)")
    info = parse_json(raw, str(path))
    if not isinstance(info, dict):
        raise InputError(f"{path} must hold a JSON object")
    if "vela_model" in info and info["vela_model"] is None:
        raise InputError(
            f"{path}: target '{info.get('target')}' was estimated without Vela (no compiled model): "
            "firmware sources are made for Ethos-U targets only"
        )
    for key in ("target", "vela_model"):
        if not isinstance(info.get(key), str) or not info[key]:
            raise InputError(f"{path}: missing or empty '{key}' (expected a string)")
    memory_mode = info.get("memory_mode")
    if memory_mode is not None and (not isinstance(memory_mode, str) or not _TARGET.fullmatch(memory_mode)):
        raise InputError(f"{path}: 'memory_mode' must be a Vela memory mode name, got {memory_mode!r}")
    for key in _REQUIRED_INT_KEYS:
        v = info.get(key)
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= _MAX_INT:
            shown = f"a {len(str(v))}-digit number" if isinstance(v, int) and v > _MAX_INT else repr(v)
            raise InputError(f"{path}: '{key}' must be a whole number from 0 to 2**63-1, got {shown}")
    if not _TARGET.fullmatch(info["target"]):
        raise InputError(f"{path}: 'target' must be a profile name (letters, digits, '_.+-'), got {info['target']!r}")
    vela_file = info["vela_model"]
    if Path(vela_file).name != vela_file or vela_file in (".", ".."):
        raise InputError(f"{path}: 'vela_model' must be a file name in the same directory, got {vela_file!r}")
    vela_model = read_input_bytes(d / vela_file, "Vela-compiled model")
    read_model(vela_model)  # refuses anything that is not a well-formed .tflite
    return CompileOutput(
        target=info["target"],
        vela_file=vela_file,
        vela_model=vela_model,
        sram_bytes=info["sram_bytes"],
        off_chip_flash_bytes=info["off_chip_flash_bytes"],
        cpu_operators=info["cpu_operators"],
        npu_operators=info["npu_operators"],
        compile_json_sha256=sha256_bytes(raw),
        memory_mode=memory_mode,
        constants_in_sram=info.get("constants_in_sram") is True,
    )
