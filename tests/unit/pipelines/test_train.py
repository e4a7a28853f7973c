"""Training pipeline helpers: evaluation, the quality gate, versions, training distributions, part counts."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from pyspark.sql import functions as F

from credspark.errors import EXIT_QUALITY_GATE, MissingDataError, QualityGateError
from credspark.metrics import best_f1_threshold, credit_report
from credspark.models.spec import FeatureSpec, StaticFeature
from credspark.monitoring import psi_from_shares, reference_distribution
from credspark.pipelines.train import (
    evaluate,
    gate_decision,
    model_version,
    part_counts,
    top_static,
    training_distributions,
)


def test_evaluate_picks_thresholds_on_validation_and_measures_on_test():
    rng = np.random.default_rng(0)
    n = 600
    parts = np.where(rng.random(n) < 0.5, "valid", "test")
    y = (rng.random(n) < 0.2).astype(int)
    s = 1 / (1 + np.exp(-(rng.normal(size=n) + 1.5 * y)))
    ev = evaluate(parts, y, {"m": s})
    v, t = parts == "valid", parts == "test"
    assert ev.valid["m"]["threshold"] == best_f1_threshold(y[v], s[v])
    assert ev.metrics["m"] == credit_report(y[t], s[t], best_f1_threshold(y[v], s[v]))
    np.testing.assert_array_equal(ev.y_test, y[t])
    np.testing.assert_array_equal(ev.scores_test["m"], s[t])


def test_gate_decision():
    ok = gate_decision(0.80, 0.81, 0.7, 0.02)
    assert ok["passed"] and ok["reasons"] == []
    low = gate_decision(0.65, 0.66, 0.7, 0.02)
    assert not low["passed"] and "below the floor" in low["reasons"][0]
    behind = gate_decision(0.75, 0.80, 0.7, 0.02)
    assert not behind["passed"] and "0.0500 below the plain XGBoost baseline" in behind["reasons"][0]
    assert not gate_decision(float("nan"), 0.8, 0.5, 1.0)["passed"]  # an undefined AUC never passes
    assert QualityGateError("x").exit_code == EXIT_QUALITY_GATE == 5


def test_model_version_is_data_date_then_run():
    v = model_version([dt.date(2025, 10, 31), dt.date(2025, 12, 31)], "train-20260101T000000Z-abcd1234")
    assert v == "20251231-train-20260101T000000Z-abcd1234"
    assert model_version([dt.date(2025, 1, 31)], "train-z") < v


def test_top_static_orders_by_gain_then_spec():
    spec = FeatureSpec(static=tuple(StaticFeature(n) for n in "abcd"), channels=("x",), T=1)
    assert top_static(spec, {"c": 3.0, "a": 1.0, "seq_x_t0": 9.0}, 3) == ["c", "a", "b"]


@pytest.mark.spark
def test_training_distributions_match_numpy_and_feed_psi(spark):
    x = F.when(F.col("id") % 10 == 0, None).otherwise(F.randn(1))
    df = (spark.range(2000, numPartitions=2).select(x.alias("x"), F.lit(1.0).alias("const"),
                                                    F.lit(None).cast("double").alias("none")).cache())
    seen = df.toPandas()["x"].dropna().to_numpy()
    d = training_distributions(df, {"x": F.col("x"), "const": F.col("const"), "none": F.col("none")}, 10, 0.0001)
    assert set(d) == {"x", "const"}  # a column without values is left out
    e = d["x"]
    assert e["missing_share"] == pytest.approx(0.1) and e["n"] == 2000 and len(e["edges"]) == 9
    np.testing.assert_allclose(e["edges"], np.quantile(seen, np.linspace(0, 1, 11)[1:-1]), atol=0.01)
    expected = np.bincount(np.searchsorted(e["edges"], seen, side="right"), minlength=10) / seen.size
    np.testing.assert_allclose(e["shares"], expected)
    assert d["const"] == {"edges": [], "shares": [1.0], "missing_share": 0.0, "n": 2000, "binning": "quantile"}
    # The scoring job reads the entry as it is and gets PSI 0 against the training sample itself.
    edges, shares = reference_distribution(e)
    assert psi_from_shares(shares, expected) == pytest.approx(0.0, abs=1e-12)
    df.unpersist()


@pytest.mark.spark
def test_part_counts_and_missing_dates(spark):
    d1, d2 = dt.date(2025, 11, 30), dt.date(2025, 12, 31)
    df = spark.createDataFrame([(d1, "train", 0), (d1, "train", 1), (d1, "test", 0)],
                               "as_of_date date, part string, label int")
    assert part_counts(df, [d1]) == {"train": {"0": 1, "1": 1}, "valid": {"0": 0, "1": 0}, "test": {"0": 1, "1": 0}}
    with pytest.raises(MissingDataError, match="2025-12-31"):
        part_counts(df, [d1, d2])
