"""Horovod backend: :class:`HorovodContext` and :func:`run` (``horovod.spark.run``).

Used by :func:`credspark.distributed.launchers.launch` with ``backend="horovod"``.

Horovod 0.28.1 is built from source by ``make horovod`` (C++17/C++20 patch, gloo only, no MPI): see
``build-support/horovod/``. Importing this module does not import Horovod; :func:`run` and
:meth:`HorovodContext.init` do.

Why gradients are all-reduced explicitly instead of through ``hvd.DistributedOptimizer``: the training
functions are written once against :class:`WorkerContext`, whose ``allreduce_grads`` hook runs after
``backward()`` and before ``optimizer.step()``; wrapping the optimizer would make the loops
backend-specific, and the optimizer's per-parameter hooks fire during the backward pass, which the WGAN-GP
critic step (a double backward through the gradient penalty) does not need and other backends do not do.
The hook's one flat all-reduce per step is ``hvd.allreduce_`` underneath, so Horovod's tensor fusion
and gloo ring do the work either way.

Failures and time limits: a worker that raises records its error (rank, type, message, traceback) through
:func:`credspark.distributed.launchers.run_worker`; the driver re-raises it as a
:class:`~credspark.distributed.launchers.WorkerError`. A rank whose peer died fails its next collective
(gloo sees the closed connection) and a rank left waiting on a live but stuck peer shuts down after
``timeout_s`` (Horovod's stall shutdown); a driver-side watchdog cancels the Spark job after
``timeout_s`` as a last resort, so a run never hangs.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from credspark.distributed._context import WorkerContext

__all__ = ["HorovodContext", "run", "horovod_available"]

logger = logging.getLogger(__name__)


def horovod_available() -> bool:
    """True when ``horovod.torch`` imports and was built with gloo (what :func:`run` needs)."""
    try:
        import horovod.torch as hvd
    except ImportError:
        return False
    return bool(hvd.gloo_built())


class HorovodContext(WorkerContext):
    """A Horovod worker (gloo on CPU): collectives are ``hvd.allreduce_``, ``hvd.broadcast_``, ``hvd.barrier``.

    Build it with :meth:`init` inside a process started by ``horovod.spark.run`` (or ``horovodrun``).

    Args:
        rank (int): ``hvd.rank()``.
        world_size (int): ``hvd.size()``.
        local_rank (int): ``hvd.local_rank()``.
        device (torch.device): Where the training function computes.
    """

    def __init__(self, *, rank: int, world_size: int, local_rank: int, device: torch.device) -> None:
        self.rank = rank
        self.world_size = world_size
        self.local_rank = local_rank
        self.device = device
        self.backend = "horovod"

    @classmethod
    def init(cls, *, use_gpu: bool = False) -> HorovodContext:
        """Initialise Horovod in this process and describe it.

        Args:
            use_gpu (bool): Compute on ``cuda:<local_rank>``. The collectives still run on CPU through gloo
                (the wheel ``make horovod`` builds has no NCCL): tensors are staged through host memory.
                Defaults to False.

        Returns:
            HorovodContext: This worker's context.
        """
        import horovod.torch as hvd

        hvd.init()
        local_rank = int(hvd.local_rank())
        if use_gpu:
            if not torch.cuda.is_available():
                raise RuntimeError("use_gpu=True but CUDA is not available on this Horovod worker")
            torch.cuda.set_device(local_rank)
            device = torch.device("cuda", local_rank)
        else:
            device = torch.device("cpu")
        return cls(rank=int(hvd.rank()), world_size=int(hvd.size()), local_rank=local_rank, device=device)

    @staticmethod
    def _host_staged(tensor: Tensor, op: Callable[[Tensor], None]) -> None:
        # A CPU-only Horovod build cannot reduce CUDA tensors: reduce a host copy and copy it back.
        if tensor.device.type == "cpu":
            op(tensor)
            return
        host = tensor.detach().to("cpu")
        op(host)
        with torch.no_grad():
            tensor.copy_(host.to(tensor.device))

    def _allreduce_sum_(self, tensor: Tensor) -> None:
        import horovod.torch as hvd

        self._host_staged(tensor, lambda t: hvd.allreduce_(t, op=hvd.Sum))

    def _broadcast_(self, tensor: Tensor) -> None:
        import horovod.torch as hvd

        self._host_staged(tensor, lambda t: hvd.broadcast_(t, root_rank=0))

    def barrier(self) -> None:
        """``hvd.barrier()``."""
        import horovod.torch as hvd

        hvd.barrier()

    def close(self) -> None:
        """``hvd.shutdown()``."""
        import horovod.torch as hvd

        hvd.shutdown()


# ------------------------------------------------------------------------------------- worker side
def _horovod_worker_entry(
    train_fn: Callable[..., Any], use_gpu: bool, error_dir: str, args: tuple[Any, ...]
) -> Any:
    """Entry point of one Horovod worker process (top level so that it pickles by reference)."""
    from credspark.distributed.launchers import _exit_when_orphaned, _record_error, _worker_logging, run_worker

    _worker_logging()
    # A killed safe_shell_exec middleman (or Spark task) must not leave this process training.
    _exit_when_orphaned()
    rank = int(os.environ.get("HOROVOD_RANK", "-1"))
    try:
        ctx = HorovodContext.init(use_gpu=use_gpu)
    except BaseException as exc:
        _record_error(error_dir, rank, exc)
        raise
    try:
        return run_worker(ctx, train_fn, args, error_dir)
    finally:
        ctx.close()


# ------------------------------------------------------------------------------------- driver side
def _worker_env(timeout_s: float) -> dict[str, str]:
    t = str(max(1, int(timeout_s)))
    return {
        # A rank waiting this long for a peer's tensor gives up instead of hanging.
        "HOROVOD_STALL_CHECK_TIME_SECONDS": str(max(1, min(60, int(timeout_s) // 2))),
        "HOROVOD_STALL_SHUTDOWN_TIME_SECONDS": t,
        # gloo's rendezvous and transport timeout (default 30 s, too short on a loaded machine).
        "HOROVOD_GLOO_TIMEOUT_SECONDS": t,
    }


class _Deadline(threading.Thread):
    """Cancels the Horovod Spark job if the run is still going after ``timeout_s``."""

    def __init__(self, sc: Any, timeout_s: float) -> None:
        super().__init__(name="credspark-horovod-deadline", daemon=True)
        self.sc, self.timeout_s = sc, float(timeout_s)
        self.done = threading.Event()
        self.fired = False

    def run(self) -> None:
        if self.done.wait(self.timeout_s):
            return
        self.fired = True
        from horovod.spark.driver import job_id

        # horovod.spark.run names its job group after a module counter it has already advanced.
        self.sc.cancelJobGroup(f"horovod.spark.run.{job_id.JOB_ID}")


def run(
    train_fn: Callable[..., Any],
    num_workers: int,
    args: Sequence[Any],
    *,
    use_gpu: bool = False,
    timeout_s: float = 3600.0,
    start_timeout_s: float | None = None,
) -> Any:
    """Run ``train_fn(ctx, *args)`` on ``num_workers`` Horovod workers started as Spark tasks.

    Needs an active SparkSession with at least ``num_workers`` free task slots (each Horovod process is
    launched from one Spark task).

    Args:
        train_fn: Top-level function ``(ctx: WorkerContext, *args) -> result``.
        num_workers: Number of Horovod processes.
        args: Arguments after ``ctx`` (small and picklable: feed handles and options, not data).
        use_gpu: Compute on one GPU per worker. Defaults to False.
        timeout_s: Limit of the whole run and of any wait on a peer. Defaults to 3600.
        start_timeout_s: Limit for the Spark tasks to start and register (None: ``min(timeout_s, 600)``).

    Returns:
        What ``train_fn`` returned on rank 0.

    Raises:
        WorkerError: A worker raised (its rank, error type, message and traceback).
        TrainingTimeoutError: The run passed ``timeout_s`` and was cancelled.
    """
    import horovod.spark
    from pyspark import SparkContext

    from credspark.distributed.launchers import TrainingTimeoutError, WorkerError, _worker_error

    sc = SparkContext._active_spark_context
    if sc is None:
        raise RuntimeError("backend 'horovod' needs an active SparkSession (credspark.io.spark.build_session)")
    error_dir = tempfile.mkdtemp(prefix="credspark-horovod-")
    # Only additions: each Spark task passes its own environment on to the process it starts.
    env = _worker_env(timeout_s)
    start_timeout = int(start_timeout_s if start_timeout_s is not None else min(float(timeout_s), 600.0))
    deadline = _Deadline(sc, timeout_s)
    deadline.start()
    started = time.monotonic()
    try:
        results = horovod.spark.run(
            _horovod_worker_entry,
            args=(train_fn, bool(use_gpu), error_dir, tuple(args)),
            num_proc=int(num_workers),
            start_timeout=max(1, start_timeout),
            use_gloo=True,
            env=env,
            verbose=0,
        )
    except Exception as exc:
        deadline.done.set()
        recorded = _worker_error(error_dir, int(num_workers))
        if recorded is not None:
            raise recorded from exc
        if deadline.fired:
            raise TrainingTimeoutError(f"Horovod training did not finish within {timeout_s:g} s") from exc
        raise WorkerError(-1, type(exc).__name__, str(exc)[-4000:]) from exc
    finally:
        deadline.done.set()
        shutil.rmtree(error_dir, ignore_errors=True)
    logger.info("horovod: %d workers finished in %.1f s", num_workers, time.monotonic() - started)
    return results[0]
