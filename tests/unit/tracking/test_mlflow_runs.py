"""What a run logs to MLflow, computed without a tracker: flattened config, metric names, training metrics."""

from __future__ import annotations

import pytest

from credspark.config import config_from_dict
from credspark.io.runs import RunSummary
from credspark.tracking import flatten_config, metric_key, track_job_run
from credspark.tracking.mlflow_runs import training_metrics


def test_flatten_config_lists_every_key_as_text_without_uri_credentials():
    cfg = config_from_dict({"resnet_lstm": {"filters": [4, 8]}, "spark": {"conf": {"spark.executor.memory": "2g"}},
                            "tracking": {"mlflow_uri": "https://alice:s3cret@mlflow.example:5000/x"}})
    flat = flatten_config(cfg)
    assert flat["resnet_lstm.filters"] == "[4, 8]" and flat["train.seed"] == "42"
    assert flat["spark.conf.spark.executor.memory"] == "2g" and flat["features.channels"] == "null"
    assert flat["tracking.mlflow_uri"] == "https://mlflow.example:5000/x"
    assert not any("s3cret" in v for v in flat.values())
    assert all(isinstance(v, str) for v in flat.values())


def test_metric_key_makes_model_names_legal_metric_names():
    assert metric_key("test", "focal XGBoost on ResNet-LSTM, uncalibrated", "auc") == \
        "test/focal_xgboost_on_resnet_lstm_uncalibrated/auc"
    assert metric_key("curve", "xgb", "plain XGBoost baseline", "valid", "logloss") == \
        "curve/xgb/plain_xgboost_baseline/valid/logloss"


def test_training_metrics_from_a_metrics_document():
    doc = {
        "metrics": {"m one": {"auc": 0.8, "ks": 0.5, "n": 10, "calibration": {"bins": [1]}, "f1": float("nan")}},
        "data": {"validation": {"m one": {"auc": 0.7, "threshold": 0.2}}},
        "gate": {"passed": False},
        "curves": {"resnet_lstm": {"train_loss": [0.9, 0.5, None]},
                   "actgan": [{"epoch": 1, "g_loss": 2.0, "d_loss": -1.0}, {"epoch": 2, "g_loss": 1.5}],
                   "xgb": {"m one": {"valid": {"logloss": [0.6, 0.5]}}}},
    }
    values, curves = training_metrics(doc)
    assert values == {"test/m_one/auc": 0.8, "test/m_one/ks": 0.5, "test/m_one/n": 10.0,
                      "valid/m_one/auc": 0.7, "valid/m_one/threshold": 0.2, "gate/passed": 0.0}
    assert curves == [("curve/resnet_lstm/train_loss", 0, 0.9), ("curve/resnet_lstm/train_loss", 1, 0.5),
                      ("curve/actgan/g_loss", 1, 2.0), ("curve/actgan/d_loss", 1, -1.0),
                      ("curve/actgan/g_loss", 2, 1.5),
                      ("curve/xgb/m_one/valid/logloss", 0, 0.6), ("curve/xgb/m_one/valid/logloss", 1, 0.5)]


def test_tracking_off_records_nothing():
    s = RunSummary(job="train", run_id="train-x", started_at="2026-01-01T00:00:00+00:00")
    assert track_job_run(config_from_dict({}), s) is None and "mlflow" not in s.details


def test_a_tracker_that_cannot_be_reached_is_a_summary_field_not_an_error(monkeypatch, tmp_path):
    pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    s = RunSummary(job="score_portfolio", run_id="score_portfolio-x", started_at="2026-01-01T00:00:00+00:00",
                   status="ok")
    rec = track_job_run(config_from_dict({"tracking": {"mlflow_uri": f"http://127.0.0.1:{port}"}}), s)
    assert rec is s.details["mlflow"] and rec["status"] == "failed" and rec["error"]
    assert rec["seconds"] < 60 and s.status == "ok"
