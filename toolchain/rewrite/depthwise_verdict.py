"""Whether an automatically considered depthwise tensor is rewritten: by the output noise its fit adds."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from .config import ReclusterConfig

if TYPE_CHECKING:
    from .output_aware import LayerFit


def depthwise_verdict(fit: LayerFit, added_before: list[float], config: ReclusterConfig) -> str | None:
    """Why an automatically considered depthwise tensor stays as it is, or None to rewrite it.

    It is rewritten when the output noise it adds (after minus before, relative) is no more than the median
    the other layers rewritten before it added (their palettes cost that much already), and its added-noise
    SQNR reaches depthwise_min_output_sqnr_db. So a restored tfmot model, whose other layers add no noise,
    keeps its unclustered depthwise kernels, and a post-training rewrite includes them.
    """
    added = max(fit.relative_error - fit.before_relative_error, 0.0)
    if added <= 0.0:
        return None
    added_db = -10.0 * math.log10(added)
    if added_db < config.depthwise_min_output_sqnr_db:
        return f"depthwise: its rewrite adds output noise at {added_db:.1f} dB SQNR, below " \
               f"{config.depthwise_min_output_sqnr_db:g} dB"
    if added_before and added > float(np.median(added_before)):
        ref = float(np.median(added_before))
        ref_text = "no noise" if ref <= 0 else f"{-10.0 * math.log10(ref):.1f} dB"
        return f"depthwise: its rewrite adds output noise at {added_db:.1f} dB SQNR, more than the layers before " \
               f"it (median {ref_text})"
    return None
