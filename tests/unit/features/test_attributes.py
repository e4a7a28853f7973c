"""Declared attributes as features: point-in-time snapshots, the categorical encoding, static-only sources."""

import datetime as dt

import pytest

from credspark.config import config_from_dict
from credspark.contract import CUSTOMERS, OUTCOMES
from credspark.features.attributes import latest_snapshots
from credspark.models.spec import FeatureSpec, SpecMismatchError
from credspark.pipelines.features import build_feature_frames

pytestmark = pytest.mark.spark

D1, D2 = dt.date(2025, 10, 31), dt.date(2025, 11, 30)
ATTRS = {
    "bureau_score": {"kind": "numeric", "lower": 300, "upper": 850, "monotone": -1},
    "housing": {"kind": "categorical", "categories": ["own", "Rent-free"]},
}
CUST_DDL = ", ".join(f"{f.name} {f.dataType.simpleString()}" for f in CUSTOMERS.fields) + ", housing string"


def _cfg():
    return config_from_dict({"attributes": ATTRS, "features": {"horizon_months": 1, "T": 3, "windows": [1, 3],
                                                               "behaviour": False}})


def test_the_latest_snapshot_on_or_before_each_as_of_date_is_used_never_a_later_one(spark):
    snaps = spark.createDataFrame([
        (1, dt.date(2025, 9, 30), 600.0), (1, dt.date(2025, 10, 31), 610.0), (1, dt.date(2025, 11, 5), 620.0),
        (2, dt.date(2025, 11, 1), 700.0),
    ], "customer_id long, snapshot_date date, bureau_score double")
    got = sorted((r.customer_id, r.as_of_date, r.bureau_score)
                 for r in latest_snapshots(snaps, ["bureau_score"], [D1, D2]).collect())
    assert got == [(1, D1, 610.0), (1, D2, 620.0), (2, D2, 700.0)]


def test_a_static_only_source_builds_attribute_features_with_no_sequence(spark):
    customers = spark.createDataFrame([
        (1, 1980, 1, 2, 1, None, None, None, "own"),
        (2, 1990, 2, 1, 2, None, None, dt.date(2025, 11, 10), "Rent-free"),  # opens in November
        (3, 1970, 1, 3, 3, None, None, None, "rent-free"),  # not a known category (case counts)
        (4, 1975, 1, 3, 3, None, None, None, None),
    ], CUST_DDL)
    snapshots = spark.createDataFrame([(1, dt.date(2025, 10, 1), 700.0), (2, dt.date(2025, 11, 15), 650.0),
                                       (3, dt.date(2025, 12, 1), 500.0)],
                                      "customer_id long, snapshot_date date, bureau_score double")
    outcomes = spark.createDataFrame([(1, dt.date(2025, 11, 20))], OUTCOMES)
    frames = build_feature_frames({"customers": customers, "attributes": snapshots, "outcomes": outcomes},
                                  [D1, D2], _cfg(), observed_through=dt.date(2025, 12, 31))
    spec = frames.spec
    assert spec.static_only and spec.T == 0 and spec.channels == ()
    # a categorical attribute is a text column of the table, not a static feature: training encodes it
    assert spec.static_names[-1] == "bureau_score" and "housing" not in spec.static_names
    assert spec.extra["attributes"]["housing"]["categories"] == ["own", "Rent-free"]
    rows = {(r.customer_id, r.as_of_date): r for r in frames.features.collect()}
    # customer 2 opens after D1; customer 1 is in default (November) by D2
    assert sorted(rows) == [(1, D1), (2, D2), (3, D1), (3, D2), (4, D1), (4, D2)]
    r = rows[(1, D1)]
    assert (r.bureau_score, r.housing, r.label) == (700.0, "own", 1)
    assert rows[(3, D1)].label == 0
    assert rows[(2, D2)].bureau_score == 650.0 and rows[(2, D2)].housing == "Rent-free"
    assert rows[(3, D2)].bureau_score is None  # its snapshot is after D2
    assert rows[(3, D2)].housing == "rent-free"  # the text as given: the encoding makes it 'other'
    assert rows[(4, D1)].housing is None
    assert list(r.seq) == [] and list(r.seq_mask) == []
    assert rows[(1, D1)].age == 45


def test_specs_whose_declared_attributes_differ_are_refused_naming_them():
    base = FeatureSpec(static=(), channels=(), T=0, extra={"attributes": {"a": {"kind": "numeric"}}})
    other = FeatureSpec(static=(), channels=(), T=0, extra={"attributes": {"a": {"kind": "numeric"},
                                                                          "b": {"kind": "numeric"}}})
    with pytest.raises(SpecMismatchError, match=r"declared attributes differ: \['b'\]"):
        base.check_compatible(other, what="bundle")
    base.check_compatible(FeatureSpec.from_dict(base.to_dict()))
    with pytest.raises(ValueError, match="static-only"):
        FeatureSpec(static=(), channels=(), T=3)


def test_a_features_table_built_with_other_categorical_declarations_is_a_different_feature_set():
    from credspark.features.attributes import attribute_spec
    from credspark.features.spec import feature_table_properties
    from credspark.pipelines._features_write import _feature_set_differences

    def spec(housing):
        declared = config_from_dict({"attributes": {"housing": housing}}).attributes
        return FeatureSpec(static=(), channels=(), T=0, extra={"attributes": attribute_spec(declared)})

    built = feature_table_properties(spec({"kind": "categorical", "categories": ["own"]}), absent_sources=(),
                                     left_out={}, horizon_months=1)
    # the text column is the same, the static block too (empty): only the declarations tell them apart
    assert _feature_set_differences(built, spec({"kind": "categorical", "categories": ["own"]})) == []
    assert _feature_set_differences(built, spec({"kind": "categorical"})) == ["declared attributes"]
