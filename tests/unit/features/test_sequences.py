import datetime as dt

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from credspark.errors import ConfigError
from credspark.features.sequences import (
    STATEMENT_CHANNELS,
    SUPPORTED_CHANNELS,
    TRANSACTION_CHANNELS,
    activity_by_as_of,
    is_month_end,
    month_end,
    month_index,
    month_index_of,
    monthly_activity,
    resolve_channels,
    sequence_rows,
    timestamp_month_index,
    with_sequences,
)

pytestmark = pytest.mark.spark

M = month_index_of  # 2025-12 -> 24311


def ts(y, m, d, h=12):
    return dt.datetime(y, m, d, h, 0, 0)


def test_month_helpers():
    assert month_index_of(dt.date(2025, 1, 31)) == 2025 * 12
    assert month_end(dt.date(2024, 2, 3)) == dt.date(2024, 2, 29)
    assert month_end(dt.date(2025, 12, 1)) == dt.date(2025, 12, 31)
    assert is_month_end(dt.date(2025, 11, 30)) and not is_month_end(dt.date(2025, 11, 29))


def test_timestamp_month_index_matches_the_calendar_at_month_boundaries(spark):
    stamps = ["2023-05-17 00:00:00", "2024-12-31 23:59:59.999999", "2025-01-01 00:00:00", "2025-02-28 23:59:59",
              "2025-03-01 00:00:00", "2025-12-31 23:59:00"]
    # text cast in the session time zone (UTC): independent of the machine's local zone
    df = spark.createDataFrame([(s,) for s in stamps], "s string").select(F.col("s").cast("timestamp").alias("ts"))
    got = df.select(timestamp_month_index("ts", M(dt.date(2025, 1, 1)), M(dt.date(2025, 12, 1))).alias("fast"),
                    month_index("ts").alias("calendar")).collect()
    assert [r.fast for r in got] == [r.calendar for r in got]
    assert [r.calendar for r in got] == [2023 * 12 + 4, 2024 * 12 + 11, 2025 * 12, 2025 * 12 + 1, 2025 * 12 + 2,
                                         2025 * 12 + 11]


def test_resolve_channels_defaults_and_absent_sources():
    chans, left = resolve_channels(None, {"transactions", "statements"})
    assert chans == SUPPORTED_CHANNELS and left == {} and len(chans) <= 12
    chans, left = resolve_channels(None, {"statements", "customers"})
    assert chans == STATEMENT_CHANNELS
    assert left == {"transactions": list(TRANSACTION_CHANNELS)}
    chans, left = resolve_channels(["purchase_amount", "utilisation"], {"transactions"})
    assert chans == ("purchase_amount",) and left == {"statements": ["utilisation"]}
    with pytest.raises(ConfigError, match="unknown channel"):
        resolve_channels(["spend"], {"transactions"})
    with pytest.raises(ConfigError, match="duplicate"):
        resolve_channels(["fee_amount", "fee_amount"], {"transactions"})


MONTHLY_SCHEMA = (
    "customer_id bigint, month int, first_month int, txn_count double, purchase_count double, "
    "purchase_amount double, payment_amount double, cash_advance_amount double, fee_amount double, "
    "refund_amount double, interest_amount double, delinquency int, bill_amount double, paid_amount double, "
    "credit_limit double, n_statements int, birth_year int, sex int, education int, marital_status int, "
    "income double, open_month int, utilisation double"
)


def test_monthly_activity_one_row_per_customer_month(spark, make_inputs):
    until = dt.date(2025, 12, 31)
    inputs = make_inputs(
        customers=[(1, 1980, 1, 2, 1, "N", 5000.0, dt.date(2024, 6, 15)),
                   (2, 1990, 2, 1, 2, None, None, None),
                   (3, 1970, 1, 1, 1, None, None, dt.date(2026, 1, 5))],  # opens after as-of: not known
        transactions=[
            ("a", 1, ts(2025, 12, 3), 10.0, "purchase", None),
            ("b", 1, ts(2025, 12, 31, 23), 5.0, "purchase", None),
            ("c", 1, ts(2025, 12, 20), 7.0, "payment", None),
            ("d", 1, ts(2025, 11, 2), 3.0, "fee", None),
            ("e", 1, ts(2026, 1, 1, 0), 99.0, "purchase", None),  # after until: dropped
            ("f", 1, ts(2024, 7, 1), 1.0, "refund", None),  # before the lookback: folded
            ("g", 1, ts(2024, 9, 1), 2.0, "interest", None),  # folded into the same bucket
        ],
        statements=[
            (1, dt.date(2025, 12, 1), 100.0, 50.0, 20.0, None, 1),
            (2, dt.date(2025, 11, 1), 200.0, -10.0, 0.0, None, -1),
            (2, dt.date(2024, 8, 1), 150.0, 30.0, 30.0, None, 0),  # folded; keeps its limit
            (2, dt.date(2026, 1, 1), 999.0, 1.0, 1.0, None, 9),  # after until: dropped
        ],
    )
    lookback = M(dt.date(2025, 1, 31))  # bucket = 2024-12
    got = monthly_activity(inputs, until=until, lookback_start_month=lookback)
    b = lookback - 1
    dec, nov = M(dt.date(2025, 12, 1)), M(dt.date(2025, 11, 1))
    jun24, jul24, aug24 = M(dt.date(2024, 6, 1)), M(dt.date(2024, 7, 1)), M(dt.date(2024, 8, 1))
    expected = spark.createDataFrame([
        (1, dec, dec, 3.0, 2.0, 15.0, 7.0, 0.0, 0.0, 0.0, 0.0, 1, 50.0, 20.0, 100.0, 1,
         None, None, None, None, None, None, 0.5),
        (1, nov, nov, 1.0, 0.0, 0.0, 0.0, 0.0, 3.0, 0.0, 0.0, None, None, None, None, 0,
         None, None, None, None, None, None, None),
        # profile row at the open month (folded) + the two old transactions
        (1, b, jul24, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 2.0, None, None, None, None, 0,
         1980, 1, 2, 1, 5000.0, jun24, None),
        (2, nov, nov, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1, -10.0, 0.0, 200.0, 1,
         None, None, None, None, None, None, -0.05),
        (2, b, aug24, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0, 30.0, 30.0, 150.0, 1,
         1990, 2, 1, 2, None, None, 0.2),
    ], MONTHLY_SCHEMA)
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)


def test_monthly_activity_leaves_out_absent_sources(spark, make_inputs):
    inputs = make_inputs(statements=[(1, dt.date(2025, 12, 1), 100.0, 50.0, 20.0, None, 0)])
    got = monthly_activity(inputs, until=dt.date(2025, 12, 31), lookback_start_month=M(dt.date(2025, 1, 1)))
    assert got.columns == ["customer_id", "month", "first_month", *STATEMENT_CHANNELS[:3], "credit_limit",
                           "n_statements", "utilisation"]
    assert not set(TRANSACTION_CHANNELS) & set(got.columns)


def _seq_of(spark, monthly_rows, dates, channels, T):
    monthly = spark.createDataFrame(monthly_rows, "customer_id bigint, month int, first_month int, a double, b double")
    grouped = (monthly.transform(activity_by_as_of(dates)).groupBy("customer_id", "as_of_date")
               .agg(F.min("first_month").alias("start_month"), sequence_rows(channels, T)))
    return grouped.transform(with_sequences(len(channels), T)).select("customer_id", "as_of_date", "seq", "seq_mask")


def test_sequences_fill_gaps_mask_history_and_stay_point_in_time(spark):
    d1, d2 = dt.date(2025, 11, 30), dt.date(2025, 12, 31)
    oct_, nov, dec = M(dt.date(2025, 10, 1)), M(d1), M(d2)
    rows = [
        # customer 1: active since long ago (folded bucket row), data in Oct and Dec, nothing in Nov
        (1, oct_ - 5, oct_ - 20, 9.0, 9.0),
        (1, oct_, oct_, 1.0, 2.0),
        (1, dec, dec, 3.0, None),  # null value -> 0.0
        # customer 2: first seen in November
        (2, nov, nov, 5.0, 6.0),
        # customer 3: first seen in December: unknown at d1
        (3, dec, dec, 7.0, 8.0),
    ]
    got = _seq_of(spark, rows, [d1, d2], ["a", "b"], T=3)
    expected = spark.createDataFrame([
        (1, d1, [0.0, 0.0, 1.0, 2.0, 0.0, 0.0], [1, 1, 1]),  # Sep, Oct, Nov
        (1, d2, [1.0, 2.0, 0.0, 0.0, 3.0, 0.0], [1, 1, 1]),  # Oct, Nov, Dec
        (2, d1, [0.0, 0.0, 0.0, 0.0, 5.0, 6.0], [0, 0, 1]),
        (2, d2, [0.0, 0.0, 5.0, 6.0, 0.0, 0.0], [0, 1, 1]),
        (3, d2, [0.0, 0.0, 0.0, 0.0, 7.0, 8.0], [0, 0, 1]),
    ], "customer_id bigint, as_of_date date, seq array<float>, seq_mask array<tinyint>")
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)


def test_sequence_channel_order_is_month_major(spark):
    d = dt.date(2025, 12, 31)
    rows = [(1, M(d) - 1, M(d) - 1, 1.0, 10.0), (1, M(d), M(d) - 1, 2.0, 20.0)]
    got = _seq_of(spark, rows, [d], ["b", "a"], T=2).first()
    assert got.seq == [10.0, 1.0, 20.0, 2.0]  # index t*C + c, channels in the requested order
    assert got.seq_mask == [1, 1]
