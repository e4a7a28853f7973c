"""The Spark-free XGBoost worker with plain pandas (world size 1: no tracker, no communicator)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

from credspark.distributed._xgb_worker import (
    RESULT_SCHEMA,
    WORKER_ERROR_PREFIX,
    GlobalFocalMetric,
    WorkerTask,
    _is_peer_failure,
    dmatrices_from_frames,
    train_partition,
    worker_partition,
)
from credspark.models.focal_xgb import FocalMetric, FocalXGBClassifier, prior_log_odds


def _data(n=600, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4)).astype(np.float32)
    y = (rng.random(n) < 1 / (1 + np.exp(-(-1.5 + 2 * X[:, 0] - X[:, 1])))).astype(int)
    valid = rng.random(n) < 0.3
    return X, y, valid


def _frames(X, y, valid, chunks=3):
    # Contiguous chunks keep the row order, so row subsampling draws the same rows as a plain fit.
    pdf = pd.DataFrame({"features": list(X), "label": y, "is_valid": valid})
    bounds = np.linspace(0, len(pdf), chunks + 1).astype(int)
    return [pdf.iloc[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


def _focal_task(est, X, y, valid, **kw):
    base = dict(params=est.xgb_params(prior_log_odds(y[~valid])), num_boost_round=est.n_estimators,
                n_features=X.shape[1], objective=est.objective(), custom_metric=GlobalFocalMetric(est.alpha, est.gamma),
                early_stopping_rounds=est.early_stopping_rounds, nthread=1)
    base.update(kw)
    return WorkerTask(**base)


def test_dmatrices_split_rows_by_is_valid_and_keep_empty_parts():
    X, y, valid = _data(50)
    task = WorkerTask(params={}, num_boost_round=1, n_features=4)
    dtrain, dvalid = dmatrices_from_frames(_frames(X, y, valid), task)
    assert (dtrain.num_row(), dvalid.num_row()) == (int((~valid).sum()), int(valid.sum()))
    assert dtrain.num_col() == 4
    np.testing.assert_array_equal(np.sort(dvalid.get_label()), np.sort(y[valid].astype(np.float32)))
    # A partition without rows still yields (empty) matrices, so the worker can join the collective.
    empty_t, empty_v = dmatrices_from_frames(iter([]), task)
    assert (empty_t.num_row(), empty_v.num_row()) == (0, 0)
    only_train, none = dmatrices_from_frames(_frames(X, y, valid), WorkerTask(params={}, num_boost_round=1,
                                                                             n_features=4, has_validation=False))
    assert none is None and only_train.num_row() == 50


def test_dmatrices_refuse_null_labels_and_wrong_widths():
    X, y, valid = _data(10)
    pdf = pd.DataFrame({"features": list(X), "label": pd.array([None] + list(y[1:]), dtype="Int64"),
                        "is_valid": valid})
    with pytest.raises(ValueError, match="null labels"):
        dmatrices_from_frames([pdf], WorkerTask(params={}, num_boost_round=1, n_features=4))
    with pytest.raises(ValueError, match="length 5"):
        dmatrices_from_frames(_frames(X, y, valid), WorkerTask(params={}, num_boost_round=1, n_features=5))


def test_global_focal_metric_is_the_plain_mean_in_one_process():
    X, y, _ = _data(200)
    rng = np.random.default_rng(1)
    margin = rng.normal(size=200)
    d = xgb.DMatrix(X, label=y)
    assert GlobalFocalMetric(0.3, 1.5)(margin, d) == pytest.approx(FocalMetric(0.3, 1.5)(margin, d))
    w = rng.random(200)
    dw = xgb.DMatrix(X, label=y, weight=w)
    assert GlobalFocalMetric(0.3, 1.5)(margin, dw)[1] == pytest.approx(FocalMetric(0.3, 1.5)(margin, dw)[1])
    # No rows anywhere: NaN, not a crash (an empty validation part on a worker contributes (0, 0)).
    assert np.isnan(GlobalFocalMetric()(np.zeros(0), xgb.DMatrix(np.zeros((0, 4)), label=np.zeros(0)))[1])
    with pytest.raises(ValueError):
        GlobalFocalMetric(alpha=1.5)


def test_single_worker_matches_focal_classifier_fit():
    X, y, valid = _data()
    est = FocalXGBClassifier(n_estimators=80, learning_rate=0.3, max_depth=3, early_stopping_rounds=5, n_jobs=1,
                             random_state=3, subsample=0.8)
    row = train_partition(_frames(X, y, valid), _focal_task(est, X, y, valid), "0")
    ref = FocalXGBClassifier(**est.get_params()).fit(X[~valid], y[~valid], eval_set=[(X[valid], y[valid])])
    model = FocalXGBClassifier.from_booster_bytes(row["model"], **est.get_params())
    assert row["rank"] == 0 and row["n_train"] == int((~valid).sum()) and row["n_valid"] == int(valid.sum())
    assert row["best_iteration"] == ref.best_iteration_ < 79  # early stopping happened
    # The returned model is cut to the best round, as FocalXGBClassifier.fit does.
    assert row["num_rounds"] == ref.best_iteration_ + 1 == model.booster_.num_boosted_rounds()
    np.testing.assert_allclose(model.predict_proba(X), ref.predict_proba(X), rtol=1e-6, atol=1e-7)
    evals = json.loads(row["evals_result"])
    assert set(evals) == {"train", "valid"} and len(evals["valid"]["focal"]) > row["best_iteration"]
    assert len(row["model_sha256"]) == 64


def test_builtin_objective_through_the_same_path():
    X, y, valid = _data()
    params = {"objective": "binary:logistic", "eval_metric": "logloss", "max_depth": 3, "eta": 0.3,
              "tree_method": "hist", "seed": 0}
    row = train_partition(_frames(X, y, valid), WorkerTask(params=params, num_boost_round=30, n_features=4,
                                                           early_stopping_rounds=5))
    ref = xgb.train(dict(params, nthread=1), xgb.DMatrix(X[~valid], label=y[~valid]), 30,
                    evals=[(xgb.DMatrix(X[valid], label=y[valid]), "valid")], early_stopping_rounds=5,
                    verbose_eval=False)
    assert row["best_iteration"] == ref.best_iteration
    b = xgb.Booster()
    b.load_model(bytearray(row["model"]))
    np.testing.assert_allclose(b.predict(xgb.DMatrix(X)), ref[: ref.best_iteration + 1].predict(xgb.DMatrix(X)),
                               rtol=1e-6)


class _Boom:
    def __call__(self, preds, dtrain):
        raise ArithmeticError("objective exploded")


def test_worker_errors_name_the_task_and_keep_the_cause():
    X, y, valid = _data(50)
    task = WorkerTask(params={"base_score": 0.0, "disable_default_eval_metric": 1}, num_boost_round=3,
                      n_features=4, objective=_Boom())
    expected = f"^{WORKER_ERROR_PREFIX} 7 failed: ArithmeticError: objective exploded"
    with pytest.raises(RuntimeError, match=expected) as e:
        train_partition(_frames(X, y, valid), task, "7")
    assert isinstance(e.value.__cause__, ArithmeticError)
    # Own errors are not mistaken for a peer's failure (which would delay the report).
    assert not _is_peer_failure(ArithmeticError("boom"))
    assert _is_peer_failure(xgb.core.XGBoostError("[allreduce.cc:135]: Ring Allreduce failed."))


def test_worker_partition_yields_one_row_in_the_result_schema():
    X, y, valid = _data(120)
    est = FocalXGBClassifier(n_estimators=5, max_depth=2, early_stopping_rounds=None, n_jobs=1, random_state=0)
    out = list(worker_partition(iter(_frames(X, y, valid)), _focal_task(est, X, y, valid, early_stopping_rounds=None)))
    assert len(out) == 1 and len(out[0]) == 1
    names = [c.strip().split(" ")[0] for c in RESULT_SCHEMA.split(",")]
    assert list(out[0].columns) == names
    assert out[0]["best_iteration"].iloc[0] == 4 and out[0]["num_rounds"].iloc[0] == 5


def test_partition_code_and_reporting_import_no_pyspark():
    import subprocess
    import sys
    from pathlib import Path

    code = ("import sys, credspark.distributed._xgb_worker, credspark.distributed._embed_worker, "
            "credspark.reporting; print(sorted(m for m in sys.modules if m.split('.')[0] == 'pyspark'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         cwd=Path(__file__).resolve().parents[3])
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"

