"""The MLflow pyfunc of a bundle scores like the nightly job; the scoring job reads models:/NAME@champion.

A real MLflow tracking store and registry (sqlite, local artifact folder), a real Delta features partition
of 3,000 rows and the real scoring job (jobs/score_portfolio.py) on local[2].
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fixtures_models import feature_frame, publish_tiny_bundle, tiny_spec, write_feature_partition
from pyspark.sql import functions as F

from credspark.config import ScoreConfig, TrackingConfig, config_from_dict
from credspark.io.tables import read_table, table_ref
from jobs import score_portfolio

mlflow = pytest.importorskip("mlflow")

pytestmark = pytest.mark.spark

DAY = dt.date(2025, 12, 31)
N_ROWS = 3000
OUT = ["customer_id", "pd", "score", "risk_band", "reason_1", "reason_2", "reason_3"]


def _run(argv):
    with pytest.raises(SystemExit) as e:
        score_portfolio.main(argv)
    return e.value.code


def _last_summary(wh):
    paths = sorted((Path(wh) / "_runs").glob("score_portfolio-*.json"), key=lambda p: p.stat().st_mtime_ns)
    return json.loads(paths[-1].read_text())


def _assert_same_scores(actual: pd.DataFrame, expected: pd.DataFrame):
    a = actual[OUT].sort_values("customer_id").reset_index(drop=True)
    e = expected[OUT].sort_values("customer_id").reset_index(drop=True)
    assert len(a) == len(e) == N_ROWS
    np.testing.assert_array_equal(a["customer_id"].to_numpy(), e["customer_id"].to_numpy())
    # Model batches are cut differently by Spark's Arrow batches: float32 rounding only.
    np.testing.assert_allclose(a["pd"].to_numpy(), e["pd"].to_numpy(), rtol=0, atol=1e-6)
    np.testing.assert_allclose(a["score"].to_numpy(), e["score"].to_numpy(), rtol=0, atol=1e-3)
    for col in ("risk_band", "reason_1", "reason_2", "reason_3"):
        assert (a[col].fillna("") == e[col].fillna("")).all(), col


@pytest.fixture(scope="module")
def registered(spark, tmp_path_factory):
    """A published tiny bundle, its features partition, the nightly job's scores, and the bundle registered."""
    from credspark.tracking import register_bundle

    root = tmp_path_factory.mktemp("mlflow_registry")
    wh = str(root / "warehouse")
    cfg = config_from_dict({"warehouse": {"path": wh}})
    spec = tiny_spec()
    features = feature_frame(spec, N_ROWS, seed=4, as_of=DAY)
    write_feature_partition(spark, cfg, features, spec)
    bundle_dir = publish_tiny_bundle(wh, "credspark", "v1", spec, feature_frame(spec, 400, seed=1),
                                     metadata={"version": "v1"})
    conf = ["--warehouse", wh, "--set", "spark.conf.spark.databricks.delta.snapshotPartitions=2"]
    assert _run(["--score-date", DAY.isoformat(), "--model-version", "v1", *conf]) == 0
    nightly = (read_table(spark, table_ref(cfg, "scores")).where(F.col("score_date") == F.lit(DAY))
               .select(*OUT).toPandas())

    tc = TrackingConfig(mlflow_uri=f"sqlite:///{root}/mlflow.db", experiment_name="registry-test")
    client = mlflow.MlflowClient(tc.mlflow_uri)
    run = client.create_run(client.create_experiment("registry-test", artifact_location=str(root / "artifacts")))
    reg = register_bundle(tc, ScoreConfig(), run.info.run_id, bundle_dir, "v1")
    client.set_terminated(run.info.run_id)
    mlflow.set_tracking_uri(tc.mlflow_uri)
    mlflow.set_registry_uri(tc.mlflow_uri)
    return {"wh": wh, "cfg": cfg, "conf": conf, "tc": tc, "reg": reg, "features": features, "nightly": nightly,
            "root": root, "spec": spec}


def test_the_registered_model_version_carries_the_bundle_without_pickle(registered):
    reg, tc = registered["reg"], registered["tc"]
    assert reg["registered_model"] == "credspark" and reg["alias"] == "champion"
    client = mlflow.MlflowClient(tc.mlflow_uri)
    mv = client.get_model_version_by_alias("credspark", "champion")
    assert str(mv.version) == reg["model_version"] and mv.tags["credspark.version"] == "v1"
    local = Path(mlflow.artifacts.download_artifacts("models:/credspark@champion",
                                                     dst_path=str(registered["root"] / "dl")))
    names = {p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file()}
    assert "pyfunc_model.py" in names and "artifacts/bundle/manifest.json" in names
    assert not [n for n in names if n.endswith((".pkl", ".pickle", ".cloudpickle"))], names
    manifest = json.loads((local / "artifacts" / "bundle" / "manifest.json").read_text())
    assert {f"artifacts/bundle/{f}" for f in manifest["files"]} <= names


def test_pyfunc_load_model_scores_like_the_nightly_job(registered):
    model = mlflow.pyfunc.load_model("models:/credspark@champion")
    features = registered["features"]
    out = model.predict(features[["customer_id", *registered["spec"].static_names, "seq", "seq_mask"]])
    _assert_same_scores(out, registered["nightly"])


def test_pyfunc_spark_udf_scores_like_the_nightly_job(registered, spark):
    spec, cfg = registered["spec"], registered["cfg"]
    cols = ["customer_id", *spec.static_names, "seq", "seq_mask"]
    schema = ("customer_id long, pd double, score double, risk_band string, reason_1 string, reason_2 string, "
              "reason_3 string")
    udf = mlflow.pyfunc.spark_udf(spark, "models:/credspark@champion", result_type=schema, env_manager="local")
    features = read_table(spark, table_ref(cfg, "features")).where(F.col("as_of_date") == F.lit(DAY))
    scored = features.select(udf(F.struct(*cols)).alias("s")).select("s.*")
    # spark_udf casts every string field of a struct result with numpy's str (MLflow's _convert_struct_values),
    # so a missing reason (None) arrives as the text "None"; docs/platform.md shows this nullif.
    assert scored.where(F.col("reason_3") == "None").count() > 0
    for c in ("reason_1", "reason_2", "reason_3"):
        scored = scored.withColumn(c, F.nullif(F.col(c), F.lit("None")))
    _assert_same_scores(scored.toPandas(), registered["nightly"])


def test_the_scoring_job_reads_the_champion_from_the_registry(registered, spark):
    wh, cfg, tc = registered["wh"], registered["cfg"], registered["tc"]
    track = ["--set", f"tracking.mlflow_uri={tc.mlflow_uri}", "--set", "tracking.experiment_name=registry-test"]
    assert _run(["--score-date", DAY.isoformat(), "--model-uri", "models:/credspark@champion",
                 *registered["conf"], *track]) == 0
    s = _last_summary(wh)
    assert s["details"]["model_version"] == "v1" and s["details"]["bundle_dir"] == "models:/credspark@champion"
    scores = read_table(spark, table_ref(cfg, "scores")).where(F.col("score_date") == F.lit(DAY))
    assert scores.select("run_id").distinct().first()[0] == s["run_id"]  # this run rewrote the partition
    _assert_same_scores(scores.select(*OUT).toPandas(), registered["nightly"])
    # The scoring run itself is tracked: its summary and counts are in MLflow.
    assert s["details"]["mlflow"]["status"] == "ok", s["details"]["mlflow"]
    run = mlflow.MlflowClient(tc.mlflow_uri).get_run(s["details"]["mlflow"]["run_id"])
    assert run.data.tags["credspark.job"] == "score_portfolio" and run.data.tags["credspark.run_id"] == s["run_id"]
    assert run.data.metrics["count/scored"] == N_ROWS and run.data.params["job.score_date"] == DAY.isoformat()
    logged = json.loads(Path(mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id, artifact_path="run_summary.json", tracking_uri=tc.mlflow_uri)).read_text())
    assert logged["run_id"] == s["run_id"] and logged["counts"]["scored"] == N_ROWS


def test_a_tampered_registered_bundle_is_refused(registered):
    from credspark.models.bundle import BundleError
    from credspark.scoring import partition

    tc = registered["tc"]
    client = mlflow.MlflowClient(tc.mlflow_uri)
    mv = client.get_model_version_by_alias("credspark", "champion")
    # The registry's copy on the artifact store: change one weight file's bytes.
    local = Path(mlflow.artifacts.download_artifacts(mv.source, dst_path=str(registered["root"] / "probe")))
    manifest = json.loads((local / "artifacts" / "bundle" / "manifest.json").read_text())
    victim = next(f for f in manifest["files"] if f.endswith((".safetensors", ".ubj", ".json")))
    stored = [p for p in (registered["root"] / "artifacts").rglob(victim) if "artifacts/bundle" in p.as_posix()]
    assert stored, victim
    for p in stored:
        p.write_bytes(p.read_bytes()[:-8] + b"tampered")
    # A process that loaded the verified bundle keeps scoring with that copy in memory (cached by the
    # manifest's digest, as on the nightly job's workers); a fresh process reads and verifies the files.
    partition._MODELS.clear()
    with pytest.raises(BundleError, match="sha256|SHA-256|hash"):
        mlflow.pyfunc.load_model("models:/credspark@champion")
    track = ["--set", f"tracking.mlflow_uri={tc.mlflow_uri}"]
    assert _run(["--score-date", DAY.isoformat(), "--model-uri", "models:/credspark@champion",
                 *registered["conf"], *track]) == 4
    assert "refused" in _last_summary(registered["wh"])["reason"]
