"""Structural comparison of flatbuffer object-API models (content, not bytes)."""
from __future__ import annotations

import numpy as np


def to_plain(obj):
    """A ModelT (or any object-API node) as nested lists/dicts of plain values."""
    if obj is None or isinstance(obj, (bool, int, float, str, bytes)):
        return obj
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (list, tuple)):
        return [to_plain(x) for x in obj]
    if hasattr(obj, "__dict__"):
        return {k: to_plain(v) for k, v in sorted(vars(obj).items())}
    return repr(obj)


def diff_paths(a, b, path="model"):
    """Paths where two plain structures differ (lists of bytes compared whole)."""
    if type(a) is not type(b):
        return [path]
    if isinstance(a, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += diff_paths(a.get(k), b.get(k), f"{path}.{k}")
        return out
    if isinstance(a, list):
        if len(a) != len(b):
            return [path]
        if a and not isinstance(a[0], (dict, list)):
            return [] if a == b else [path]
        out = []
        for i, (x, y) in enumerate(zip(a, b)):
            out += diff_paths(x, y, f"{path}[{i}]")
        return out
    return [] if a == b else [path]
