"""Spark-free partition code of the distributed XGBoost trainer (the body of the barrier stage).

Each Spark barrier task calls :func:`train_partition` on the pandas frames of its own partition: it
builds a training and a validation DMatrix from those rows only, joins xgboost's collective (the tracker
started by the driver, :mod:`credspark.distributed.xgb`) and runs ``xgboost.train``; histograms and the
quantile sketch are all-reduced by xgboost, so every worker grows the same trees. Every worker reports
the SHA-256 of its final model (the driver checks they agree); only the chief (rank 0) ships the model
bytes (UBJSON). Nothing here imports pyspark, so the same code runs under plain pandas in unit tests
(world size 1 needs no tracker and no communicator).

Early stopping uses :class:`GlobalFocalMetric`: the *exact* mean focal loss over every worker's
validation rows, from an all-reduced ``(sum of losses, row count)``. Why not a plain custom metric:
xgboost's callback averages a custom metric over workers with equal weights (exact only for equal-size
partitions), and a worker whose validation part differs would stop on a different round. The built-in
``auc`` metric would also stop every worker on the same round, but it is a weighted mean of per-worker
AUCs and not the loss being minimised; matching the single-process ``FocalXGBClassifier.fit`` (which
stops on the focal loss) keeps the distributed model comparable to it.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb
from xgboost import collective

from credspark.models.focal_xgb import focal_loss, keep_best_rounds
from credspark.models.inputs import stack_array_column

__all__ = [
    "FEATURES_COL",
    "LABEL_COL",
    "VALID_COL",
    "RESULT_SCHEMA",
    "TRAIN_EVAL",
    "VALID_EVAL",
    "WORKER_ERROR_PREFIX",
    "PEER_FAILURE_NOTE",
    "GlobalFocalMetric",
    "WorkerTask",
    "dmatrices_from_frames",
    "train_partition",
    "worker_partition",
]

#: Input columns of the barrier stage: ``features`` array<float> (fixed width), ``label`` 0/1,
#: ``is_valid`` boolean (True = validation row, used for early stopping only).
FEATURES_COL = "features"
LABEL_COL = "label"
VALID_COL = "is_valid"

#: One row per worker. ``model`` is the UBJSON booster on the chief only (null elsewhere).
RESULT_SCHEMA = (
    "rank int, task_id string, n_train long, n_valid long, best_iteration int, num_rounds int, "
    "model_sha256 string, evals_result string, seconds double, model binary"
)

#: Names of the evaluation sets in ``evals_result``.
TRAIN_EVAL = "train"
VALID_EVAL = "valid"

#: Start of the message of a worker's failure; the driver looks for it to report the root cause.
WORKER_ERROR_PREFIX = "xgboost worker task"
#: Marks a failure that looks like the consequence of a peer's (a collective call that lost its peer).
PEER_FAILURE_NOTE = "(collective error, probably after a peer failed)"

# Message fragments of xgboost's collective errors: a worker that sees one failed because a peer died
# (the peer's own error is the root cause).
_PEER_FAILURE_HINTS = ("allreduce", "allgather", "broadcast", "ring", "collective", "connection", "socket", "tracker")


class GlobalFocalMetric:
    """Mean focal loss over the rows of *every* worker (``custom_metric`` for ``xgboost.train``).

    Each worker sums its rows' (weighted) losses and counts its rows; when the collective is running the
    two numbers are all-reduced, so every worker gets the exact global mean whatever its partition size.
    With world size 1 it is the plain (weighted) mean, equal to ``FocalMetric``.

    Receives raw margins (what xgboost passes with a custom objective). A worker with no rows in an
    evaluation set contributes ``(0, 0)``; an evaluation set empty on every worker gives NaN.

    Args:
        alpha: Weight of the positive class, in (0, 1).
        gamma: Focusing parameter, >= 0.
    """

    name = "focal"

    def __init__(self, alpha: float = 0.25, gamma: float = 2.0) -> None:
        focal_loss(np.zeros(1), np.zeros(1), alpha, gamma)  # validates alpha and gamma
        self.alpha = float(alpha)
        self.gamma = float(gamma)

    def __call__(self, preds: np.ndarray, dmatrix: xgb.DMatrix) -> tuple[str, float]:
        """Return ``("focal", global mean focal loss)``."""
        y = dmatrix.get_label()
        loss = focal_loss(preds, y, self.alpha, self.gamma) if y.size else np.zeros(0)
        w = dmatrix.get_weight()
        if w.size:
            sums = np.array([float(np.dot(loss, w)), float(w.sum())], dtype=np.float64)
        else:
            sums = np.array([float(loss.sum()), float(loss.size)], dtype=np.float64)
        if collective.is_distributed():
            sums = collective.allreduce(sums, collective.Op.SUM)
        return self.name, float(sums[0] / sums[1]) if sums[1] > 0 else float("nan")

    def __repr__(self) -> str:
        return f"GlobalFocalMetric(alpha={self.alpha}, gamma={self.gamma})"


@dataclass(frozen=True)
class WorkerTask:
    """Everything a worker needs, shipped to the barrier tasks (picklable, no Spark objects).

    Attributes:
        params: Booster parameters for ``xgboost.train`` (objective name, base_score, seed, ...).
        num_boost_round: Maximum number of rounds.
        n_features: Width of the ``features`` arrays.
        feature_names: Names given to the DMatrix columns, or None.
        objective: Callable objective ``obj(margin, dtrain) -> (grad, hess)``; None uses ``params``'s.
        custom_metric: Callable metric; it must give the same value on every worker (see
            :class:`GlobalFocalMetric`). None uses ``params["eval_metric"]``.
        maximize: Whether a larger metric is better (early stopping).
        early_stopping_rounds: Stop when the validation metric has not improved for this many rounds;
            None trains all rounds.
        has_validation: Whether a validation DMatrix is built (on every worker, empty ones included, so
            that every worker evaluates the same sets in the same order).
        comm_args: Arguments for ``xgboost.collective.CommunicatorContext`` (tracker address, timeout);
            empty = single process, no communicator.
        nthread: Threads per worker for DMatrix construction and training.
        peer_failure_grace_s: A worker that failed because a peer died waits this long before raising,
            so that the peer's own error (the root cause) reaches the driver first.
    """

    params: dict[str, Any]
    num_boost_round: int
    n_features: int
    feature_names: tuple[str, ...] | None = None
    objective: Callable[[np.ndarray, xgb.DMatrix], tuple[np.ndarray, np.ndarray]] | None = None
    custom_metric: Callable[[np.ndarray, xgb.DMatrix], tuple[str, float]] | None = None
    maximize: bool = False
    early_stopping_rounds: int | None = None
    has_validation: bool = True
    comm_args: dict[str, Any] = field(default_factory=dict)
    nthread: int = 1
    peer_failure_grace_s: float = 1.5


def _matrix(pdf: pd.DataFrame, task: WorkerTask) -> xgb.DMatrix:
    X = stack_array_column(pdf[FEATURES_COL], task.n_features, np.float32, FEATURES_COL)
    y = pdf[LABEL_COL].to_numpy(dtype=np.float32)
    names = list(task.feature_names) if task.feature_names is not None else None
    return xgb.DMatrix(X, label=y, feature_names=names, nthread=task.nthread)


def dmatrices_from_frames(
    frames: Iterable[pd.DataFrame], task: WorkerTask
) -> tuple[xgb.DMatrix, xgb.DMatrix | None]:
    """Training and validation DMatrix from one partition's frames.

    Args:
        frames: Pandas frames with ``features``, ``label`` and (if validation is used) ``is_valid``.
        task: The worker task (feature width and names, whether validation is used).

    Returns:
        ``(dtrain, dvalid)``; ``dvalid`` is None when ``task.has_validation`` is False. Either may hold
        zero rows (an empty partition still joins the collective).
    """
    cols = [FEATURES_COL, LABEL_COL] + ([VALID_COL] if task.has_validation else [])
    parts = [f[cols] for f in frames]
    pdf = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame({c: [] for c in cols})
    if pdf[LABEL_COL].isna().any():
        raise ValueError(f"column {LABEL_COL!r}: null labels cannot be used for training")
    if not task.has_validation:
        return _matrix(pdf, task), None
    valid = pdf[VALID_COL].fillna(False).to_numpy(dtype=bool)
    return _matrix(pdf[~valid], task), _matrix(pdf[valid], task)


def _model_digest(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def _train(dtrain: xgb.DMatrix, dvalid: xgb.DMatrix | None, task: WorkerTask) -> tuple[xgb.Booster, int, dict]:
    evals = [(dtrain, TRAIN_EVAL)] + ([(dvalid, VALID_EVAL)] if dvalid is not None else [])
    early = task.early_stopping_rounds if dvalid is not None else None
    evals_result: dict[str, Any] = {}
    booster = xgb.train(
        dict(task.params, nthread=task.nthread),
        dtrain,
        num_boost_round=task.num_boost_round,
        obj=task.objective,
        custom_metric=task.custom_metric,
        maximize=task.maximize,
        evals=evals,
        early_stopping_rounds=early,
        evals_result=evals_result,
        verbose_eval=False,
    )
    booster, best = keep_best_rounds(booster, early_stopped=early is not None)  # the model that is scored
    return booster, best, evals_result


def _is_peer_failure(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, xgb.core.XGBoostError) and any(h in text for h in _PEER_FAILURE_HINTS)


def train_partition(frames: Iterable[pd.DataFrame], task: WorkerTask, task_id: str = "0") -> dict[str, Any]:
    """Train on one partition's rows as one member of the collective; return this worker's result.

    Args:
        frames: This partition's pandas frames (see :func:`dmatrices_from_frames`).
        task: The worker task; ``comm_args`` empty trains alone (world size 1).
        task_id: This worker's task id (the Spark partition id); the tracker ranks workers by it.

    Returns:
        A dict with the :data:`RESULT_SCHEMA` fields; ``model`` holds UBJSON bytes on rank 0, else None.

    Raises:
        RuntimeError: Whatever failed, with a message starting with :data:`WORKER_ERROR_PREFIX` and naming
            the task, chained to the original exception.
    """
    t0 = time.perf_counter()
    try:
        if task.comm_args:
            with collective.CommunicatorContext(dmlc_task_id=str(task_id), **task.comm_args):
                # Built inside the context: in distributed mode the DMatrix agrees its shape with the peers.
                dtrain, dvalid = dmatrices_from_frames(frames, task)
                rank = collective.get_rank()
                booster, best, evals_result = _train(dtrain, dvalid, task)
        else:
            dtrain, dvalid = dmatrices_from_frames(frames, task)
            rank = 0
            booster, best, evals_result = _train(dtrain, dvalid, task)
    except Exception as exc:
        peer = _is_peer_failure(exc)
        if peer:
            time.sleep(task.peer_failure_grace_s)
        how = f" {PEER_FAILURE_NOTE}" if peer else ""
        raise RuntimeError(f"{WORKER_ERROR_PREFIX} {task_id} failed{how}: {type(exc).__name__}: {exc}") from exc
    raw = bytes(booster.save_raw(raw_format="ubj"))
    return {
        "rank": int(rank),
        "task_id": str(task_id),
        "n_train": int(dtrain.num_row()),
        "n_valid": int(dvalid.num_row()) if dvalid is not None else 0,
        "best_iteration": best,
        "num_rounds": int(booster.num_boosted_rounds()),
        "model_sha256": _model_digest(raw),
        "evals_result": json.dumps(evals_result),
        "seconds": round(time.perf_counter() - t0, 3),
        "model": raw if rank == 0 else None,
    }


def worker_partition(frames: Iterator[pd.DataFrame], task: WorkerTask, task_id: str = "0") -> Iterator[pd.DataFrame]:
    """The ``mapInPandas`` body: train on the partition and yield one result row (see :data:`RESULT_SCHEMA`).

    Args:
        frames: Iterator of this partition's pandas frames.
        task: The worker task.
        task_id: This worker's task id (the Spark partition id).

    Yields:
        One single-row frame.
    """
    row = train_partition(frames, task, task_id)
    yield pd.DataFrame({k: [v] for k, v in row.items()})
