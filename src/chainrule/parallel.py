"""Threads for work that splits into independent pieces.

NumPy releases the GIL inside its matrix products and inside ufunc loops over large
arrays, so Python threads that each handle one piece of the work run at the same time.
Two kinds of work are split this way:

- the optimizers' element-wise updates, one contiguous piece of the parameters per
  thread (:func:`run_pieces` with :func:`piece_bounds`);
- a training batch, one block of rows per thread, each thread computing that block's
  gradient with single-threaded BLAS (see ``Network.loss_and_gradients_into``).

The calling thread always takes the first piece and a shared pool runs the others. The
pool is made on first use and forgotten in a forked child, which does not inherit the
pool's threads.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

__all__ = ["PIECE_ALIGNMENT", "piece_bounds", "run_pieces"]

# Pieces of a flat array start at multiples of 16 entries: 64 bytes of float32 or 128 of
# float64, so no two threads write to the same cache line.
PIECE_ALIGNMENT = 16

_pool: ThreadPoolExecutor | None = None
_pool_workers = 0
_pool_lock = threading.Lock()


def _worker_pool(workers: int) -> ThreadPoolExecutor:
    """Return the shared pool, grown to at least ``workers`` threads."""
    global _pool, _pool_workers
    with _pool_lock:
        if _pool is None or _pool_workers < workers:
            if _pool is not None:
                _pool.shutdown(wait=False)
            _pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="chainrule")
            _pool_workers = workers
        return _pool


def _forget_pool_after_fork() -> None:
    global _pool, _pool_workers
    _pool, _pool_workers = None, 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_after_fork)


def piece_bounds(size: int, pieces: int, alignment: int = 1) -> list[int]:
    """Return ``pieces + 1`` increasing bounds that cut ``range(size)`` into near-equal
    pieces. Inner bounds are rounded down to a multiple of ``alignment``."""
    bounds = [0]
    for index in range(1, pieces):
        bounds.append(index * size // pieces // alignment * alignment)
    bounds.append(size)
    return bounds


def run_pieces(work: Callable[[int, int], object], bounds: list[int]) -> list:
    """Run ``work(start, stop)`` for each consecutive pair in ``bounds``, at the same time.

    The calling thread runs the first piece. Every piece has finished when this returns,
    even when one raises, so no thread writes to the shared arrays afterwards. The first
    error is then raised again. Returns the results in the order of the pieces.
    """
    if len(bounds) <= 2:
        return [work(bounds[0], bounds[-1])]
    pool = _worker_pool(len(bounds) - 2)
    futures = [pool.submit(work, bounds[index], bounds[index + 1])
               for index in range(1, len(bounds) - 1)]
    first_error = None
    try:
        first = work(bounds[0], bounds[1])
    except BaseException as error:  # wait for the other pieces before raising
        first_error = error
    for future in futures:
        error = future.exception()
        if error is not None and first_error is None:
            first_error = error
    if first_error is not None:
        raise first_error
    return [first, *(future.result() for future in futures)]
