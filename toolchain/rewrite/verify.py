"""Running the original and the rewritten model on the same inputs in LiteRT and measuring how their outputs agree."""
from __future__ import annotations

import os

from .result import ReclusterReport, Verification


def verify(original: bytes, rewritten: bytes, calibration: str | os.PathLike[str] | None = None,
           samples: int = 16, seed: int = 0) -> Verification:
    """Run both models in LiteRT on the same inputs and measure how their outputs agree."""
    from ..tflite import interpreter as rt
    from ..tflite.agreement import compare_outputs

    inputs, label = calibration_inputs(original, calibration, samples, seed)
    ref = rt.run_model(original, inputs)
    new = rt.run_model(rewritten, inputs)
    return Verification(inputs=label, agreement=compare_outputs(ref, new, rt.output_specs(original)))


def with_verification(report: ReclusterReport, verification: Verification) -> ReclusterReport:
    from dataclasses import replace

    return replace(report, verification=verification)


def calibration_inputs(model_bytes: bytes, calibration: str | os.PathLike[str] | None, samples: int, seed: int):
    """(inputs, label): rows from the user's .npz, else seeded random inputs."""
    from ..tflite import interpreter as rt
    from ..tflite.inputs import load_calibration, random_inputs

    specs = rt.input_specs(model_bytes)
    if calibration is not None:
        return load_calibration(calibration, specs, samples), os.path.basename(os.fspath(calibration))
    return random_inputs(specs, samples, seed), f"random (seed {seed})"
