"""``toolchain firmware-check``: the generated firmware sources built for a Cortex-M55 and run under QEMU."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from .common import add_output_options, say

HELP = ("build the generated firmware sources for a Cortex-M55, run them under QEMU and compare every palette table "
        "and the model array with the host's figures")
DIR_FLAGS = ("firmware_dir", "compile_dir", "palettes", "model_file")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", nargs="?", metavar="MODEL",
                   help="the model a deploy was given (default: the bundled example): checks BUILD/<model>/<target>")
    p.add_argument("--target", action="append", default=[], metavar="NAME",
                   help="a deployed target, repeatable (default: every target with firmware sources in the build)")
    p.add_argument("--build-dir", default="build", metavar="DIR", help="the deploy's build directory (default build)")
    p.add_argument("--firmware-dir", metavar="DIR", help="instead of a deploy: the output of 'toolchain firmware'")
    p.add_argument("--compile-dir", metavar="DIR", help="... the compile directory it was made from")
    p.add_argument("--palettes", metavar="DIR", help="... the output of 'toolchain palettise'")
    p.add_argument("--model-file", metavar="FILE", help="... and the .tflite palettise read")
    p.add_argument("--keep", metavar="DIR", help="keep the program's sources and fw.elf here (default: nothing kept)")
    add_output_options(p, "print the results as JSON instead of the summary")


def _inputs(args: argparse.Namespace) -> list[tuple[str, object]]:
    """(label, FirmwareCheckInputs) per check: the four directories given, or a deploy's layout."""
    from ..core.errors import InputError
    from ..firmware.target_check import FirmwareCheckInputs

    given = [getattr(args, k) for k in DIR_FLAGS]
    if any(given):
        if not all(given) or args.model or args.target:
            raise InputError("give all of --firmware-dir, --compile-dir, --palettes and --model-file (and no MODEL or "
                             "--target), or a deploy's MODEL and --target")
        return [(args.firmware_dir, FirmwareCheckInputs(*(Path(x) for x in given)))]
    from ..pipeline.inputs import model_name

    # the layout of toolchain deploy (docs/pipeline.md): build/<model>/{recluster,palettise,<target>/...}
    mdir = Path(args.build_dir) / (model_name(Path(args.model)) if args.model else "example")
    if not mdir.is_dir():
        raise InputError(f"no deploy build at {mdir}: run 'toolchain deploy' (or 'make deploy') first")
    targets = [_target_dir_name(mdir, t) for t in args.target] or \
        sorted(p.parent.parent.name for p in mdir.glob("*/firmware/firmware.json"))
    if not targets:
        raise InputError(f"no firmware sources under {mdir}: no Ethos-U target was deployed there")
    return [(t, FirmwareCheckInputs(mdir / t / "firmware", mdir / t / "compile" / "after", mdir / "palettise",
                                    mdir / "recluster" / "model.tflite")) for t in targets]


def _target_dir_name(mdir: Path, target: str) -> str:
    """A target's directory: its name as given, else the profile it names (an alias such as ethos-u55)."""
    if (mdir / target).is_dir():
        return target
    from ..targets.profiles import load_profile

    return load_profile(target).name


def _lines(label: str, r) -> list[str]:
    from ..core.escape import terminal_text

    out = [terminal_text(f"{label}: Cortex-M55 under QEMU (mps3-an547)")]
    for t in r.tables:
        got = "no result" if t.decode_status is None else f"decoder returned {t.decode_status}" if t.decode_status \
            else f"crc32 {t.target_crc32:08x}"
        out.append(terminal_text(f"  {t.table.source} table {t.table.index} {t.table.name}: {t.table.element_count:,} values, "
                                 f"{got}, host {t.table.crc32:08x}: {'match' if t.match else 'MISMATCH'}"))
    where = "?" if r.model_address is None else f"0x{r.model_address:08x}"
    out.append(f"  model array {r.model_symbol}: {r.model_bytes:,} bytes at {where}, reported flash (compiled model "
               f"file) {r.reported_flash_bytes:,} bytes: {'ok' if r.model_ok else 'MISMATCH'}")
    out.append(r.summary())
    return out


def run(args: argparse.Namespace) -> int:
    from ..firmware.target_check import check_firmware

    checks = _inputs(args)
    results = []
    for i, (label, inputs) in enumerate(checks):
        keep = Path(args.keep) / (label if len(checks) > 1 else "") if args.keep else None
        results.append((label, check_firmware(inputs, keep)))  # type: ignore[arg-type]
    if args.json:
        print(json.dumps([{"check": str(label), "passed": r.failure is None, "summary": r.summary(),
                           "failure": r.failure, "tables": [{"source": t.table.source, "index": t.table.index,
                                                             "name": t.table.name, "match": t.match}
                                                            for t in r.tables],
                           "model_ok": r.model_ok} for label, r in results], indent=2, sort_keys=True))
    say(args, "\n".join(ln for label, r in results for ln in _lines(str(label), r)))
    for _, r in results:
        r.raise_if_failed()
    return 0
