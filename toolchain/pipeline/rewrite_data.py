"""What deploy's rewrite learns from and what its check runs on (a ``toolchain.rewrite.calibration_set.CalibrationSet``).

| given | the fit learns from | the check runs on |
|---|---|---|
| DATA (labelled) | a seeded sample of its training split | its test split (labels: accuracy) |
| CALIBRATION | the file, one in eight (at least 32) held back | the held-back samples |
| CALIBRATION and DATA | the whole file | DATA's test split |
| VERIFY_DATA (with either) | as above, nothing held back | the VERIFY_DATA file |
| nothing | nothing (the weight-space fit) | seeded random inputs: weak evidence |
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .config import PipelineConfig
from .inputs import data_label


def test_split_check(model_bytes: bytes, data: Any, samples: int):
    """The first ``samples`` test samples of DATA as a check (with their labels), or None when they do not fit
    the model's one input."""
    from ..rewrite.calibration_set import CheckSet
    from ..rewrite.result import Evidence
    from ..tflite import interpreter as rt

    specs = rt.input_specs(model_bytes)
    if len(specs) != 1 or len(data.x_test) == 0:
        return None
    spec = specs[0]
    x = np.asarray(data.x_test[:samples], dtype=np.float64)
    sample_shape = spec.shape[1:]
    if x.shape[1:] != sample_shape:
        if int(np.prod(x.shape[1:])) != int(np.prod(sample_shape)):
            return None
        x = x.reshape((-1, *sample_shape))
    x = rt.quantize_input(x, spec)
    rows = [[x[i:i + 1]] for i in range(x.shape[0])]
    return CheckSet(rows, f"{len(rows)} test samples of {data_label(data)}", Evidence.HELD_OUT,
                    np.asarray(data.y_test[: len(rows)]).reshape(-1).astype(np.int64))


def deploy_data(original: bytes, calibration: Path | None, verify: Path | None, data: Any,
                config: PipelineConfig):
    """The rewrite's CalibrationSet (see the module doc); None when deploy was given no data at all."""
    from ..rewrite.calibration_set import CalibrationSet, calibration_set_from_files, default_check_samples
    from ..rewrite.config import Objective
    from ..rewrite.output_aware import calibration_from_training
    from ..tflite.graph import has_resource_variables
    from ..tflite.interpreter import litert_cannot_run
    from ..tflite.model_io import read_model

    if data is None and calibration is None and verify is None:
        return None
    if litert_cannot_run(original) is not None:
        return CalibrationSet()  # nothing can run it: the job notes that the data went unused
    outputs = config.recluster.objective_for(True) is Objective.OUTPUTS
    samples = config.verify.samples or default_check_samples(original)
    check = test_split_check(original, data, samples) if data is not None and verify is None else None
    if calibration is not None or verify is not None:
        return calibration_set_from_files(
            original, calibration, verify, fit_uses_data=outputs, fit_samples=config.recluster.calibration_samples,
            seed=config.recluster.calibration_seed, stateful=has_resource_variables(read_model(original)), check=check)
    fit = calibration_from_training(original, data.x_train, data_label(data), config.recluster) if outputs else None
    return CalibrationSet(fit, check, _range_warnings(original, data))


def _range_warnings(model_bytes: bytes, data: Any) -> tuple[str, ...]:
    """DATA's test images outside the input's quantization range (e.g. 0-255 pixels for a model trained on 0-1)."""
    from ..tflite import interpreter as rt
    from ..tflite.inputs import range_warning

    specs = rt.input_specs(model_bytes)
    if len(specs) != 1 or len(data.x_test) == 0:
        return ()
    x = np.asarray(data.x_test[:1024], np.float64)
    warning = range_warning(x, specs[0], f"the test split of {data_label(data)}")
    return () if warning is None else (warning,)
