import json

import pytest
from pyspark.sql import types as T

from credspark.features.spec import PROP_CHANNELS, PROP_SPEC, PROP_T, feature_table_properties, spec_from_table
from credspark.models.spec import FeatureSpec, SpecMismatchError, StaticFeature

SPEC = FeatureSpec(
    static=(StaticFeature("age", "integer", lower=0), StaticFeature("sex", "categorical", (1, 2)),
            StaticFeature("util_mean_3m", "continuous")),
    channels=("delinquency", "bill_amount"),
    T=6,
    version="3",
)
SCHEMA = T.StructType([
    T.StructField("customer_id", T.LongType()), T.StructField("as_of_date", T.DateType()),
    T.StructField("age", T.IntegerType()), T.StructField("sex", T.IntegerType()),
    T.StructField("util_mean_3m", T.DoubleType()), T.StructField("seq", T.ArrayType(T.FloatType())),
    T.StructField("seq_mask", T.ArrayType(T.ByteType())), T.StructField("label", T.IntegerType()),
    T.StructField("feature_version", T.StringType()),
])


def test_properties_round_trip_to_the_same_spec():
    props = feature_table_properties(SPEC, absent_sources=["transactions"], left_out={"transactions": ["spend_1m"]},
                                     horizon_months=1)
    assert props[PROP_T] == "6" and props[PROP_CHANNELS] == "delinquency,bill_amount"
    assert props["credspark.feature_version"] == "3" and props["credspark.absent_sources"] == "transactions"
    assert json.loads(props["credspark.left_out"]) == {"transactions": ["spend_1m"]}
    assert "\n" not in props[PROP_SPEC]
    assert spec_from_table(SCHEMA, props) == SPEC


def test_spec_derived_from_schema_without_the_json_property():
    spec = spec_from_table(SCHEMA, {PROP_T: "6", PROP_CHANNELS: "delinquency,bill_amount"})
    assert spec.static_names == ["age", "sex", "util_mean_3m"]
    assert [f.kind for f in spec.static] == ["integer", "integer", "continuous"]
    assert spec.T == 6 and spec.channels == ("delinquency", "bill_amount")


def test_spec_mismatches_are_named():
    props = feature_table_properties(SPEC, absent_sources=[], left_out={}, horizon_months=1)
    with pytest.raises(SpecMismatchError, match="T=6"):
        spec_from_table(SCHEMA, {**props, PROP_T: "12"})
    with pytest.raises(SpecMismatchError, match="channels"):
        spec_from_table(SCHEMA, {**props, PROP_CHANNELS: "bill_amount"})
    narrow = T.StructType([f for f in SCHEMA.fields if f.name != "sex"])
    with pytest.raises(SpecMismatchError, match="sex"):
        spec_from_table(narrow, props)
    with pytest.raises(SpecMismatchError, match="missing"):
        spec_from_table(SCHEMA, {})
    with pytest.raises(SpecMismatchError, match="not a valid"):
        spec_from_table(SCHEMA, {**props, PROP_SPEC: "{"})
