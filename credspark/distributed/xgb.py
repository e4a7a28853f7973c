"""Distributed XGBoost on Spark with any objective, the focal loss included (driver side).

``xgboost.spark.SparkXGBClassifier`` accepts only objective *names* (dmlc/xgboost#10420), so this module
runs xgboost's own collective the way xgboost.spark does internally: the driver starts a
``RabitTracker``, a barrier-mode ``mapInPandas`` stage runs one worker per partition (all tasks start
together or none does), each worker joins the collective and trains on its own partition, and the chief
returns the model as UBJSON bytes. The partition code lives in :mod:`credspark.distributed._xgb_worker`
(no pyspark there).

Failure handling: a worker that raises fails its task; a barrier result stage is not retried, Spark kills
the other task, and its xgboost collective call fails at once because the peer's socket closed. The driver
raises :class:`DistributedXGBError` with the failing worker's own message. The tracker waits in a daemon
thread, bounded by ``timeout_s`` (its bootstrap timeout) and never joined for longer than that.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import xgboost as xgb
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from credspark.distributed._xgb_worker import (
    FEATURES_COL,
    LABEL_COL,
    PEER_FAILURE_NOTE,
    RESULT_SCHEMA,
    VALID_COL,
    WORKER_ERROR_PREFIX,
    GlobalFocalMetric,
    WorkerTask,
    worker_partition,
)
from credspark.distributed.slots import SLOTS_HINT, wait_for_slots
from credspark.errors import ConfigError, CredsparkError, SlotsError, jvm_root_cause
from credspark.models.focal_xgb import FocalXGBClassifier

__all__ = [
    "DistributedXGBError",
    "DistributedXGBResult",
    "FEATURES_COL",
    "LABEL_COL",
    "VALID_COL",
    "fit_focal_xgb",
    "global_prior_log_odds",
    "train_distributed",
    "tracker_host",
]

log = logging.getLogger(__name__)


class DistributedXGBError(CredsparkError):
    """Distributed XGBoost training failed; the message carries the failing worker's error."""


@dataclass(frozen=True)
class DistributedXGBResult:
    """What a distributed training run returns.

    Attributes:
        model: The chief's booster as UBJSON bytes (cut to ``best_iteration + 1`` rounds).
        best_iteration: 0-based best round (the last one without early stopping).
        evals_result: ``{"train": {metric: [...]}, "valid": {...}}`` per round (global values).
        worker_sha256: SHA-256 of each worker's final model, index = rank (all equal).
        worker_best_iterations: Each worker's best round, index = rank (all equal).
        worker_rows: ``(n_train, n_valid)`` per rank.
        worker_seconds: Each worker's wall time, index = rank.
    """

    model: bytes
    best_iteration: int
    evals_result: dict[str, Any]
    worker_sha256: tuple[str, ...]
    worker_best_iterations: tuple[int, ...]
    worker_rows: tuple[tuple[int, int], ...]
    worker_seconds: tuple[float, ...]

    def booster(self) -> xgb.Booster:
        """The model as an ``xgboost.Booster``."""
        b = xgb.Booster()
        b.load_model(bytearray(self.model))
        return b


def tracker_host(spark_conf_get: Callable[[str, str | None], str | None], master: str | None) -> str:
    """The address workers reach the tracker at: loopback for local masters, else the driver host.

    Args:
        spark_conf_get: ``SparkConf.get``-like lookup.
        master: The Spark master URL.

    Returns:
        An IP address or host name.
    """
    if master and master.startswith("local"):
        return "127.0.0.1"
    host = spark_conf_get("spark.driver.host", None)
    if not host:
        raise ConfigError("xgb: spark.driver.host is not set; set xgb.tracker_host")
    return host


class _Tracker:
    """A started RabitTracker whose ``wait_for`` runs in a daemon thread (so a failed run never hangs)."""

    def __init__(self, n_workers: int, host: str, timeout_s: int) -> None:
        from xgboost.tracker import RabitTracker

        # sortby="task": ranks follow the task ids we pass (the partition ids), so rank 0 is partition 0.
        self._tracker = RabitTracker(n_workers=n_workers, host_ip=host, sortby="task", timeout=int(timeout_s))
        self._tracker.start()
        self.worker_args: dict[str, Any] = dict(self._tracker.worker_args())
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._wait, name="xgb-tracker", daemon=True)
        self._thread.start()

    def _wait(self) -> None:
        try:
            self._tracker.wait_for()
        except Exception as e:  # noqa: BLE001 - recorded, logged by close()
            self.error = e

    def close(self, join_s: float) -> bool:
        """Wait up to ``join_s`` for the tracker to finish; free it if it did. Returns whether it finished."""
        self._thread.join(timeout=join_s)
        if self._thread.is_alive():
            # Freeing a tracker whose wait_for still runs would pull memory from under the native thread;
            # the daemon thread ends with its bootstrap timeout or the process.
            log.warning("xgboost tracker still running after %.0f s; leaving it to its timeout", join_s)
            return False
        if self.error is not None:
            log.warning("xgboost tracker ended with an error: %s", self.error)
        self._tracker.free()
        return True


def _root_cause(exc: BaseException) -> str:
    """The failing worker's own message from a Spark job error, else the error's first line."""
    text = str(exc)
    lines = [ln.strip() for ln in text.splitlines() if WORKER_ERROR_PREFIX in ln]
    # Prefer a worker's own error over a peer's report that it lost the collective.
    own = [ln for ln in lines if PEER_FAILURE_NOTE not in ln]
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    chosen = (own or lines or [jvm_root_cause(text) or first])[0]
    return chosen[chosen.find(WORKER_ERROR_PREFIX) :] if WORKER_ERROR_PREFIX in chosen else chosen


def _check_slots(df: DataFrame, num_workers: int, wait_s: float) -> None:
    """Refuse a barrier stage that cannot get its slots (Spark would retry the submission for ~10 minutes)."""
    sc = df.sparkSession.sparkContext
    count = wait_for_slots(sc, num_workers, wait_s)
    if num_workers > count.free:
        raise SlotsError(
            f"xgb.num_workers={num_workers} needs {num_workers} task slots at once (a barrier stage) but this Spark "
            f"application has {count.free} free ({count.capacity} in all on {count.executors} executor(s)): "
            f"{SLOTS_HINT}"
        )


def train_distributed(
    df: DataFrame,
    task: WorkerTask,
    *,
    num_workers: int,
    key_cols: Sequence[str] | None = None,
    timeout_s: int = 600,
    host: str | None = None,
) -> DistributedXGBResult:
    """Train one XGBoost model over ``num_workers`` Spark barrier tasks.

    Args:
        df: Rows with ``features`` (array<float> of width ``task.n_features``), ``label`` and, when
            ``task.has_validation``, ``is_valid``.
        task: Parameters, objective, metric and rounds (``comm_args`` is filled in here).
        num_workers: Number of workers (= partitions = barrier tasks); must fit the free task slots.
        key_cols: Columns that identify a row; the data are hash-partitioned and sorted by them so that
            each worker sees the same rows in the same order on every run (deterministic subsampling).
            None repartitions round-robin (row order then depends on the shuffle).
        timeout_s: Tracker bootstrap timeout and collective timeout, seconds.
        host: Tracker address; None picks loopback for local masters, else ``spark.driver.host``.

    Returns:
        The chief's model and the per-worker checks.

    Raises:
        DistributedXGBError: A worker failed (message = its error), or the workers' models differ.
        ConfigError: ``num_workers`` is below 1.
        SlotsError: ``num_workers`` does not fit the free task slots (after waiting up to ``timeout_s`` for
            executors to register).
    """
    if num_workers < 1:
        raise ConfigError(f"xgb.num_workers must be >= 1, got {num_workers}")
    _check_slots(df, num_workers, float(timeout_s))
    spark = df.sparkSession
    conf = spark.sparkContext.getConf()
    host = host or tracker_host(conf.get, spark.sparkContext.master)
    cols = [FEATURES_COL, LABEL_COL] + ([VALID_COL] if task.has_validation else [])
    data = df.select(*cols, *[c for c in (key_cols or ()) if c not in cols])
    if key_cols:
        data = data.repartition(num_workers, *key_cols).sortWithinPartitions(*key_cols)
    else:
        data = data.repartition(num_workers)
    data = data.select(*cols)

    tracker = _Tracker(num_workers, host, timeout_s)
    ok = False
    try:
        full = replace(task, comm_args=dict(tracker.worker_args, dmlc_timeout=int(timeout_s)))
        fn = functools.partial(_barrier_partition, task=full)
        try:
            rows = data.mapInPandas(fn, schema=RESULT_SCHEMA, barrier=True).collect()
        except Exception as e:
            raise DistributedXGBError(f"distributed XGBoost failed: {_root_cause(e)}") from e
        ok = True
    finally:
        tracker.close(join_s=timeout_s if ok else 5.0)
    return _result(rows, num_workers)


def _barrier_partition(frames, task: WorkerTask):  # noqa: ANN001, ANN202 - Spark's mapInPandas signature
    """Barrier-task entry: the Spark partition id is the worker's task id (and thus its rank)."""
    from pyspark import BarrierTaskContext

    ctx = BarrierTaskContext.get()
    return worker_partition(frames, task, str(ctx.partitionId()))


def _result(rows: list, num_workers: int) -> DistributedXGBResult:
    rows = sorted(rows, key=lambda r: r["rank"])
    if len(rows) != num_workers or [r["rank"] for r in rows] != list(range(num_workers)):
        raise DistributedXGBError(f"expected one result from each of {num_workers} workers, got ranks "
                                  f"{[r['rank'] for r in rows]}")
    digests = tuple(r["model_sha256"] for r in rows)
    bests = tuple(int(r["best_iteration"]) for r in rows)
    if len(set(digests)) != 1 or len(set(bests)) != 1:
        raise DistributedXGBError(f"workers ended with different models (sha256 {digests}, best rounds {bests})")
    chief = rows[0]
    if chief["model"] is None:
        raise DistributedXGBError("the chief (rank 0) returned no model")
    return DistributedXGBResult(
        model=bytes(chief["model"]),
        best_iteration=bests[0],
        evals_result=json.loads(chief["evals_result"]),
        worker_sha256=digests,
        worker_best_iterations=bests,
        worker_rows=tuple((int(r["n_train"]), int(r["n_valid"])) for r in rows),
        worker_seconds=tuple(float(r["seconds"]) for r in rows),
    )


def global_prior_log_odds(df: DataFrame, label_col: str = LABEL_COL, eps: float = 1e-6) -> float:
    """Log-odds of the positive rate of ``df`` computed with one Spark aggregate (nothing collected).

    Used as every worker's ``base_score``: each worker's own partition prior would differ.

    Args:
        df: The training rows.
        label_col: 0/1 label column. Defaults to ``"label"``.
        eps: Clip of the rate to ``[eps, 1 - eps]``. Defaults to 1e-6.

    Returns:
        ``log(rate / (1 - rate))``.
    """
    row = df.agg(F.avg(F.col(label_col).cast("double")).alias("rate"), F.count(F.lit(1)).alias("n")).first()
    if row is None or not row["n"]:
        raise ValueError("global_prior_log_odds: no training rows")
    rate = min(max(float(row["rate"]), eps), 1.0 - eps)
    return math.log(rate / (1.0 - rate))


def fit_focal_xgb(
    df: DataFrame,
    estimator: FocalXGBClassifier,
    *,
    num_workers: int,
    key_cols: Sequence[str] | None = None,
    timeout_s: int = 600,
    host: str | None = None,
) -> FocalXGBClassifier:
    """Fit a :class:`FocalXGBClassifier` over Spark workers; the distributed twin of ``estimator.fit``.

    The starting margin is the global training prior (one Spark aggregate over the non-validation rows);
    early stopping follows the exact global mean focal loss of the validation rows
    (:class:`~credspark.distributed._xgb_worker.GlobalFocalMetric`), so all workers stop on the same round;
    the booster is cut to ``best_iteration + 1`` rounds as ``fit`` does.

    Args:
        df: ``features`` array<float>, ``label`` and ``is_valid`` columns (validation rows drive early
            stopping and never train).
        estimator: An estimator carrying the parameters (``n_jobs`` = threads per worker); not modified.
        num_workers: Number of barrier tasks.
        key_cols: Row identity columns for a deterministic partitioning (see :func:`train_distributed`).
        timeout_s: Tracker and collective timeout, seconds.
        host: Tracker address (None: automatic).

    Returns:
        A new fitted estimator with the same parameters (``booster_``, ``best_iteration_``,
        ``n_features_in_``, ``base_score_``, ``evals_result_``; plus ``distributed_``, the
        :class:`DistributedXGBResult` with the per-worker checks).
    """
    n_features = _feature_width(df)
    if estimator.feature_names is not None and len(estimator.feature_names) != n_features:
        raise ValueError(f"feature_names has {len(estimator.feature_names)} names, features have {n_features}")
    base_score = global_prior_log_odds(df.where(~F.col(VALID_COL)))
    task = WorkerTask(
        params=estimator.xgb_params(base_score),
        num_boost_round=int(estimator.n_estimators),
        n_features=n_features,
        feature_names=tuple(estimator.feature_names) if estimator.feature_names is not None else None,
        objective=estimator.objective(),
        custom_metric=GlobalFocalMetric(estimator.alpha, estimator.gamma),
        maximize=False,
        early_stopping_rounds=estimator.early_stopping_rounds,
        has_validation=True,
        nthread=int(estimator.n_jobs or 1),
    )
    result = train_distributed(df, task, num_workers=num_workers, key_cols=key_cols, timeout_s=timeout_s, host=host)
    # The chief's booster is already cut to best_iteration + 1 rounds, so its last round is the best one.
    model = FocalXGBClassifier.from_booster_bytes(result.model, **estimator.get_params())
    model.evals_result_ = result.evals_result
    model.distributed_ = result
    return model


def _feature_width(df: DataFrame) -> int:
    row = df.select(F.size(FEATURES_COL).alias("w")).first()
    if row is None:
        raise ValueError("no rows to train on")
    return int(row["w"])
