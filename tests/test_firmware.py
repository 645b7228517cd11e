"""toolchain firmware: the Vela model as a C array (checked with Arm's own binutils), arena size, build fragments."""
from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import need_executable
from fixtures_palettise import (  # noqa: F401  (fixtures)
    build_and_run_decoder,
    conv_bn_compiled,
    conv_bn_k16,
    cpu_fallback_compiled,
    cpu_fallback_k16,
    vela_compile_dir,
    weight_values,
)

from toolchain.algorithms.packing import pack_indices
from toolchain.cli import main
from toolchain.firmware.config import arena_bytes_for
from toolchain.tflite.graph import find_weight_tensors
from toolchain.tflite.model_io import read_model

pytestmark = pytest.mark.tf  # the input models are made with the TFLite converter

M55 = ["-mcpu=cortex-m55", "-mthumb", "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic"]


def _firmware(compile_dir: Path, out: Path, *extra: str, target: str | None = None) -> int:
    if target is None:
        target = json.loads((compile_dir / "compile.json").read_text())["target"]
    return main(["firmware", "--target", target, "--compile-dir", str(compile_dir), "-o", str(out), *extra])


def _vela_bytes(compile_dir: Path) -> bytes:
    info = json.loads((compile_dir / "compile.json").read_text())
    return (compile_dir / info["vela_model"]).read_bytes()


def _run(cmd: list[str], cwd: Path | None = None) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=cwd)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def _tool(name: str) -> str:
    return need_executable(name, "gcc-arm-none-eabi")


def test_model_array_size_alignment_section_and_bytes(tmp_path, conv_bn_compiled):
    gcc, nm, objdump, objcopy = (_tool(f"arm-none-eabi-{t}") for t in ("gcc", "nm", "objdump", "objcopy"))
    out = tmp_path / "fw"
    assert _firmware(conv_bn_compiled, out, "--name", "kws", "--section", ".model_flash") == 0
    vela = _vela_bytes(conv_bn_compiled)
    obj = tmp_path / "kws_model.o"
    _run([gcc, *M55, "-c", str(out / "kws_model.c"), "-o", str(obj)])

    # Symbol size (nm -S) is exactly the Vela model's size.
    sizes = {m.group(3): int(m.group(2), 16) for m in re.finditer(r"^([0-9a-f]+) ([0-9a-f]+) \w (\S+)$", _run([nm, "-S", "--defined-only", str(obj)]), re.MULTILINE)}
    assert sizes["kws_model"] == len(vela)
    # The symbol lies in the requested section, at an offset that keeps 16-byte alignment ...
    (line,) = [ln for ln in _run([objdump, "-t", str(obj)]).splitlines() if ln.endswith(" kws_model")]
    fields = line.split()
    assert fields[3] == ".model_flash" and int(fields[0], 16) % 16 == 0
    # ... and the section itself is 16-byte aligned, read-only, and holds exactly the model.
    (sec,) = [ln for ln in _run([objdump, "-h", str(obj)]).splitlines() if ln.split()[1:2] == [".model_flash"]]
    assert sec.split()[-1] == "2**4" and int(sec.split()[2], 16) == len(vela)
    flags = _run([objdump, "-h", "-j", ".model_flash", str(obj)])
    assert "READONLY" in flags
    blob = tmp_path / "section.bin"
    _run([objcopy, "-O", "binary", "--only-section=.model_flash", str(obj), str(blob)])
    assert blob.read_bytes() == vela

    # Linked next to an odd-sized object, the array still lands on a 16-byte boundary.
    main_c = tmp_path / "main.c"
    main_c.write_text('#include "kws_model.h"\nconst char odd = 1;\n'
                      "int main(void) { return kws_model[0] + odd + (int)kws_model_size_bytes; }\n")
    elf = tmp_path / "fw.elf"
    _run([gcc, *M55, "-nostdlib", "-Wl,-e,main", f"-I{out}", str(main_c), str(out / "kws_model.c"), "-o", str(elf)])
    addr = {m.group(2): int(m.group(1), 16) for m in re.finditer(r"^([0-9a-f]+) \w (\S+)$", _run([nm, str(elf)]), re.MULTILINE)}
    assert addr["kws_model"] % 16 == 0
    _run([objcopy, "-O", "binary", "--only-section=.model_flash", str(elf), str(blob)])
    assert blob.read_bytes() == vela


def test_header_macros_and_manifest(tmp_path, conv_bn_compiled):
    out = tmp_path / "fw"
    assert _firmware(conv_bn_compiled, out) == 0
    info = json.loads((conv_bn_compiled / "compile.json").read_text())
    name = "conv_bn_k16"  # default: the Vela file name without "_vela"
    header = (out / f"{name}_model.h").read_text()
    macros = dict(re.findall(r"^#define (\w+) (\S+)", header, re.MULTILINE))
    vela = _vela_bytes(conv_bn_compiled)
    arena = int(macros["CONV_BN_K16_TENSOR_ARENA_BYTES"].rstrip("u"))
    # the documented rule: Vela's SRAM + 10 % + 4 KiB, rounded up to 16 bytes
    assert arena % 16 == 0 and 0 <= arena - (info["sram_bytes"] * 1.10 + 4096) < 16
    assert macros["CONV_BN_K16_MODEL_SIZE_BYTES"] == f"{len(vela)}u"
    assert macros["CONV_BN_K16_VELA_SRAM_BYTES"] == f"{info['sram_bytes']}u"
    assert macros["CONV_BN_K16_MODEL_SECTION"] == '"network_model_sec"'
    assert info["sram_bytes"] > 0
    manifest = json.loads((out / "firmware.json").read_text())
    assert manifest["arena"]["bytes"] == arena and manifest["model"]["size_bytes"] == len(vela)
    assert sorted(p.name for p in out.iterdir()) == manifest["files"]
    assert str(tmp_path) not in (out / "firmware.json").read_text()
    # Custom margins are honoured.
    assert _firmware(conv_bn_compiled, tmp_path / "fw2", "--arena-margin-percent", "0", "--arena-overhead-bytes", "0") == 0
    m2 = json.loads((tmp_path / "fw2" / "firmware.json").read_text())
    assert m2["arena"]["bytes"] == -(-info["sram_bytes"] // 16) * 16


def test_arena_formula():
    assert arena_bytes_for(0, 10, 0) == 0
    assert arena_bytes_for(1000, 10, 0) == 1104  # 1100 rounded up to 16
    assert arena_bytes_for(20480, 10, 4096) == 26624
    assert arena_bytes_for(1, 0, 0) == 16


def test_byte_identical_for_identical_input(tmp_path, conv_bn_compiled):
    a, b = tmp_path / "a", tmp_path / "b"
    copy = tmp_path / "elsewhere" / "compile"
    shutil.copytree(conv_bn_compiled, copy)
    assert _firmware(conv_bn_compiled, a) == 0
    assert _firmware(copy, b) == 0
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir()) and len(names) == 5
    for n in names:
        assert (a / n).read_bytes() == (b / n).read_bytes(), n


def test_palettes_for_the_cpu_path(tmp_path, cpu_fallback_k16, cpu_fallback_compiled, capsys):
    info = json.loads((cpu_fallback_compiled / "compile.json").read_text())
    assert info["cpu_operators"] >= 1  # Vela leaves the stride-3 TRANSPOSE_CONV to the CPU
    pal = tmp_path / "pal"
    assert main(["palettise", str(cpu_fallback_k16), "-o", str(pal), "--no-tflm"]) == 0
    out = tmp_path / "fw"
    assert _firmware(cpu_fallback_compiled, out, "--name", "net", "--palettes", str(pal)) == 0
    manifest = json.loads((out / "firmware.json").read_text())
    assert [n for n in manifest["palette_tensors"]] and all("tconv" in n for n in manifest["palette_tensors"])
    assert manifest["sources"] == ["net_model.c", "net_palettes.c"]
    # The tables decode (host gcc, bit for bit) to the weights the CPU kernels read from the Vela model.
    gcc = need_executable("gcc", "gcc")
    stdout = build_and_run_decoder(gcc, out, "net_palettes.h", "net_palettes.c", "net_palette", tmp_path)
    cpu_weights = [v for v in weight_values(_vela_bytes(cpu_fallback_compiled)).values()]
    assert len(cpu_weights) == len(manifest["palette_tensors"]) == 1
    q = cpu_weights[0]
    np.testing.assert_array_equal(np.frombuffer(stdout, np.int8, count=q.size).reshape(q.shape), q)
    # And they build for the Cortex-M55 next to the model.
    arm = _tool("arm-none-eabi-gcc")
    for src in manifest["sources"]:
        _run([arm, *M55, f"-I{out}", "-c", str(out / src), "-o", str(tmp_path / (src + ".o"))])
    # A rerun without --palettes removes the palette sources it no longer lists.
    assert _firmware(cpu_fallback_compiled, out, "--name", "net") == 0
    assert not (out / "net_palettes.c").exists() and not (out / "net_palettes.h").exists()


def test_palettes_of_another_model_are_refused(tmp_path, conv_bn_k16, cpu_fallback_compiled, capsys):
    # conv_bn's palettes have no tensor of the same name on this model's CPU path: nothing is used.
    pal = tmp_path / "pal"
    assert main(["palettise", str(conv_bn_k16), "-o", str(pal), "--no-tflm"]) == 0
    assert _firmware(cpu_fallback_compiled, tmp_path / "fw", "--palettes", str(pal)) == 0
    assert "have no palette" in capsys.readouterr().out
    # Same name, different values: refused.
    doc = json.loads((pal / "palettes.json").read_text())
    (w,) = find_weight_tensors(read_model(_vela_bytes(cpu_fallback_compiled)))
    q = weight_values(_vela_bytes(cpu_fallback_compiled))[(w.subgraph, w.tensor_index)]
    fake = dict(doc["tensors"][0])
    fake.update(name=w.name, shape=list(q.shape), element_count=int(q.size), palette=[0, 1], index_bits=1,
                packed_indices=base64.b64encode(pack_indices(np.zeros(q.size, np.uint8), 1)).decode(),
                packed_index_bytes=(q.size + 7) // 8)
    doc["tensors"] = [fake]
    (pal / "palettes.json").write_text(json.dumps(doc))
    assert _firmware(cpu_fallback_compiled, tmp_path / "fw3", "--palettes", str(pal)) == 2
    assert "does not match" in capsys.readouterr().err


def test_all_npu_model_needs_no_palettes(tmp_path, conv_bn_k16, conv_bn_compiled, capsys):
    pal = tmp_path / "pal"
    assert main(["palettise", str(conv_bn_k16), "-o", str(pal), "--no-tflm"]) == 0
    assert _firmware(conv_bn_compiled, tmp_path / "fw", "--palettes", str(pal)) == 0
    assert "no palette tables needed" in capsys.readouterr().out
    assert json.loads((tmp_path / "fw" / "firmware.json").read_text())["palette_tensors"] == []


def test_make_fragment_builds_the_sources(tmp_path, conv_bn_compiled):
    make = need_executable("make", "make")
    gcc = _tool("arm-none-eabi-gcc")
    out = tmp_path / "fw"
    assert _firmware(conv_bn_compiled, out, "--name", "kws") == 0
    (tmp_path / "Makefile").write_text(
        "include fw/toolchain.mk\n"
        "OBJS := $(notdir $(KWS_SOURCES:.c=.o))\n"
        "all: $(OBJS)\n"
        "\t@echo SIZE=$(KWS_MODEL_SIZE_BYTES) ARENA=$(KWS_TENSOR_ARENA_BYTES) SECTION=$(KWS_MODEL_SECTION) TARGET=$(KWS_TARGET)\n"
        "%.o: $(KWS_DIR)/%.c\n"
        f"\t{gcc} {' '.join(M55)} $(KWS_CPPFLAGS) -c $< -o $@\n"
    )
    stdout = _run([make, "-s"], cwd=tmp_path)
    manifest = json.loads((out / "firmware.json").read_text())
    assert (f"SIZE={manifest['model']['size_bytes']} ARENA={manifest['arena']['bytes']} "
            f"SECTION=network_model_sec TARGET={manifest['target']}") in stdout
    assert (tmp_path / "kws_model.o").exists()


def test_cmake_fragment_lists_the_sources(tmp_path, conv_bn_compiled):
    cmake = need_executable("cmake", "cmake")
    out = tmp_path / "fw"
    assert _firmware(conv_bn_compiled, out, "--name", "kws") == 0
    script = tmp_path / "probe.cmake"
    script.write_text(
        f'include("{out}/toolchain.cmake")\n'
        'foreach(src IN LISTS KWS_SOURCES)\n  if(NOT EXISTS "${src}")\n    message(FATAL_ERROR "missing ${src}")\n  endif()\nendforeach()\n'
        'message(STATUS "SOURCES=${KWS_SOURCES};INCLUDE=${KWS_INCLUDE_DIRS};ARENA=${KWS_TENSOR_ARENA_BYTES};SIZE=${KWS_MODEL_SIZE_BYTES}")\n'
    )
    proc = subprocess.run([cmake, "-P", str(script)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((out / "firmware.json").read_text())
    text = proc.stdout + proc.stderr
    assert f"SOURCES={out}/kws_model.c;INCLUDE={out};ARENA={manifest['arena']['bytes']};SIZE={manifest['model']['size_bytes']}" in text


def _broken_compile_dir(tmp_path: Path, src: Path, **changes) -> Path:
    d = tmp_path / "broken"
    shutil.copytree(src, d)
    info = json.loads((d / "compile.json").read_text())
    info.update(changes)
    (d / "compile.json").write_text(json.dumps({k: v for k, v in info.items() if v is not None}))
    return d


@pytest.mark.parametrize(
    "change, extra, fragment",
    [
        ({}, ["--name", "9lives"], "--name must be a C identifier"),
        ({}, ["--section", 'x"); evil("'], "--section must be"),
        ({}, ["--section", ".bss.model"], "zero-initialised"),
        ({"sram_bytes": -1}, [], "'sram_bytes' must be"),
        ({"cpu_operators": None}, [], "'cpu_operators' must be"),
        ({"vela_model": "../elsewhere_vela.tflite"}, [], "same directory"),
        ({"vela_model": "missing_vela.tflite"}, [], "not found"),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path, conv_bn_compiled, capsys, change, extra, fragment):
    d = _broken_compile_dir(tmp_path, conv_bn_compiled, **change)
    assert _firmware(d, tmp_path / "out", *extra) == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err and "\n" not in err


def test_target_mismatch_and_alias(tmp_path, conv_bn_compiled, capsys):
    assert _firmware(conv_bn_compiled, tmp_path / "o1", target="ethos-u65-256") == 2
    assert "does not match" in capsys.readouterr().err
    # "ethos-u55" is the built-in alias of the ethos-u55-128 profile the fixture compiled for.
    assert _firmware(conv_bn_compiled, tmp_path / "o2", target="ethos-u55") == 0


def test_corrupt_inputs(tmp_path, conv_bn_compiled, capsys):
    d = _broken_compile_dir(tmp_path, conv_bn_compiled)
    info = json.loads((d / "compile.json").read_text())
    (d / info["vela_model"]).write_bytes(b"\x18\x00\x00\x00TFL3" + b"\xff" * 40)
    assert _firmware(d, tmp_path / "out") == 2
    assert "tflite" in capsys.readouterr().err
    (d / "compile.json").write_text("{not json")
    assert _firmware(d, tmp_path / "out", target=info["target"]) == 2
    assert "not valid JSON" in capsys.readouterr().err
    assert _firmware(tmp_path / "nowhere", tmp_path / "out", target=info["target"]) == 2
    assert not (tmp_path / "out").exists()


def test_dedicated_sram_target_gets_fast_memory_macro(tmp_path, conv_bn_k16, capsys):
    compiled = vela_compile_dir(conv_bn_k16, tmp_path / "compile", accelerator="ethos-u65-256")
    info = json.loads((compiled / "compile.json").read_text())
    assert info["memory_mode"].startswith("Dedicated_Sram")
    assert _firmware(compiled, tmp_path / "fw", "--name", "net") == 0
    assert "tensor arena lives in DRAM" in capsys.readouterr().out
    macros = dict(re.findall(r"^#define (\w+) (\S+)", (tmp_path / "fw" / "net_model.h").read_text(), re.MULTILINE))
    assert macros["NET_FAST_MEMORY_BYTES"] == f"{info['sram_bytes']}u"


def test_firmware_imports_no_tensorflow(tmp_path, conv_bn_compiled):
    code = (
        "import sys\nfrom toolchain.cli import main\n"
        f"rc = main(['firmware', '--target', 'ethos-u55-128', '--compile-dir', {str(conv_bn_compiled)!r}, '-o', {str(tmp_path / 'fw')!r}])\n"
        "assert 'tensorflow' not in sys.modules, 'firmware imported TensorFlow'\nsys.exit(rc)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
