"""Threads: how many fits run at once, and one BLAS thread while the output-aware fit runs LiteRT beside numpy.

``tflite.activations.capture_batches`` runs the next batch in LiteRT in a worker thread while the
caller accumulates statistics with numpy: on two cores those two threads fill the machine. BLAS's own
threads on top of them spin while they wait for work and slowed the numpy side down several times on a
busy 2-core machine; with one BLAS thread every reduction also runs in one fixed order.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

# Independent fits (tensors, layers of a segment) run this many at a time: the machines the benchmarks and
# CI run on have 2 cores, and numpy releases the GIL in its large array operations, BLAS and LAPACK.
FIT_THREADS = 2


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """BLAS limited to one thread inside the block (process-wide: threadpoolctl sets the library's count)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield
