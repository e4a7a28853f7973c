"""MLflow tracking of the jobs: a real tracking store and registry (sqlite), the real training job on local[2].

A training run logs its config, sizes, metrics, curves and artifacts and registers its published bundle
(alias ``champion`` = the store's ``current``); a tracker that cannot be reached or refuses leaves the
job's result as it was and says so in the run summary.
"""

from __future__ import annotations

import datetime as dt
import http.server
import json
import socket
import threading
from pathlib import Path

import pytest
from fixtures_models import TINY_TRAIN_SETTINGS, feature_frame, tiny_spec, write_feature_partition

from credspark.config import config_from_dict
from credspark.io.model_store import current_version, list_versions

mlflow = pytest.importorskip("mlflow")

pytestmark = [pytest.mark.spark, pytest.mark.slow]

AS_OF = dt.date(2025, 12, 31)
TINY = [
    *TINY_TRAIN_SETTINGS,
    "xgb.num_workers=1",
    "spark.conf.spark.databricks.delta.snapshotPartitions=2",
    # The paper pipeline alone, so the published model (and its MLflow names) is known in advance; the
    # champion's choice among candidates is tested in test_jobs_train_champion.py.
    "train.candidates=[paper]",
]  # fmt: skip
MODEL = "focal_xgboost_on_resnet_lstm"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train(wh: str, *sets: str) -> tuple[int, dict]:
    import jobs.train as train_job

    argv = ["--as-of", AS_OF.isoformat(), "--warehouse", wh]
    for s in [*TINY, *sets]:
        argv += ["--set", s]
    with pytest.raises(SystemExit) as e:
        train_job.main(argv)
    latest = max((Path(wh) / "_runs").glob("train-*.json"), key=lambda p: p.stat().st_mtime_ns)
    return e.value.code, json.loads(latest.read_text())


@pytest.fixture(scope="module")
def trained(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("mlflow_tracking")
    wh = str(root / "warehouse")
    cfg = config_from_dict({"warehouse": {"path": wh}})
    spec = tiny_spec()
    write_feature_partition(spark, cfg, feature_frame(spec, 600, seed=3, as_of=AS_OF), spec)
    uri = f"sqlite:///{root}/mlflow.db"
    code, summary = _train(wh, f"tracking.mlflow_uri={uri}", "tracking.experiment_name=credspark-test",
                           "tracking.registered_model_name=credspark-test")
    return {"root": root, "wh": wh, "uri": uri, "code": code, "summary": summary}


def test_a_training_run_logs_config_sizes_metrics_curves_and_artifacts(trained):
    assert trained["code"] == 0, trained["summary"]["reason"]
    s = trained["summary"]
    rec = s["details"]["mlflow"]
    assert rec["status"] == "ok", rec
    client = mlflow.MlflowClient(trained["uri"])
    run = client.get_run(rec["run_id"])
    assert run.info.status == "FINISHED" and run.info.run_name == s["run_id"]
    assert client.get_experiment(run.info.experiment_id).name == "credspark-test"
    tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
    assert tags["credspark.job"] == "train" and tags["credspark.model_version"] == s["details"]["version"]
    # Config, flattened: every section's keys, with the values the run used.
    assert params["train.seed"] == "42" and params["resnet_lstm.epochs"] == "2"
    assert params["resnet_lstm.filters"] == "[4, 8]" and params["job.as_of_dates"] == f'["{AS_OF.isoformat()}"]'
    # Data and split sizes.
    for key in ("train_0", "train_1", "valid_0", "valid_1", "test_0", "test_1", "generated_rows"):
        assert metrics[f"count/{key}"] == s["counts"][key]
    # Validation and test metrics of the candidate, its uncalibrated form and the baseline, as in metrics.json.
    bundle = Path(s["details"]["bundle"])
    doc = json.loads((bundle / "metrics.json").read_text())
    assert metrics[f"test/{MODEL}/auc"] == pytest.approx(doc["metrics"]["focal XGBoost on ResNet-LSTM"]["auc"])
    assert metrics["test/plain_xgboost_baseline/ks"] == pytest.approx(doc["metrics"]["plain XGBoost baseline"]["ks"])
    assert f"test/{MODEL}_uncalibrated/brier" in metrics
    valid = doc["data"]["validation"]["focal XGBoost on ResNet-LSTM"]
    assert metrics[f"valid/{MODEL}/auc"] == pytest.approx(valid["auc"])
    assert metrics["gate/passed"] == 1.0
    # Per-epoch curves with steps.
    loss = client.get_metric_history(run.info.run_id, "curve/resnet_lstm/train_loss")
    assert [m.step for m in loss] == [0, 1]
    assert [m.value for m in loss] == pytest.approx(doc["curves"]["resnet_lstm"]["train_loss"])
    gan = [k for k in metrics if k.startswith("curve/actgan/")]
    assert gan and len(client.get_metric_history(run.info.run_id, gan[0])) == 2
    xgb = client.get_metric_history(run.info.run_id, f"curve/xgb/{MODEL}/valid/" +
                                    next(iter(doc["curves"]["xgb"]["focal XGBoost on ResNet-LSTM"]["valid"])))
    assert len(xgb) >= 5 and [m.step for m in xgb] == list(range(len(xgb)))
    # Artifacts: report, metrics.json, manifest, run summary.
    names = {a.path for a in client.list_artifacts(run.info.run_id, "bundle")}
    assert names == {"bundle/report.html", "bundle/metrics.json", "bundle/manifest.json"}
    logged = json.loads(Path(client.download_artifacts(run.info.run_id, "run_summary.json",
                                                       str(trained["root"] / "dl"))).read_text())
    assert logged["run_id"] == s["run_id"] and logged["counts"] == s["counts"]


def test_the_published_bundle_is_the_champion_model_version(trained):
    s = trained["summary"]
    reg = s["details"]["mlflow"]["registered"]
    assert reg["registered_model"] == "credspark-test" and reg["alias"] == "champion"
    client = mlflow.MlflowClient(trained["uri"], registry_uri=trained["uri"])
    mv = client.get_model_version_by_alias("credspark-test", "champion")
    assert str(mv.version) == reg["model_version"] and mv.run_id == s["details"]["mlflow"]["run_id"]
    assert mv.tags["credspark.version"] == current_version(trained["wh"], "credspark") == s["details"]["version"]


def test_an_unreachable_tracker_does_not_fail_training(trained, monkeypatch, caplog):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    wh = trained["wh"]
    before = current_version(wh, "credspark")
    code, s = _train(wh, f"tracking.mlflow_uri=http://127.0.0.1:{_free_port()}")
    assert code == 0, s["reason"]
    rec = s["details"]["mlflow"]
    assert rec["status"] == "failed" and rec["error"]
    # The model is stored and published as without tracking.
    assert s["status"] == "ok" and current_version(wh, "credspark") == s["details"]["version"] != before
    assert s["details"]["version"] in list_versions(wh, "credspark")
    assert any("MLflow tracking failed" in r.getMessage() for r in caplog.records)


class _Refuse(http.server.BaseHTTPRequestHandler):
    def _refuse(self):
        body = b'{"error_code": "PERMISSION_DENIED", "message": "refused by the test server"}'
        self.send_response(403)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PATCH = do_DELETE = _refuse  # noqa: N815 - http.server's handler names

    def log_message(self, *args):
        pass


def test_a_refusing_tracker_is_reported_and_the_job_result_kept(spark, tmp_path, monkeypatch):
    from credspark.job_requests import JobOptions
    from credspark.runner import run_job

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Refuse)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        def body(spark, cfg, request, run):
            run.counts["rows"] = 7
            return run.result()

        wh = str(tmp_path / "wh")
        options = JobOptions(warehouse=wh, overrides=(f"tracking.mlflow_uri=http://127.0.0.1:{server.server_port}",))
        code = run_job("build_features", body, options, None)
    finally:
        server.shutdown()
    assert code == 0
    (path,) = (Path(wh) / "_runs").glob("build_features-*.json")
    s = json.loads(path.read_text())
    assert s["status"] == "ok" and s["counts"] == {"rows": 7}
    rec = s["details"]["mlflow"]
    assert rec["status"] == "failed" and "refused by the test server" in rec["error"]


def test_a_feature_run_logs_its_run_summary(spark, tmp_path):
    from credspark.job_requests import JobOptions
    from credspark.runner import run_job

    def body(spark, cfg, request, run):
        run.counts |= {"features_rows": 12, "validation": {"customers": {"rejected": 1}}}
        return run.result()

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    wh = str(tmp_path / "wh")
    options = JobOptions(warehouse=wh, overrides=(f"tracking.mlflow_uri={uri}",))
    assert run_job("build_features", body, options, None) == 0
    (path,) = (Path(wh) / "_runs").glob("build_features-*.json")
    s = json.loads(path.read_text())
    run = mlflow.MlflowClient(uri).get_run(s["details"]["mlflow"]["run_id"])
    assert run.data.tags["credspark.job"] == "build_features" and run.data.tags["credspark.status"] == "ok"
    assert run.data.metrics["count/features_rows"] == 12
    assert run.data.metrics["count/validation/customers/rejected"] == 1
    assert "duration_s/total" in run.data.metrics and run.data.params["warehouse.path"] == wh
