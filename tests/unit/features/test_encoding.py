"""Categorical attributes: the encoding fitted on training rows, recorded in the spec, applied at model input."""

import pytest

from credspark.features.encoding import (
    category_code,
    choose_categories,
    encoded_spec,
    fit_category_encoding,
    with_category_encoding,
)
from credspark.models.spec import FeatureSpec, StaticFeature


def test_seen_categories_are_kept_most_frequent_first_ties_by_text_up_to_the_cap():
    counts = {"rent": 5, "own": 9, "family": 5, "other": 40, "Own": 2, "council": 1}
    assert choose_categories(counts, (), 3) == ["own", "family", "rent"]  # 'other' is never a category
    # "Own" writes the feature name of "own" (own__own): it stays 'other'
    assert choose_categories(counts, (), 10) == ["own", "family", "rent", "council"]
    assert choose_categories({}, (), 5) == []


def test_declared_categories_are_the_encoding_in_their_order_whatever_the_counts():
    assert choose_categories({"b": 10, "z": 99}, ("a", "b"), 1) == ["a", "b"]


def _spec(**attrs):
    return FeatureSpec(static=(StaticFeature("score"),), channels=(), T=0, extra={"attributes": attrs})


def test_the_encoded_spec_appends_each_attributes_indicators_and_records_the_encoding():
    spec = _spec(housing={"kind": "categorical", "categories": []})
    enc = encoded_spec(spec, {"housing": ["own", "Rent-free"]})
    assert enc.static_names == ["score", "housing__own", "housing__rent_free", "housing__other"]
    assert {f.kind for f in enc.static[1:]} == {"binary"}
    assert FeatureSpec.from_dict(enc.to_dict()).category_encoding == {"housing": ["own", "Rent-free"]}
    assert encoded_spec(spec, {}) is spec and spec.category_encoding == {}


@pytest.mark.spark
def test_the_encoding_is_fitted_on_the_training_rows_and_unseen_values_encode_as_other(spark):
    spec = _spec(housing={"kind": "categorical", "categories": [], "max_categories": 2},
                 region={"kind": "categorical", "categories": ["n", "s"]})
    train = spark.createDataFrame(
        [(1, "own", "n"), (2, "rent", "n"), (3, "own", None), (4, "family", "x"), (5, "rent", "n"),
         (6, "own", "n"), (7, None, "n")], "customer_id long, housing string, region string")
    encoding, summary = fit_category_encoding(train, spec)
    assert encoding == {"housing": ["own", "rent"], "region": ["n", "s"]}
    assert summary["housing"] == {"categories": ["own", "rent"], "other_rows": 1, "declared_without_rows": []}
    assert summary["region"] == {"categories": ["n", "s"], "other_rows": 1, "declared_without_rows": ["s"]}

    scoring = spark.createDataFrame([(1, "rent", "s"), (2, "castle", "n"), (3, None, None)],
                                    "customer_id long, housing string, region string")
    out = scoring.transform(with_category_encoding(encoding)).withColumn("code", category_code("housing",
                                                                                               encoding["housing"]))
    got = {r.customer_id: (r.housing__own, r.housing__rent, r.housing__other, r.region__s, r.region__other, r.code)
           for r in out.collect()}
    assert got == {1: (0, 1, 0, 1, 0, 1.0), 2: (0, 0, 1, 0, 0, 2.0), 3: (None, None, None, None, None, None)}


@pytest.mark.spark
def test_the_pandas_twin_of_the_encoding_gives_the_spark_transforms_columns_and_values(spark):
    import math

    import pandas as pd

    from credspark.models.inputs import encode_categories

    encoding = {"housing": ["own", "Rent-free"], "region": ["3", "1"], "empty": []}
    pdf = pd.DataFrame({"customer_id": [1, 2, 3, 4, 5],
                        "housing": ["own", "Rent-free", "council", None, "other"],
                        "region": pd.Series([3, 1, 2, 1, None], dtype=object),  # integers: Spark reads LongType
                        "empty": ["a", None, "b", "c", "d"]})
    spark_rows = (spark.createDataFrame(pdf.astype(object).where(pdf.notna(), None))
                  .transform(with_category_encoding(encoding)).orderBy("customer_id").toPandas())
    mine = encode_categories(pdf, encoding)
    added = [c for c in spark_rows.columns if c not in pdf.columns]
    assert added == [c for c in mine.columns if c not in pdf.columns]
    assert added == ["housing__own", "housing__rent_free", "housing__other", "region__3", "region__1",
                     "region__other", "empty__other"]
    for col in added:
        got = [None if math.isnan(v) else int(v) for v in mine[col]]
        want = [None if v is None or (isinstance(v, float) and math.isnan(v)) else int(v) for v in spark_rows[col]]
        assert got == want, col
    # hand check: a council row is 'other', a null row sets nothing
    assert mine.loc[2, ["housing__own", "housing__rent_free", "housing__other"]].tolist() == [0.0, 0.0, 1.0]
    assert mine.loc[3, ["housing__own", "housing__rent_free", "housing__other"]].isna().all()
    assert mine["region__3"].tolist()[:4] == [1.0, 0.0, 0.0, 0.0] and mine["region__other"].tolist()[:4] == [0, 0, 1, 0]
    assert list(pdf.columns) == ["customer_id", "housing", "region", "empty"]  # input untouched
