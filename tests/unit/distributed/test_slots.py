"""Slot counting and the pre-flight check of distributed stages on the suite's local[2] session."""

from __future__ import annotations

import threading
import time

import pytest

from credspark.config import config_from_dict
from credspark.distributed.slots import plan_workers, task_slots
from credspark.errors import EXIT_CONFIG, SlotsError, jvm_root_cause

pytestmark = pytest.mark.spark


def _busy(sc, seconds: float) -> threading.Thread:
    """One task that sleeps for ``seconds`` in a background job (takes one of the two slots)."""
    from pyspark import InheritableThread

    def run() -> None:
        sc.parallelize([seconds], 1).map(lambda s: time.sleep(s) or s).collect()

    t = InheritableThread(run, daemon=True)
    t.start()
    return t


def test_the_slot_count_is_the_schedulers_capacity_minus_the_running_tasks(spark):
    sc = spark.sparkContext
    idle = task_slots(sc)
    assert (idle.capacity, idle.running, idle.free, idle.executors) == (2, 0, 2, 1)
    worker = _busy(sc, 4.0)
    deadline = time.monotonic() + 30
    busy = task_slots(sc)
    while busy.running == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
        busy = task_slots(sc)
    assert (busy.capacity, busy.running, busy.free) == (2, 1, 1)
    worker.join()


def test_a_barrier_run_waits_for_busy_slots_to_free_up_when_the_capacity_suffices(spark):
    # As when a training run is re-launched right after a failed one whose barrier tasks are still ending.
    from credspark.distributed.slots import wait_for_slots

    sc = spark.sparkContext
    worker = _busy(sc, 4.0)
    deadline = time.monotonic() + 30
    while task_slots(sc).running == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    t0 = time.monotonic()
    count = wait_for_slots(sc, 2, limit_s=60)
    waited = time.monotonic() - t0
    worker.join()
    assert count.free == 2 and 0.5 < waited < 30
    # more than the capacity: no wait at all; a short limit bounds the wait
    t0 = time.monotonic()
    assert wait_for_slots(sc, 3, limit_s=60).free == 2 and time.monotonic() - t0 < 5
    worker = _busy(sc, 4.0)
    while task_slots(sc).running == 0 and time.monotonic() < deadline + 30:
        time.sleep(0.1)
    assert wait_for_slots(sc, 2, limit_s=0.5).free == 1
    worker.join()


def test_auto_takes_every_free_slot_and_the_local_backend_one(spark):
    both_auto = {"distributed": {"num_workers": "auto"}, "xgb": {"num_workers": "auto"}}
    cfg = plan_workers(spark, config_from_dict(both_auto))
    assert (cfg.distributed.num_workers, cfg.xgb.num_workers) == (2, 2)
    local = plan_workers(spark, config_from_dict({"distributed": {"backend": "local", "num_workers": "auto"}}))
    assert (local.distributed.num_workers, local.xgb.num_workers) == (1, 2)


def test_auto_counts_only_the_free_slots(spark):
    worker = _busy(spark.sparkContext, 4.0)
    deadline = time.monotonic() + 30
    while task_slots(spark.sparkContext).running == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    cfg = plan_workers(spark, config_from_dict({"xgb": {"num_workers": "auto"}, "distributed": {"num_workers": 1}}))
    worker.join()
    assert cfg.xgb.num_workers == 1


@pytest.mark.parametrize(("section", "key"), [("distributed", "distributed.num_workers"), ("xgb", "xgb.num_workers")])
def test_more_workers_than_free_slots_is_refused_naming_the_setting(spark, section, key):
    cfg = config_from_dict({section: {"num_workers": 3}})
    t0 = time.monotonic()
    with pytest.raises(SlotsError) as err:
        plan_workers(spark, cfg)
    assert time.monotonic() - t0 < 5
    assert err.value.exit_code == EXIT_CONFIG
    assert f"{key}=3 needs 3 task slots" in str(err.value) and "has 2 free" in str(err.value)


def test_deep_workers_on_the_driver_need_no_executor_slots(spark):
    cfg = config_from_dict({"distributed": {"num_workers": 3, "local_mode": True}})
    assert plan_workers(spark, cfg).distributed.num_workers == 3


def test_the_launcher_refuses_a_barrier_run_that_cannot_get_its_slots(spark):
    from credspark.distributed.launchers import launch

    t0 = time.monotonic()
    with pytest.raises(SlotsError, match=r"BarrierJobSlotsNumberCheckFailed: 3 training workers need 3 task slots"):
        launch(print, backend="torch_distributor", num_workers=3, timeout_s=60)
    assert time.monotonic() - t0 < 10


def test_the_train_job_exits_2_before_reading_anything_when_slots_are_short(spark, warehouse, capsys):
    import jobs.train as train_job

    t0 = time.monotonic()
    with pytest.raises(SystemExit) as code:
        train_job.main(["--as-of", "2025-12-31", "--warehouse", str(warehouse), "--env", "ci",
                        "--set", "distributed.num_workers=3"])
    assert code.value.code == EXIT_CONFIG and time.monotonic() - t0 < 30
    line = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("train: FAILED")][-1]
    assert "distributed.num_workers=3 needs 3 task slots" in line and "has 2 free" in line
    assert not (warehouse / "_work").exists()


#: What PySpark's Py4JJavaError says when Spark gave up retrying a barrier job (stack shortened).
_BARRIER_FAILURE = """An error occurred while calling o51.collectToPython.
: org.apache.spark.scheduler.BarrierJobSlotsNumberCheckFailed: [SPARK-24819]: Barrier execution mode does not allow \
run a barrier stage that requires more slots than the total number of slots in the cluster currently.
\tat org.apache.spark.errors.SparkCoreErrors$.numPartitionsGreaterThanMaxNumConcurrentTasksError(SparkCoreErrors:242)
\tat org.apache.spark.scheduler.DAGScheduler.checkBarrierStageWithNumSlots(DAGScheduler.scala:580)
\tat scala.collection.immutable.List.foreach(List.scala:334)
\tat org.apache.spark.util.EventLoop$$anon$1.run(EventLoop.scala:49)
"""

_CAUSED_BY = """An error occurred while calling o88.save.
: org.apache.spark.SparkException: Job aborted due to stage failure: Task 0 in stage 3.0 failed
\tat org.apache.spark.scheduler.DAGScheduler.failJobAndIndependentStages(DAGScheduler.scala:2898)
Caused by: java.io.IOException: No space left on device
\tat java.base/java.io.FileOutputStream.writeBytes(Native Method)
\tSuppressed: java.lang.IllegalStateException: closed
"""


def test_the_jvm_root_cause_is_the_exception_line_not_a_stack_fragment():
    assert jvm_root_cause(_BARRIER_FAILURE) == (
        "BarrierJobSlotsNumberCheckFailed: [SPARK-24819]: Barrier execution mode does not allow run a barrier stage "
        "that requires more slots than the total number of slots in the cluster currently."
    )
    assert jvm_root_cause(_CAUSED_BY) == "IOException: No space left on device"
    assert jvm_root_cause("ValueError: plain python") is None


def test_timeout_s_bounds_a_distributed_run_that_does_not_finish(spark, tmp_path):
    from credspark.distributed.launchers import TrainingTimeoutError, launch

    t0 = time.monotonic()
    with pytest.raises(TrainingTimeoutError, match="did not finish within 15 s"):
        launch(lambda ctx: time.sleep(600), backend="torch_distributor", num_workers=1, timeout_s=15,
               run_dir=str(tmp_path))
    # The deadline, then the cancelled barrier task's clean-up: far from the worker's 600 s.
    assert time.monotonic() - t0 < 15 + 60
