"""How many tasks a barrier stage can really run at once, and the pre-flight check of every distributed stage.

A barrier stage (TorchDistributor's workers, Horovod's tasks, the XGBoost stage) needs all its tasks running
at the same time. Spark refuses a barrier job that asks for more than the application's concurrent-task
capacity, but only after retrying the submission
``spark.scheduler.barrier.maxConcurrentTasksCheck.maxFailures`` times (default 40) every
``spark.scheduler.barrier.maxConcurrentTasksCheck.interval`` (default 15 s): about ten minutes.
``SparkContext.defaultParallelism`` is not that capacity (it follows ``spark.default.parallelism`` and
counted cores where one task could run), so :func:`task_slots` asks the scheduler for the capacity of the
default resource profile (cores and task resources of the live executors, ``spark.task.cpus`` included)
and subtracts the tasks running now.

:func:`plan_workers` checks every distributed stage of a training run before any work starts and resolves
``num_workers: auto`` to the free slots.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from typing import Any

from credspark.config import AUTO, Config
from credspark.errors import ConfigError, SlotsError

__all__ = ["SlotCount", "task_slots", "wait_for_slots", "plan_workers", "barrier_tasks", "SLOTS_HINT"]

log = logging.getLogger(__name__)

#: What to change when there are too few slots (appended to the errors).
SLOTS_HINT = (
    "give the application more executor cores (spark-submit --total-executor-cores / --num-executors with "
    "--executor-cores) or lower the setting; 'auto' uses the free slots"
)


@dataclass(frozen=True)
class SlotCount:
    """Task slots of the running application (default resource profile).

    Attributes:
        capacity: Tasks the live executors can run at once.
        running: Tasks running now.
        executors: Live executors (in local mode the driver is the one executor).
    """

    capacity: int
    running: int
    executors: int

    @property
    def free(self) -> int:
        """Slots a barrier stage submitted now could get."""
        return max(0, self.capacity - self.running)


def task_slots(sc: Any) -> SlotCount:
    """The application's concurrent-task capacity and running tasks, from the driver's scheduler.

    Args:
        sc: The SparkContext.

    Returns:
        The counts at this moment (executors still registering are not counted).
    """
    jsc = sc._jsc.sc()
    profile = jsc.resourceProfileManager().defaultResourceProfile()
    capacity = int(jsc.maxNumConcurrentTasks(profile))
    infos = jsc.statusTracker().getExecutorInfos()
    # The task scheduler's own count, not the status tracker's: the status store updates an executor's
    # running tasks at most every spark.ui.liveUpdate.period and skipped the start of a task that began
    # soon after the last write (measured: a 4 s task on local[2] never showed as running).
    by_executor = sc._jvm.scala.jdk.javaapi.CollectionConverters.asJava(jsc.taskScheduler().runningTasksByExecutors())
    running = sum(int(n) for n in dict(by_executor).values())
    master = sc.master or ""
    # getExecutorInfos lists the driver too; in local mode the driver is the executor.
    executors = len(infos) if master.startswith("local") and not master.startswith("local-cluster") else len(infos) - 1
    return SlotCount(capacity=capacity, running=running, executors=max(executors, 0))


def _registration_wait_s(sc: Any) -> float:
    """How long executors may take to register: Spark's own ``maxRegisteredResourcesWaitingTime`` (30 s)."""
    raw = sc.getConf().get("spark.scheduler.maxRegisteredResourcesWaitingTime", "30s")
    try:
        return float(sc._jvm.org.apache.spark.network.util.JavaUtils.timeStringAsSec(raw))
    except Exception:  # noqa: BLE001 - an unreadable value falls back to Spark's default
        return 30.0


def wait_for_slots(
    sc: Any, needed: int | None, limit_s: float, poll_s: float = 0.5, settle_s: float = 2.0
) -> SlotCount:
    """Count the free slots, waiting (at most ``limit_s``) for registering executors and ending tasks.

    On a cluster the executors join seconds after the session starts. With ``needed`` set, this returns as
    soon as that many slots are free; with ``needed=None`` (``auto``) once at least one slot is free and
    the capacity has not changed for ``settle_s``. A local master's capacity is fixed: it waits only when
    ``needed`` fits the capacity and some slots are busy (e.g. the tasks of a barrier stage that just failed
    are still ending), and returns at once when ``needed`` exceeds the capacity or is None.

    Args:
        sc: The SparkContext.
        needed: Slots wanted, or None to take what the cluster settles on.
        limit_s: Longest wait, seconds.
        poll_s: Seconds between counts. Defaults to 0.5.
        settle_s: ``auto``: seconds the capacity must stay unchanged. Defaults to 2.0.

    Returns:
        The last count (the caller compares it with what it needs).
    """
    count = task_slots(sc)
    deadline = time.monotonic() + max(0.0, limit_s)
    if (sc.master or "").startswith("local") and not (sc.master or "").startswith("local-cluster"):
        if needed is None or needed > count.capacity:
            return count
        while count.free < needed and time.monotonic() < deadline:
            time.sleep(poll_s)
            count = task_slots(sc)
        return count
    stable_since, last_capacity = time.monotonic(), count.capacity
    while time.monotonic() < deadline:
        if needed is not None and count.free >= needed:
            return count
        if needed is None and count.free >= 1 and time.monotonic() - stable_since >= settle_s:
            return count
        time.sleep(poll_s)
        count = task_slots(sc)
        if count.capacity != last_capacity:
            stable_since, last_capacity = time.monotonic(), count.capacity
    return count


def barrier_tasks(sc: Any, num_workers: int, use_gpu: bool) -> int:
    """Spark tasks TorchDistributor starts for ``num_workers`` processes (one per task, or per GPU group)."""
    if not use_gpu:
        return num_workers
    per_task = int(float(sc.getConf().get("spark.task.resource.gpu.amount", "1") or 1))
    return max(1, num_workers // max(per_task, 1))


def _deep_uses_slots(cfg: Config) -> bool:
    dc = cfg.distributed
    return dc.backend == "horovod" or (dc.backend == "torch_distributor" and not dc.local_mode)


def plan_workers(spark: Any, cfg: Config) -> Config:
    """Check that every distributed stage of a training run fits the free task slots; resolve ``auto``.

    Run before any work starts. Stages checked: the deep models (``distributed.num_workers`` barrier tasks
    under TorchDistributor on executors, or Horovod tasks) and the XGBoost barrier stage
    (``xgb.num_workers``); the stages run one after the other, so each needs its workers' slots on its own.
    ``auto`` takes every free slot (at least 1; 1 for the in-process ``local`` backend). Waits for
    registering executors at most ``min(distributed.timeout_s, spark.scheduler.maxRegisteredResourcesWaitingTime)``.

    Args:
        spark: The session.
        cfg: The job config.

    Returns:
        ``cfg`` with both ``num_workers`` settings as integers.

    Raises:
        ConfigError: A ``num_workers`` setting is below 1.
        SlotsError: A stage needs more slots than are free (exit code 2), naming the setting and the count.
    """
    sc = spark.sparkContext
    dc, xc = cfg.distributed, cfg.xgb
    wanted = {"distributed.num_workers": dc.num_workers, "xgb.num_workers": xc.num_workers}
    for key, value in wanted.items():
        if value != AUTO and int(value) < 1:
            raise ConfigError(f"{key}={value}: must be >= 1 or 'auto'")
    needs: dict[str, int | None] = {"xgb.num_workers": None if xc.num_workers == AUTO else int(xc.num_workers)}
    if _deep_uses_slots(cfg):
        n = dc.num_workers
        needs["distributed.num_workers"] = None if n == AUTO else barrier_tasks(sc, int(n), dc.use_gpu)
    explicit = [n for n in needs.values() if n is not None]
    limit = min(float(dc.timeout_s), _registration_wait_s(sc))
    count = wait_for_slots(sc, max(explicit) if len(explicit) == len(needs) else None, limit)
    for key, n in needs.items():
        if n is not None and n > count.free:
            raise SlotsError(
                f"{key}={wanted[key]} needs {n} task slots at once (a barrier stage) but this Spark application "
                f"has {count.free} free ({count.capacity} in all on {count.executors} executor(s), "
                f"{count.running} busy): {SLOTS_HINT}"
            )
    free = max(1, count.free)
    deep_workers = dc.num_workers
    if deep_workers == AUTO:
        deep_workers = 1 if dc.backend == "local" else free
    xgb_workers = free if xc.num_workers == AUTO else int(xc.num_workers)
    if AUTO in wanted.values():
        log.info("num_workers auto: %d free task slot(s); distributed.num_workers=%d, xgb.num_workers=%d",
                 count.free, deep_workers, xgb_workers)
    return dataclasses.replace(
        cfg,
        distributed=dataclasses.replace(dc, num_workers=int(deep_workers)),
        xgb=dataclasses.replace(xc, num_workers=int(xgb_workers)),
    )
