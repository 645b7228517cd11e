"""Running the original and the rewritten model in LiteRT on the same inputs and measuring how their outputs agree.

The inputs are a ``CheckSet`` (calibration_set.py): samples the fit never saw where there are any,
else seeded random inputs, which are weak evidence and say so. A model LiteRT cannot run (a custom
operator it has no kernel for) is not verified, and the verification says which operator.

A stateful model (resource variables) is verified over a sequence: one interpreter per model,
invoked in order on the same stream of inputs, state carried from step to step (never reset),
so the comparison covers what the state accumulates, not only the first step.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from ..core.errors import ConfigError
from .calibration_set import RANDOM_CHECK_SAMPLES, CalibrationSet, CheckSet, default_check_samples
from .result import Evidence, ReclusterReport, Verification


@dataclass(frozen=True)
class VerifyOptions:
    """Running the original and the rewritten model side by side in LiteRT."""

    enabled: bool = True
    samples: int | None = None  # check samples; None: as many as ~20 s of LiteRT allow (32..1024), 32 random ones
    seed: int = 0  # of the random inputs used without data
    output_kinds: Mapping = field(default_factory=dict)  # output name -> tflite.output_kind.OutputKind (overrides)


def random_check(model_bytes: bytes, samples: int, seed: int) -> CheckSet:
    from ..tflite import interpreter as rt
    from ..tflite.inputs import random_inputs

    rows = random_inputs(rt.input_specs(model_bytes), samples, seed)
    return CheckSet(rows, f"{samples} random inputs (seed {seed})", Evidence.RANDOM)


def verify(original: bytes, rewritten: bytes, data: CalibrationSet | None = None,
           options: VerifyOptions = VerifyOptions()) -> Verification:
    """Both models on the check inputs of ``data`` (seeded random inputs without them)."""
    from ..tflite.interpreter import litert_cannot_run

    why = litert_cannot_run(original) or litert_cannot_run(rewritten)
    check = None if data is None else data.check
    if why is not None:
        return Verification(inputs="-" if check is None else check.source,
                            evidence=Evidence.RANDOM if check is None else check.evidence, not_run=why)
    if check is None:
        check = random_check(original, options.samples or RANDOM_CHECK_SAMPLES, options.seed)
    else:
        check = check.first(options.samples or default_check_samples(original))
    return verify_on(original, rewritten, check, options.output_kinds)


def verify_on(original: bytes, rewritten: bytes, check: CheckSet, output_kinds: Mapping | None = None) -> Verification:
    """Both models on ``check``'s inputs (one list of input arrays per sample, or per step of a stateful model)."""
    from ..tflite import interpreter as rt
    from ..tflite.agreement import compare_outputs
    from ..tflite.graph import has_resource_variables
    from ..tflite.model_io import read_model
    from ..tflite.output_kind import OutputKind

    stateful = has_resource_variables(read_model(bytes(original)))
    specs = rt.output_specs(original)
    unknown = sorted(set(output_kinds or {}) - {s.name for s in specs})
    if unknown:
        raise ConfigError(f"no output named '{unknown[0]}' (--output-kind); the model's outputs: "
                          + ", ".join(f"'{s.name}'" for s in specs))
    ref = rt.run_model(original, check.rows)  # one interpreter, invoked in order: state carries over
    new = rt.run_model(rewritten, check.rows)
    agreement = compare_outputs(ref, new, specs, rt.output_specs(rewritten), output_kinds)
    before = after = None
    classes = [j for j, o in enumerate(agreement.outputs) if o.kind is OutputKind.CLASS_SCORES]
    if check.labels is not None and len(classes) == 1 and ref:
        j = classes[0]
        labels = np.asarray(check.labels)[: len(ref)]
        before = float(np.mean([np.argmax(r[j]) == y for r, y in zip(ref, labels)]))
        after = float(np.mean([np.argmax(r[j]) == y for r, y in zip(new, labels)]))
    return Verification(inputs=check.source, evidence=check.evidence, agreement=agreement, stateful=stateful,
                        accuracy_before=before, accuracy_after=after)


def with_verification(report: ReclusterReport, verification: Verification) -> ReclusterReport:
    from dataclasses import replace

    return replace(report, verification=verification)
