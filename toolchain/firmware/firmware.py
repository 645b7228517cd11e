"""Firmware sources from the compile stage's output: the Vela model as a C array, arena size, build fragments.

Input: a compile directory holding ``compile.json`` (keys ``target``, ``vela_model``,
``sram_bytes``, ``off_chip_flash_bytes``, ``cpu_operators``, ``npu_operators``) and
the ``*_vela.tflite`` it names. Outputs (all byte-identical for identical inputs):

- ``<name>_model.h/.c``: ``const uint8_t <name>_model[]``, 16-byte aligned, in a
  configurable linker section; size, arena size and target macros.
- ``<name>_palettes.h/.c`` (with ``--palettes``): palette tables of the weight tensors
  that stay on the CPU path of the Vela model (NPU weights live in Vela's command stream).
- ``toolchain.cmake`` / ``toolchain.mk``: variables listing the sources and include dirs.
- ``firmware.json``: what was generated from which inputs.

Arena size: TFLM's tensor arena holds every tensor Vela placed in SRAM (Vela plans the
arena for the whole graph, CPU operators included), plus TFLM's own bookkeeping
(tensor, node and allocator structs). We take Vela's SRAM figure, add a relative
margin (default 10 %) and a fixed overhead (default 4 KiB), and round up to 16 bytes.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import ConfigError, InputError, ToolchainError
from ..core.escape import c_string
from ..core.fileio import (
    atomic_write_bytes,
    canonical_json,
    read_input_bytes,
    sha256_bytes,
)
from ..core.paths import check_paths
from ..core.version import __version__
from ..palettes.c_source import emit_palette_sources
from ..palettes.document import PALETTES_JSON
from ..targets.compile import COMPILE_JSON
from ..tflite.graph import find_weight_tensors, tensor_values
from ..tflite.model_io import read_model
from .build_files import CMAKE_FRAGMENT, MAKE_FRAGMENT, cmake_fragment, make_fragment
from .c_source import emit_model_sources
from .compile_output import CompileOutput, read_compile_dir
from .config import FirmwareConfig, arena_bytes_for, default_name, same_target

SCHEMA_VERSION = 1
FIRMWARE_JSON = "firmware.json"
MODEL_ALIGNMENT_BYTES = 16  # Ethos-U driver requirement for the command stream and weights


@dataclass(frozen=True)
class CpuPathPalettes:
    tables: tuple  # PaletteTable, for weight tensors that stay on the CPU path
    missing: tuple[str, ...]  # CPU-path weight tensors without a palette


def cpu_path_palettes(vela_model: bytes, tables: Sequence[Any], what: str) -> CpuPathPalettes:
    """The palette tables of weight tensors that TFLM's CPU kernels read from the Vela model.

    Vela keeps CPU operators and their weights as ordinary TFLite operators; NPU weights
    are encoded into Vela's own streams and need no palette. Every match is checked bit
    for bit, so palettes from another model are refused rather than silently used.
    """
    model = read_model(vela_model)
    by_name: dict[str, Any] = {}
    for t in tables:
        by_name.setdefault(t.name, t)
    chosen, missing = [], []
    for w in find_weight_tensors(model):
        table = by_name.get(w.name)
        if table is None:
            missing.append(w.name)
            continue
        values = tensor_values(model, model.subgraphs[w.subgraph].tensors[w.tensor_index])
        if tuple(values.shape) != table.shape or not np.array_equal(values, table.decode()):
            raise InputError(
                f"{what}: the palette of tensor '{w.name}' does not match that tensor in the Vela model "
                "(palettes from another model? run 'toolchain palettise' on the model you compiled)"
            )
        chosen.append(table)
    return CpuPathPalettes(tuple(chosen), tuple(missing))


# ---------------------------------------------------------------- the stage


@dataclass(frozen=True)
class FirmwareBundle:
    name: str
    files: dict[str, bytes] = field(repr=False)  # file name -> content, in writing order
    manifest: dict[str, Any] = field(repr=False)
    notes: tuple[str, ...]


def build_firmware(
    compiled: CompileOutput,
    config: FirmwareConfig,
    palette_tables: Sequence[Any] | None = None,
    palettes_sha256: str | None = None,
    profile: Any | None = None,
) -> FirmwareBundle:
    """Every firmware file as bytes (pure: reads and writes nothing)."""
    if config.target is not None and not same_target(config.target, compiled.target):
        raise ConfigError(
            f"--target {config.target} does not match the compile directory's target '{compiled.target}' "
            "(compile for this target first, or pass the matching --compile-dir)"
        )
    name = config.name or default_name(compiled.vela_file)
    N = name.upper()
    model_sha = sha256_bytes(compiled.vela_model)
    arena = arena_bytes_for(compiled.sram_bytes, config.arena_margin_percent, config.arena_overhead_bytes)
    origin = f"`toolchain firmware` (toolchain {__version__}) for {compiled.target} from {compiled.vela_file} (sha256 {model_sha})"
    notes: list[str] = []

    defines = [
        ("TENSOR_ARENA_BYTES", f"{arena}u",
         f"Vela SRAM {compiled.sram_bytes} B + {config.arena_margin_percent}% + {config.arena_overhead_bytes} B, 16-aligned"),
        ("VELA_SRAM_BYTES", f"{compiled.sram_bytes}u", "Vela's SRAM figure for the target"),
        ("VELA_OFF_CHIP_FLASH_BYTES", f"{compiled.off_chip_flash_bytes}u", "Vela's off-chip flash figure"),
        ("CPU_OPERATORS", f"{compiled.cpu_operators}u", "operators left to the Cortex-M (TFLM kernels)"),
        ("NPU_OPERATORS", f"{compiled.npu_operators}u", "operators Vela mapped to the NPU"),
        ("TARGET", c_string(compiled.target), "hardware profile compiled for"),
    ]
    if compiled.dedicated_sram:
        defines.append(("FAST_MEMORY_BYTES", f"{compiled.sram_bytes}u", "Dedicated_Sram: the NPU's SRAM cache (driver fast memory)"))
        notes.append(
            f"{compiled.memory_mode}: Vela's SRAM figure is the NPU's cache ({N}_FAST_MEMORY_BYTES); "
            f"the tensor arena lives in DRAM and {N}_TENSOR_ARENA_BYTES is sized from the same figure"
        )
    if compiled.constants_in_sram:
        notes.append(f"{compiled.memory_mode}: Vela expects the model in SRAM: map section {config.section} to SRAM in your linker script")
    model_h, model_c = emit_model_sources(
        name, compiled.vela_model, config.section, MODEL_ALIGNMENT_BYTES, defines, origin
    )
    files: dict[str, bytes] = {f"{name}_model.h": model_h.encode(), f"{name}_model.c": model_c.encode()}
    sources = [f"{name}_model.c"]

    palette_names: list[str] = []
    if palette_tables is not None:
        cpu = cpu_path_palettes(compiled.vela_model, palette_tables, "--palettes")
        if cpu.tables:
            header = f"{name}_palettes.h"
            ph, pc = emit_palette_sources(cpu.tables, header_name=header, prefix=f"{name}_palette", origin=origin)
            files[header] = ph.encode()
            files[f"{name}_palettes.c"] = pc.encode()
            sources.append(f"{name}_palettes.c")
            palette_names = [t.name for t in cpu.tables]
        elif compiled.cpu_operators == 0:
            notes.append("every operator runs on the NPU: no palette tables needed for the CPU path")
        if cpu.missing:
            notes.append(f"{len(cpu.missing)} CPU-path weight tensor(s) have no palette: " + ", ".join(cpu.missing[:5]))

    if profile is not None:
        if arena > profile.sram_budget_bytes:
            notes.append(f"tensor arena {arena} B exceeds the {profile.name} SRAM budget of {profile.sram_budget_bytes} B")
        if len(compiled.vela_model) > profile.flash_budget_bytes:
            notes.append(f"model {len(compiled.vela_model)} B exceeds the {profile.name} flash budget of {profile.flash_budget_bytes} B")

    values = [
        ("MODEL_SECTION", config.section),
        ("MODEL_SIZE_BYTES", str(len(compiled.vela_model))),
        ("TENSOR_ARENA_BYTES", str(arena)),
        ("TARGET", compiled.target),
    ]
    files[CMAKE_FRAGMENT] = cmake_fragment(name, sources, values, "`toolchain firmware`").encode()
    files[MAKE_FRAGMENT] = make_fragment(name, sources, values, "`toolchain firmware`").encode()

    manifest = {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "toolchain firmware", "version": __version__},
        "target": compiled.target,
        "name": name,
        "inputs": {
            "compile_json_sha256": compiled.compile_json_sha256,
            "vela_model": {"file": compiled.vela_file, "bytes": len(compiled.vela_model), "sha256": model_sha},
            "palettes_json_sha256": palettes_sha256,
        },
        "model": {
            "symbol": f"{name}_model",
            "size_bytes": len(compiled.vela_model),
            "section": config.section,
            "alignment_bytes": MODEL_ALIGNMENT_BYTES,
        },
        "arena": {
            "bytes": arena,
            "macro": f"{N}_TENSOR_ARENA_BYTES",
            "vela_sram_bytes": compiled.sram_bytes,
            "margin_percent": config.arena_margin_percent,
            "overhead_bytes": config.arena_overhead_bytes,
        },
        "memory_mode": compiled.memory_mode,
        "cpu_operators": compiled.cpu_operators,
        "npu_operators": compiled.npu_operators,
        "palette_tensors": palette_names,
        "sources": sources,
        "files": sorted(list(files) + [FIRMWARE_JSON]),
        "notes": notes,
    }
    files[FIRMWARE_JSON] = canonical_json(manifest).encode()
    return FirmwareBundle(name, files, manifest, tuple(notes))


def firmware_from_compile_dir(
    compile_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    config: FirmwareConfig,
    palettes_dir: str | os.PathLike[str] | None = None,
) -> tuple[FirmwareBundle, tuple[Path, ...]]:
    """Run the stage and write its files atomically; stale palette sources of an earlier run are removed."""
    compiled = read_compile_dir(compile_dir)
    tables = sha = None
    if palettes_dir is not None:
        from ..palettes.document import load_palettes

        _, tables = load_palettes(palettes_dir)
        sha = sha256_bytes(read_input_bytes(Path(palettes_dir) / PALETTES_JSON, "palettes file"))
    profile = None
    try:
        from ..targets.profiles import load_profile

        profile = load_profile(config.target or compiled.target)
    except ToolchainError:  # a custom or unknown name: budgets are simply not checked
        profile = None
    bundle = build_firmware(compiled, config, tables, sha, profile)
    out = Path(out_dir)
    inputs = [Path(compile_dir) / COMPILE_JSON, Path(compile_dir) / compiled.vela_file]
    check_paths(inputs=inputs + ([Path(palettes_dir) / PALETTES_JSON] if palettes_dir is not None else []),
                outputs=[out / f for f in bundle.files], output_dirs=[out])
    written = tuple(atomic_write_bytes(out / fname, data) for fname, data in bundle.files.items())
    for stale in (out / f"{bundle.name}_palettes.h", out / f"{bundle.name}_palettes.c"):
        if stale.name not in bundle.files and stale.is_file():
            stale.unlink()
    return bundle, written
