"""The firmware check: the generated sources built for a Cortex-M55 and run under QEMU, against the host's figures.

What is compared, all computed here on the host from the models themselves (never from the generated C):

- every palette table ``toolchain palettise`` wrote (``palettes.c``) and those ``toolchain firmware`` wrote for the
  CPU path (``<name>_palettes.c``): the target decodes each with the generated reference decoder, and the CRC-32
  (zlib's) of its int8 result must equal the CRC-32 of that tensor's weights in the model the tables came from
  (the reclustered model for ``palettes.c``, the Vela model for the CPU-path tables);
- the model array: 16-byte aligned where the linker put it, as large as the flash the reports give (the compiled
  model file, compile.json's ``budget.flash_used_bytes``), and with the CRC-32 of that file.

The program is the project's own startup code, linker script and ``check_main.c`` (``m55_check/``) plus a
``check_expected.c`` written here; ``toolchain.firmware.m55_run`` builds and runs it.
"""
from __future__ import annotations

import re
import tempfile
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import ConfigError, InputError, VerificationError
from ..core.escape import is_c_identifier
from ..core.fileio import atomic_write_text, read_input_bytes, sha256_bytes
from ..core.schemas import parse_json
from ..palettes.document import PALETTES_JSON, load_palettes
from ..palettes.palettise import C_PREFIX, PALETTES_C, PALETTES_H
from ..targets.compile import COMPILE_JSON
from ..tflite.graph import find_weight_tensors, tensor_values
from ..tflite.model_io import read_model
from .config import check_section
from .firmware import FIRMWARE_JSON, MODEL_ALIGNMENT_BYTES
from .m55_run import EXPECTED_C, SECTION_LD, build_program, program_sources, require_tools, run_program

SUMMARY = re.compile(r"^firmware check: (\d+) of (\d+) palette tables match$", re.MULTILINE)
TABLE_LINE = re.compile(r"^table (\d+): (\d+) values, decode (-?\d+), crc32 ([0-9a-f]{8}), host [0-9a-f]{8}: (match|MISMATCH)$",
                        re.MULTILINE)
MODEL_LINE = re.compile(r"^model: (\d+) bytes at 0x([0-9a-f]+), .*crc32 ([0-9a-f]{8}), host [0-9a-f]{8}: (ok|MISMATCH)$",
                        re.MULTILINE)


# what the generated decoder (and check_main.c's -3) return on the target besides 0
DECODE_STATUS = {-1: "output buffer too small", -2: "an index beyond the palette",
                 -3: "the table's element count is not the tensor's"}


@dataclass(frozen=True)
class FirmwareCheckInputs:
    firmware_dir: Path  # toolchain firmware's output (firmware.json, <name>_model.c/.h, <name>_palettes.c/.h)
    compile_dir: Path  # toolchain compile's output (compile.json and the Vela model)
    palettes_dir: Path  # toolchain palettise's output (palettes.json, palettes.c/.h)
    model: Path  # the .tflite the palettes were made from (deploy: recluster/model.tflite)


@dataclass(frozen=True)
class ExpectedTable:
    source: str  # the generated C file holding the table
    prefix: str  # its C prefix (<prefix>_tensors, <prefix>_decode)
    index: int  # the table's index in <prefix>_tensors[]
    name: str
    element_count: int
    crc32: int  # zlib CRC-32 of the tensor's int8 weights, read from the model on the host


@dataclass(frozen=True)
class TableResult:
    table: ExpectedTable
    decode_status: int | None  # the decoder's return value on the target (None: no line printed)
    target_crc32: int | None
    match: bool


@dataclass(frozen=True)
class FirmwareCheckResult:
    tables: tuple[TableResult, ...]
    model_symbol: str
    model_bytes: int  # the array's size on the target
    model_address: int | None
    reported_flash_bytes: int
    model_ok: bool
    exit_status: int  # the program's, through QEMU
    output: str = field(repr=False)  # what the program printed
    failure: str | None = None  # why the check failed, one line; None when it passed

    @property
    def matched(self) -> int:
        return sum(t.match for t in self.tables)

    @property
    def passed(self) -> bool:
        return self.exit_status == 0 and self.model_ok and self.matched == len(self.tables)

    def summary(self) -> str:
        return f"firmware check: {self.matched} of {len(self.tables)} palette tables match"

    def raise_if_failed(self) -> None:
        """VerificationError (exit 5) on any mismatch, a fault, or a program that did not finish."""
        if self.failure is not None:
            raise VerificationError(self.failure)


# ---------------------------------------------------------------- what the host expects


_MAX_UINT32 = 2**32 - 1


def _json(path: Path, what: str) -> dict[str, Any]:
    doc = parse_json(read_input_bytes(path, what), str(path))
    if not isinstance(doc, dict):
        raise InputError(f"{path} must hold a JSON object")
    return doc


def _field(doc: Any, *keys: str) -> Any:
    """doc[k1][k2]..., or None where a level is missing or not an object (the files are the user's)."""
    for k in keys:
        doc = doc.get(k) if isinstance(doc, dict) else None
    return doc


def _crc(values: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(values, dtype=np.int8).tobytes())


def _weights_by_name(model) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for w in find_weight_tensors(model):
        out.setdefault(w.name, tensor_values(model, model.subgraphs[w.subgraph].tensors[w.tensor_index]))
    return out


def palette_expectations(palettes_dir: Path, model_bytes: bytes) -> list[ExpectedTable]:
    """palettes.c's tables, each with the CRC-32 of its tensor's weights in the model palettise read."""
    doc, tables = load_palettes(palettes_dir)
    source = doc["source_model"]
    if source["sha256"] != sha256_bytes(model_bytes):
        raise InputError(f"{palettes_dir / PALETTES_JSON} was made from {source['file']}, not from the given model "
                         "(sha256 differs): give the model palettise read")
    model = read_model(model_bytes)
    out = []
    for entry, table in zip(doc["tensors"], tables):
        try:
            values = tensor_values(model, model.subgraphs[table.subgraph].tensors[table.tensor_index])
        except IndexError:
            raise InputError(f"{PALETTES_JSON}: tensor '{table.name}' is not in the model") from None
        out.append(ExpectedTable(PALETTES_C, C_PREFIX, int(entry["c_index"]), table.name, int(values.size),
                                 _crc(values)))
    return out


def cpu_path_expectations(firmware: dict[str, Any], vela_model: bytes) -> list[ExpectedTable]:
    """<name>_palettes.c's tables (the CPU path), each with the CRC-32 of that tensor in the Vela model."""
    names = firmware.get("palette_tensors") or []
    if not isinstance(names, list):
        raise InputError(f"{FIRMWARE_JSON}: palette_tensors must be a list of tensor names")
    if not names:
        return []
    weights = _weights_by_name(read_model(vela_model))
    out = []
    for i, name in enumerate(names):
        if not isinstance(name, str) or name not in weights:
            raise InputError(f"{FIRMWARE_JSON}: palette tensor {name!r} is not a weight tensor of the Vela model")
        out.append(ExpectedTable(f"{firmware['name']}_palettes.c", f"{firmware['name']}_palette", i, name,
                                 int(weights[name].size), _crc(weights[name])))
    return out


# ---------------------------------------------------------------- the generated expectations


def expected_source(firmware: dict[str, Any], tables: list[ExpectedTable], reported_flash_bytes: int,
                    model_crc32: int) -> str:
    """check_expected.c: the host's figures, and one decode/count adapter per generated table set."""
    name = firmware["name"]
    includes = dict.fromkeys(["check.h", f"{name}_model.h",
                              *((PALETTES_H if t.prefix == C_PREFIX else f"{name}_palettes.h") for t in tables)])
    lines = ["/* check_expected.c: written by toolchain firmware-check from the host's reading of the models. */"]
    lines += [f'#include "{h}"' for h in includes]
    lines.append("")
    for prefix in dict.fromkeys(t.prefix for t in tables):
        lines += [
            f"static uint32_t count_{prefix}(uint32_t i) {{ return {prefix}_tensors[i].element_count; }}",
            f"static int decode_{prefix}(uint32_t i, int8_t *out, size_t n) {{ return {prefix}_decode(&{prefix}_tensors[i], out, n); }}",
        ]
    lines += ["", "const check_table_t check_tables[] = {"]
    lines += [f"    {{ {t.index}u, {t.element_count}u, 0x{t.crc32:08x}u, count_{t.prefix}, decode_{t.prefix} }}, "
              f"/* {t.source} table {t.index} */" for t in tables]
    lines += ["};", f"const uint32_t check_table_count = {len(tables)}u;", "",
              f"int8_t check_buffer[{max(t.element_count for t in tables)}];",
              f"const uint32_t check_buffer_bytes = {max(t.element_count for t in tables)}u;", "",
              f"const uint8_t *const check_model = {name}_model;",
              f"const uint32_t *const check_model_size = &{name}_model_size_bytes;",
              f"const uint32_t check_reported_flash_bytes = {reported_flash_bytes}u;",
              f"const uint32_t check_model_crc32 = 0x{model_crc32:08x}u;",
              f"const uint32_t check_model_alignment = {MODEL_ALIGNMENT_BYTES}u;", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------- running it


def _parse(output: str, tables: list[ExpectedTable]) -> tuple[list[TableResult], int | None, int, bool]:
    seen = {int(m.group(1)): m for m in TABLE_LINE.finditer(output)}
    results = []
    for i, t in enumerate(tables):
        m = seen.get(i)
        if m is None:
            results.append(TableResult(t, None, None, False))
            continue
        status, crc = int(m.group(3)), int(m.group(4), 16)
        # the host decides the match from the target's figures; the target's own verdict must agree
        match = status == 0 and int(m.group(2)) == t.element_count and crc == t.crc32
        results.append(TableResult(t, status, crc if status == 0 else None, match and m.group(5) == "match"))
    model = MODEL_LINE.search(output)
    if model is None:
        return results, None, 0, False
    return results, int(model.group(2), 16), int(model.group(1)), model.group(4) == "ok"


def check_firmware(inputs: FirmwareCheckInputs, work_dir: Path | None = None) -> FirmwareCheckResult:
    """Build the check program for the Cortex-M55, run it under QEMU and compare. A mismatch is in the result
    (``failure``; ``raise_if_failed()`` raises it, exit 5); bad inputs raise InputError (2), a missing or failing
    compiler or QEMU ToolError (3). ``work_dir`` keeps the program's sources and ELF (default: a temporary one)."""
    fw = _json(inputs.firmware_dir / FIRMWARE_JSON, f"{FIRMWARE_JSON} (run 'toolchain firmware' first)")
    compiled = _json(inputs.compile_dir / COMPILE_JSON, f"{COMPILE_JSON} (run 'toolchain compile' first)")
    name, model_info = fw.get("name"), fw.get("model")
    if not isinstance(name, str) or not is_c_identifier(name) or not isinstance(model_info, dict):
        raise InputError(f"{inputs.firmware_dir / FIRMWARE_JSON}: not a firmware.json of 'toolchain firmware'")
    try:
        section = check_section(model_info.get("section"))
    except ConfigError as exc:
        raise InputError(f"{inputs.firmware_dir / FIRMWARE_JSON}: model.section: {exc}") from None
    vela_file = compiled.get("vela_model")
    if not isinstance(vela_file, str) or Path(vela_file).name != vela_file or vela_file in ("", ".", ".."):
        raise InputError(f"{inputs.compile_dir / COMPILE_JSON}: no Vela model (an Ethos-N78 estimate has no firmware)")
    vela_model = read_input_bytes(inputs.compile_dir / vela_file, "Vela-compiled model")
    if _field(fw, "inputs", "vela_model", "sha256") != sha256_bytes(vela_model):
        raise InputError(f"the firmware sources in {inputs.firmware_dir} were not made from {vela_file} of "
                         f"{inputs.compile_dir}: run 'toolchain firmware' on that compile directory")
    reported = _field(compiled, "budget", "flash_used_bytes")
    if isinstance(reported, bool) or not isinstance(reported, int):
        raise InputError(f"{inputs.compile_dir / COMPILE_JSON}: no budget.flash_used_bytes")
    if not 0 <= reported <= _MAX_UINT32:  # it becomes a uint32_t literal of the check program
        shown = str(reported) if reported.bit_length() <= 64 else f"a {len(str(reported))}-digit number"
        raise InputError(f"{inputs.compile_dir / COMPILE_JSON}: budget.flash_used_bytes must be a whole number "
                         f"from 0 to 2**32-1 (a Cortex-M55 address space), got {shown}")

    model_bytes = read_input_bytes(inputs.model, "model")
    if _field(compiled, "model", "sha256") != sha256_bytes(model_bytes):
        raise InputError(f"{inputs.compile_dir / COMPILE_JSON} was compiled from another model than {inputs.model}: "
                         "give the model that was palettised and compiled")
    tables = palette_expectations(inputs.palettes_dir, model_bytes)
    tables += cpu_path_expectations(fw, vela_model)
    if not tables:
        raise InputError(f"nothing to check: {inputs.palettes_dir / PALETTES_JSON} lists no palette table")
    require_tools()
    with tempfile.TemporaryDirectory(prefix="firmware-check-") as tmp:
        work = Path(work_dir) if work_dir is not None else Path(tmp)
        atomic_write_text(work / EXPECTED_C, expected_source(fw, tables, reported, zlib.crc32(vela_model)))
        atomic_write_text(work / SECTION_LD, f"KEEP(*({section}))\n")
        sources = program_sources(work, [inputs.firmware_dir / f"{name}_model.c", inputs.palettes_dir / PALETTES_C,
                                         *([inputs.firmware_dir / f"{name}_palettes.c"] if fw.get("palette_tensors")
                                           else [])])
        elf = build_program(sources, [inputs.firmware_dir, inputs.palettes_dir], work)
        status, output = run_program(elf)
    parsed, address, array_bytes, model_ok = _parse(output, tables)
    result = FirmwareCheckResult(tuple(parsed), f"{name}_model", array_bytes, address, reported, model_ok, status,
                                 output)
    summary = SUMMARY.search(output)
    if not result.passed or summary is None or summary.group(0) != result.summary():
        result = replace(result, failure=_failure(result, summary))
    return result


def _failure(r: FirmwareCheckResult, summary: re.Match[str] | None) -> str:
    if summary is None:
        tail = r.output.strip().splitlines()[-1:] or ["no output"]
        return (f"the check program did not finish on the Cortex-M55 (exit status {r.exit_status}, a fault is 100): "
                f"{tail[0][:200]}")
    bad = [t for t in r.tables if not t.match]
    parts = [r.summary()]
    if bad:
        t = bad[0]
        got = (f"decoder returned {t.decode_status} ({DECODE_STATUS.get(t.decode_status, 'unknown')})"
               if t.decode_status else
               f"crc32 {t.target_crc32:08x} where the model's weights give {t.table.crc32:08x}"
               if t.target_crc32 is not None else "no result")
        parts.append(f"first mismatch: table {t.table.index} of {t.table.source} ('{t.table.name}'): {got}")
    if not r.model_ok:
        parts.append(f"model array {r.model_symbol}: {r.model_bytes} bytes at "
                     f"{'?' if r.model_address is None else hex(r.model_address)}, expected {MODEL_ALIGNMENT_BYTES}-byte "
                     f"alignment, the reported flash of {r.reported_flash_bytes} bytes and the compiled model's CRC-32")
    return "; ".join(parts)

