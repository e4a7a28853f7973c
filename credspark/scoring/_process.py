"""Settings of a process that scores (a Spark Python worker): a resident heap and numpy's BLAS on one thread.

Nothing here imports pyspark; :func:`credspark.scoring.partition.cached_model` applies them once per process.
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Callable
from typing import Any

__all__ = ["tune_scoring_process"]

logger = logging.getLogger("credspark.scoring.partition")

#: What :func:`tune_scoring_process` did in this process (None: not called yet).
_PROCESS_TUNING: dict[str, Any] | None = None

# glibc mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: Largest M_MMAP_THRESHOLD glibc accepts on 64-bit (HEAP_MAX_SIZE / 2); a 1,000-row model batch's largest
#: activation map (1,000 x 128 filters x 48 positions x 4 B = 24.6 MB) stays below it.
_MMAP_THRESHOLD = 32 * 2**20
#: Free heap kept instead of being returned to the kernel (the worker's working set is a few hundred MB).
_TRIM_THRESHOLD = 2**30


def _glibc_mallopt() -> Callable[[int, int], int] | None:
    """The C library's ``mallopt`` if it is glibc (the parameter numbers here are glibc's), else None."""
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return None
    if getattr(libc, "gnu_get_libc_version", None) is None:
        return None
    mallopt = libc.mallopt
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt


def tune_scoring_process() -> dict[str, Any]:
    """Settings for a process that scores (a Spark Python worker); the first call applies them, later ones don't.

    - **heap kept resident** (glibc only): a model batch's activation maps are megabytes each. With glibc's
      adaptive defaults they were served by fresh ``mmap`` or the heap top was returned to the kernel between
      batches, so every batch faulted its working set in again, zero-filled page by page: 15-45 minor faults
      per row and 20-40 % of the worker's CPU in the kernel (docs/scoring.md). A fixed mmap threshold of
      32 MiB and a 1 GiB trim threshold keep that memory in the heap for reuse: the worker's resident memory
      stays at its peak instead of going up and down.
    - **numpy's BLAS on one thread**: the only BLAS call in scoring is the small reason-group product; with
      OpenBLAS's default (one thread per core) the second thread only spins, which cost more CPU than the
      product itself, and Spark already runs one worker per core.

    Torch and XGBoost threads are set from :class:`ScoreParams` by :func:`cached_model` and
    :class:`ScoringModel`.

    Returns:
        What was applied: ``{"malloc": bool, "blas_threads": int | None}``.
    """
    global _PROCESS_TUNING
    if _PROCESS_TUNING is not None:
        return _PROCESS_TUNING
    mallopt = _glibc_mallopt()
    malloc = mallopt is not None and bool(
        mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD) and mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD)
    )
    blas: int | None = None
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # scikit-learn's dependency; without it BLAS keeps its default threads
        logger.info("threadpoolctl is not installed: numpy's BLAS keeps its default threads")
    else:
        threadpool_limits(limits=1, user_api="blas")  # not a context: stays for the process
        blas = 1
    _PROCESS_TUNING = {"malloc": malloc, "blas_threads": blas}
    return _PROCESS_TUNING
