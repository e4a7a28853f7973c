"""Driver-side helpers of the distributed XGBoost trainer that need no Spark job: tracker and addresses."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from credspark.distributed._xgb_worker import WorkerTask, train_partition
from credspark.distributed.xgb import _root_cause, _Tracker, tracker_host
from credspark.errors import ConfigError


def test_tracker_host_is_loopback_for_local_masters_else_the_driver():
    conf = {"spark.driver.host": "10.0.0.5"}.get
    assert tracker_host(conf, "local[2]") == "127.0.0.1"
    assert tracker_host(conf, "local-cluster[2,1,1024]") == "127.0.0.1"
    assert tracker_host(conf, "spark://master:7077") == "10.0.0.5"
    with pytest.raises(ConfigError, match="tracker_host"):
        tracker_host({}.get, "yarn")


def test_a_worker_joins_the_tracker_and_the_tracker_finishes():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 3)).astype(np.float32)
    pdf = pd.DataFrame({"features": list(X), "label": (X[:, 0] > 0).astype(int), "is_valid": rng.random(80) < 0.3})
    tracker = _Tracker(1, "127.0.0.1", timeout_s=60)
    task = WorkerTask(params={"objective": "binary:logistic", "max_depth": 2}, num_boost_round=3, n_features=3,
                      comm_args=dict(tracker.worker_args, dmlc_timeout=60))
    row = train_partition([pdf], task, "0")
    assert row["rank"] == 0 and row["model"] is not None
    assert tracker.close(join_s=30) is True and tracker.error is None


def test_closing_a_tracker_nobody_joined_does_not_hang():
    tracker = _Tracker(2, "127.0.0.1", timeout_s=60)
    t0 = time.perf_counter()
    assert tracker.close(join_s=0.5) is False  # left to its own bootstrap timeout in a daemon thread
    assert time.perf_counter() - t0 < 5


def test_driver_reports_the_root_cause_not_the_peer():
    text = ("Job aborted\nRuntimeError: xgboost worker task 0 failed (collective error, probably after a peer "
            "failed): XGBoostError: Ring Allreduce failed\nRuntimeError: xgboost worker task 1 failed: "
            "ValueError: feature_names must be string\n")
    assert _root_cause(RuntimeError(text)) == "xgboost worker task 1 failed: ValueError: feature_names must be string"
    assert _root_cause(RuntimeError("plain failure\nmore")) == "plain failure"
