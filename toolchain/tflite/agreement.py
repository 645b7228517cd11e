"""How closely a rewritten model's outputs follow the original's on the same inputs."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .interpreter import TensorSpec


@dataclass(frozen=True)
class Agreement:
    """How closely a rewritten model's outputs follow the original's on the same inputs."""

    samples: int
    top1_agreement: float | None  # fraction of samples with the same argmax of output 0
    max_abs_diff_steps: float  # largest output difference in output quantisation steps
    mean_abs_diff_steps: float
    per_output_max_abs_diff_steps: tuple[float, ...] = field(default=())


def compare_outputs(ref: list[list[np.ndarray]], new: list[list[np.ndarray]], specs: tuple[TensorSpec, ...]) -> Agreement:
    n = len(ref)
    per_out = []
    means = []
    for j, s in enumerate(specs):
        a = np.stack([r[j] for r in ref]).astype(np.float64)
        b = np.stack([r[j] for r in new]).astype(np.float64)
        d = np.abs(a - b)
        if not np.issubdtype(s.dtype, np.integer) and s.scale > 0:
            d = d / s.scale
        per_out.append(float(d.max()) if d.size else 0.0)
        means.append(float(d.mean()) if d.size else 0.0)
    top1 = None
    if specs and n and int(np.prod(specs[0].shape)) > 1:
        a = np.stack([r[0].reshape(-1) for r in ref])
        b = np.stack([r[0].reshape(-1) for r in new])
        top1 = float(np.mean(np.argmax(a, axis=1) == np.argmax(b, axis=1)))
    return Agreement(
        samples=n,
        top1_agreement=top1,
        max_abs_diff_steps=max(per_out, default=0.0),
        mean_abs_diff_steps=float(np.mean(means)) if means else 0.0,
        per_output_max_abs_diff_steps=tuple(per_out),
    )
