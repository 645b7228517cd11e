"""What quantizing a float model did: the tool, the preparation edits, the calibration, the I/O, the
operators left float, and the quantization step's own fidelity (float vs int8 on the check samples)."""
from __future__ import annotations

from dataclasses import dataclass

from ..tflite.agreement import Agreement
from ..tflite.float_prep import FloatPrep
from .calibration import PtqCalibration
from .config import QUANTIZER, RECIPE, IoType


@dataclass(frozen=True)
class PtqReport:
    tool_version: str  # ai-edge-quantizer's version
    prep: FloatPrep
    calibration: PtqCalibration
    io: IoType
    float_operators: tuple[str, ...]  # operators the quantizer left float (they run on the CPU), "OP xN"
    fidelity: Agreement | None  # float vs int8; None when not run
    fidelity_not_run: str | None  # why not ("custom operator NAME: LiteRT cannot run it")
    float_bytes: int
    int8_bytes: int

    @property
    def synthetic(self) -> bool:
        return self.calibration.source.value == "synthetic"

    def to_json(self) -> dict:
        f = self.fidelity
        fidelity = None if f is None else {
            "samples": f.samples, "inputs": "held-out calibration samples" if self.calibration.held_out
            else "the calibration samples (none held back)",
            "sqnr_db": f.sqnr_db, "max_abs_diff_steps": f.max_abs_diff_steps,
            "mean_abs_diff_steps": f.mean_abs_diff_steps, "top1_agreement": f.top1_agreement,
            "outputs": [{"name": o.name, "sqnr_db": o.sqnr_db, "max_abs_diff_steps": o.max_abs_diff_steps,
                         "mean_abs_diff_steps": o.mean_abs_diff_steps, "top1_agreement": o.top1_agreement,
                         "informative": o.informative} for o in f.outputs],
        }
        return {
            "tool": QUANTIZER, "tool_version": self.tool_version, "recipe": RECIPE,
            "prepared": self.prep.to_json(), "calibration": self.calibration.to_json(),
            "synthetic_calibration": self.synthetic, "io": self.io.value,
            "float_operators": list(self.float_operators), "fidelity": fidelity,
            "fidelity_not_run": self.fidelity_not_run, "float_bytes": self.float_bytes, "int8_bytes": self.int8_bytes,
        }

    def summary_lines(self) -> list[str]:
        lines = [f"quantized with {QUANTIZER} {self.tool_version} ({RECIPE}), {self.io.value} inputs and outputs",
                 f"calibration: {self.calibration.label}"]
        p = self.prep
        if p.changed:
            lines.append(f"prepared: {p.float16_folded} float16 constant(s) folded to float32, {p.densified} sparse "
                         f"constant(s) densified, {p.codes_completed} operator code(s) completed"
                         f"{', signature added' if p.signature_added else ''} (outputs bit-identical)")
        if self.float_operators:
            lines.append(f"left float (CPU): {', '.join(self.float_operators)}")
        if self.fidelity is None:
            lines.append(f"float vs int8: not run: {self.fidelity_not_run}")
        else:
            f = self.fidelity
            where = "held-out samples" if self.calibration.held_out else "calibration samples"
            for o in f.outputs:
                sq = "identical" if o.sqnr_db is None else f"SQNR {o.sqnr_db:.1f} dB"
                lines.append(f"float vs int8, output '{o.name}' ({f.samples} {where}): {sq}, max |diff| "
                             f"{o.max_abs_diff_steps:.1f} / mean {o.mean_abs_diff_steps:.2f} int8 steps")
        return lines
