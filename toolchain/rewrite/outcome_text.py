"""What the rewriter did to a model's tensors, in one sentence for the terminal and the reports.

"16 values in 15 rewritten tensors; 8 depthwise tensors left as they were (up to 248 values)": the
largest count of values is given per group, so tensors left alone never read as the rewriter's result.
"""
from __future__ import annotations

from .result import TensorAction, TensorResult


def _n(count: int, what: str) -> str:
    return f"{count} {what}{'' if count == 1 else 's'}"


def rewrite_summary(tensors: tuple[TensorResult, ...] | list[TensorResult]) -> str:
    rewritten = [t for t in tensors if t.action is TensorAction.REWRITTEN]
    unchanged = [t for t in tensors if t.action is TensorAction.UNCHANGED]
    skipped = [t for t in tensors if t.action is TensorAction.SKIPPED]
    parts = []
    if rewritten:
        parts.append(f"{max(t.distinct_after for t in rewritten)} values in {_n(len(rewritten), 'rewritten tensor')}")
    else:
        parts.append("no tensor rewritten")
    if unchanged:
        parts.append(f"{_n(len(unchanged), 'tensor')} already within K (up to {max(t.distinct_after for t in unchanged)} "
                     "values)")
    depthwise = [t for t in skipped if t.op == "DEPTHWISE_CONV_2D"]
    other = [t for t in skipped if t.op != "DEPTHWISE_CONV_2D"]
    for group, what in ((depthwise, "depthwise tensor"), (other, "other tensor")):
        if group:
            parts.append(f"{_n(len(group), what)} left as {'it was' if len(group) == 1 else 'they were'} "
                         f"(up to {max(t.distinct_after for t in group)} values)")
    return "; ".join(parts)
