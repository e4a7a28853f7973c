"""The monthly activity table and the fixed-shape behaviour sequences built from it.

The feature job reads the raw sources ONCE into a *monthly activity* table (one row per customer and
month, every channel of every available source side by side), then derives both the sequences (here) and the
rolling-window aggregates (:mod:`credspark.features.static`) from it. Each source becomes rows of one long
frame keyed by ``(customer_id, month)``:

- transactions -> per-month count and per-type amounts (:data:`TRANSACTION_CHANNELS`);
- statements -> delinquency, bill, payment, credit limit and utilisation (:data:`STATEMENT_CHANNELS`);
- customers -> one *profile row* at the month the account opened, so that the population, the profile and
  the behaviour come out of the same aggregation instead of a chain of joins.

Months are integer *month indexes* (``year * 12 + month - 1``) so that "k months before the as-of month" is
a subtraction. Rows older than the lookback of every requested as-of date are folded into one bucket per
customer (month ``lookback_start - 1``): the bucket still tells when the customer was first active and what
the latest credit limit was, while the scan stays a single pass whatever the history length.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as st

from credspark.contract import TXN_TYPES
from credspark.dates import is_month_end, month_end, month_index_of
from credspark.errors import ConfigError

__all__ = [
    "TRANSACTION_CHANNELS",
    "STATEMENT_CHANNELS",
    "SUPPORTED_CHANNELS",
    "CHANNEL_SOURCE",
    "month_index",
    "month_index_of",
    "timestamp_month_index",
    "month_end",
    "is_month_end",
    "resolve_channels",
    "monthly_activity",
    "activity_by_as_of",
    "sequence_rows",
    "with_sequences",
]

#: Channels from the transactions table: counts, and amounts per transaction type (amounts are >= 0).
TRANSACTION_CHANNELS: tuple[str, ...] = (
    "txn_count",
    "purchase_count",
    "purchase_amount",
    "payment_amount",
    "cash_advance_amount",
    "fee_amount",
    "refund_amount",
    "interest_amount",
)
#: Channels from the statements table (utilisation = bill / credit limit).
STATEMENT_CHANNELS: tuple[str, ...] = ("delinquency", "bill_amount", "paid_amount", "utilisation")
#: Every channel the job can build, in the default order (statements first: UCI has only those).
SUPPORTED_CHANNELS: tuple[str, ...] = STATEMENT_CHANNELS + TRANSACTION_CHANNELS
#: The source table each channel comes from.
CHANNEL_SOURCE: dict[str, str] = {c: "statements" for c in STATEMENT_CHANNELS} | {
    c: "transactions" for c in TRANSACTION_CHANNELS
}

# Element types of the sequence columns: never null (masked or empty months hold 0).
_SEQ_TYPE = st.ArrayType(st.FloatType(), containsNull=False)
_MASK_TYPE = st.ArrayType(st.ByteType(), containsNull=False)
# Non-null like the single-date literal, so one date or many give the same table schema.
_DATES_SCHEMA = st.StructType([
    st.StructField("as_of_date", st.DateType(), False),
    st.StructField("as_of_month", st.IntegerType(), False),
])
_SOURCE_TAG = {"transactions": 0, "statements": 1, "customers": 2}
# Above this many months, counting month starts costs more than the calendar conversion.
_MAX_MONTH_COMPARISONS = 48
# Columns of the monthly activity table besides the channels.
_STATEMENT_EXTRA = ("credit_limit", "n_statements")
_PROFILE_COLUMNS = ("birth_year", "sex", "education", "marital_status", "income", "open_month")


def month_index(col: Column | str) -> Column:
    """``year * 12 + month - 1`` of a date or timestamp column (UTC session time zone)."""
    c = F.col(col) if isinstance(col, str) else col
    return (F.year(c) * 12 + F.month(c) - 1).cast("int")


def resolve_channels(
    requested: Sequence[str] | None, present_sources: Iterable[str]
) -> tuple[tuple[str, ...], dict[str, list[str]]]:
    """Choose the sequence channels from the request and the sources that exist.

    Args:
        requested: Channel names (config ``features.channels``), or None for every supported channel.
        present_sources: Names of the input tables that exist (e.g. ``{"statements"}`` for UCI).

    Returns:
        ``(channels, left_out)``: the channels to build, in order, and the channels left out because their
        source is absent, keyed by source.

    Raises:
        ConfigError: A requested name is not a supported channel, or is listed twice.
    """
    present = set(present_sources)
    wanted = tuple(SUPPORTED_CHANNELS if requested is None else requested)
    unknown = [c for c in wanted if c not in CHANNEL_SOURCE]
    if unknown:
        raise ConfigError(
            f"features.channels: unknown channel(s) {unknown} (supported: {', '.join(SUPPORTED_CHANNELS)})"
        )
    if len(set(wanted)) != len(wanted):
        raise ConfigError(f"features.channels: duplicate channel names in {list(wanted)}")
    left_out: dict[str, list[str]] = {}
    for c in wanted:
        if CHANNEL_SOURCE[c] not in present:
            left_out.setdefault(CHANNEL_SOURCE[c], []).append(c)
    return tuple(c for c in wanted if CHANNEL_SOURCE[c] in present), left_out


def _month_start(m: int) -> Column:
    # A text literal cast in the session time zone (UTC), like year()/month(); a Python datetime literal
    # would be converted with the driver process's local time zone instead.
    return F.lit(f"{m // 12:04d}-{m % 12 + 1:02d}-01 00:00:00").cast("timestamp")


def timestamp_month_index(ts: Column | str, first: int, last: int) -> Column:
    """Month index of a timestamp known to be before the end of month ``last`` (same result as month_index).

    For the months ``first..last`` it counts the month starts the timestamp has passed: a dozen comparisons
    of 64-bit integers, several times cheaper than two calendar conversions per transaction; older
    timestamps (rare: they only feed the folded bucket) take the calendar path.

    Args:
        ts: Timestamp column.
        first: First month index of the range (the lookback start).
        last: Last month index; the caller guarantees ``ts`` is before its end.

    Returns:
        Integer month-index column.
    """
    c = F.col(ts) if isinstance(ts, str) else ts
    if last - first + 1 > _MAX_MONTH_COMPARISONS:
        return month_index(c)
    passed = sum(((c >= _month_start(m)).cast("int") for m in range(first + 1, last + 1)), F.lit(0))
    return F.when(c >= _month_start(first), F.lit(first) + passed).otherwise(month_index(c)).cast("int")


def _transaction_rows(transactions: DataFrame, until: dt.date, first_month: int) -> DataFrame:
    """Transactions up to the end of ``until`` as ``(customer_id, raw_month, txn_type, amount)``."""
    until_exclusive = F.lit(until + dt.timedelta(days=1)).cast("timestamp")
    month = timestamp_month_index("txn_ts", first_month, month_index_of(until))
    return transactions.where(F.col("txn_ts") < until_exclusive).select(
        "customer_id", month.alias("raw_month"), "txn_type", "amount"
    )


def _statement_rows(statements: DataFrame, last_month: int) -> DataFrame:
    return statements.select(
        "customer_id",
        month_index("statement_month").alias("raw_month"),
        "delinquency",
        "bill_amount",
        "paid_amount",
        "credit_limit",
    ).where(F.col("raw_month") <= F.lit(last_month))


def _profile_rows(customers: DataFrame, until: dt.date) -> DataFrame:
    # No open date: the profile row goes to the oldest bucket; the customer then counts as known from their
    # first transaction or statement (the pipeline keeps rows with a start month).
    return customers.where(F.col("open_date").isNull() | (F.col("open_date") <= F.lit(until))).select(
        "customer_id",
        month_index("open_date").alias("raw_month"),
        "birth_year",
        "sex",
        "education",
        "marital_status",
        "income",
        month_index("open_date").alias("open_month"),
    )


#: Amounts are summed in whole units of 1/AMOUNT_UNITS (exact integer sums): a month's total then does not depend
#: on the order Spark adds its rows in, which follows the files and tasks holding them (an incremental build
#: reading only recent files and a from-scratch build reading all of them give the same bits).
AMOUNT_UNITS = 10_000


def _transaction_aggregations(is_txn: Column) -> list[Column]:
    typ = F.col("txn_type")
    units = F.round(F.col("amount") * F.lit(AMOUNT_UNITS)).cast("long")
    aggs = [
        F.count(F.when(is_txn, 1)).cast("double").alias("txn_count"),
        F.count(F.when(typ == "purchase", 1)).cast("double").alias("purchase_count"),
    ]
    for t in TXN_TYPES:
        # coalesce: a month with transactions of other types has 0.0 of this one, not "unknown".
        total = F.sum(F.when(typ == t, units)) / F.lit(float(AMOUNT_UNITS))
        aggs.append(F.coalesce(total, F.lit(0.0)).alias(f"{t}_amount"))
    return aggs


def _statement_aggregations(is_stmt: Column) -> list[Column]:
    # One statement per customer and month (the contract's key); sums/max only matter for the folded bucket.
    return [
        F.max("delinquency").alias("delinquency"),
        F.sum("bill_amount").alias("bill_amount"),
        F.sum("paid_amount").alias("paid_amount"),
        F.max_by("credit_limit", F.when(F.col("credit_limit").isNotNull(), F.col("raw_month"))).alias(
            "credit_limit"
        ),
        F.count(F.when(is_stmt, 1)).cast("int").alias("n_statements"),
    ]


def _profile_aggregations() -> list[Column]:
    return [F.max(c).alias(c) for c in _PROFILE_COLUMNS[:-1]] + [F.min("open_month").alias("open_month")]


def monthly_activity(
    sources: Mapping[str, DataFrame],
    *,
    until: dt.date,
    lookback_start_month: int,
) -> DataFrame:
    """One row per customer and month with every channel of the available sources (the single raw scan).

    Args:
        sources: Clean input tables keyed ``customers``, ``transactions``, ``statements`` (absent keys are
            absent sources; other keys are ignored).
        until: Last day whose events may enter (the latest as-of date); later events are dropped here.
        lookback_start_month: Oldest month index any requested as-of date looks at; older months are folded
            into the bucket ``lookback_start_month - 1``.

    Returns:
        Columns ``customer_id``, ``month`` (int), ``first_month`` (first month with a transaction or
        statement in the row, null for profile-only rows), then per source: transactions
        :data:`TRANSACTION_CHANNELS`; statements :data:`STATEMENT_CHANNELS`, ``credit_limit``,
        ``n_statements``; customers ``birth_year``, ``sex``, ``education``, ``marital_status``, ``income``,
        ``open_month``. Columns of absent sources are not there at all.
    """
    parts: list[tuple[str, DataFrame]] = []
    if "transactions" in sources:
        parts.append(("transactions", _transaction_rows(sources["transactions"], until, lookback_start_month)))
    if "statements" in sources:
        parts.append(("statements", _statement_rows(sources["statements"], month_index_of(until))))
    if "customers" in sources:
        parts.append(("customers", _profile_rows(sources["customers"], until)))
    if not parts:
        raise ValueError("monthly_activity: no source table given")

    # A small integer tag says which source a row came from (compared per row by several aggregates).
    tagged = [df.withColumn("_src", F.lit(_SOURCE_TAG[name]).cast("tinyint")) for name, df in parts]
    rows = tagged[0]
    for df in tagged[1:]:
        rows = rows.unionByName(df, allowMissingColumns=True)

    bucket = F.lit(lookback_start_month - 1)
    month = F.greatest(F.coalesce(F.col("raw_month"), bucket), bucket).alias("month")
    src = F.col("_src")
    is_txn, is_stmt = src == _SOURCE_TAG["transactions"], src == _SOURCE_TAG["statements"]
    aggs = [F.min(F.when(src != _SOURCE_TAG["customers"], F.col("raw_month"))).alias("first_month")]
    present = [name for name, _ in parts]
    if "transactions" in present:
        aggs += _transaction_aggregations(is_txn)
    if "statements" in present:
        aggs += _statement_aggregations(is_stmt)
    if "customers" in present:
        aggs += _profile_aggregations()
    monthly = rows.groupBy("customer_id", month).agg(*aggs)
    if "statements" in present:
        util = F.when(F.col("credit_limit") > 0, F.col("bill_amount") / F.col("credit_limit"))
        monthly = monthly.withColumn("utilisation", util)
    return monthly


def activity_by_as_of(as_of_dates: Sequence[dt.date]) -> Callable[[DataFrame], DataFrame]:
    """Pair each monthly row with every as-of date it precedes (point in time: ``month <= as-of month``).

    Args:
        as_of_dates: Month-end as-of dates; the monthly rows must not go past the latest one (as
            :func:`monthly_activity` with ``until`` = the latest date guarantees).

    Returns:
        A transform adding ``as_of_date`` and ``k`` (months before the as-of month, 0 = the as-of month).
    """
    dates = sorted(set(as_of_dates))
    if not dates:
        raise ValueError("activity_by_as_of: no as-of date given")

    def _pair(monthly: DataFrame) -> DataFrame:
        if len(dates) == 1:
            # The daily case: no join, and no filter either: monthly_activity(until=the date) already kept
            # only rows up to it, and a filter here would be pushed into every source and recompute months.
            m = month_index_of(dates[0])
            return monthly.select("*", F.lit(dates[0]).alias("as_of_date"), (F.lit(m) - F.col("month")).alias("k"))
        # A backfill: broadcast the handful of dates; every monthly row meets the dates it precedes, so the raw
        # sources are scanned once whatever the number of dates.
        table = monthly.sparkSession.createDataFrame([(d, month_index_of(d)) for d in dates], _DATES_SCHEMA)
        joined = monthly.join(F.broadcast(table), F.col("month") <= F.col("as_of_month"))
        return joined.withColumn("k", F.col("as_of_month") - F.col("month")).drop("as_of_month")

    return _pair


def sequence_rows(channels: Sequence[str], T: int) -> Column:
    """Aggregate (over one customer's rows at one as-of date) collecting the last ``T`` months.

    Args:
        channels: Channel columns of the monthly activity table, in sequence order.
        T: Months in the sequence.

    Returns:
        ``collect_list`` of ``struct(k, v)`` with ``v`` the channel values as array<double> (nulls as 0.0),
        for months with a transaction or statement and ``k < T``; named ``_seq_rows``.
    """
    has_activity = F.col("first_month").isNotNull()
    values = F.array(*[F.coalesce(F.col(c).cast("double"), F.lit(0.0)) for c in channels])
    row = F.struct(F.col("k").alias("k"), values.alias("v"))
    return F.collect_list(F.when(has_activity & (F.col("k") < T), row)).alias("_seq_rows")


def with_sequences(n_channels: int, T: int) -> Callable[[DataFrame], DataFrame]:
    """Turn the collected rows into ``seq`` (array<float>, T*C) and ``seq_mask`` (array<tinyint>, T).

    Month ``t`` (0 = oldest, T-1 = the as-of month) holds ``k = T - 1 - t``; ``seq[t * C + c]`` is channel
    ``c`` of month ``t``. A month before ``start_month`` (the month the customer was first seen) has mask 0
    and 0.0 values; an observed month without data has mask 1 and 0.0 values.

    Args:
        n_channels: C, the length of each row's value array.
        T: Months in the sequence.

    Returns:
        A transform that needs ``_seq_rows`` (from :func:`sequence_rows`), ``as_of_date`` and
        ``start_month`` (int, null = never seen), adds ``seq`` and ``seq_mask`` and drops ``_seq_rows``.
    """
    zeros = F.array_repeat(F.lit(0.0), n_channels)

    def _build(df: DataFrame) -> DataFrame:
        by_k = F.map_from_entries(F.col("_seq_rows"))
        steps = F.sequence(F.lit(0), F.lit(T - 1))
        seq = F.flatten(F.transform(steps, lambda t: F.coalesce(F.try_element_at(by_k, T - 1 - t), zeros)))
        first_t = F.col("start_month") - (month_index("as_of_date") - (T - 1))
        mask = F.transform(steps, lambda t: F.when(t >= first_t, 1).otherwise(0).cast("tinyint"))
        return df.withColumn("seq", seq.cast(_SEQ_TYPE)).withColumn("seq_mask", mask.cast(_MASK_TYPE)).drop(
            "_seq_rows"
        )

    return _build
