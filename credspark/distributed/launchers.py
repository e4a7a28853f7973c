"""Launch one training function on N workers with the backend chosen in config.

A training function has the signature ``train_fn(ctx: WorkerContext, *args) -> result`` and must be a
top-level, importable function (it is pickled by reference to reach the workers); only the chief's
(rank 0's) result comes back. Backends:

- ``torch_distributor``: ``pyspark.ml.torch.distributor.TorchDistributor(num_processes, local_mode,
  use_gpu).run(...)``: torchrun workers joined in a ``torch.distributed`` group, gloo on CPU and NCCL
  on GPU; ``local_mode=False`` runs them as barrier tasks on the executors.
- ``horovod``: :func:`credspark.distributed.horovod_backend.run` (the Horovod lane's module).
- ``local``: the function in this process with a :class:`LocalContext` (world size 1).

Failure handling (TorchDistributor): a worker that raises writes its error (type, message, traceback)
as JSON to the run's error folder and prints it on one marked line; a driver-side watchdog cancels the
Spark job as soon as an error appears, or when ``timeout_s`` passes, so a failed or stuck worker never
leaves the run hanging. The collectives use the same timeout, so a rank whose peer died also gives up.
The error folder must be readable from the driver (the same shared file system as the checkpoints);
where it is not, the marked line in Spark's error message is used instead. A worker whose launcher went
away (the Spark task's torchrun wrapper, or the torchrun agent, killed or lost) stops its agent and exits
within a second (:func:`_exit_when_orphaned`), so no training keeps running, and writing checkpoints and
models, after ``launch()`` has failed; a Horovod worker does the same when its ``safe_shell_exec``
middleman or the Spark task above it goes away.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from credspark.errors import SlotsError, jvm_root_cause

if TYPE_CHECKING:  # pragma: no cover
    from credspark.distributed._context import WorkerContext

# This module imports no torch at load time: the Spark task that starts torchrun unpickles a reference to
# _torch_worker_entry, and a torch import there would cost seconds per task for nothing.

__all__ = ["launch", "BACKENDS", "WorkerError", "TrainingTimeoutError", "ERROR_MARKER", "run_worker"]

logger = logging.getLogger(__name__)

BACKENDS = ("torch_distributor", "horovod", "local")

#: Prefix of the one stdout line a failing worker prints (JSON follows) so the driver can find it in
#: Spark's error text when it cannot read the error folder.
ERROR_MARKER = "CREDSPARK_WORKER_ERROR "

TrainFn = Callable[..., Any]


class WorkerError(RuntimeError):
    """A training worker raised: carries the original error's rank, type, message and traceback.

    Args:
        rank: Rank that failed first (-1 when unknown).
        error_type: Class name of the worker's exception.
        message: Its message.
        worker_traceback: Its formatted traceback (may be empty).
        failed_at: Wall-clock time (``time.time()``) the worker recorded the error, or None.
    """

    def __init__(
        self, rank: int, error_type: str, message: str, worker_traceback: str = "", failed_at: float | None = None
    ) -> None:
        super().__init__(f"training worker {rank} failed: {error_type}: {message}")
        self.rank = rank
        self.error_type = error_type
        self.message = message
        self.worker_traceback = worker_traceback
        self.failed_at = failed_at


class TrainingTimeoutError(TimeoutError):
    """The distributed run did not finish within ``timeout_s`` and was cancelled."""


# ------------------------------------------------------------------------------- worker side
def _record_error(error_dir: str | None, rank: int, exc: BaseException) -> None:
    info = {
        "rank": rank,
        "type": type(exc).__name__,
        "message": str(exc),
        "traceback": "".join(traceback.format_exception(exc)),
        "time": time.time(),
    }
    # One line, printed first: TorchDistributor keeps the last 100 output lines in its error message.
    print(ERROR_MARKER + json.dumps({k: info[k] for k in ("rank", "type", "message")}), flush=True)
    if error_dir:
        try:
            path = Path(error_dir) / f"rank-{rank}.json"
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(info))
            os.replace(tmp, path)
        except OSError:  # the folder may not be visible from this worker; the marker line remains
            pass


def run_worker(ctx: WorkerContext, train_fn: TrainFn, args: Sequence[Any], error_dir: str | None) -> Any:
    """Run ``train_fn(ctx, *args)`` and record a failure for the driver (used by every backend).

    Args:
        ctx: This worker's context.
        train_fn: The training function.
        args: Its arguments after ``ctx``.
        error_dir: Folder where a failure is written as ``rank-<r>.json`` (None: marker line only).

    Returns:
        The chief's result; None on other ranks.
    """
    try:
        result = train_fn(ctx, *args)
    except BaseException as exc:
        _record_error(error_dir, ctx.rank, exc)
        raise
    return result if ctx.is_chief else None


def _worker_logging() -> None:
    """Send credspark's INFO records to stdout in a fresh worker process (the launcher relays stdout)."""
    root = logging.getLogger("credspark")
    if not root.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
        root.addHandler(handler)
        root.setLevel(logging.INFO)


def _torch_worker_entry(payload: bytes, use_gpu: bool, timeout_s: float, error_dir: str) -> Any:
    """Entry point of one torchrun worker started by TorchDistributor (top-level so it pickles by name).

    ``payload`` is the cloudpickled ``(train_fn, args)``: as bytes it passes through the Spark task that
    starts torchrun without being unpickled there (which would import torch and the models in that process).
    """
    from pyspark import cloudpickle

    from credspark.distributed._context import TorchDistContext

    rank = int(os.environ.get("RANK", "-1"))
    _worker_logging()
    _exit_without_native_teardown()
    _exit_when_orphaned()
    try:
        train_fn, args = cloudpickle.loads(payload)
        ctx = TorchDistContext.from_env(use_gpu=use_gpu, timeout_s=timeout_s)
    except BaseException as exc:
        _record_error(error_dir, rank, exc)
        raise
    logger.debug("worker %d of %d joined the %s group", ctx.rank, ctx.world_size, ctx.backend)
    try:
        return run_worker(ctx, train_fn, args, error_dir)
    finally:
        ctx.close()


def _exit_without_native_teardown() -> None:
    """Make this torchrun worker process end with ``os._exit`` once Python is done, skipping native teardown.

    Seen here (torch 2.15, gloo): a worker that finished and left its process group cleanly sometimes
    aborts while the interpreter shuts down ("terminate called without an active exception", SIGABRT).
    Its torchrun agent then reports the node as failed and never enters the exit barrier, so the agent of
    every *successful* node waits the full exit-barrier timeout (300 s, not settable from torchrun's
    command line) before the Spark task can finish: a finished run looked like a hang of five minutes.
    An ``atexit`` hook runs after TorchDistributor's script has written the chief's output file; it flushes
    Python's streams and leaves with the status Python would have had (1 after an uncaught exception).
    """
    import atexit

    state = {"failed": False}
    previous_hook = sys.excepthook

    def hook(exc_type: type[BaseException], exc: BaseException, tb: Any) -> None:
        state["failed"] = True
        previous_hook(exc_type, exc, tb)

    def leave() -> None:
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(1 if state["failed"] else 0)

    sys.excepthook = hook
    atexit.register(leave)


def _parent_of(pid: int) -> int | None:
    """The parent pid of ``pid`` from ``/proc`` (None where there is no ``/proc`` or the process is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # "pid (comm) state ppid ...": comm may hold spaces or parentheses, so split after the last ')'.
    fields = stat[stat.rfind(")") + 2 :].split()
    return int(fields[1]) if len(fields) > 1 else None


#: Exit status of a worker that left because its launcher was gone (128 + SIGTERM, as if terminated).
ORPHAN_EXIT = 143


def _exit_when_orphaned(poll_s: float = 0.5) -> threading.Thread:
    """Watch this worker's launchers; when one is gone, stop the surviving parent and leave with ORPHAN_EXIT.

    Process chain under TorchDistributor: Spark task -> torchrun wrapper (``torch_run_process_wrapper``) ->
    torchrun agent -> this worker. The wrapper stops torchrun when the Spark task ends, but when the
    wrapper itself is killed (SIGKILL, the out-of-memory killer), nothing stops the agent and its workers:
    they kept training and wrote checkpoints and the final model after the driver's ``launch()`` had
    raised. Under Horovod: Spark task (Horovod's task service) -> ``safe_shell_exec`` middleman -> ``/bin/sh
    -c`` -> this worker; the middleman stops the command when the task dies, but nothing stops it when the
    middleman itself is killed. A daemon thread checks every ``poll_s`` seconds that this process's parent
    and the parent's parent are still the processes it started under; when either changed (the process
    died and its child was re-parented), it sends SIGTERM to a surviving parent (the torchrun agent, the
    shell) and ends this process with ``os._exit(ORPHAN_EXIT)``. Without ``/proc`` only the parent is
    watched.

    Args:
        poll_s: Seconds between checks. Defaults to 0.5.

    Returns:
        The started daemon thread.
    """
    agent = os.getppid()
    wrapper = _parent_of(agent)

    def gone() -> str | None:
        if os.getppid() != agent:
            return f"its parent (pid {agent}, the torchrun agent or Horovod's shell) is gone"
        if wrapper is not None and _parent_of(agent) != wrapper:
            return f"the process that started its parent (pid {wrapper}) is gone"
        return None

    def watch() -> None:
        while True:
            time.sleep(poll_s)
            reason = gone()
            if reason is None:
                continue
            try:
                sys.stderr.write(f"credspark worker pid {os.getpid()}: {reason}; stopping the run's remaining "
                                 "processes and exiting\n")
                sys.stderr.flush()
            except (OSError, ValueError):  # the stream may be a pipe nobody reads any more
                pass
            if os.getppid() == agent:
                try:
                    os.kill(agent, signal.SIGTERM)
                except OSError:
                    pass
            os._exit(ORPHAN_EXIT)

    thread = threading.Thread(target=watch, name="credspark-orphan-guard", daemon=True)
    thread.start()
    return thread


# ------------------------------------------------------------------------------- driver side
def _first_error(error_dir: str) -> dict[str, Any] | None:
    """The earliest recorded worker error, preferring one that is not a peer's communication failure."""
    found = []
    for p in Path(error_dir).glob("rank-*.json"):
        try:
            found.append(json.loads(p.read_text()))
        except (OSError, ValueError):
            continue
    if not found:
        return None
    found.sort(key=lambda e: e.get("time", 0.0))
    return found[0]


def _error_from_text(text: str) -> dict[str, Any] | None:
    for line in text.splitlines():
        pos = line.find(ERROR_MARKER)
        if pos >= 0:
            try:
                return json.loads(line[pos + len(ERROR_MARKER) :])
            except ValueError:
                continue
    return None


def _as_worker_error(info: dict[str, Any]) -> WorkerError:
    rank, error_type = int(info.get("rank", -1)), str(info.get("type", "Error"))
    failed_at = float(info["time"]) if "time" in info else None
    return WorkerError(rank, error_type, str(info.get("message", "")), info.get("traceback", ""), failed_at)


#: What a collective says when a peer's process went away: the symptom on the survivors, not the cause.
#: gloo under torch.distributed reports the lost connection; Horovod shuts down and reports that instead.
_PEER_LOST = ("Connection reset by peer", "Connection closed by peer", "Broken pipe", "Horovod has been shut down")


def _worker_error(error_dir: str, num_workers: int) -> WorkerError | None:
    """The run's WorkerError from the recorded errors, naming a rank that died without recording one.

    A worker process that is killed (the out-of-memory killer, a SIGKILL) or crashes in native code records
    nothing; its peers then fail in their next collective with a lost connection, which is all the error
    folder holds. Reporting that as the cause would point at the wrong rank, so when the first recorded
    error is a lost connection and some rank recorded no error, the error names that rank instead.
    """
    info = _first_error(error_dir)
    if info is None:
        return None
    err = _as_worker_error(info)
    if not any(t in err.message for t in _PEER_LOST):
        return err
    recorded = set()
    for p in Path(error_dir).glob("rank-*.json"):
        try:
            recorded.add(int(p.stem.split("-", 1)[1]))
        except ValueError:
            continue
    silent = sorted(set(range(num_workers)) - recorded)
    if not silent:
        return err
    names = ", ".join(map(str, silent))
    return WorkerError(
        silent[0] if len(silent) == 1 else -1, "WorkerDied",
        f"rank {names} ended without raising an error (its process was killed, e.g. by the out-of-memory "
        f"killer, or crashed); rank {err.rank} then lost its connection: {err.error_type}: {err.message}",
        err.worker_traceback, err.failed_at,
    )  # fmt: skip


_RETURN_CODE = re.compile(r"failed with return code (-?\d+)")


def _launcher_death(text: str) -> WorkerError | None:
    """A readable WorkerError when TorchDistributor says a task's torchrun command ended with a bad code.

    That is what the driver sees (inside a Java stack trace) when a torchrun wrapper or agent was killed
    before any worker recorded an error.
    """
    found = _RETURN_CODE.search(text)
    if found is None:
        return None
    code = int(found.group(1))
    how = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
    if code < 0:
        try:
            how += f" ({signal.Signals(-code).name})"
        except ValueError:
            pass
    return WorkerError(
        -1, "LauncherDied",
        f"a TorchDistributor task's torchrun process ended ({how}) before any worker recorded an error: the "
        "process was killed (e.g. by the out-of-memory killer or an operator) or crashed; its workers stop "
        "on their own. Look at the executor's log for that task.",
    )  # fmt: skip


def _cluster_snapshot(sc: Any) -> str:
    """One line on what Spark is doing: live executors and the active stages' task counts (for timeouts)."""
    try:
        tracker = sc.statusTracker()
        stages = []
        for sid in tracker.getActiveStageIds():
            info = tracker.getStageInfo(sid)
            if info is not None:
                stages.append(
                    f"stage {sid} '{info.name[:40]}': {info.numActiveTasks} running, {info.numCompletedTasks} done, "
                    f"{info.numFailedTasks} failed of {info.numTasks}"
                )
        managers = sc._jsc.sc().getExecutorMemoryStatus().size()  # the driver's block manager included
        return f"{managers} block managers alive (driver included); " + ("; ".join(stages) or "no active stage")
    except Exception as e:  # noqa: BLE001 - diagnostics only
        return f"status unavailable: {type(e).__name__}"


class _Watchdog(threading.Thread):
    """Cancels the run's Spark jobs when a worker records an error or the deadline passes."""

    def __init__(self, sc: Any, tag: str, error_dir: str, timeout_s: float, poll_s: float = 0.2) -> None:
        super().__init__(name="credspark-launch-watchdog", daemon=True)
        self.sc, self.tag, self.error_dir = sc, tag, error_dir
        self.deadline = time.monotonic() + float(timeout_s)
        self.poll_s = poll_s
        self.done = threading.Event()
        self.reason: str | None = None  # "error" or "timeout" once it cancelled
        self.snapshot: str | None = None  # what the cluster was doing when the deadline passed

    def run(self) -> None:
        while not self.done.wait(self.poll_s):
            if _first_error(self.error_dir) is not None:
                # A moment for the other ranks' errors to land, so the earliest one is reported.
                time.sleep(self.poll_s)
                self.reason = "error"
            elif time.monotonic() > self.deadline:
                self.reason = "timeout"
                self.snapshot = _cluster_snapshot(self.sc)
            else:
                continue
            self.sc.cancelJobsWithTag(self.tag)
            return


#: Seconds the launcher waits for a cancelled run to stop before it gives up on it.
_CANCEL_GRACE_S = 20.0


def _launch_error(
    exc: BaseException, error_dir: str, num_workers: int, timeout_s: float, watchdog: _Watchdog
) -> Exception:
    """The readable error for a failed TorchDistributor run: the worker's own, else the root cause."""
    recorded = _worker_error(error_dir, num_workers)
    if recorded is not None:
        return recorded
    text = str(exc)
    info = _error_from_text(text)
    if info is not None:
        return _as_worker_error(info)
    died = _launcher_death(text)
    if died is not None:
        return died
    if watchdog.reason == "timeout":
        return TrainingTimeoutError(
            f"distributed training did not finish within {timeout_s:g} s ({watchdog.snapshot or 'no status'})"
        )
    cause = jvm_root_cause(text)
    if cause is not None and cause.startswith("BarrierJobSlotsNumberCheckFailed"):
        return SlotsError(f"{cause} ({num_workers} training workers, distributed.num_workers)")
    return WorkerError(-1, type(exc).__name__, cause or text[-4000:])


def _launch_torch_distributor(
    train_fn: TrainFn,
    *,
    num_workers: int,
    use_gpu: bool,
    local_mode: bool,
    timeout_s: float,
    args: tuple[Any, ...],
    run_dir: str | None,
) -> Any:
    from pyspark import InheritableThread, cloudpickle
    from pyspark.ml.torch.distributor import TorchDistributor
    from pyspark.sql import SparkSession

    from credspark.distributed.slots import SLOTS_HINT, barrier_tasks, task_slots, wait_for_slots

    spark = SparkSession.getActiveSession()
    if spark is None:
        raise RuntimeError("backend 'torch_distributor' needs an active SparkSession (see build_session)")
    sc = spark.sparkContext
    started = time.monotonic()
    if not local_mode:
        # A barrier stage needs all its tasks running at once. Spark retries a submission with too few slots
        # for about ten minutes before failing, and that wait cannot be cancelled: so count first, waiting
        # (within timeout_s) for executors that are still registering or coming back.
        tasks = barrier_tasks(sc, num_workers, use_gpu)
        count = wait_for_slots(sc, tasks, float(timeout_s))
        if count.free < tasks:
            raise SlotsError(
                f"BarrierJobSlotsNumberCheckFailed: {num_workers} training workers need {tasks} task slots at once "
                f"(distributed.num_workers) but {count.free} are free ({count.capacity} in all on {count.executors} "
                f"executor(s)) after waiting {time.monotonic() - started:.0f} s: {SLOTS_HINT}"
            )
    if run_dir:
        Path(run_dir).mkdir(parents=True, exist_ok=True)
    error_dir = tempfile.mkdtemp(prefix="credspark-launch-", dir=run_dir)
    tag = f"credspark-train-{uuid.uuid4().hex[:12]}"
    distributor = TorchDistributor(num_processes=num_workers, local_mode=local_mode, use_gpu=use_gpu)
    remaining = max(1.0, float(timeout_s) - (time.monotonic() - started))
    watchdog = _Watchdog(sc, tag, error_dir, remaining)
    outcome: dict[str, Any] = {}

    def submit() -> None:
        # Job tags and interrupt-on-cancel are thread-local properties: set in the thread that submits.
        sc.setInterruptOnCancel(True)
        sc.addJobTag(tag)
        try:
            payload = cloudpickle.dumps((train_fn, tuple(args)))
            outcome["result"] = distributor.run(_torch_worker_entry, payload, use_gpu, float(timeout_s), error_dir)
        except BaseException as exc:  # noqa: BLE001 - handed to the launching thread
            outcome["error"] = exc
        finally:
            # A run given up on (see below) ends later, possibly after the context stopped.
            with contextlib.suppress(Exception):
                sc.removeJobTag(tag)

    runner = InheritableThread(submit, name="credspark-launch", daemon=True)
    watchdog.start()
    runner.start()
    try:
        # The watchdog cancels the job at the deadline; a job still in Spark's barrier-slot retries ignores
        # that, so the wait for it is bounded here and the thread is left behind (it ends with the JVM).
        runner.join(remaining + _CANCEL_GRACE_S)
        if runner.is_alive():
            count = task_slots(sc)
            raise TrainingTimeoutError(
                f"distributed training did not finish within {timeout_s:g} s and did not stop when cancelled "
                f"({num_workers} workers; {count.free} free task slots of {count.capacity}; "
                f"{watchdog.snapshot or _cluster_snapshot(sc)})"
            )
        if "error" in outcome:
            exc = outcome["error"]
            watchdog.done.set()
            watchdog.join()
            raise _launch_error(exc, error_dir, num_workers, timeout_s, watchdog) from exc
    finally:
        watchdog.done.set()
        shutil.rmtree(error_dir, ignore_errors=True)
    result = outcome["result"]
    logger.info("torch_distributor: %d workers finished in %.1f s", num_workers, time.monotonic() - started)
    return result


def launch(
    train_fn: TrainFn,
    *,
    backend: str,
    num_workers: int,
    use_gpu: bool = False,
    local_mode: bool = False,
    timeout_s: float = 3600.0,
    args: Sequence[Any] = (),
    run_dir: str | None = None,
) -> Any:
    """Run ``train_fn(ctx, *args)`` on ``num_workers`` workers and return the chief's result.

    Args:
        train_fn: Top-level function ``(ctx: WorkerContext, *args) -> result``.
        backend: ``"torch_distributor"``, ``"horovod"`` or ``"local"`` (``local`` needs
            ``num_workers == 1``).
        num_workers: Number of workers (ranks).
        use_gpu: One GPU per worker (NCCL) instead of CPU (gloo). Defaults to False.
        local_mode: TorchDistributor only: run the workers on the driver instead of as barrier tasks on
            the executors. Defaults to False.
        timeout_s: Wall-clock limit of the whole run and of every collective. Defaults to 3600.
        args: Arguments after ``ctx`` (picklable; keep them small: handles and configs, not data).
        run_dir: Folder on the file system shared by the driver and the workers where failing workers
            record their errors (so the watchdog cancels the run at once); None = a local temporary
            folder, enough when driver and executors share a machine. Defaults to None.

    Returns:
        What ``train_fn`` returned on rank 0.

    Raises:
        WorkerError: A worker raised (carries its rank, error type, message and traceback).
        TrainingTimeoutError: The run passed ``timeout_s`` (TorchDistributor backend).
    """
    if num_workers < 1:
        raise ValueError(f"num_workers must be >= 1, got {num_workers}")
    args = tuple(args)
    if backend == "local":
        if num_workers != 1:
            raise ValueError("backend 'local' runs one worker in this process: set num_workers to 1")
        from credspark.distributed._context import LocalContext

        device = "cuda" if use_gpu else "cpu"
        return run_worker(LocalContext(device), train_fn, args, None)
    if backend == "torch_distributor":
        return _launch_torch_distributor(
            train_fn, num_workers=num_workers, use_gpu=use_gpu, local_mode=local_mode, timeout_s=timeout_s,
            args=args, run_dir=run_dir,
        )  # fmt: skip
    if backend == "horovod":
        # ---- slot filled by the Horovod lane: credspark/distributed/horovod_backend.py must define
        #      run(train_fn, num_workers, args, *, use_gpu, timeout_s) -> chief's result, building a
        #      WorkerContext (HorovodContext) per worker and calling run_worker(ctx, train_fn, args, error_dir).
        try:
            from credspark.distributed import horovod_backend
        except ImportError as exc:
            raise RuntimeError("backend 'horovod' needs Horovod (make horovod) and its backend module") from exc
        return horovod_backend.run(train_fn, num_workers, args, use_gpu=use_gpu, timeout_s=timeout_s)
    raise ValueError(f"unknown backend {backend!r}; choose one of {BACKENDS}")

