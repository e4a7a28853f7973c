import datetime as dt
import shutil
import threading
import uuid

import numpy as np
import pandas as pd
import pytest
from fixtures_models import (
    feature_frame,
    fit_tiny_models,
    publish_tiny_bundle,
    tiny_spec,
    write_feature_partition,
)
from pyspark.sql import functions as F

from credspark.config import config_from_dict
from credspark.errors import EXIT_DRIFT, EXIT_OK, ConfigError, MissingDataError, RejectThresholdError
from credspark.faults import SCORE_FAIL_AFTER_BATCHES
from credspark.io.model_store import model_dir
from credspark.io.tables import read_table, table_exists, table_ref
from credspark.job_requests import ScoreRequest
from credspark.models.bundle import load_bundle
from credspark.models.spec import FeatureSpec
from credspark.pipelines import score as S
from credspark.runner import Run
from credspark.scoring.partition import ScoringModel, score_frame

pytestmark = pytest.mark.spark

SPEC = tiny_spec()
D1, D2 = dt.date(2025, 12, 31), dt.date(2026, 1, 31)
N = 240


def _cfg(wh, **score):
    return config_from_dict({"warehouse": {"path": str(wh)}, "score": {"model_name": "m", **score}})


def _args(day, version=None, build=False):
    return ScoreRequest(score_date=day, model_version=version, build_features=build)


def _summary():
    return Run(job="score_portfolio", run_id=f"score-test-{uuid.uuid4().hex[:8]}",
               started_at="2026-01-01T00:00:00+00:00")


def _run(spark, cfg, day, version=None):
    run = _summary()
    result = S.score_portfolio(spark, cfg, _args(day, version), run)
    return result.exit_code, result


def _partition(spark, cfg, day):
    return read_table(spark, table_ref(cfg, cfg.tables.scores)).where(F.col("score_date") == F.lit(day))


def _distributions(train: pd.DataFrame) -> dict:
    """Training distributions as the trainer stores them: an honest one, a shifted one, a missing column."""
    probs = np.linspace(0, 1, 11)
    limit_edges = np.quantile(train["credit_limit"], probs)
    limit_shares = np.histogram(train["credit_limit"], bins=limit_edges)[0] / len(train)
    return {
        "credit_limit": {"edges": limit_edges.tolist(), "shares": limit_shares.tolist()},
        "util_mean_3m": {"edges": [5.0], "shares": [0.01, 0.99]},  # nothing like the data: drift
        "not_a_column": {"edges": [0.0], "shares": [0.5, 0.5]},
    }


@pytest.fixture(scope="module")
def world(spark, tmp_path_factory):
    old = spark.conf.get("spark.databricks.delta.snapshotPartitions", None)
    spark.conf.set("spark.databricks.delta.snapshotPartitions", "2")  # 50 by default: slow for tiny tables
    wh = tmp_path_factory.mktemp("score_wh")
    cfg = _cfg(wh)
    train = feature_frame(SPEC, 300, seed=1)
    write_feature_partition(spark, cfg, feature_frame(SPEC, N, seed=2, as_of=D1, first_id=1000), SPEC)
    write_feature_partition(spark, cfg, feature_frame(SPEC, N, seed=3, as_of=D2, first_id=1000, shift=0.3), SPEC)
    models = fit_tiny_models(SPEC, train)
    publish_tiny_bundle(wh, "m", "v2", SPEC, train, make_current=False, models=models,
                        metadata={"training_data": {"distributions": _distributions(train)}})
    publish_tiny_bundle(wh, "m", "v1", SPEC, train, models=models)  # current
    yield {"wh": wh, "cfg": cfg, "train": train}
    if old is None:
        spark.conf.unset("spark.databricks.delta.snapshotPartitions")
    else:
        spark.conf.set("spark.databricks.delta.snapshotPartitions", old)


@pytest.fixture(scope="module")
def first_run(spark, world):
    code, summary = _run(spark, world["cfg"], D1)
    assert code == EXIT_OK, summary.reason
    return summary


# ------------------------------------------------------------------------------------------- refusals
def test_a_missing_partition_is_named_and_nothing_is_written(spark, tmp_path, world):
    cfg = _cfg(tmp_path / "empty")
    with pytest.raises(MissingDataError, match="as_of_date=2025-12-31.*does not exist"):
        S.score_portfolio(spark, cfg, _args(D1), _summary())
    with pytest.raises(MissingDataError, match="features partition as_of_date=2024-01-31 does not exist"):
        S.score_portfolio(spark, world["cfg"], _args(dt.date(2024, 1, 31)), _summary())


def test_tampered_bundle_and_spec_mismatch_are_refused_before_writing(spark, world, tmp_path):
    wh = world["wh"]
    tampered = model_dir(wh, "m", "tampered")
    if not tampered.exists():
        shutil.copytree(model_dir(wh, "m", "v1"), tampered)
        f = next(tampered.glob("classifier/*.ubj"))
        data = bytearray(f.read_bytes())
        data[-1] ^= 1
        f.write_bytes(bytes(data))
    other = FeatureSpec(static=SPEC.static, channels=SPEC.channels, T=SPEC.T, version="2")
    if not model_dir(wh, "m", "spec2").exists():
        publish_tiny_bundle(wh, "m", "spec2", other, feature_frame(other, 120, seed=4), make_current=False)
    fresh = config_from_dict({"warehouse": {"path": str(wh)}, "score": {"model_name": "m"},
                              "tables": {"scores": "scores_refused", "score_runs": "score_runs_refused"}})
    with pytest.raises(S.ModelRefusedError, match="sha256 mismatch"):
        S.score_portfolio(spark, fresh, _args(D1, "tampered"), _summary())
    with pytest.raises(S.ModelRefusedError, match="does not fit the features table.*version differs"):
        S.score_portfolio(spark, fresh, _args(D1, "spec2"), _summary())
    with pytest.raises(MissingDataError, match="version nope"):
        S.score_portfolio(spark, fresh, _args(D1, "nope"), _summary())
    assert not table_exists(spark, table_ref(fresh, "scores_refused"))
    assert not table_exists(spark, table_ref(fresh, "score_runs_refused"))


def test_rows_that_cannot_be_scored_are_counted_and_too_many_stop_the_run(spark, tmp_path):
    cfg = _cfg(tmp_path / "wh")
    pdf = feature_frame(SPEC, 20, seed=5)
    pdf["seq"] = [np.zeros(3, dtype=np.float32) if i < 5 else s for i, s in enumerate(pdf["seq"])]  # wrong length
    write_feature_partition(spark, cfg, pdf, SPEC)
    publish_tiny_bundle(cfg.warehouse.path, "m", "v1", SPEC, feature_frame(SPEC, 120, seed=1))
    summary = _summary()
    with pytest.raises(RejectThresholdError, match="5 of 20 rows cannot be scored"):
        S.score_portfolio(spark, cfg, _args(D1), summary)
    assert summary.counts == {"features_rows": 20, "rejected": 5}
    assert summary.details["rejected_by_reason"] == {"seq length != T*C (12)": 5}
    assert not table_exists(spark, table_ref(cfg, cfg.tables.scores))


def test_bad_score_config_is_refused_naming_the_key():
    with pytest.raises(ConfigError, match="score.band_labels"):
        config_from_dict({"score": {"band_labels": ["B", "A"]}})
    with pytest.raises(ConfigError, match="score.band_cutoffs"):
        config_from_dict({"score": {"band_cutoffs": [2, 1], "band_labels": list("CBA")}})
    with pytest.raises(ConfigError, match="score.psi_warn"):
        config_from_dict({"score": {"psi_warn": 0.5, "psi_fail": 0.2}})
    with pytest.raises(ConfigError, match="--score-date"):
        ScoreRequest.from_flags("31/12/2025")


# -------------------------------------------------------------------------------------------- scoring
def test_scores_match_in_process_scoring_and_the_run_is_recorded(spark, world, first_run):
    cfg = world["cfg"]
    got = _partition(spark, cfg, D1)
    assert got.columns == ["customer_id", "score_date", "pd", "score", "risk_band", "reason_1", "reason_2",
                           "reason_3", "model_version", "run_id"]
    out = got.toPandas().sort_values("customer_id").reset_index(drop=True)
    assert len(out) == N and out["customer_id"].is_unique
    assert set(out["model_version"]) == {"v1"} and set(out["run_id"]) == {first_run.run_id}
    # The same rows scored in this process by the same bundle.
    features = read_table(spark, table_ref(cfg, cfg.tables.features)).where(F.col("as_of_date") == F.lit(D1))
    model = ScoringModel(load_bundle(model_dir(world["wh"], "m", "v1"), expected_spec=SPEC))
    local = score_frame(features.toPandas().sort_values("customer_id"), model,
                        S.score_params(cfg.score, "x", SPEC)).reset_index(drop=True)
    assert np.abs(out["pd"] - local["pd"]).max() < 1e-6
    assert np.abs(out["score"] - local["score"]).max() < 1e-4
    assert (out["risk_band"] == local["risk_band"]).all()
    assert (out["reason_1"].fillna("-") == local["reason_1"].fillna("-")).mean() > 0.97
    # Monitoring: counts and bands add up; no earlier date and no training distributions.
    mon = first_run.details["monitoring"]
    assert first_run.counts == {"features_rows": N, "rejected": 0, "scored": N}
    assert sum(mon["band_counts"].values()) == N
    assert mon["band_counts"] == out["risk_band"].value_counts().reindex(list("EDCBA"), fill_value=0).to_dict()
    qs = list(mon["pd_quantiles"].values())
    assert qs == sorted(qs) and out["pd"].min() <= qs[0] and qs[-1] <= out["pd"].max()
    assert mon["psi"]["score_vs_previous"]["level"] == "not_available"
    assert mon["psi"]["features"] == {} and mon["drift"] == "not_available"
    runs = read_table(spark, table_ref(cfg, cfg.tables.score_runs)).where(F.col("run_id") == first_run.run_id)
    rec = runs.first()
    assert (rec["scored"], rec["rejected"], rec["model_version"], rec["exit_code"]) == (N, 0, "v1", 0)
    assert rec["band_counts"] == mon["band_counts"]


def test_a_failed_run_keeps_the_previous_partition_and_a_rerun_is_idempotent(spark, world, first_run, monkeypatch):
    cfg = world["cfg"]
    def values(df):  # materialised now: a lazy Delta read could see a later version
        return df.drop("run_id").toPandas().sort_values("customer_id").reset_index(drop=True)

    before = values(_partition(spark, cfg, D1))
    failing = _cfg(world["wh"], arrow_batch_size=40, model_batch_size=40)
    with monkeypatch.context() as m, pytest.raises(Exception, match="injected failure"):
        m.setenv(SCORE_FAIL_AFTER_BATCHES, "1")
        S.score_portfolio(spark, failing, _args(D1), _summary())
    still = _partition(spark, cfg, D1)
    assert [r[0] for r in still.select("run_id").distinct().collect()] == [first_run.run_id]
    pd.testing.assert_frame_equal(values(still), before)
    code, again = _run(spark, cfg, D1)
    assert code == EXIT_OK
    rerun = _partition(spark, cfg, D1)
    assert [r[0] for r in rerun.select("run_id").distinct().collect()] == [again.run_id]
    pd.testing.assert_frame_equal(values(rerun), before, check_exact=True)  # exactly the same values


def test_drift_beyond_the_fail_threshold_exits_3_with_scores_written(spark, world, first_run):
    cfg = world["cfg"]
    code, summary = _run(spark, cfg, D2, version="v2")
    assert code == EXIT_DRIFT
    assert "util_mean_3m" in summary.reason
    assert _partition(spark, cfg, D2).count() == N
    psi = summary.details["monitoring"]["psi"]
    assert psi["score_vs_previous"]["previous_score_date"] == D1.isoformat()
    assert psi["score_vs_previous"]["value"] is not None
    assert psi["features"]["util_mean_3m"]["level"] == "fail"
    assert psi["features"]["credit_limit"]["level"] in ("ok", "warn")
    assert psi["features"]["not_a_column"]["level"] == "not_available"
    assert psi["score_vs_training"]["level"] == "not_available"
    rec = read_table(spark, table_ref(cfg, cfg.tables.score_runs)).where(F.col("run_id") == summary.run_id).first()
    assert (rec["drift"], rec["exit_code"], rec["previous_score_date"]) == ("fail", EXIT_DRIFT, D1)


# -------------------------------------------------------------------------------------------- writing
def _rows(spark, run_id, n=50):
    return spark.range(n).select(F.col("id").alias("customer_id"), F.lit(D1).alias("score_date"),
                                 F.lit(run_id).alias("run_id"))


def test_two_concurrent_runs_end_with_one_complete_partition(spark, tmp_path):
    cfg = config_from_dict({"warehouse": {"path": str(tmp_path / "wh")}})
    S.write_scores(spark, cfg, _rows(spark, "seed"), D1, "seed")
    barrier, errors = threading.Barrier(2), []

    def run(run_id):
        try:
            barrier.wait()
            S.write_scores(spark, cfg, _rows(spark, run_id), D1, run_id, retries=3, backoff_s=0.2)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=run, args=(r,)) for r in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    final = read_table(spark, table_ref(cfg, cfg.tables.scores)).toPandas()
    assert len(final) == 50 and final["run_id"].nunique() == 1 and final["run_id"].iloc[0] in ("a", "b")
    assert final["customer_id"].is_unique


class ConcurrentAppendException(Exception):  # noqa: N818 - Delta's name
    pass


def test_write_conflicts_are_retried_then_reported(spark, tmp_path, monkeypatch):
    import credspark.io.tables as tables

    cfg = config_from_dict({"warehouse": {"path": str(tmp_path / "wh")}})
    real, calls = tables.overwrite_partitions, []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise ConcurrentAppendException("Files were added to partition [score_date=2025-12-31] concurrently")
        return real(*args, **kwargs)

    monkeypatch.setattr(tables, "overwrite_partitions", flaky)
    assert S.write_scores(spark, cfg, _rows(spark, "r1"), D1, "r1", backoff_s=0.0) == 0
    assert len(calls) == 2

    def always(*args, **kwargs):
        raise ConcurrentAppendException("again")

    monkeypatch.setattr(tables, "overwrite_partitions", always)
    with pytest.raises(S.ConcurrentWriteError, match="3 attempts"):
        S.write_scores(spark, cfg, _rows(spark, "r2"), D1, "r2", retries=2, backoff_s=0.0)
    def broken(*args, **kwargs):
        raise ValueError("boom")

    monkeypatch.setattr(tables, "overwrite_partitions", broken)
    with pytest.raises(ValueError, match="boom"):
        S.write_scores(spark, cfg, _rows(spark, "r3"), D1, "r3")


def test_build_features_flag_runs_the_feature_pipeline_for_the_score_date(spark, world, monkeypatch):
    import credspark.pipelines.features as features

    seen = []

    def fake_build(spark_, cfg_, request_, run_):
        seen.append(request_.as_of_dates)
        run_.counts["rows"] = 1
        raise MissingDataError("stop here")

    monkeypatch.setattr(features, "build_features", fake_build)
    summary = _summary()
    with pytest.raises(MissingDataError, match="stop here"):
        S.score_portfolio(spark, world["cfg"], _args(D2, build=True), summary)
    assert seen == [(D2,)]
    assert summary.details["build_features"]["counts"] == {"rows": 1}


def test_training_distributions_follow_the_trainers_order():
    dists = {"a": {"edges": [0], "shares": [1, 1]}, "b": {"edges": [0], "shares": [1, 1]}, "score": {}}
    manifest = {"metadata": {"training_data": {"distributions": dists, "distribution_order": ["b", "score", "x"]}}}
    assert list(S.training_distributions(manifest)) == ["b", "score", "a"]
    assert list(S.training_distributions({"training_data": {"distributions": dists}})) == ["a", "b", "score"]
    assert S.training_distributions({"metadata": {}}) is None


def test_the_score_distribution_is_compared_only_on_the_scale_it_was_trained_on():
    from credspark.pipelines._score_monitor import output_references
    from credspark.scoring.scorecard import ScorecardScale

    dists = {"score": {"edges": [550.0, 600.0], "shares": [0.2, 0.5, 0.3]}, "pd": {"edges": [0.1], "shares": [1, 1]}}
    same = {"metadata": {"training_data": {"score_scale": ScorecardScale().to_dict()}}}
    refs = output_references(dists, same, ScorecardScale())
    assert refs == {"score": ([550.0, 600.0], [0.2, 0.5, 0.3]), "pd": ([0.1], [1.0, 1.0])}
    other = output_references(dists, same, ScorecardScale(pdo=40.0))
    assert "on the scale" in other["score"] and "'pdo': 40.0" in other["score"] and other["pd"] == refs["pd"]
    assert output_references(dists, {}, ScorecardScale(pdo=40))["score"] == refs["score"]  # scale not recorded
    bad = output_references({"pd": {"edges": [2, 1], "shares": [1, 1, 1]}}, {}, ScorecardScale())
    assert bad["pd"].startswith("malformed training distribution") and "score" not in bad
