"""A flat file onto the contract tables: parsed values, the attributes snapshots, flat labels -> outcomes."""

import datetime as dt

import pytest

from credspark.config import AttributeConfig
from credspark.sources.flat import flat_outcomes, mapped_rows, mapped_table, observed_through, unparseable_counts
from credspark.sources.mapping import parse_mapping

pytestmark = pytest.mark.spark

ATTRS = {"bureau_score": AttributeConfig(), "housing": AttributeConfig(kind="categorical", categories=("own",))}


def test_a_label_with_an_observation_date_column_becomes_defaults_at_the_horizon_end(spark):
    raw = spark.createDataFrame([
        ("1", "2025-01-15", "yes", " 700 ", "own", "1980"),
        ("2", "2025-03-02", "no", "n/a", "rent", "1990.5"),
        ("3", "2025-02-28", "", "650", None, "1975"),
    ], "cid string, applied string, bad string, score string, home string, yob string")
    m = parse_mapping({"table": "customers", "key": "cid",
                       "columns": {"score": "bureau_score", "home": "housing", "yob": "birth_year"},
                       "label": {"column": "bad", "positive": ["yes"], "observation_date_column": "applied",
                                 "horizon_months": 2}}, ATTRS)
    rows = mapped_rows(raw, m)
    customers = {r.customer_id: r for r in mapped_table(rows, m).collect()}
    assert customers[1].bureau_score == 700.0 and customers[1].housing == "own" and customers[1].birth_year == 1980
    assert customers[1].open_date == dt.date(2025, 1, 15)  # the observation date
    assert customers[2].bureau_score is None and customers[2].birth_year is None  # 'n/a', 1990.5 do not parse
    assert [r.asDict() for r in flat_outcomes(rows, m).collect()] == [
        {"customer_id": 1, "default_date": dt.date(2025, 3, 31)}]
    assert observed_through(rows, m) == dt.date(2025, 5, 31)
    bad = raw.agg(*unparseable_counts(raw, m)).first().asDict()
    assert bad == {"bad_customer_id": 0, "bad_bureau_score": 1, "bad_housing": 0, "bad_birth_year": 1,
                   "bad_observation_date": 0}


def test_an_attributes_mapping_writes_snapshots_keyed_by_customer_and_date(spark):
    raw = spark.createDataFrame([(1, 700.0), (2, 710.0)], "id long, score double")
    m = parse_mapping({"table": "attributes", "key": "id", "columns": {"score": "bureau_score"},
                       "snapshot_date": "2025-06-30"}, ATTRS)
    out = mapped_table(mapped_rows(raw, m), m)
    assert out.columns == ["customer_id", "snapshot_date", "bureau_score"]
    day = dt.date(2025, 6, 30)
    assert sorted(tuple(r) for r in out.collect()) == [(1, day, 700.0), (2, day, 710.0)]
