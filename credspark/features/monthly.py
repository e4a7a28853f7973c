"""The persisted monthly activity: the rows a month stores, and the rows a feature build reads back from them.

A *closed* month (one that ended before the run's latest as-of date) never changes unless late data arrives,
so the feature job keeps its customer x month aggregates in the ``monthly_activity`` table
(:mod:`credspark.pipelines.monthly` decides what to compute and writes it). The rows of a stored month are
exactly the rows :func:`credspark.features.sequences.monthly_activity` gives that month from the transactions
and statements (:func:`month_rows`); the customers' profile rows are not stored (one row per customer, read
with each build, so a profile correction needs no recompute).

:func:`activity_for_as_of` turns stored months (plus the as-of month computed from its rows) back into the
frame the feature aggregation reads: the months inside the lookback as they are, the older ones folded into
one bucket row per customer that keeps what the features read from it (the first active month and the latest
credit limit), and the profile rows. The features computed from it equal those computed from the raw sources
(``tests/unit/pipelines/test_monthly_activity.py`` compares every column of every row).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as st

from credspark.dates import month_end
from credspark.features.sequences import (
    STATEMENT_CHANNELS,
    TRANSACTION_CHANNELS,
    _month_start,
    activity_by_as_of,
    month_index,
    monthly_activity,
)

__all__ = [
    "CHANGE_DATA_FEED",
    "MONTHLY_SCHEMA",
    "MONTHLY_SOURCES",
    "month_start_date",
    "month_label",
    "source_month",
    "month_rows",
    "activity_for_as_of",
    "in_customer_order",
]

#: The Delta table property that turns the change data feed on (late data is found in it).
CHANGE_DATA_FEED = "delta.enableChangeDataFeed"

#: Sources whose rows the monthly table aggregates (the customers' profile is read with each build).
MONTHLY_SOURCES: tuple[str, ...] = ("transactions", "statements")

#: Columns of the stored table: those of :func:`~credspark.features.sequences.monthly_activity` without the
#: profile; columns of a source that is absent hold nulls.
MONTHLY_SCHEMA = st.StructType([
    st.StructField("customer_id", st.LongType()),
    st.StructField("month", st.IntegerType()),
    st.StructField("first_month", st.IntegerType()),
    *[st.StructField(c, st.DoubleType()) for c in TRANSACTION_CHANNELS],
    st.StructField("delinquency", st.IntegerType()),
    st.StructField("bill_amount", st.DoubleType()),
    st.StructField("paid_amount", st.DoubleType()),
    st.StructField("credit_limit", st.DoubleType()),
    st.StructField("n_statements", st.IntegerType()),
    st.StructField("utilisation", st.DoubleType()),
])
_SOURCE_COLUMNS = {
    "transactions": TRANSACTION_CHANNELS,
    "statements": (*(c for c in STATEMENT_CHANNELS if c != "utilisation"), "credit_limit", "n_statements",
                   "utilisation"),
}


def month_start_date(month: int) -> dt.date:
    """The first day of month index ``month``."""
    return dt.date(month // 12, month % 12 + 1, 1)


def month_label(month: int) -> str:
    """``YYYY-MM`` of a month index (how run summaries and table properties name months)."""
    return f"{month // 12:04d}-{month % 12 + 1:02d}"


def source_month(source: str) -> Column:
    """The month index a row of ``source`` (transactions or statements) belongs to."""
    if source == "transactions":
        return month_index(F.col("txn_ts").cast("timestamp"))
    if source == "statements":
        return month_index(F.col("statement_month").cast("date"))
    raise ValueError(f"source_month: {source!r} is not one of {MONTHLY_SOURCES}")


def _columns_of(present: Iterable[str]) -> list[str]:
    present = set(present)
    keep = {"customer_id", "month", "first_month"}
    for source, cols in _SOURCE_COLUMNS.items():
        if source in present:
            keep.update(cols)
    return [f.name for f in MONTHLY_SCHEMA.fields if f.name in keep]


def month_rows(sources: Mapping[str, DataFrame], months: Sequence[int]) -> DataFrame:
    """The monthly activity rows of some months, in :data:`MONTHLY_SCHEMA` (what one month stores).

    Args:
        sources: Clean input tables; ``transactions`` and ``statements`` are used (absent = absent source,
            its columns null).
        months: Month indexes; every row of these months enters (months must have ended for the rows to be
            complete: the caller decides).

    Returns:
        One row per customer and month with activity in ``months``.

    Raises:
        ValueError: No month given, or neither source present.
    """
    if not months:
        raise ValueError("month_rows: no month given")
    first, last = min(months), max(months)
    subset: dict[str, DataFrame] = {}
    if "transactions" in sources:
        subset["transactions"] = sources["transactions"].where(F.col("txn_ts") >= _month_start(first))
    if "statements" in sources:
        subset["statements"] = sources["statements"].where(
            F.col("statement_month") >= F.lit(month_start_date(first)))
    if not subset:
        raise ValueError("month_rows: neither a transactions nor a statements source given")
    # Nothing before `first` enters, so monthly_activity folds no row into its bucket month `first - 1`.
    rows = monthly_activity(subset, until=month_end(month_start_date(last)), lookback_start_month=first)
    if len(set(months)) < last - first + 1:
        rows = rows.where(F.col("month").isin(sorted(set(months))))
    return rows.select(*[
        (F.col(f.name) if f.name in rows.columns else F.lit(None)).cast(f.dataType).alias(f.name)
        for f in MONTHLY_SCHEMA.fields
    ])


def activity_for_as_of(
    stored: DataFrame,
    *,
    open_month: DataFrame | None = None,
    customers: DataFrame | None,
    present_sources: Iterable[str],
    until: dt.date,
    lookback_start_month: int,
) -> DataFrame:
    """The rows the feature aggregation reads, from stored months (the counterpart of ``monthly_activity``).

    Args:
        stored: Rows in :data:`MONTHLY_SCHEMA` of every stored month up to ``until``'s month; no later month.
        open_month: Rows in :data:`MONTHLY_SCHEMA` of the as-of month computed for this build (None = stored).
            They enter the lookback rows only: the as-of month is never older than the lookback, so the
            bucket of older months never reads them (and their source rows are scanned once).
        customers: Clean customers table (None = absent: no profile rows).
        present_sources: Input tables that exist (the columns of the others are left out, as
            ``monthly_activity`` leaves them out).
        until: The latest as-of date.
        lookback_start_month: Oldest month index any as-of date looks at; older months become one bucket row
            per customer at ``lookback_start_month - 1`` carrying ``first_month`` and ``credit_limit`` (the
            only values the features read from months outside every window).

    Returns:
        ``customer_id``, ``month``, ``first_month``, the present sources' columns and, with customers, the
        profile columns, as :func:`~credspark.features.sequences.monthly_activity` names them.
    """
    present = set(present_sources)
    cols = _columns_of(present)
    bucket = lookback_start_month - 1
    recent = stored.where(F.col("month") >= F.lit(lookback_start_month)).select(*cols)
    if open_month is not None:
        recent = recent.unionByName(open_month.select(*cols))
    old_aggs = [F.min("first_month").alias("first_month")]
    if "statements" in present:
        latest = F.when(F.col("credit_limit").isNotNull(), F.col("month"))
        old_aggs.append(F.max_by("credit_limit", latest).alias("credit_limit"))
    old = (stored.where(F.col("month") < F.lit(lookback_start_month)).groupBy("customer_id")
           .agg(*old_aggs).withColumn("month", F.lit(bucket).cast("int")))
    rows = recent.unionByName(old, allowMissingColumns=True)
    if customers is not None and "customers" in present:
        profile = monthly_activity({"customers": customers}, until=until, lookback_start_month=lookback_start_month)
        rows = rows.unionByName(profile, allowMissingColumns=True)
    return rows


def in_customer_order(as_of_dates: Sequence[dt.date]) -> Callable[[DataFrame], DataFrame]:
    """Pair the monthly rows with the as-of dates, hash-partitioned by customer and sorted by date and month.

    The per-customer aggregation then needs no further shuffle and meets each customer's rows in one pass, in
    month order, whatever produced them: sums, means and deviations of doubles round the same way whether the
    rows come from the raw sources or from stored months (floating-point addition is not associative, so an
    order left to the shuffle could differ in the last bit between the two).

    Args:
        as_of_dates: The as-of dates (see :func:`~credspark.features.sequences.activity_by_as_of`).

    Returns:
        A transform: monthly activity rows -> rows with ``as_of_date`` and ``k``, partitioned and sorted.
    """
    pair = activity_by_as_of(as_of_dates)

    def _order(monthly: DataFrame) -> DataFrame:
        # An explicit partition count: adaptive execution leaves it alone (it may coalesce a repartition by
        # column according to data sizes, which differ between the two sources of rows). The sort comes after
        # the pairing: the optimizer drops a sort below a join.
        n = int(monthly.sparkSession.conf.get("spark.sql.shuffle.partitions"))
        paired = monthly.repartition(n, "customer_id").transform(pair)
        return paired.sortWithinPartitions("customer_id", "as_of_date", "month")

    return _order
