"""The quantize stage of a float .tflite: ai-edge-quantizer makes the int8 "before" model (toolchain.ptq).

Writes ``build/<model>/quantize/model_int8.tflite`` and ``quantize.json`` (the PtqReport: calibration,
preparation, operators left float, float-vs-int8 fidelity). Runs only when the model, the calibration
file, the settings or the quantizer's version changed.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..core.escape import terminal_text
from ..core.fileio import atomic_write_bytes, atomic_write_json, read_input_bytes
from .manifest import StageKey, file_digest, package_versions
from .stage_runner import StageRunner

QUANTIZED = "model_int8.tflite"
QUANTIZE_JSON = "quantize.json"
PTQ_TOOLS = ("ai-edge-quantizer", "ai-edge-litert", "numpy")


def quantize_float_stage(run: StageRunner, mdir: Path, model: Path, calibration: Path | None,
                         synthetic: bool) -> tuple[Path, dict[str, Any]]:
    """The int8 model's path and the stage's result (quantize.json's content)."""
    from ..ptq.config import PtqConfig
    from ..ptq.quantize import quantize_tflite

    qdir = mdir / "quantize"
    config = PtqConfig()
    key = StageKey("quantize", {"model": file_digest(model),
                                "calibration": None if calibration is None else file_digest(calibration)},
                   {"ptq": config.to_json(), "synthetic": bool(synthetic and calibration is None)},
                   package_versions(*PTQ_TOOLS, code=("toolchain.pipeline.ptq_stage",)))

    def body():
        out, report = quantize_tflite(read_input_bytes(model, "model"), model.name, calibration, synthetic, config)
        atomic_write_bytes(qdir / QUANTIZED, out)
        doc = report.to_json()
        atomic_write_json(qdir / QUANTIZE_JSON, doc)
        return doc

    def note(r: dict[str, Any]) -> str:
        f = r["fidelity"]
        fid = f"not checked: {r['fidelity_not_run']}" if f is None else (
            "float vs int8 identical" if f["sqnr_db"] is None else f"float vs int8 SQNR >= {f['sqnr_db']:.1f} dB")
        cal = r["calibration"]
        src = "SYNTHETIC calibration" if r["synthetic_calibration"] else f"calibrated on {cal['samples']} samples"
        left = f", float on the CPU: {', '.join(r['float_operators'])}" if r["float_operators"] else ""
        return terminal_text(f"{src}, {fid}{left}")

    result = run.stage("quantize (ai-edge-quantizer)", qdir, key, body, note)
    return qdir / QUANTIZED, result


def quantization_summary(r: dict[str, Any]) -> dict[str, Any]:
    """What the report keeps of the quantize stage."""
    return {k: r[k] for k in ("tool", "tool_version", "recipe", "prepared", "calibration", "synthetic_calibration",
                              "io", "float_operators", "fidelity", "fidelity_not_run")}
