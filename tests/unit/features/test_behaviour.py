import datetime as dt
import math

import pytest
from chispa import assert_approx_df_equality

from credspark.features.behaviour import BEHAVIOUR_FEATURES
from credspark.features.static import static_aggregations, static_features

pytestmark = pytest.mark.spark

D = dt.date(2025, 12, 31)
ROWS_SCHEMA = (
    "customer_id bigint, as_of_date date, k int, purchase_amount double, payment_amount double, "
    "cash_advance_amount double, fee_amount double, interest_amount double, utilisation double, "
    "bill_amount double, paid_amount double, delinquency int, credit_limit double"
)
NAMES = ["paid_prev_bill_3m", "months_since_delinquency_1m", "months_since_delinquency_3m", "pay_ratio_trend_3m",
         "bill_std_3m", "paid_std_3m", "cash_advance_share_1m", "cash_advance_share_3m", "fee_share_1m",
         "fee_share_3m"]


def test_behaviour_features_whole_frame(spark):
    rows = spark.createDataFrame([
        # customer 1: four months of statements and transactions; k = 3 is outside every window
        (1, D, 0, 10.0, 0.0, 5.0, 1.0, 4.0, 0.4, 40.0, 10.0, 0, 100.0),
        (1, D, 1, 20.0, 0.0, 0.0, 0.0, 0.0, 0.2, 20.0, 20.0, 0, 100.0),
        (1, D, 2, 0.0, 0.0, 0.0, 0.0, 0.0, 0.1, 10.0, 10.0, 2, 100.0),
        (1, D, 3, 100.0, 0.0, 50.0, 9.0, 1.0, 0.9, 90.0, 0.0, 5, 100.0),
        # customer 2: a statement in the as-of month, no activity at all in k = 1, transactions only in k = 2
        (2, D, 0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.5, 50.0, 0.0, 1, 100.0),
        (2, D, 2, 8.0, 0.0, 2.0, 0.0, 0.0, None, None, None, None, None),
        # customer 3: a history shorter than the window, transactions only
        (3, D, 1, 5.0, 0.0, 0.0, 0.5, 0.0, None, None, None, None, None),
        # customer 4: statements with nothing billed, paid or overdue, no transactions
        (4, D, 0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -2, 500.0),
        (4, D, 1, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -2, 500.0),
        (4, D, 2, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -2, 500.0),
    ], ROWS_SCHEMA)
    aggs = static_aggregations({"transactions", "statements"}, (1, 3), behaviour=True)
    got = rows.groupBy("customer_id").agg(*aggs).select("customer_id", *NAMES)
    schema = ("customer_id bigint, paid_prev_bill_3m double, months_since_delinquency_1m int, "
              "months_since_delinquency_3m int, pay_ratio_trend_3m double, bill_std_3m double, paid_std_3m double, "
              "cash_advance_share_1m double, cash_advance_share_3m double, fee_share_1m double, fee_share_3m double")
    expected = spark.createDataFrame([
        # paid k=0,1 (30) / billed k=1,2 (30); no delinquency in k=0 -> the window length (1); the latest
        # delinquent month inside 3 months is k=2; ratios 0.25, 1, 1 at x = 0, -1, -2 -> slope -0.375;
        # bills 40, 20, 10 and payments 10, 20, 10 (population std); cash 5 / (10 + 5); 5 / (30 + 5);
        # fees 1 / (10 + 5 + 1 + 4); 1 / (30 + 5 + 1 + 4)
        (1, 1.0, 1, 2, -0.375, math.sqrt(1400 / 9), math.sqrt(200 / 9), 1 / 3, 5 / 35, 0.05, 1 / 40),
        # no previous bill; delinquent in the as-of month; one ratio -> no trend; one statement -> std 0;
        # no transaction in the as-of month -> no share; 2 / (8 + 2); 0 fees of 10
        (2, None, 0, 0, None, 0.0, 0.0, None, 0.2, None, 0.0),
        # no statement at all: every statement feature is null; shares over the 3 months only
        (3, None, None, None, None, None, None, None, 0.0, None, 0.5 / 5.5),
        # nothing billed: no ratio and no trend; statements but no delinquency -> the window length
        (4, None, 1, 3, None, 0.0, 0.0, None, None, None, None),
    ], schema)
    assert_approx_df_equality(got, expected, 1e-9, ignore_row_order=True, ignore_nullable=True)


def test_the_group_is_switchable_and_needs_its_sources():
    base, _ = static_features({"transactions", "statements"}, (1, 3, 6))
    full, _ = static_features({"transactions", "statements"}, (1, 3, 6), behaviour=True)
    added = [f.name for f in full[len(base):]]
    assert [f.name for f in full[: len(base)]] == [f.name for f in base]
    assert added == ["paid_prev_bill_3m", "paid_prev_bill_6m", "months_since_delinquency_1m",
                     "months_since_delinquency_3m", "months_since_delinquency_6m", "pay_ratio_trend_3m",
                     "pay_ratio_trend_6m", "bill_std_3m", "bill_std_6m", "paid_std_3m", "paid_std_6m",
                     "cash_advance_share_1m", "cash_advance_share_3m", "cash_advance_share_6m", "fee_share_1m",
                     "fee_share_3m", "fee_share_6m"]
    by_name = {f.name: f for f in full}
    assert by_name["months_since_delinquency_6m"].upper == 6.0 and by_name["fee_share_3m"].upper == 1
    only_statements, left = static_features({"statements"}, (3,), behaviour=True)
    assert "cash_advance_share_3m" in left["transactions"] and "fee_share_3m" in left["transactions"]
    assert "bill_std_3m" in [f.name for f in only_statements]
    assert len(BEHAVIOUR_FEATURES) == 7
