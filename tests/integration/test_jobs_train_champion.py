"""jobs/train.py fits the candidates, picks the champion on validation and publishes it (local[2], tiny data);
the scoring job then scores the published tree-only champion (reasons, calibration, drift)."""

from __future__ import annotations

import datetime as dt
import html
import json
import re
from pathlib import Path

import numpy as np
import pytest
from fixtures_models import TINY_TRAIN_SETTINGS, feature_frame, tiny_spec, write_feature_partition

from credspark.config import config_from_dict
from credspark.io.model_store import current_version
from credspark.models.bundle import load_bundle
from credspark.models.champion import CANDIDATES, select_champion
from jobs import score_portfolio
from jobs import train as train_job

pytestmark = pytest.mark.spark

AS_OF = dt.date(2025, 12, 31)
#: Tiny models: the same sizes as the local-cluster job test (tests/cluster/xgb_cluster.py).
SETTINGS = [
    *TINY_TRAIN_SETTINGS,
    "xgb.num_workers=2", "spark.conf.spark.databricks.delta.snapshotPartitions=2",
]  # fmt: skip


def _train(wh: Path, extra: list[str]) -> int:
    argv = ["--as-of", AS_OF.isoformat(), "--warehouse", str(wh)]
    for s in SETTINGS + extra:
        argv += ["--set", s]
    with pytest.raises(SystemExit) as e:
        train_job.main(argv)
    return int(e.value.code or 0)


def _last_summary(wh: Path, job: str) -> dict:
    paths = sorted((wh / "_runs").glob(f"{job}-*.json"), key=lambda p: p.stat().st_mtime_ns)
    return json.loads(paths[-1].read_text())


@pytest.fixture(scope="module")
def trained(spark, tmp_path_factory):
    wh = tmp_path_factory.mktemp("champion") / "warehouse"
    cfg = config_from_dict({"warehouse": {"path": str(wh)}})
    write_feature_partition(spark, cfg, feature_frame(tiny_spec(), 600, seed=3, as_of=AS_OF), tiny_spec())
    out = {"wh": wh}
    out["all_exit"] = _train(wh, ["train.champion_margin=0"])
    out["all_version"] = current_version(wh, "credspark")
    out["all_summary"] = _last_summary(wh, "train")
    # Tree-only candidates, a margin that makes every candidate "as good": the simplest one must win.
    out["tree_exit"] = _train(wh, ["train.candidates=[focal_static,plain_static]", "train.champion_margin=1"])
    out["tree_version"] = current_version(wh, "credspark")
    out["tree_summary"] = _last_summary(wh, "train")
    return out


def test_every_candidate_is_compared_on_validation_and_the_best_is_published(trained):
    assert trained["all_exit"] == 0, trained["all_summary"].get("reason")
    bundle_dir = trained["wh"] / "models" / "credspark" / trained["all_version"]
    doc = json.loads((bundle_dir / "metrics.json").read_text())
    champ = doc["candidates"]
    rows = {r["key"]: r for r in champ["candidates"]}
    assert set(rows) == {"paper", "focal_static", "plain_static"}
    assert [k for k, r in rows.items() if r["champion"]] == [champ["key"]]
    # The rule, re-applied to the validation AUCs the job reports, gives the same champion.
    again = select_champion({k: r["valid_auc"] for k, r in rows.items()}, "auc", 0.0)
    assert again.champion == champ["key"] and champ["reason"] == again.reason
    # The report's metrics table: the calibrated champion first, the best other candidate second (the difference
    # column compares these two), the baseline last.
    page = (bundle_dir / "report.html").read_text()
    head = re.search(r"<tr><th>metric</th>(.*?)<th>difference", page).group(1)
    names = [html.unescape(n) for n in re.findall(r"<th>(.*?)</th>", head)]
    best_other = max((k for k in rows if k != champ["key"]), key=lambda k: rows[k]["valid_auc"])
    assert names[:2] == [CANDIDATES[champ["key"]].name, CANDIDATES[best_other].name]
    assert names[-1] == "plain XGBoost baseline" and set(names) == set(doc["metrics"])
    champion_name = CANDIDATES[champ["key"]].name
    assert doc["metrics"][champion_name]["auc"] == pytest.approx(rows[champ["key"]]["test_auc"], abs=1e-9)
    # The gate compares the champion with the baseline on test.
    gate = doc["gate"]
    assert gate["test_auc"] == doc["metrics"][champion_name]["auc"]
    assert gate["baseline_auc"] == doc["metrics"]["plain XGBoost baseline"]["auc"]
    manifest = json.loads((bundle_dir / "manifest.json").read_text())
    assert manifest["metadata"]["champion"]["key"] == champ["key"]
    assert (manifest["embedder"] is None) == (champ["key"] != "paper")
    assert "<h2>Candidates</h2>" in page
    assert trained["all_summary"]["details"]["champion"]["key"] == champ["key"]


def test_without_the_paper_pipeline_no_deep_model_is_trained_and_a_tree_only_bundle_is_published(trained):
    from credspark.models.inputs import arrays_from_frame

    assert trained["tree_exit"] == 0, trained["tree_summary"].get("reason")
    s = trained["tree_summary"]
    assert "deep" not in s["durations_s"] and "embed" not in s["durations_s"]
    assert s["details"]["champion"]["key"] == "plain_static"
    assert "within train.champion_margin=1.0" in s["details"]["champion"]["reason"] or \
        s["details"]["champion"]["best"] == "plain_static"
    bundle_dir = trained["wh"] / "models" / "credspark" / trained["tree_version"]
    bundle = load_bundle(bundle_dir, expected_spec=tiny_spec())
    assert bundle.embedder is None and bundle.feature_names == tiny_spec().static_names
    assert bundle.manifest["format_version"] == 3 and bundle.calibrator.method == "platt"
    static, dynamic, mask = arrays_from_frame(feature_frame(tiny_spec(), 50, seed=9, as_of=AS_OF), tiny_spec())
    p = bundle.predict_proba(static, dynamic, mask)
    assert p.shape == (50,) and np.all((p > 0) & (p < 1)) and p.std() > 0
    doc = json.loads((bundle_dir / "metrics.json").read_text())
    assert {r["key"] for r in doc["candidates"]["candidates"]} == {"focal_static", "plain_static"}
    assert set(bundle.manifest["metadata"]["training_data"]["distributions"]) >= {"pd", "score"}


def test_the_scoring_job_scores_a_tree_only_champion_with_reasons_and_drift(trained, spark):
    from pyspark.sql import functions as F

    from credspark.io.tables import read_table, table_ref

    wh = trained["wh"]
    with pytest.raises(SystemExit) as e:
        score_portfolio.main(["--score-date", AS_OF.isoformat(), "--warehouse", str(wh),
                              "--set", "spark.conf.spark.databricks.delta.snapshotPartitions=2"])
    assert e.value.code == 0
    s = _last_summary(wh, "score_portfolio")
    assert s["details"]["model_version"] == trained["tree_version"]
    assert s["details"]["monitoring"]["drift"] != "not_available"
    cfg = config_from_dict({"warehouse": {"path": str(wh)}})
    scores = read_table(spark, table_ref(cfg, "scores")).where(F.col("score_date") == F.lit(AS_OF)).toPandas()
    assert len(scores) == 600 and scores["pd"].between(0, 1).all()
    assert set(scores["reason_1"].dropna()) <= set(tiny_spec().static_names) and scores["reason_1"].notna().any()


def test_the_demo_summary_names_the_published_champion(trained, capsys):
    from credspark.pipelines.demo import print_demo_summary

    print_demo_summary(str(trained["wh"]))
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.strip().startswith("champion"))
    doc = json.loads((trained["wh"] / "models" / "credspark" / trained["tree_version"] / "metrics.json").read_text())
    assert "plain XGBoost on static features: test AUC" in line
    assert f"{doc['gate']['test_auc']:.4f}" in line and f"{doc['gate']['baseline_auc']:.4f}" in line


@pytest.mark.parametrize("run", ["all", "tree"])
def test_training_evaluates_the_champion_on_what_the_scoring_job_writes_for_the_same_customers(trained, spark, run):
    from pyspark.sql import functions as F

    from credspark.evaluation import evaluate
    from credspark.io.tables import read_table, table_ref
    from credspark.monitoring import bin_counts

    wh, version, summary = trained["wh"], trained[f"{run}_version"], trained[f"{run}_summary"]
    with pytest.raises(SystemExit) as e:
        score_portfolio.main(["--score-date", AS_OF.isoformat(), "--warehouse", str(wh), "--model-version", version,
                              "--set", "spark.conf.spark.databricks.delta.snapshotPartitions=2"])
    assert e.value.code == 0
    cfg = config_from_dict({"warehouse": {"path": str(wh)}})
    scores = read_table(spark, table_ref(cfg, "scores")).where(F.col("score_date") == F.lit(AS_OF))
    split = read_table(spark, table_ref(cfg, cfg.tables.train_splits)).where(F.col("run_id") == summary["run_id"])
    rows = (split.where(F.col("part").isin("valid", "test")).select("customer_id", "part", "label")
            .join(scores, "customer_id")
            .select("part", "label", "pd", "score", "model_version").toPandas())
    counts = summary["counts"]
    assert len(rows) == sum(counts[f"{p}_{c}"] for p in ("valid", "test") for c in (0, 1))
    assert set(rows["model_version"]) == {version}
    assert summary["details"]["scoring_path"]["rows"] == len(rows)
    bundle_dir = wh / "models" / "credspark" / version
    doc = json.loads((bundle_dir / "metrics.json").read_text())
    name = doc["candidates"]["name"]
    # The scoring job's pd of the held-out customers give the metrics, threshold and gate the training job published.
    again = evaluate(rows["part"].to_numpy(), rows["label"].to_numpy(), {name: rows["pd"].to_numpy()})
    published = doc["metrics"][name]
    for key in ("auc", "ks", "brier", "mean_score", "threshold", "f1", "recall"):
        assert again.metrics[name][key] == pytest.approx(published[key], abs=1e-9), key
    assert doc["gate"]["test_auc"] == published["auc"]
    # ... and the pd and score reference distributions the scoring job's PSI compares with.
    dists = load_bundle(bundle_dir, expected_spec=tiny_spec()).manifest["metadata"]["training_data"]["distributions"]
    for col in ("pd", "score"):
        binned, missing = bin_counts(rows[col].to_numpy(), dists[col]["edges"])
        assert missing == 0 and dists[col]["n"] == len(rows)
        np.testing.assert_allclose(np.asarray(binned) / len(rows), dists[col]["shares"], rtol=0, atol=1e-12)
