"""Training data: dates, split plans, the hash split, the baseline's raw vector and the bin counts."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from pyspark.sql import functions as F

from credspark.config import TrainConfig
from credspark.dates import parse_dates
from credspark.errors import ConfigError
from credspark.models.spec import FeatureSpec, StaticFeature
from credspark.pipelines._train_data import (
    column_expr,
    plan_split,
    raw_feature_names,
    raw_feature_vector,
    with_parts,
)

D = dt.date


def test_parse_dates_sorts_and_deduplicates():
    assert parse_dates("2025-12-31, 2025-10-31,2025-12-31") == [D(2025, 10, 31), D(2025, 12, 31)]
    with pytest.raises(ConfigError, match="--as-of '2025-13-01'"):
        parse_dates("2025-13-01")
    with pytest.raises(ConfigError, match="at least one date"):
        parse_dates(" , ")


def test_random_plan_and_its_errors():
    plan = plan_split([D(2025, 12, 31)], None, TrainConfig(seed=5))
    assert plan.to_dict() == {"mode": "random", "dates": ["2025-12-31"], "seed": 5, "test_fraction": 0.3,
                              "validation_fraction": 0.2, "stratified_by": "label"}
    with pytest.raises(ConfigError, match="needs train.split=time"):
        plan_split([D(2025, 12, 31)], D(2025, 11, 30), TrainConfig())
    with pytest.raises(ConfigError, match="must be in"):
        plan_split([D(2025, 12, 31)], None, TrainConfig(test_fraction=1.0))


def test_time_plan_puts_later_dates_in_validation_and_test():
    dates = [D(2025, 9, 30), D(2025, 10, 31), D(2025, 11, 30), D(2025, 12, 31)]
    plan = plan_split(dates, None, TrainConfig(split="time"))
    assert plan.train_dates == (D(2025, 9, 30), D(2025, 10, 31))
    assert (plan.validation_date, plan.test_date) == (D(2025, 11, 30), D(2025, 12, 31))
    explicit = plan_split([D(2025, 9, 30), D(2025, 12, 31)], D(2025, 10, 31), TrainConfig(split="time"))
    assert explicit.dates == (D(2025, 9, 30), D(2025, 10, 31), D(2025, 12, 31))  # the validation date is read too
    with pytest.raises(ConfigError, match="at least three"):
        plan_split(dates[:2], None, TrainConfig(split="time"))
    with pytest.raises(ConfigError, match="training dates < validation date"):
        plan_split([D(2025, 9, 30), D(2025, 12, 31)], D(2025, 8, 31), TrainConfig(split="time"))


LAST = D(2025, 12, 31)


def _rows(spark, n=2000, dates=(LAST,), seed=0):
    rng = np.random.default_rng(seed)
    data = [(int(i), d, int(rng.random() < 0.1)) for d in dates for i in range(n)]
    return spark.createDataFrame(data, "customer_id long, as_of_date date, label int")




@pytest.mark.spark
def test_random_split_is_stratified_deterministic_and_independent_of_partitioning(spark):
    df = _rows(spark)
    plan = plan_split([D(2025, 12, 31)], None, TrainConfig(seed=11))
    a = df.transform(with_parts(plan)).toPandas().sort_values("customer_id").reset_index(drop=True)
    b = df.repartition(7, "label").transform(with_parts(plan)).toPandas().sort_values("customer_id")
    assert a["part"].tolist() == b["part"].tolist()
    for label, group in a.groupby("label"):
        shares = group["part"].value_counts(normalize=True)
        n = len(group)
        # Exact up to one row per boundary: test 30%, validation 0.7 * 0.2 = 14%, train 56%.
        assert abs(shares["test"] - 0.3) <= 1.5 / n and abs(shares["valid"] - 0.14) <= 2.5 / n, label
    other = df.transform(with_parts(plan_split([D(2025, 12, 31)], None, TrainConfig(seed=12)))).toPandas()
    assert (other.sort_values("customer_id")["part"].to_numpy() != a["part"].to_numpy()).mean() > 0.2


@pytest.mark.spark
def test_time_split_assigns_by_date(spark):
    dates = (D(2025, 10, 31), D(2025, 11, 30), D(2025, 12, 31))
    plan = plan_split(list(dates), None, TrainConfig(split="time"))
    got = _rows(spark, n=5, dates=dates).transform(with_parts(plan)).groupBy("as_of_date", "part").count()
    assert sorted((r[0], r[1], r[2]) for r in got.collect()) == [
        (dates[0], "train", 5), (dates[1], "valid", 5), (dates[2], "test", 5)]


def _spec():
    return FeatureSpec(static=(StaticFeature("age", "integer"), StaticFeature("limit", "continuous")),
                       channels=("bill", "pay"), T=2)


@pytest.mark.spark
def test_raw_feature_vector_layout_matches_names(spark):
    spec = _spec()
    df = spark.createDataFrame([(30, None, [1.0, 2.0, 3.0, 4.0])], "age int, limit double, seq array<float>")
    vec = df.select(raw_feature_vector(spec, True).alias("v")).first()["v"]
    assert raw_feature_names(spec, True) == ["age", "limit", "bill_t0", "pay_t0", "bill_t1", "pay_t1"]
    assert vec[0] == 30.0 and np.isnan(vec[1]) and vec[2:] == [1.0, 2.0, 3.0, 4.0]  # null -> NaN (missing)
    assert df.select(F.size(raw_feature_vector(spec, False))).first()[0] == 2


@pytest.mark.spark
def test_column_expr_reads_static_and_sequence_months(spark):
    spec = _spec()
    df = spark.createDataFrame([(30, 5.0, [1.0, 2.0, 3.0, 4.0])], "age int, limit double, seq array<float>")
    row = df.select(column_expr("age", spec), column_expr("pay[-1]", spec), column_expr("bill[0]", spec)).first()
    assert list(row) == [30.0, 4.0, 1.0]
    for bad in ("nope", "bill[2]", "bill[x]"):
        with pytest.raises(ConfigError):
            column_expr(bad, spec)


@pytest.mark.spark
def test_deep_step_imputation_matches_what_the_network_sees_for_missing_values(spark):
    from credspark.models._preprocess import HEAVY_TAIL_SKEW, InputPreprocessor
    from credspark.models.imputation import fill_missing_static, imputation_values
    from credspark.pipelines._train_data import imputation_aggregates, with_imputed_static

    spec = FeatureSpec(static=(StaticFeature("normal", "continuous"), StaticFeature("skewed", "continuous"),
                               StaticFeature("count", "integer"), StaticFeature("code", "categorical", (1, 2, 3)),
                               StaticFeature("flag", "binary"), StaticFeature("empty", "continuous"),
                               StaticFeature("full", "continuous")), channels=("c",), T=1)
    rng = np.random.default_rng(0)
    n = 400
    cols = {"normal": rng.normal(5, 2, n), "skewed": rng.lognormal(3, 1.5, n), "count": rng.integers(0, 9, n) * 1.0,
            "code": rng.choice([1.0, 2.0, 2.0, 3.0], n), "flag": rng.integers(0, 2, n) * 1.0,
            "empty": np.full(n, np.nan), "full": rng.normal(size=n)}
    for name in ("normal", "skewed", "count", "code", "flag"):
        cols[name][rng.random(n) < 0.2] = np.nan
    rows = [tuple(None if np.isnan(cols[k][i]) else (int(cols[k][i]) if k in ("count", "code", "flag")
                                                       else float(cols[k][i])) for k in spec.static_names)
            for i in range(n)]
    df = spark.createDataFrame(rows, "normal double, skewed double, count int, code int, flag int, empty double, "
                                     "full double")
    values = imputation_values(df.agg(*imputation_aggregates(spec)).first().asDict(), spec, HEAVY_TAIL_SKEW)
    assert set(values) == {"normal", "skewed", "count", "code", "flag", "empty"}  # "full" has nothing missing
    assert values["normal"]["value"] == pytest.approx(np.nanmean(cols["normal"]))
    assert values["code"]["value"] == 2.0 and values["flag"]["value"] == 0.0 and values["empty"]["value"] == 0.0
    assert values["normal"]["missing_share"] == pytest.approx(np.isnan(cols["normal"]).mean())
    # library use: the same rule from numpy statistics of the same array gives the same fill values
    array = np.column_stack([cols[k] for k in spec.static_names])
    filled_np, same = fill_missing_static(array, spec)
    assert set(same) == set(values)
    for k in values:
        assert same[k]["value"] == pytest.approx(values[k]["value"], rel=1e-9), k
        assert same[k]["missing_share"] == pytest.approx(values[k]["missing_share"]), k
    filled = df.transform(with_imputed_static(values))
    assert dict(filled.dtypes)["count"] == "int" and filled.where(F.col("normal").isNull()).count() == 0
    np.testing.assert_allclose(filled_np, filled.toPandas()[spec.static_names].to_numpy(np.float64), rtol=1e-12)
    # The network's scaling, fitted on the filled training rows, maps a missing value at scoring time to the
    # same input as the filled value (exactly for linear columns; the skewed column is log-scaled).
    pdf = filled.toPandas()
    static = pdf[spec.static_names].to_numpy(dtype=np.float64)
    pre = InputPreprocessor().fit(spec, static, np.zeros((n, 1, 1)), np.ones((n, 1)))
    probe = np.array([[values[k]["value"] if k in values else 0.0 for k in spec.static_names],
                      [np.nan] * 5 + [np.nan, 0.0]])
    out = pre.transform_static(probe)
    exact = [0, 1, 6, 7, 8]  # normal, skewed (log-scaled), flag, empty, full; 3..5 = the code's one-hot block
    np.testing.assert_allclose(out[0, exact], out[1, exact], atol=1e-5)
    assert abs(out[0, 2] - out[1, 2]) < 0.05  # the integer column's fill is rounded to an integer
