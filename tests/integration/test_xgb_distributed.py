"""Distributed focal XGBoost on two executors (local-cluster), from the ONE subprocess run of
tests/cluster/xgb_cluster.py that tests/integration/test_jobs_train.py shares.
"""

from __future__ import annotations

import pytest

from tests.cluster.xgb_cluster import cluster_results

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def xgb(tmp_path_factory):
    return cluster_results(tmp_path_factory.getbasetemp() / "xgb_cluster")["xgb"]


def test_both_workers_end_with_the_same_model_and_stop_on_the_same_round(xgb):
    f = xgb["focal"]
    assert len(f["worker_sha256"]) == 2 and f["worker_sha256"][0] == f["worker_sha256"][1]
    assert f["worker_best"][0] == f["worker_best"][1] == f["best"]
    # Each worker trained on its own partition (both non-empty, unequal sizes are fine).
    assert all(n_train > 0 and n_valid > 0 for n_train, n_valid in f["worker_rows"])
    assert sum(n for n, _ in f["worker_rows"]) + sum(v for _, v in f["worker_rows"]) == 2000
    # Cut to the best round, as FocalXGBClassifier.fit does; early stopping did stop early.
    assert f["rounds"] == f["best"] + 1 and f["valid_history_len"] > f["rounds"]


def test_distributed_focal_matches_single_process_training(xgb):
    # Without row/column subsampling only the distributed quantile sketch can differ from a single-process
    # fit; on 2,000 rows (fewer than 256 bins' worth of distinct values per worker) it is exact, and the
    # stated tolerance leaves room for the sketch's merging on larger data.
    f = xgb["focal"]
    assert f["best"] == f["single_best"]
    assert f["max_abs_diff"] <= 0.02 and f["corr"] >= 0.999


def test_builtin_objective_matches_xgboost_spark(xgb):
    lg = xgb["logistic"]
    assert lg["ours_best"] == lg["theirs_best"]
    assert lg["max_abs_diff"] <= 0.02 and lg["corr"] >= 0.999


def test_a_failing_worker_fails_the_run_promptly_with_its_error(xgb):
    fail = xgb["failure"]
    assert fail["raised"] == "DistributedXGBError"
    assert "xgboost worker task 1 failed: ValueError: injected failure on rank 1" in fail["message"]
    assert fail["s"] < 90  # the collective timeout is 120 s: the failure did not wait for it
    assert xgb["after_failure_count"] == 2000  # the session survives the aborted barrier stage
