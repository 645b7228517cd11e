"""Which samples of a calibration file a step may learn from and which it is checked on: one rule for the
quantizer (toolchain.ptq) and the rewrite (toolchain.rewrite.calibration_set), so that in ``deploy`` of a
float model both learn from the same samples and both checks run on samples neither step saw.

A check on the samples a step was tuned on flatters it (a K=8 MobileNetV2-style net printed agreement
1.000 on its calibration samples and 0.966 on a test split), so a seeded part is held back: at least
``MIN_HELD_BACK`` samples, one in ``HOLD_BACK_ONE_IN``, and every sample the step would not use anyway.
With fewer than 2 x MIN_HELD_BACK samples nothing is held back and the check is in-sample (weak evidence).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum

import numpy as np

MIN_HELD_BACK = 32  # a held-back check smaller than this says little: below 2x, the check is in-sample
HOLD_BACK_ONE_IN = 8
# A calibration file is read up to this many samples beyond the fit's: more than any check runs by default,
# and a 3 MB .npz that inflates to gigabytes is not read whole (the rest of the file is never decompressed).
# The quantizer and the rewrite both read this far, so that they split one file alike.
MAX_READ_BEYOND_FIT = 8192


class Evidence(Enum):
    """What a check's inputs can show about the model's behaviour on real data."""

    HELD_OUT = "held_out"  # real inputs the step never saw (held back, a separate file, a test split)
    IN_SAMPLE = "in_sample"  # the very inputs the step learned from: flatters it
    RANDOM = "random"  # seeded random inputs: weak evidence


@dataclass(frozen=True)
class Split:
    """Sample indices (ascending) to learn from and to check on; the same when nothing could be held back."""

    fit: np.ndarray = field(repr=False, compare=False)
    check: np.ndarray = field(repr=False, compare=False)
    evidence: Evidence  # HELD_OUT, or IN_SAMPLE when nothing could be held back

    @property
    def held_back(self) -> int:
        return len(self.check) if self.evidence is Evidence.HELD_OUT else 0


def split_samples(n: int, fit_samples: int, seed: int = 0) -> Split:
    """Split ``n`` samples into at most ``fit_samples`` to learn from and a seeded held-back rest (module doc)."""
    if n < 2 * MIN_HELD_BACK:
        every = np.arange(n)
        return Split(every, every, Evidence.IN_SAMPLE)
    held = max(MIN_HELD_BACK, math.ceil(n / HOLD_BACK_ONE_IN), n - fit_samples)
    order = np.random.default_rng(seed).permutation(n)
    return Split(np.sort(order[held:]), np.sort(order[:held]), Evidence.HELD_OUT)
