"""Capturing intermediate activations in LiteRT, a batch of samples per invoke.

The batch dimension is resized when the model allows it (checked: the first sample's
captured tensors must equal a one-sample run's), otherwise one sample per invoke. A batch
never holds more than ``interpreter.MAX_RUN_BYTES`` of tensors. ``capture_batches`` runs the
next batch in a worker thread while the caller works on the current one (LiteRT releases the
GIL while it invokes): on two cores the model and the caller's numpy work overlap.
"""
from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..core.errors import InputError, ModelFormatError
from .interpreter import MAX_RUN_BYTES, _litert, make_interpreter

MAX_BATCH = 64  # more samples per invoke gains nothing measurable and costs memory


def _tensor_bytes(interp) -> int:
    return sum(int(np.prod(d["shape"], dtype=np.float64)) * np.dtype(d["dtype"]).itemsize
               for d in interp.get_tensor_details())


class ActivationCapture:
    """One model in LiteRT with every intermediate tensor kept, run on batches of samples."""

    def __init__(self, model_bytes: bytes, batch: int = 1, *, validated: bool = False) -> None:
        self.interp = make_interpreter(model_bytes, keep_intermediates=True, validated=validated)
        self.batch = 1
        if batch > 1:
            self._resize(batch)

    def _resize(self, batch: int) -> None:
        with _litert("resize the model's batch"):
            for d in self.interp.get_input_details():
                shape = list(d["shape"])
                shape[0] = batch
                self.interp.resize_tensor_input(d["index"], shape, strict=False)
            self.interp.allocate_tensors()
        need = _tensor_bytes(self.interp)
        if need > MAX_RUN_BYTES:
            raise InputError(f"a batch of {batch} needs {need >> 20} MiB, over the {MAX_RUN_BYTES >> 20} MiB limit")
        self.batch = batch

    def run(self, rows: list[list[np.ndarray]], tensors: list[int]) -> dict[int, np.ndarray]:
        """Captured tensors (a copy, samples along axis 0) for up to ``batch`` samples."""
        n = len(rows)
        if not 0 < n <= self.batch:
            raise ValueError(f"expected 1..{self.batch} samples, got {n}")
        padded = rows + [rows[-1]] * (self.batch - n)  # a short last batch repeats its last sample
        with _litert("run the model"):
            for j, d in enumerate(self.interp.get_input_details()):
                x = np.concatenate([np.asarray(r[j]).reshape((1,) + tuple(d["shape"][1:])) for r in padded])
                self.interp.set_tensor(d["index"], x.astype(d["dtype"], copy=False))
            self.interp.invoke()
            out = {}
            for t in tensors:
                a = self.interp.get_tensor(t)
                out[t] = a[:n].copy() if self.batch > 1 else a.copy()
        return out


def choose_batch(model_bytes: bytes, rows: list[list[np.ndarray]], tensors: list[int], limit: int = MAX_BATCH, *,
                 validated: bool = False) -> int:
    """The largest batch (<= limit, memory-bounded) whose results equal one-sample runs; 1 if resizing fails.
    ``validated``: the caller has read the model already (tflite.model_io.read_model)."""
    one = ActivationCapture(model_bytes, validated=validated)
    per_sample = max(_tensor_bytes(one.interp), 1)
    batch = int(min(limit, len(rows), max(1, MAX_RUN_BYTES // (2 * per_sample))))
    if batch <= 1:
        return 1
    reference = one.run(rows[:1], tensors)
    try:
        trial = ActivationCapture(model_bytes, batch, validated=True)
        got = trial.run(rows[:batch], tensors)
    except (InputError, ModelFormatError, ValueError):  # the model fixes its batch somewhere: one sample
        return 1
    for t in tensors:
        if got[t].shape[1:] != reference[t].shape[1:] or not np.array_equal(got[t][:1], reference[t]):
            return 1
    return batch


def capture_batches(model_bytes: bytes, rows: list[list[np.ndarray]], tensors: list[int], batch: int, *,
                    validated: bool = False) -> Iterator[tuple[int, dict[int, np.ndarray]]]:
    """(first sample index, captured tensors) for consecutive batches of ``rows``, in order; the next batch
    is computed while the caller holds this one (at most two batches of captures alive)."""
    cap = ActivationCapture(model_bytes, batch, validated=validated)
    starts = range(0, len(rows), cap.batch)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="litert") as worker:
        ahead = [worker.submit(cap.run, rows[s:s + cap.batch], tensors) for s in starts[:1]]
        for i, start in enumerate(starts):
            got = ahead.pop().result()
            ahead += [worker.submit(cap.run, rows[s:s + cap.batch], tensors) for s in starts[i + 1:i + 2]]
            yield start, got
