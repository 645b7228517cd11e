"""Per-tensor weight statistics: what Vela's encoder will see in a model."""
from __future__ import annotations

import zlib
from dataclasses import asdict, dataclass

import numpy as np

from ..algorithms import metrics
from ..core.escape import terminal_text
from ..tflite.graph import find_weight_tensors, require_int8_model, tensor_values
from ..tflite.model_io import read_model


@dataclass(frozen=True)
class TensorStats:
    name: str
    op: str
    shape: tuple[int, ...]
    granularity: str
    weights: int
    distinct_values: int
    max_distinct_per_channel: int
    top32_fraction: float
    vela_palette: bool
    vela_zero_runs: bool
    entropy_bits_per_weight: float
    zero_fraction: float


@dataclass(frozen=True)
class ModelStats:
    model_bytes: int
    deflate_bytes: int
    weight_tensors: int
    weights: int
    weight_bytes: int
    max_distinct_values: int
    tensors: tuple[TensorStats, ...]

    def to_json(self) -> dict:
        d = asdict(self)
        d["tensors"] = [dict(asdict(t), shape=list(t.shape)) for t in self.tensors]
        return d


def deflate_size(data: bytes) -> int:
    """Size after zlib deflate at level 9: a stand-in for a zipped .tflite."""
    return len(zlib.compress(data, 9))


def tensor_stats(name: str, op: str, q: np.ndarray, axis: int, granularity: str) -> TensorStats:
    counts = metrics.value_counts(q)
    per_channel = metrics.distinct_per_channel(q, axis) if q.ndim else np.array([1])
    return TensorStats(
        name=name,
        op=op,
        shape=tuple(int(d) for d in q.shape),
        granularity=granularity,
        weights=int(q.size),
        distinct_values=int(np.count_nonzero(counts)),
        max_distinct_per_channel=int(per_channel.max()) if per_channel.size else 0,
        top32_fraction=round(metrics.top_fraction(counts), 6),
        vela_palette=metrics.vela_palette_applies(counts),
        vela_zero_runs=metrics.vela_zero_runs_apply(counts),
        entropy_bits_per_weight=round(metrics.entropy_bits(counts), 6),
        zero_fraction=round(float(counts[128] / max(q.size, 1)), 6),
    )


def inspect_model(model_bytes: bytes) -> ModelStats:
    model = read_model(model_bytes)
    require_int8_model(model)
    stats = []
    for w in find_weight_tensors(model):
        q = tensor_values(model, model.subgraphs[w.subgraph].tensors[w.tensor_index])
        stats.append(tensor_stats(w.name, w.op, q, w.channel_axis, w.quantization.granularity.value))
    return ModelStats(
        model_bytes=len(model_bytes),
        deflate_bytes=deflate_size(model_bytes),
        weight_tensors=len(stats),
        weights=sum(s.weights for s in stats),
        weight_bytes=sum(s.weights for s in stats),
        max_distinct_values=max((s.distinct_values for s in stats), default=0),
        tensors=tuple(stats),
    )


def format_table(stats: ModelStats) -> str:
    header = ("tensor", "op", "shape", "quant", "weights", "distinct", "max/ch", "top32", "palette", "bits/w", "zeros")
    rows = []
    for t in stats.tensors:
        rows.append((
            _short(terminal_text(t.name), 40), terminal_text(t.op), "x".join(map(str, t.shape)), t.granularity, str(t.weights),
            str(t.distinct_values), str(t.max_distinct_per_channel), f"{t.top32_fraction:.2f}",
            "yes" if t.vela_palette else "no", f"{t.entropy_bits_per_weight:.2f}", f"{t.zero_fraction:.2f}",
        ))
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    lines.append("")
    lines.append(
        f"{stats.weight_tensors} weight tensors, {stats.weights} weights; model {stats.model_bytes} bytes, "
        f"deflate {stats.deflate_bytes} bytes ({stats.deflate_bytes / max(stats.model_bytes, 1):.2f}); "
        f"max distinct values per tensor {stats.max_distinct_values}"
    )
    return "\n".join(lines)


def _short(s: str, n: int) -> str:
    return s if len(s) <= n else "..." + s[-(n - 3):]
