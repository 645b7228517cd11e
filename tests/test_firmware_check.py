"""toolchain firmware-check: the generated sources built for a Cortex-M55 (arm-none-eabi-gcc) and run under QEMU
(mps3-an547); every palette table decoded on the target against CRCs of the weights computed here."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from conftest import need_executable
from fixtures_palettise import (  # noqa: F401  (fixtures)
    conv_bn_compiled,
    conv_bn_k16,
    cpu_fallback_compiled,
    cpu_fallback_k16,
    weight_values,
)

from toolchain.cli import main

pytestmark = pytest.mark.tf  # the input models are made with the TFLite converter


@pytest.fixture(autouse=True)
def _tools():
    need_executable("arm-none-eabi-gcc", "gcc-arm-none-eabi")
    need_executable("qemu-system-arm", "qemu-system-arm")


def _sources(tmp_path: Path, model: Path, compiled: Path, cpu_palettes: bool = False) -> tuple[Path, Path]:
    """palettise + firmware, as a user runs them: (firmware dir, palettes dir)."""
    pal, fw = tmp_path / "pal", tmp_path / "fw"
    assert main(["palettise", str(model), "-o", str(pal), "--no-tflm", "-q"]) == 0
    target = json.loads((compiled / "compile.json").read_text())["target"]
    extra = ["--palettes", str(pal)] if cpu_palettes else []
    assert main(["firmware", "--target", target, "--compile-dir", str(compiled), "-o", str(fw), "--name", "net",
                 "-q", *extra]) == 0
    return fw, pal


def _check(capsys, fw: Path, compiled: Path, pal: Path, model: Path, *extra: str) -> tuple[int, str, str]:
    rc = main(["firmware-check", "--firmware-dir", str(fw), "--compile-dir", str(compiled), "--palettes", str(pal),
               "--model-file", str(model), *extra])
    out = capsys.readouterr()
    return rc, out.out, out.err


def _vela(compiled: Path) -> tuple[bytes, dict]:
    info = json.loads((compiled / "compile.json").read_text())
    return (compiled / info["vela_model"]).read_bytes(), info


def test_every_palette_table_decodes_on_the_cortex_m55(tmp_path, capsys, conv_bn_k16, conv_bn_compiled, monkeypatch):
    fw, pal = _sources(tmp_path, conv_bn_k16, conv_bn_compiled)
    monkeypatch.chdir(tmp_path)  # paths relative to where the user stands: the compiler runs elsewhere
    rc, out, err = _check(capsys, fw.relative_to(tmp_path), conv_bn_compiled, pal.relative_to(tmp_path), conv_bn_k16,
                          "--keep", "prog")
    assert rc == 0, err
    weights = weight_values(conv_bn_k16.read_bytes())  # every weight tensor has 16 values: each one is palettised
    n = len(weights)
    assert n >= 3 and f"firmware check: {n} of {n} palette tables match" in out
    # the target printed, per table, the CRC-32 of what it decoded: the CRC-32 of the model's weights
    assert (tmp_path / "prog" / "fw.elf").is_file() and (tmp_path / "prog" / "check_expected.c").is_file()
    crcs = sorted(int(c, 16) for c in re.findall(r"crc32 ([0-9a-f]{8}), host", out))
    assert crcs == sorted(zlib.crc32(v.tobytes()) for v in weights.values())
    # the model array: 16-byte aligned, the size the reports give as flash, the compiled model's bytes
    vela, info = _vela(conv_bn_compiled)
    m = re.search(r"model array net_model: ([\d,]+) bytes at 0x([0-9a-f]+), reported flash \(compiled model file\) "
                  r"([\d,]+) bytes: ok", out)
    assert m and int(m.group(1).replace(",", "")) == len(vela) == info["budget"]["flash_used_bytes"]
    assert int(m.group(2), 16) % 16 == 0
    nm = need_executable("arm-none-eabi-nm", "binutils-arm-none-eabi")
    symbols = subprocess.run([nm, str(tmp_path / "prog" / "fw.elf")], capture_output=True, text=True, check=True).stdout
    assert re.search(rf"^{m.group(2)} R net_model$", symbols, re.MULTILINE)  # where the linker put it


def test_cpu_path_tables_of_the_firmware_are_checked_too(tmp_path, capsys, cpu_fallback_k16, cpu_fallback_compiled):
    fw, pal = _sources(tmp_path, cpu_fallback_k16, cpu_fallback_compiled, cpu_palettes=True)
    manifest = json.loads((fw / "firmware.json").read_text())
    assert manifest["palette_tensors"] and "net_palettes.c" in manifest["sources"]
    rc, out, err = _check(capsys, fw, cpu_fallback_compiled, pal, cpu_fallback_k16)
    assert rc == 0, err
    n = len(weight_values(cpu_fallback_k16.read_bytes())) + len(manifest["palette_tensors"])
    assert f"firmware check: {n} of {n} palette tables match" in out
    assert "net_palettes.c table 0 " in out and "  palettes.c table 0 " in out


def _flip_first_index_byte(palettes_c: Path) -> None:
    text = palettes_c.read_text()
    m = re.search(r"_indices\[\d+\] = \{\n\s+0x([0-9a-f]{2})", text)
    flipped = f"0x{int(m.group(1), 16) ^ 0xFF:02x}"
    palettes_c.write_text(text[:m.start(1) - 2] + flipped + text[m.end(1):])


def test_a_corrupted_table_fails_the_check(tmp_path, capsys, conv_bn_k16, conv_bn_compiled):
    fw, pal = _sources(tmp_path, conv_bn_k16, conv_bn_compiled)
    bad = tmp_path / "bad-pal"
    shutil.copytree(pal, bad)
    _flip_first_index_byte(bad / "palettes.c")  # one byte of the first table's packed indices
    rc, out, err = _check(capsys, fw, conv_bn_compiled, bad, conv_bn_k16)
    n = len(weight_values(conv_bn_k16.read_bytes()))
    assert rc == 5
    assert f"firmware check: {n - 1} of {n} palette tables match" in out and out.count("MISMATCH") == 1
    assert err.startswith("error: firmware check: ") and "first mismatch: table 0 of palettes.c" in err
    assert err.count("\n") == 1
    assert _check(capsys, fw, conv_bn_compiled, pal, conv_bn_k16)[0] == 0  # the copy it came from still passes


def test_a_corrupted_model_array_fails_the_check(tmp_path, capsys, conv_bn_k16, conv_bn_compiled):
    fw, pal = _sources(tmp_path, conv_bn_k16, conv_bn_compiled)
    src = fw / "net_model.c"
    text = src.read_text()
    i = text.index("0x", text.index("= {"))  # the model's first byte (flatbuffer root offset)
    src.write_text(text[:i] + f"0x{int(text[i + 2:i + 4], 16) ^ 0x01:02x}" + text[i + 4:])
    rc, out, err = _check(capsys, fw, conv_bn_compiled, pal, conv_bn_k16)
    assert rc == 5 and re.search(r"model array net_model: .*: MISMATCH", out)
    assert "model array net_model" in err


def test_palettes_of_another_model_are_refused(tmp_path, capsys, conv_bn_k16, conv_bn_compiled, cpu_fallback_k16):
    fw, _ = _sources(tmp_path, conv_bn_k16, conv_bn_compiled)
    other = tmp_path / "other"
    assert main(["palettise", str(cpu_fallback_k16), "-o", str(other), "--no-tflm", "-q"]) == 0
    rc, _, err = _check(capsys, fw, conv_bn_compiled, other, conv_bn_k16)
    assert rc == 2 and "was made from cpu_fallback_k16.tflite" in err
    rc, _, err = _check(capsys, fw, conv_bn_compiled, other, cpu_fallback_k16)
    assert rc == 2 and "compiled from another model" in err


def test_without_qemu_the_check_exits_3_naming_the_package(tmp_path, conv_bn_k16, conv_bn_compiled, capsys):
    fw, pal = _sources(tmp_path, conv_bn_k16, conv_bn_compiled)
    gcc_only = tmp_path / "bin"
    gcc_only.mkdir()
    for tool in ("arm-none-eabi-gcc", "arm-none-eabi-as", "arm-none-eabi-ld"):
        os.symlink(shutil.which(tool), gcc_only / tool)
    proc = subprocess.run([sys.executable, "-m", "toolchain", "firmware-check", "--firmware-dir", str(fw),
                           "--compile-dir", str(conv_bn_compiled), "--palettes", str(pal), "--model-file",
                           str(conv_bn_k16)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PATH": str(gcc_only)})
    assert proc.returncode == 3, proc.stderr
    assert proc.stderr.startswith("error: qemu-system-arm is not installed (Debian: apt-get install qemu-system-arm)")


def test_a_foreign_compile_json_flash_figure_past_uint32_is_refused(tmp_path, capsys, conv_bn_k16, conv_bn_compiled):
    """compile.json may come from anywhere: its flash figure becomes a uint32_t literal of the check program, so a
    value past 2**32-1 (or a 5,000-digit one) is exit 2 naming the field, before anything is compiled."""
    fw, pal = _sources(tmp_path, conv_bn_k16, conv_bn_compiled)
    compiled = tmp_path / "compiled"
    shutil.copytree(conv_bn_compiled, compiled)
    info = json.loads((compiled / "compile.json").read_text())
    for value, shown in ((2**32, "4294967296"), (-1, "-1"), (10**400, "a 401-digit number")):
        info["budget"]["flash_used_bytes"] = value
        (compiled / "compile.json").write_text(json.dumps(info))
        rc, _, err = _check(capsys, fw, compiled, pal, conv_bn_k16)
        assert rc == 2 and "budget.flash_used_bytes must be a whole number from 0 to 2**32-1" in err, err
        assert shown in err
    (compiled / "compile.json").write_text(json.dumps(info).replace("1" + "0" * 400, "1" * 5000))
    rc, _, err = _check(capsys, fw, compiled, pal, conv_bn_k16)
    assert rc == 2 and "holds an integer with more than 4,300 digits" in err, err
