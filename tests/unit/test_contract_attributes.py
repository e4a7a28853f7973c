"""Declared attributes in the input contract: cast, missing policy, bounds, unknown categories, snapshots."""

import datetime as dt

import pytest
from pyspark.sql import types as T

from credspark.config import AttributeConfig, config_from_dict
from credspark.contract import check_schema, table_schema, tag_counts, tag_rows
from credspark.errors import ConfigError, ContractError
from credspark.pipelines.validate import attribute_tables

pytestmark = pytest.mark.spark

AS_OF = dt.date(2025, 6, 30)
D = dt.date
ATTRS = {
    "bureau_score": AttributeConfig(kind="numeric", lower=300, upper=850, missing="reject"),
    "debt_ratio": AttributeConfig(kind="numeric", lower=0),
    "housing": AttributeConfig(kind="categorical", categories=("own", "rent")),
}
CUST_DDL = ("customer_id long, birth_year int, sex int, education int, marital_status int, region string, "
            "income double, open_date date, bureau_score double, debt_ratio double, housing string")


def _row(cid, score, ratio, housing):
    return (cid, 1980, 1, 2, 1, None, None, D(2020, 1, 1), score, ratio, housing)


def test_customer_attributes_are_cast_checked_by_policy_and_unknown_categories_become_other(spark):
    df = spark.createDataFrame([
        _row(1, 700.0, 0.5, "own"),
        _row(2, 900.0, 0.5, "rent"),            # above upper, policy reject
        _row(3, None, 0.5, "own"),              # null, policy reject
        _row(4, 650.0, float("nan"), "mortgage"),  # NaN -> null (policy null); unknown -> other
        _row(5, 640.0, -1.0, None),             # below lower -> null; null category kept
    ], CUST_DDL)
    tagged = df.transform(tag_rows("customers", AS_OF, ATTRS))
    rows = {r.customer_id: r for r in tagged.collect()}
    assert rows[1]._rule is None and rows[1].housing == "own" and rows[1].debt_ratio == 0.5
    assert (rows[2]._rule, rows[2]._reason) == ("range", "customers.bureau_score: declared attribute above 850")
    assert (rows[3]._rule, rows[3]._reason) == ("not_null", "customers.bureau_score: declared attribute null")
    assert rows[4]._rule is None and rows[4].debt_ratio is None and rows[4].housing == "other"
    assert rows[5]._rule is None and rows[5].debt_ratio is None and rows[5].housing is None
    clean = [r for r in tag_counts(tagged).collect() if r.status == "clean"]
    assert sum(r.mapped_housing for r in clean) == 1
    assert sum(r.mapped_debt_ratio for r in clean) == 2


def test_a_categorical_attribute_without_declared_categories_keeps_its_text_unmapped(spark):
    attrs = {**ATTRS, "housing": AttributeConfig(kind="categorical")}
    df = spark.createDataFrame([_row(1, 700.0, 0.5, "mortgage"), _row(2, 700.0, 0.5, None)], CUST_DDL)
    tagged = df.transform(tag_rows("customers", AS_OF, attrs))
    assert sorted((r.customer_id, r._rule, r.housing) for r in tagged.collect()) == [(1, None, "mortgage"),
                                                                                     (2, None, None)]
    assert "_mapped_housing" not in tagged.columns and "_mapped_debt_ratio" in tagged.columns  # never mapped


def test_an_attribute_of_a_type_that_cannot_be_cast_fails_naming_table_column_and_rule(spark):
    attrs = {"bureau_score": AttributeConfig(kind="numeric")}
    bad = spark.createDataFrame([(1, "x")], "customer_id long, bureau_score string")
    with pytest.raises(ContractError) as e:
        check_schema(bad.schema, "customers", attrs)
    assert (e.value.table, e.value.column) == ("customers", "bureau_score")
    assert "cannot be cast to double" in e.value.rule


def test_a_declared_attribute_missing_from_its_table_fails_the_run():
    schema = T.StructType([f for f in table_schema("customers").fields])
    with pytest.raises(ContractError) as e:
        check_schema(schema, "customers", {"housing": ATTRS["housing"]})
    assert (e.value.table, e.value.column, e.value.rule) == ("customers", "housing", "declared attribute missing")


def test_attribute_snapshots_after_the_as_of_date_are_excluded_and_duplicates_rejected(spark):
    attrs = {"bureau_score": AttributeConfig()}
    df = spark.createDataFrame([
        (1, D(2025, 5, 31), 700.0), (1, D(2025, 7, 31), 710.0), (1, D(2025, 5, 31), 705.0), (2, None, 600.0),
    ], "customer_id long, snapshot_date date, bureau_score double")
    rows = sorted(df.transform(tag_rows("attributes", AS_OF, attrs)).collect(),
                  key=lambda r: (r.customer_id, str(r.snapshot_date), r.bureau_score or 0))
    fates = [(r.customer_id, r.bureau_score, r._rule, r._after_as_of) for r in rows]
    assert fates == [(1, 700.0, None, False), (1, 705.0, "unique", False), (1, 710.0, None, True),
                     (2, 600.0, "not_null", False)]


def test_attributes_come_from_the_snapshots_when_they_hold_the_column_else_from_customers():
    held = attribute_tables(ATTRS, ["customer_id", "snapshot_date", "Bureau_Score"])
    assert list(held["attributes"]) == ["bureau_score"]
    assert list(held["customers"]) == ["debt_ratio", "housing"]
    assert attribute_tables(ATTRS, None)["attributes"] == {}


def test_attribute_declarations_are_checked_naming_the_key():
    cfg = config_from_dict({"attributes": {"housing": {"kind": "categorical", "categories": ["own", 1]}}})
    assert cfg.attributes["housing"].categories == ("own", "1")
    # no declared categories: the training job fits them, keeping at most max_categories
    free = config_from_dict({"attributes": {"housing": {"kind": "categorical"}}}).attributes["housing"]
    assert free.categories == () and free.max_categories == 20
    with pytest.raises(ConfigError, match="max_categories must be >= 1"):
        config_from_dict({"attributes": {"housing": {"kind": "categorical", "max_categories": 0}}})
    with pytest.raises(ConfigError, match="attributes.Housing"):
        config_from_dict({"attributes": {"Housing": {"kind": "numeric"}}})
    with pytest.raises(ConfigError, match="unknown config key 'attributes.x.kinds'"):
        config_from_dict({"attributes": {"x": {"kinds": "numeric"}}})
    with pytest.raises(ContractError, match="customers.income"):
        table_schema("customers", {"income": AttributeConfig()})
