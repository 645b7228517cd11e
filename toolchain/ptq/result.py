"""What quantizing a float model did: the tool, the preparation edits, the calibration, the I/O, the
operators left float, and the quantization step's own fidelity (float vs int8 on the check samples)."""
from __future__ import annotations

from dataclasses import dataclass

from ..tflite.agreement import Agreement, figures_json
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
    fidelity: Agreement | None  # float vs int8, per output by its kind; None when not run or not asked for
    fidelity_not_run: str | None  # why not ("custom operator NAME": LiteRT has no kernel for it)
    float_bytes: int
    int8_bytes: int

    @property
    def synthetic(self) -> bool:
        return self.calibration.source.value == "synthetic"

    def fidelity_json(self) -> dict | None:
        """Float vs int8 in the form of the rewrite's verification (``Verification.to_json``): what the check
        ran on, what that is worth as evidence, and per output its kind, metric, agreement, SQNR and errors
        (in the output's own units, and in int8 output steps), so that every report shows both alike.
        None: no check was asked for (no check samples)."""
        c = self.calibration
        if self.fidelity is None and self.fidelity_not_run is None:
            return None
        return {"inputs": c.check_source, "evidence": c.evidence.value, "stateful": False,
                "not_run": self.fidelity_not_run} | figures_json(self.fidelity)

    def to_json(self) -> dict:
        return {
            "tool": QUANTIZER, "tool_version": self.tool_version, "recipe": RECIPE,
            "prepared": self.prep.to_json(), "calibration": self.calibration.to_json(),
            "synthetic_calibration": self.synthetic, "io": self.io.value,
            "float_operators": list(self.float_operators), "fidelity": self.fidelity_json(),
            "float_bytes": self.float_bytes, "int8_bytes": self.int8_bytes,
        }

    def summary_lines(self) -> list[str]:
        """How it was quantized (the fidelity is worded by toolchain.reporting.fidelity, as the rewrite's)."""
        lines = [f"quantized with {QUANTIZER} {self.tool_version} ({RECIPE}), {self.io.value} inputs and outputs",
                 f"calibration: {self.calibration.label}"]
        p = self.prep
        if p.changed:
            lines.append(f"prepared: {p.float16_folded} float16 constant(s) folded to float32, {p.densified} sparse "
                         f"constant(s) densified, {p.codes_completed} operator code(s) completed"
                         f"{', signature added' if p.signature_added else ''} (outputs bit-identical)")
        if self.float_operators:
            lines.append(f"left float (CPU): {', '.join(self.float_operators)}")
        return lines
