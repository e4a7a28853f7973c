import datetime as dt

import pytest
from chispa import assert_approx_df_equality, assert_df_equality

from credspark.features.sequences import month_index_of
from credspark.features.static import static_aggregations, static_features, with_profile_features
from credspark.models.spec import StaticFeature

pytestmark = pytest.mark.spark

D = dt.date(2025, 12, 31)
ROWS_SCHEMA = (
    "customer_id bigint, as_of_date date, k int, purchase_amount double, payment_amount double, "
    "cash_advance_amount double, utilisation double, bill_amount double, paid_amount double, delinquency int, "
    "credit_limit double"
)
EXPECTED_NAMES = [
    "credit_limit", "spend_1m", "spend_3m", "payments_1m", "payments_3m", "cash_advance_1m", "cash_advance_3m",
    "util_mean_1m", "util_mean_3m", "util_max_1m", "util_max_3m", "pay_ratio_1m", "pay_ratio_3m",
    "months_delinquent_1m", "months_delinquent_3m", "worst_delinquency_1m", "worst_delinquency_3m",
    "util_trend_3m",
]


def test_window_aggregates(spark):
    rows = spark.createDataFrame([
        (1, D, 0, 10.0, 5.0, 0.0, 0.4, 40.0, 10.0, 1, 100.0),
        (1, D, 1, 20.0, 0.0, 3.0, 0.2, 20.0, 20.0, 0, 100.0),
        (1, D, 2, 0.0, 0.0, 0.0, 0.1, 10.0, 10.0, 2, 80.0),
        (1, D, 3, 100.0, 0.0, 0.0, 0.9, 90.0, 0.0, 5, 50.0),  # outside every window but keeps nothing
        (2, D, 1, 7.0, 0.0, 0.0, None, None, None, None, None),  # transactions only
        (3, D, 0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -2, 500.0),  # one statement, nothing billed
    ], ROWS_SCHEMA)
    got = rows.groupBy("customer_id").agg(*static_aggregations({"transactions", "statements"}, (1, 3)))
    assert got.columns[1:] == EXPECTED_NAMES
    schema = ("customer_id bigint, credit_limit double, spend_1m double, spend_3m double, payments_1m double, "
              "payments_3m double, cash_advance_1m double, cash_advance_3m double, util_mean_1m double, "
              "util_mean_3m double, util_max_1m double, util_max_3m double, pay_ratio_1m double, "
              "pay_ratio_3m double, months_delinquent_1m int, months_delinquent_3m int, "
              "worst_delinquency_1m int, worst_delinquency_3m int, util_trend_3m double")
    expected = spark.createDataFrame([
        (1, 100.0, 10.0, 30.0, 5.0, 5.0, 0.0, 3.0, 0.4, 0.7 / 3, 0.4, 0.4, 0.25, 40.0 / 70.0, 1, 2, 1, 2, 0.15),
        (2, None, 0.0, 7.0, 0.0, 0.0, 0.0, 0.0, None, None, None, None, None, None, None, None, None, None, None),
        (3, 500.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, None, None, 0, 0, -2, -2, None),
    ], schema)
    assert_approx_df_equality(got, expected, 1e-9, ignore_row_order=True, ignore_nullable=True)


def test_static_features_kinds_and_left_out_sources():
    feats, left = static_features({"statements"}, (1, 3))
    names = [f.name for f in feats]
    assert names == ["tenure_months", "credit_limit", "util_mean_1m", "util_mean_3m", "util_max_1m",
                     "util_max_3m", "pay_ratio_1m", "pay_ratio_3m", "months_delinquent_1m",
                     "months_delinquent_3m", "worst_delinquency_1m", "worst_delinquency_3m", "util_trend_3m"]
    assert left == {
        "customers": ["age", "sex", "education", "marital_status", "income"],
        "transactions": ["spend_1m", "spend_3m", "payments_1m", "payments_3m", "cash_advance_1m",
                         "cash_advance_3m"],
    }
    by_name = {f.name: f for f in feats}
    assert by_name["months_delinquent_3m"] == StaticFeature("months_delinquent_3m", "integer", (), 0, 3.0)
    assert by_name["worst_delinquency_1m"].lower == -2 and by_name["worst_delinquency_1m"].upper == 9
    full, left = static_features({"customers", "transactions", "statements"}, (1, 3))
    assert left == {}
    kinds = {f.name: (f.kind, f.categories) for f in full}
    assert kinds["sex"] == ("categorical", (1, 2))
    assert kinds["education"] == ("categorical", (1, 2, 3, 4))
    assert kinds["marital_status"] == ("categorical", (1, 2, 3))
    assert kinds["age"][0] == "integer" and kinds["income"][0] == "continuous"


def test_profile_features(spark):
    m = month_index_of(D)
    df = spark.createDataFrame([
        (1, D, m - 14, 1980, 1, 2, 3, 1000.0),
        (2, D, m, None, None, None, None, None),
        (3, D, None, 2000, 2, 1, 1, None),
    ], "customer_id bigint, as_of_date date, start_month int, birth_year int, sex int, education int, "
       "marital_status int, income double")
    got = df.transform(with_profile_features({"customers", "statements"}))
    expected = spark.createDataFrame([
        (1, D, m - 14, 1, 2, 3, 1000.0, 14, 45),
        (2, D, m, None, None, None, None, 0, None),
        (3, D, None, 2, 1, 1, None, None, 25),
    ], "customer_id bigint, as_of_date date, start_month int, sex int, education int, marital_status int, "
       "income double, tenure_months int, age int")
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)
    no_profile = df.select("customer_id", "as_of_date", "start_month").transform(with_profile_features({"statements"}))
    assert no_profile.columns == ["customer_id", "as_of_date", "start_month", "tenure_months"]
