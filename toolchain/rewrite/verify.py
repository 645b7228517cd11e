"""Running the original and the rewritten model on the same inputs in LiteRT and measuring how their outputs agree.

A stateful model (resource variables) is verified over a sequence: one interpreter per model,
invoked in order on the same stream of inputs, state carried from step to step (never reset),
so the comparison covers what the state accumulates, not only the first step.
"""
from __future__ import annotations

import os

from .result import ReclusterReport, Verification


def verify(original: bytes, rewritten: bytes, calibration: str | os.PathLike[str] | None = None,
           samples: int = 16, seed: int = 0) -> Verification:
    """Run both models in LiteRT on the same inputs and measure how their outputs agree."""
    inputs, label = calibration_inputs(original, calibration, samples, seed)
    return verify_on(original, rewritten, inputs, label)


def verify_on(original: bytes, rewritten: bytes, inputs, label: str) -> Verification:
    """Both models on ``inputs`` (one list of input arrays per sample, or per step of a stateful model)."""
    from ..tflite import interpreter as rt
    from ..tflite.agreement import compare_outputs
    from ..tflite.graph import has_resource_variables
    from ..tflite.model_io import read_model

    stateful = has_resource_variables(read_model(bytes(original)))
    ref = rt.run_model(original, inputs)  # one interpreter, invoked in order: state carries over
    new = rt.run_model(rewritten, inputs)
    return Verification(inputs=label, agreement=compare_outputs(ref, new, rt.output_specs(original)),
                        stateful=stateful)


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
