"""Dense values of a constant stored in TFLite's sparse format (what a DENSIFY operator computes).

The format (schema ``SparsityParameters``): the tensor is walked in ``traversal_order`` over its
dimensions, then over block dimensions (``block_map`` names the dimension each block subdivides);
each level is either DENSE (``dense_size`` entries) or SPARSE_CSR (``array_segments`` into
``array_indices`` per parent position). The stored values follow that walk. Decoded level by level
with numpy: expanding each parent in order keeps the walk's order, so value j lands where the walk's
j-th leaf points, as in LiteRT's FormatConverter.
"""
from __future__ import annotations

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from ..core.errors import ModelFormatError

_DENSE, _SPARSE_CSR = 0, 1


def _vector(v) -> np.ndarray:
    return np.zeros(0, np.int64) if v is None or v.values is None else np.asarray(v.values, dtype=np.int64)


def densify(values: np.ndarray, shape: tuple[int, ...], sparsity: schema.SparsityParametersT, what: str) -> np.ndarray:
    """The dense array of ``shape`` whose non-stored entries are zero; ModelFormatError when the metadata
    does not describe ``values``."""
    order = [int(i) for i in (sparsity.traversalOrder if sparsity.traversalOrder is not None else [])]
    block_map = [int(i) for i in (sparsity.blockMap if sparsity.blockMap is not None else [])]
    dims = list(sparsity.dimMetadata or [])
    rank = len(shape)
    if len(order) != len(dims) or len(order) != rank + len(block_map) or sorted(order) != list(range(len(order))):
        raise ModelFormatError(f"sparse tensor '{what}': traversal order {order} does not fit shape {list(shape)}")
    block_size = [int(dims[order.index(rank + b)].denseSize) for b in range(len(block_map))]
    prev = np.zeros(1, np.int64)  # position in the parent level, per path
    paths = np.zeros((1, 0), np.int64)  # the index at each level so far, per path
    for level, d in enumerate(dims):
        if int(d.format) == _DENSE:
            n = int(d.denseSize)
            prev = (prev[:, None] * n + np.arange(n)[None, :]).ravel()
            paths = np.concatenate([np.repeat(paths, n, axis=0), np.tile(np.arange(n), len(paths))[:, None]], axis=1)
            continue
        if int(d.format) != _SPARSE_CSR:
            raise ModelFormatError(f"sparse tensor '{what}': unknown dimension format {int(d.format)}")
        segments, indices = _vector(d.arraySegments), _vector(d.arrayIndices)
        if prev.size and (prev.max() + 1 >= segments.size or np.any(np.diff(segments) < 0)
                          or segments[-1] > indices.size):
            raise ModelFormatError(f"sparse tensor '{what}': level {level} segments do not match its indices")
        counts = segments[prev + 1] - segments[prev]
        starts = np.repeat(segments[prev], counts)
        child = starts + (np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts))
        prev = child
        paths = np.concatenate([np.repeat(paths, counts, axis=0), indices[child][:, None]], axis=1)
    if len(paths) != values.size:
        raise ModelFormatError(f"sparse tensor '{what}': {values.size} stored values for {len(paths)} positions")
    index = np.zeros((len(paths), rank), np.int64)
    for level in range(rank):
        index[:, order[level]] = paths[:, level]
    for level in range(rank, len(order)):
        b = order[level] - rank
        index[:, block_map[b]] = index[:, block_map[b]] * block_size[b] + paths[:, level]
    if len(index) and (np.any(index < 0) or np.any(index >= np.asarray(shape))):
        raise ModelFormatError(f"sparse tensor '{what}': an index lies outside shape {list(shape)}")
    dense = np.zeros(shape, dtype=values.dtype)
    dense[tuple(index.T)] = values.ravel()
    return dense
