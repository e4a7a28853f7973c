"""Distributed XGBoost and the training job in ``local-cluster[2,1,1024]`` (two executors): one session, every check.

Run once per test session as a subprocess by :func:`cluster_results` (used by
``tests/integration/test_xgb_distributed.py`` and ``tests/integration/test_jobs_train.py``; a local-cluster
session cannot share the test suite's JVM). Prints progress to stderr and one JSON object with the findings
as the last line of stdout. Checks:

1. Focal XGBoost over 2 barrier tasks: both workers' model hashes and best rounds; predictions against a
   single-process ``FocalXGBClassifier.fit`` on the same rows (no row/column subsampling, so only the
   distributed quantile sketch can differ).
2. A built-in objective (``binary:logistic``) through the same path against ``xgboost.spark.SparkXGBClassifier``.
3. A worker raising fails the run promptly with that worker's error; the session works afterwards.
4. ``jobs/train.py`` end to end on a tiny portfolio (2 XGBoost workers): published bundle, counts, metrics.
5. The same job again with the same seed and an impossible AUC floor: exit code 5, ``current`` unchanged,
   and the same metrics as run 4.

Usage: ``python tests/cluster/xgb_cluster.py WORK_DIR``.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from pathlib import Path

from tests.fixtures_models import TINY_TRAIN_SETTINGS

REPO = Path(__file__).resolve().parents[2]
MASTER = "local-cluster[2,1,1024]"
AS_OF = dt.date(2025, 12, 31)

#: Tiny model sizes for the job runs (``--set`` overrides): the suite's, on this master with two XGBoost workers.
JOB_SETTINGS = [
    f"spark.master={MASTER}", *TINY_TRAIN_SETTINGS, "xgb.num_workers=2",
    # The paper pipeline alone: these checks are about its path (the champion job test covers the candidates).
    "train.candidates=[paper]",
]  # fmt: skip

_CACHE: dict[str, dict] = {}


def cluster_results(work_dir: Path, timeout_s: int = 1500) -> dict:
    """Run this script once per work folder (cached in-process) and return its JSON findings."""
    key = str(work_dir)
    if key not in _CACHE:
        from tests.cluster.harness import run_script

        _CACHE[key] = run_script(Path(__file__), work_dir, timeout_s)
    return _CACHE[key]


def _log(msg: str) -> None:
    print(f"[xgb_cluster] {msg}", file=sys.stderr, flush=True)


def _xgb_data(spark, n: int = 2000, seed: int = 0):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 6)).astype(np.float32)
    logit = -2 + 1.5 * X[:, 0] - X[:, 1] + 0.5 * X[:, 2] * X[:, 3]
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    valid = rng.random(n) < 0.25
    pdf = pd.DataFrame({"id": np.arange(n), "features": list(X), "label": y, "is_valid": valid})
    df = spark.createDataFrame(pdf, "id long, features array<float>, label int, is_valid boolean").cache()
    df.count()
    return df, X, y, valid


class RaiseOnRank1:
    """A focal objective that raises on the worker of rank 1 (pickled by value: defined in __main__)."""

    def __init__(self, inner):
        self.inner = inner

    def __call__(self, preds, dtrain):
        from xgboost import collective

        if collective.get_rank() == 1:
            raise ValueError("injected failure on rank 1")
        return self.inner(preds, dtrain)


def xgb_checks(spark) -> dict:
    import numpy as np
    import xgboost as xgb
    from xgboost.spark import SparkXGBClassifier

    from credspark.distributed._xgb_worker import WorkerTask
    from credspark.distributed.xgb import DistributedXGBError, fit_focal_xgb, train_distributed
    from credspark.models.focal_xgb import FocalXGBClassifier

    out: dict = {}
    df, X, y, valid = _xgb_data(spark)

    # 1. Focal objective, 2 workers, against a single-process fit of the same rows.
    est = FocalXGBClassifier(n_estimators=60, learning_rate=0.2, max_depth=3, early_stopping_rounds=10, n_jobs=1,
                             random_state=3, subsample=1.0, colsample_bytree=1.0)
    t = time.perf_counter()
    dist = fit_focal_xgb(df, est, num_workers=2, key_cols=["id"], timeout_s=120)
    out["focal_s"] = round(time.perf_counter() - t, 1)
    single = FocalXGBClassifier(**est.get_params()).fit(X[~valid], y[~valid], eval_set=[(X[valid], y[valid])])
    p_dist, p_single = dist.predict_proba(X), single.predict_proba(X)
    r = dist.distributed_
    out["focal"] = {
        "worker_sha256": list(r.worker_sha256), "worker_best": list(r.worker_best_iterations),
        "worker_rows": [list(x) for x in r.worker_rows], "best": dist.best_iteration_,
        "single_best": single.best_iteration_, "rounds": dist.booster_.num_boosted_rounds(),
        "max_abs_diff": float(np.abs(p_dist - p_single).max()),
        "corr": float(np.corrcoef(p_dist, p_single)[0, 1]),
        "valid_history_len": len(dist.evals_result_["valid"]["focal"]),
    }
    _log(f"focal: {out['focal']}")

    # 2. binary:logistic through the same path against xgboost.spark.
    params = {"objective": "binary:logistic", "eval_metric": "logloss", "max_depth": 3, "eta": 0.3,
              "tree_method": "hist", "seed": 0}
    t = time.perf_counter()
    ours = train_distributed(df, WorkerTask(params=params, num_boost_round=40, n_features=6, early_stopping_rounds=5),
                             num_workers=2, key_cols=["id"], timeout_s=120)
    out["logistic_s"] = round(time.perf_counter() - t, 1)
    theirs = SparkXGBClassifier(features_col="features", label_col="label", validation_indicator_col="is_valid",
                                num_workers=2, max_depth=3, learning_rate=0.3, n_estimators=40,
                                early_stopping_rounds=5, eval_metric="logloss", tree_method="hist",
                                random_state=0).fit(df)
    dm = xgb.DMatrix(X)
    a = ours.booster().predict(dm)
    tb = theirs.get_booster()
    b = tb[: tb.best_iteration + 1].predict(dm) if tb.best_iteration is not None else tb.predict(dm)
    out["logistic"] = {"ours_best": ours.best_iteration, "theirs_best": int(tb.best_iteration or -1),
                       "max_abs_diff": float(np.abs(a - b).max()), "corr": float(np.corrcoef(a, b)[0, 1])}
    _log(f"logistic vs SparkXGBClassifier: {out['logistic']}")

    # 3. A worker raising fails the run promptly with its own error.
    failing = WorkerTask(params=est.xgb_params(0.0), num_boost_round=20, n_features=6,
                         objective=RaiseOnRank1(est.objective()), has_validation=False)
    t = time.perf_counter()
    try:
        train_distributed(df, failing, num_workers=2, timeout_s=120)
        out["failure"] = {"raised": None}
    except DistributedXGBError as e:
        out["failure"] = {"raised": "DistributedXGBError", "message": str(e)}
    out["failure"]["s"] = round(time.perf_counter() - t, 1)
    out["after_failure_count"] = df.count()
    _log(f"failure: {out['failure']}")
    df.unpersist()
    return out


def _run_job(warehouse: Path, extra: list[str]) -> int:
    import jobs.train as train_job

    argv = ["--as-of", AS_OF.isoformat(), "--warehouse", str(warehouse)]
    for s in JOB_SETTINGS + extra:
        argv += ["--set", s]
    try:
        train_job.main(argv)
    except SystemExit as e:
        return int(e.code or 0)
    return 0


def job_checks(spark, work: Path) -> dict:
    from pyspark.sql import functions as F

    from credspark.config import config_from_dict
    from credspark.io.model_store import current_version, list_versions
    from credspark.io.tables import read_table, table_ref
    from tests.fixtures_models import feature_frame, tiny_spec, write_feature_partition

    out: dict = {}
    warehouse = work / "warehouse"
    cfg = config_from_dict({"warehouse": {"path": str(warehouse)}})
    spec = tiny_spec()
    pdf = feature_frame(spec, 600, seed=3, as_of=AS_OF)
    write_feature_partition(spark, cfg, pdf, spec)
    out["features_rows"] = len(pdf)

    # 4. The whole job.
    t = time.perf_counter()
    out["run1_exit"] = _run_job(warehouse, [])
    out["run1_s"] = round(time.perf_counter() - t, 1)
    v1 = current_version(warehouse, "credspark")
    out["run1_version"] = v1
    out["bundle_dir"] = str(warehouse / "models" / "credspark" / v1) if v1 else None
    summaries = sorted((warehouse / "_runs").glob("train-*.json"))
    out["run1_summary"] = json.loads(summaries[-1].read_text())
    splits = read_table(spark, table_ref(cfg, cfg.tables.train_splits))
    out["split_rows"] = {r["part"]: int(r["n"]) for r in splits.groupBy("part").agg(F.count("*").alias("n")).collect()}
    out["split_min_customer_id"] = int(splits.agg(F.min("customer_id")).first()[0])
    _log(f"run 1: exit {out['run1_exit']} in {out['run1_s']} s, version {v1}")

    # 5. Same seed, impossible floor: refused, current unchanged, same metrics.
    t = time.perf_counter()
    out["run2_exit"] = _run_job(warehouse, ["train.min_test_auc=0.999"])
    out["run2_s"] = round(time.perf_counter() - t, 1)
    out["run2_current"] = current_version(warehouse, "credspark")
    out["versions"] = list_versions(warehouse, "credspark")
    summaries = sorted((warehouse / "_runs").glob("train-*.json"))
    out["run2_summary"] = json.loads(summaries[-1].read_text())
    _log(f"run 2: exit {out['run2_exit']} in {out['run2_s']} s")
    return out


def main(work_dir: str) -> dict:
    import logging

    import torch

    sys.path.insert(0, str(REPO))
    from credspark.config import SparkConfig
    from credspark.io.spark import build_session

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    torch.set_num_threads(1)
    work = Path(work_dir)
    out: dict = {}
    t0 = time.perf_counter()
    spark = build_session(SparkConfig(master=MASTER, shuffle_partitions=4, driver_memory="1g", ui_enabled=False,
                                      conf={"spark.executor.memory": "1g"}), "xgb-cluster", str(work / "warehouse"))
    from tests.cluster.harness import wait_for_executors

    out["executors"] = wait_for_executors(spark, 2)  # barrier stages need both executors' slots
    out["session_s"] = round(time.perf_counter() - t0, 1)
    _log(f"session up in {out['session_s']} s")
    try:
        out["xgb"] = xgb_checks(spark)
        out["job"] = job_checks(spark, work)
    except BaseException:
        from tests.cluster.harness import dump_executor_logs

        dump_executor_logs(spark)
        raise
    finally:
        spark.stop()
    out["total_s"] = round(time.perf_counter() - t0, 1)
    return out


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    print(json.dumps(main(sys.argv[1]), default=str))
