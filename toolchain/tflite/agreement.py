"""How closely one model's outputs follow another's on the same inputs, per output, by the output's kind.

Every output gets SQNR and the largest and mean absolute error in its own (dequantized) units and in
output quantisation steps; an output that holds class scores, detection scores or a mask also gets
its kind's agreement (output_kind.py). A measure is only as good as its inputs: when the reference's
answer never changes over them (random inputs often saturate a classifier into one class), a perfect
agreement says nothing, so each measure records whether it could be measured at all and why not.

``compare_outputs`` is the one entry: the rewriter's verification compares an int8 model with its
rewrite, and a quantizer can compare a float model with its int8 version (each side dequantized with
its own output's quantisation).
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from .interpreter import TensorSpec
from .output_kind import TOP_K, OutputKind, guess_output_kind

# An output "does not vary" when no element moves by more than this across the inputs: one step is
# also what LiteRT's optimised and reference int8 kernels may differ by.
NEARLY_CONSTANT_STEPS = 1.0
_FLOAT_NEARLY_CONSTANT = 1e-6  # float outputs: relative to the largest magnitude
METRIC_OF_KIND = {OutputKind.CLASS_SCORES: "top-1 agreement", OutputKind.DETECTION_SCORES: f"top-{TOP_K} agreement",
                  OutputKind.MASK: "mask agreement", OutputKind.VALUES: "SQNR"}


@dataclass(frozen=True)
class OutputAgreement:
    """One output of the model."""

    name: str
    kind: OutputKind
    metric: str  # what the kind is judged by: "top-1 agreement", "top-10 agreement", "mask agreement" or "SQNR"
    agreement: float | None  # the kind's agreement, 0..1 (None: values, or not measurable)
    max_abs_error: float  # in the output's own units (dequantized)
    mean_abs_error: float
    max_abs_diff_steps: float  # in output quantisation steps (float outputs: in output units)
    mean_abs_diff_steps: float
    sqnr_db: float | None  # reference power over difference power; None: identical, or not measurable
    identical: bool
    reference_range_steps: float  # the largest spread of an element of the reference across the inputs
    informative: bool  # the reference output varied across the inputs (SQNR measurable)
    not_measurable: str | None = None  # why the output's metric could not be measured on these inputs

    @property
    def measurable(self) -> bool:
        return self.not_measurable is None

    @property
    def top1_agreement(self) -> float | None:
        return self.agreement if self.kind is OutputKind.CLASS_SCORES else None

    def to_json(self) -> dict:
        return {"name": self.name, "kind": self.kind.value, "metric": self.metric, "agreement": self.agreement,
                "not_measurable": self.not_measurable, "sqnr_db": self.sqnr_db, "identical": self.identical,
                "max_abs_error": self.max_abs_error, "mean_abs_error": self.mean_abs_error,
                "max_abs_diff_steps": self.max_abs_diff_steps, "mean_abs_diff_steps": self.mean_abs_diff_steps,
                "reference_range_steps": self.reference_range_steps, "informative": self.informative}


@dataclass(frozen=True)
class Agreement:
    """How closely a model's outputs follow a reference's on the same inputs."""

    samples: int
    outputs: tuple[OutputAgreement, ...] = field(default=())

    @property
    def top1_agreement(self) -> float | None:
        """The lowest over class-score outputs that could be measured (None: none could)."""
        values = [o.agreement for o in self.outputs if o.kind is OutputKind.CLASS_SCORES and o.agreement is not None]
        return min(values) if values else None

    @property
    def top1_not_measurable(self) -> str | None:
        """Why top-1 agreement cannot be shown: no class-score output, or one whose reference class never changed."""
        classes = [o for o in self.outputs if o.kind is OutputKind.CLASS_SCORES]
        if not classes:
            return "no output of the model holds class scores"
        bad = [o for o in classes if o.not_measurable is not None]
        return f"output '{bad[0].name}': {bad[0].not_measurable}" if bad else None

    @property
    def sqnr_db(self) -> float | None:
        """The lowest over outputs that varied (None: every such output identical, or none varied)."""
        values = [o.sqnr_db for o in self.outputs if o.informative and o.sqnr_db is not None]
        return min(values) if values else None

    @property
    def max_abs_diff_steps(self) -> float:
        return max((o.max_abs_diff_steps for o in self.outputs), default=0.0)

    @property
    def mean_abs_diff_steps(self) -> float:
        return float(np.mean([o.mean_abs_diff_steps for o in self.outputs])) if self.outputs else 0.0

    @property
    def informative(self) -> bool:
        """Every output's own metric could be measured on these inputs."""
        return bool(self.outputs) and self.samples > 1 and all(o.measurable for o in self.outputs)

    @property
    def constant_outputs(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.outputs if not o.informative)

    def to_json(self) -> dict:
        return {"samples": self.samples, "top1_agreement": self.top1_agreement,
                "top1_not_measurable": self.top1_not_measurable, "sqnr_db": self.sqnr_db,
                "max_abs_diff_steps": self.max_abs_diff_steps, "mean_abs_diff_steps": self.mean_abs_diff_steps,
                "informative": self.informative, "outputs": [o.to_json() for o in self.outputs]}


def _real(x: np.ndarray, s: TensorSpec) -> np.ndarray:
    if np.issubdtype(s.dtype, np.integer) and s.scale > 0:
        return (x - s.zero_point) * s.scale
    return x


def _step(ref: TensorSpec, new: TensorSpec) -> float | None:
    """One output quantisation step in real units: the reference's, else the candidate's (a float reference)."""
    for s in (ref, new):
        if np.issubdtype(s.dtype, np.integer) and s.scale > 0:
            return s.scale
    for s in (ref, new):
        if s.scale > 0:
            return s.scale
    return None


def _varies(spread: np.ndarray, a_real: np.ndarray, step: float | None) -> bool:
    if not spread.size:
        return False
    if step is not None:
        return bool(spread.max() / step > NEARLY_CONSTANT_STEPS)
    return bool(spread.max() > _FLOAT_NEARLY_CONSTANT * max(1.0, float(np.abs(a_real).max())))


def _class_agreement(a: np.ndarray, b: np.ndarray) -> tuple[float | None, str | None]:
    ref, new = np.argmax(a.reshape(len(a), -1), axis=-1), np.argmax(b.reshape(len(b), -1), axis=-1)
    classes = np.unique(ref)
    if classes.size < 2:
        return None, f"the reference's top-1 class was {int(classes[0])} on every one of the {len(ref)} inputs"
    return float(np.mean(ref == new)), None


def _topk_agreement(a: np.ndarray, b: np.ndarray) -> tuple[float | None, str | None]:
    # [samples, anchors]: an anchor's best class score (every axis but the last, batch included, is anchors)
    score_a = a.reshape(len(a), -1, a.shape[-1]).max(axis=-1)
    score_b = b.reshape(len(b), -1, b.shape[-1]).max(axis=-1)
    k = min(TOP_K, score_a.shape[1])
    # stable sorts: ties resolve to the lower anchor index on both sides
    top_a = np.sort(np.argsort(-score_a, axis=1, kind="stable")[:, :k], axis=1)
    top_b = np.sort(np.argsort(-score_b, axis=1, kind="stable")[:, :k], axis=1)
    if len({tuple(r) for r in top_a}) < 2:
        return None, f"the reference's top-{k} anchors were the same on every one of the {len(a)} inputs"
    shared = [len(np.intersect1d(x, y)) / k for x, y in zip(top_a, top_b)]
    return float(np.mean(shared)), None


def _mask_agreement(a: np.ndarray, b: np.ndarray) -> tuple[float | None, str | None]:
    if a.shape[-1] > 1:
        ma, mb = np.argmax(a, axis=-1), np.argmax(b, axis=-1)
        how = "argmax over channels"
    else:
        # one channel: probabilities (0..1, a sigmoid) are cut at 0.5, anything else (logits) at 0
        t = 0.5 if a.min() >= 0.0 and a.max() <= 1.0 else 0.0
        ma, mb = a[..., 0] > t, b[..., 0] > t
        how = f"threshold {t:g}"
    if np.unique(ma).size < 2:
        return None, f"the reference's mask ({how}) had the same label at every pixel of the {len(a)} inputs"
    return float(np.mean(ma == mb)), None


def _kind_measure(kind: OutputKind, a_real: np.ndarray, b_real: np.ndarray) -> tuple[float | None, str | None]:
    if a_real.shape[0] < 2:
        return None, f"{a_real.shape[0]} input(s) cannot show whether the output moves"
    if a_real[0].size == 0:
        return None, "the output holds no values"
    if kind is OutputKind.CLASS_SCORES:
        return _class_agreement(a_real, b_real)
    if kind is OutputKind.DETECTION_SCORES and a_real.ndim >= 3:
        return _topk_agreement(a_real, b_real)
    if kind is OutputKind.MASK and a_real.ndim >= 3:
        return _mask_agreement(a_real, b_real)
    if kind is OutputKind.VALUES:
        return None, None
    return None, f"an output of shape {tuple(a_real.shape[1:])} has no anchor or pixel axis for {kind.value}"


def _sqnr_db(ref: np.ndarray, new: np.ndarray) -> float | None:
    signal = float(np.sum(ref ** 2))
    noise = float(np.sum((ref - new) ** 2))
    if noise == 0.0 or signal == 0.0:
        return None
    return round(10.0 * math.log10(signal / noise), 3)


def compare_one(a: np.ndarray, b: np.ndarray, ref: TensorSpec, new: TensorSpec | None = None,
                kind: OutputKind | None = None) -> OutputAgreement:
    """One output over every input: ``a`` the reference's values ([inputs, ...], as stored), ``b`` the candidate's."""
    new = ref if new is None else new
    kind = guess_output_kind(ref.name, ref.shape) if kind is None else kind
    a_real = _real(a.astype(np.float64), ref)
    b_real = _real(b.astype(np.float64), new)
    d = np.abs(a_real - b_real)
    spread = (a_real.max(axis=0) - a_real.min(axis=0)) if a_real.shape[0] else np.zeros(1)
    step = _step(ref, new)
    per_step = 1.0 if step is None else step
    varies = _varies(spread, a_real, step)
    value, why = _kind_measure(kind, a_real, b_real)
    sqnr = _sqnr_db(a_real, b_real)
    if why is None and not varies:  # answers that change by one step of kernel noise measure nothing either
        value = None
        why = (f"the reference output did not vary by more than {NEARLY_CONSTANT_STEPS:g} output step over the "
               f"{a_real.shape[0]} inputs")
    return OutputAgreement(
        name=ref.name,
        kind=kind,
        metric=METRIC_OF_KIND[kind],
        agreement=value,
        max_abs_error=float(d.max()) if d.size else 0.0,
        mean_abs_error=float(d.mean()) if d.size else 0.0,
        max_abs_diff_steps=float(d.max() / per_step) if d.size else 0.0,
        mean_abs_diff_steps=float(d.mean() / per_step) if d.size else 0.0,
        sqnr_db=sqnr if varies else None,
        identical=bool(d.size == 0 or d.max() == 0.0),
        reference_range_steps=float(spread.max() / per_step) if spread.size else 0.0,
        informative=varies,
        not_measurable=why,
    )


def compare_outputs(ref: list[list[np.ndarray]], new: list[list[np.ndarray]], specs: tuple[TensorSpec, ...],
                    new_specs: tuple[TensorSpec, ...] | None = None,
                    kinds: Mapping[str, OutputKind] | None = None) -> Agreement:
    """Per output: ``ref`` and ``new`` hold one list of output arrays per input (or invocation); ``specs`` describe
    the reference's outputs, ``new_specs`` the candidate's (default: the same); ``kinds`` overrides the guessed
    kind of outputs by name."""
    kinds = kinds or {}
    outputs = []
    for j, s in enumerate(specs):
        a = np.stack([r[j] for r in ref]) if ref else np.zeros((0, 1))
        b = np.stack([r[j] for r in new]) if new else np.zeros((0, 1))
        outputs.append(compare_one(a, b, s, None if new_specs is None else new_specs[j], kinds.get(s.name)))
    return Agreement(samples=len(ref), outputs=tuple(outputs))
