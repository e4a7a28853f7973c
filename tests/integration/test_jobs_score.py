import datetime as dt
import json
from pathlib import Path

import pytest
from fixtures_models import feature_frame, publish_tiny_bundle, tiny_spec, write_feature_partition
from pyspark.sql import functions as F

from credspark.config import config_from_dict
from credspark.io.tables import read_table, table_ref
from jobs import score_portfolio
from tests.cluster.harness import run_script

REPO = Path(__file__).resolve().parents[2]
DAY = dt.date(2025, 12, 31)


def _run(argv):
    with pytest.raises(SystemExit) as e:
        score_portfolio.main(argv)
    return e.value.code


def _summaries(wh):
    paths = sorted((Path(wh) / "_runs").glob("score_portfolio-*.json"), key=lambda p: p.stat().st_mtime_ns)
    return [json.loads(p.read_text()) for p in paths]


@pytest.mark.spark
def test_score_job_main_exit_codes_and_run_summary(spark, warehouse, capsys):
    wh = str(warehouse)
    cfg = config_from_dict({"warehouse": {"path": wh}})
    spec = tiny_spec()
    write_feature_partition(spark, cfg, feature_frame(spec, 150, seed=2, as_of=DAY), spec)
    conf = ["--warehouse", wh, "--set", "spark.conf.spark.databricks.delta.snapshotPartitions=2"]

    assert _run(["--score-date", DAY.isoformat(), *conf]) == 4  # nothing published yet
    assert "nothing published yet" in capsys.readouterr().err
    publish_tiny_bundle(wh, "credspark", "v1", spec, feature_frame(spec, 200, seed=1))
    assert _run(["--score-date", "2025-11-30", *conf]) == 4
    assert "features partition as_of_date=2025-11-30 does not exist" in capsys.readouterr().err
    assert _run(["--score-date", "yesterday", *conf]) == 2

    assert _run(["--score-date", DAY.isoformat(), *conf]) == 0
    last = _summaries(wh)[-1]
    assert last["status"] == "ok" and last["counts"] == {"features_rows": 150, "rejected": 0, "scored": 150}
    assert last["details"]["model_version"] == "v1" and last["details"]["monitoring"]["drift"] == "not_available"
    scores = read_table(spark, table_ref(cfg, "scores")).where(F.col("score_date") == F.lit(DAY))
    assert scores.count() == 150 and scores.select("run_id").distinct().first()[0] == last["run_id"]
    runs = read_table(spark, table_ref(cfg, "score_runs"))
    assert runs.where(F.col("run_id") == last["run_id"]).count() == 1


@pytest.mark.cluster
def test_score_job_in_local_cluster(tmp_path):
    out = run_script(REPO / "tests" / "cluster" / "score_cluster.py", tmp_path, timeout_s=1200)
    assert out["executors"] == 2
    assert (out["exit_first"], out["exit_rerun"]) == (0, 0)
    assert out["rows"] == 600 and out["run_ids"] == [1, 1, True]
    assert out["rerun_identical"], "a re-run must give exactly the same rows"
    assert out["same_ids"] and out["same_bands"]
    assert out["max_abs_pd_diff"] < 1e-6, out
    assert out["exit_injected"] == 1 and "injected failure" in out["injected_reason"]
    assert out["intact_after_failure"]


@pytest.mark.spark
@pytest.mark.slow
def test_build_features_flag_on_a_generated_portfolio(spark, warehouse):
    """--build-features builds the real feature partition; a bundle fitted on it then scores it."""
    from credspark.features.spec import spec_from_table
    from credspark.io.tables import get_properties
    from jobs import generate_portfolio

    wh = str(warehouse)
    conf = ["--warehouse", wh, "--set", "spark.conf.spark.databricks.delta.snapshotPartitions=2"]
    with pytest.raises(SystemExit) as e:
        generate_portfolio.main(["--customers", "150", "--months", "14", "--end-month", "2025-12",
                                 "--set", "generate.partitions=2", *conf])
    assert e.value.code == 0
    # No bundle yet: the features are built, then the job stops at the model store (exit 4).
    assert _run(["--score-date", DAY.isoformat(), "--build-features", *conf]) == 4
    first = _summaries(wh)[-1]
    assert first["details"]["build_features"]["status"] == "ok" and "nothing published" in first["reason"]
    cfg = config_from_dict({"warehouse": {"path": wh}})
    ref = table_ref(cfg, "features")
    table = read_table(spark, ref)
    spec = spec_from_table(table.schema, get_properties(spark, ref))
    rows = table.where(F.col("as_of_date") == F.lit(DAY)).toPandas()
    rows["label"] = rows["label"].fillna(0).astype(int)
    rows.loc[rows.index[:10], "label"] = 1  # a tiny portfolio may have no default in the horizon yet
    publish_tiny_bundle(wh, "credspark", "v1", spec, rows)

    assert _run(["--score-date", DAY.isoformat(), *conf]) == 0
    last = _summaries(wh)[-1]
    assert last["counts"]["scored"] == len(rows) and last["counts"]["rejected"] == 0
    assert last["details"]["reason_codes"]["method"] == "attribution"
    assert set(last["details"]["reason_codes"]["groups"]) >= {"credit_limit", "seq:utilisation"}
