"""``toolchain palettise MODEL.tflite [-o DIR] [--bits B]``: palette tables, C sources and a TFLM LUT model."""
from __future__ import annotations

import argparse
import json

from ..core.escape import terminal_text
from .common import add_output_options, default_output_dir, say, whole_number

# What the tflm column says of a tensor the TFLM model does not compress, by the TFLM model's status.
NOT_COMPRESSED = {"unavailable": "tflite-micro not installed", "disabled": "no TFLM model (--no-tflm)"}
HELP = "write palettised weight tables (JSON, NPZ, C) and a TFLM LUT-compressed model"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL.tflite", help="int8 model, typically the output of 'toolchain recluster'")
    parser.add_argument("-o", "--output-dir", metavar="DIR",
                        help="directory for the outputs, created if missing (default build/MODEL/palettise, as deploy)")
    parser.add_argument(
        "--bits", type=int, metavar="B",
        help="index width 1-7 for every tensor; a tensor with more than 2^B distinct values is refused "
        "(default: the smallest width per tensor; tensors with more than 128 values are skipped and listed)",
    )
    parser.add_argument(
        "--exclude", action="append", default=[], metavar="PATTERN",
        help="leave out tensors whose name matches this fnmatch pattern (repeatable)",
    )
    parser.add_argument("--no-tflm", action="store_true", help="do not write model_tflm.tflite (no tflite-micro needed)")
    parser.add_argument(
        "--verify", action="store_true",
        help="run the original and the TFLM model under the TFLM interpreter on random inputs "
        "and fail (exit 5) unless the outputs are identical",
    )
    parser.add_argument("--verify-samples", type=whole_number(1, 10_000), default=4, metavar="N",
                        help="inputs for --verify (default 4)")
    add_output_options(parser, "print palettes.json and the files written instead of the table")


def run(args: argparse.Namespace) -> int:
    from ..core.errors import InputError
    from ..palettes.palettise import palettise_file
    from ..palettes.table import PalettiseConfig

    if args.verify and args.no_tflm:
        raise InputError("--verify checks model_tflm.tflite: it cannot be combined with --no-tflm")
    if args.verify and args.verify_samples < 1:
        raise InputError(f"--verify-samples must be >= 1, got {args.verify_samples}")
    samples = args.verify_samples if args.verify else 0
    config = PalettiseConfig(bits=args.bits, exclude=tuple(args.exclude), tflm=not args.no_tflm, verify_samples=samples)
    out = args.output_dir or default_output_dir(args.model, "palettise")
    outcome = palettise_file(args.model, out, config)
    doc = outcome.document
    if args.json:
        print(json.dumps({"palettes": doc, "files": [str(f) for f in outcome.files], "notes": list(outcome.tflm_notes)},
                         indent=2, sort_keys=True))
    say(args, _summary(doc, outcome, out))
    return 0


def _summary(doc, outcome, output_dir) -> str:
    lines = [f"{'tensor':<44} {'op':<18} {'values':>6} {'bits':>4} {'raw B':>9} {'palettised B':>12}  tflm"]
    for t in doc["tensors"]:
        tflm = t["tflm"]
        mode = tflm["mode"] if tflm["compressed"] else NOT_COMPRESSED.get(doc["tflm"]["status"], "not compressed")
        lines.append(f"{terminal_text(t['name'])[:44]:<44} {terminal_text(t['op'])[:18]:<18} {len(t['palette']):>6} {t['index_bits']:>4} "
                     f"{t['raw_bytes']:>9} {t['palettised_bytes']:>12}  {mode}")
    totals = doc["totals"]
    ratio = totals["palettised_bytes"] / totals["raw_bytes"] if totals["raw_bytes"] else 0.0
    lines.append(f"{totals['tensors']} tensor(s): {totals['raw_bytes']} -> {totals['palettised_bytes']} bytes ({ratio:.3f})")
    if doc["skipped"]:
        lines.append(f"skipped {len(doc['skipped'])} tensor(s) (not in any output):")
        for s in doc["skipped"]:
            why = "excluded" if s["reason"] == "excluded" else f"{s['distinct_values']} distinct values > 128"
            lines.append(f"  {terminal_text(s['name'])} ({terminal_text(s['op'])}): {why}")
    tflm = doc["tflm"]
    if tflm["status"] == "written":
        verified = f", outputs identical on {tflm['verify_samples']} input(s)" if tflm.get("verified") else ""
        lines.append(f"TFLM model: {tflm['file']} ({tflm['bytes']} bytes, {tflm['compressed_tensors']} tensor(s) "
                     f"LUT-compressed{verified})")
    lines += [f"note: {terminal_text(note)}" for note in outcome.tflm_notes]
    lines.append(f"wrote {len(outcome.files)} file(s) to {terminal_text(str(output_dir))}")
    return "\n".join(lines)
