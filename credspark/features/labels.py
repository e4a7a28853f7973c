"""Default labels by horizon, point in time.

For an as-of date ``D`` (a month end) and a horizon of ``h`` months, with ``E = last day of D's month + h``:

- ``label = 1`` when the customer has a default dated in ``(D, E]``;
- ``label = 0`` when there is none and the outcome is known through ``E`` (``E <= observed_through``);
- ``label = null`` otherwise: the horizon has not ended in the data yet.

A customer with a default on or before ``D`` is already in default at ``D``: by default they are dropped from
the population (they are not scored and would otherwise count as "good" for the next horizon).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from credspark.features.sequences import month_end

__all__ = ["horizon_end", "horizon_end_col", "default_events", "with_labels"]


def horizon_end(as_of: dt.date, horizon_months: int) -> dt.date:
    """Last day of the month ``horizon_months`` after ``as_of``'s month."""
    m = as_of.year * 12 + as_of.month - 1 + horizon_months
    return month_end(dt.date(m // 12, m % 12 + 1, 1))


def horizon_end_col(as_of: Column, horizon_months: int) -> Column:
    """Column version of :func:`horizon_end` (``add_months`` alone would keep day 28 after February)."""
    return F.last_day(F.add_months(as_of, horizon_months))


def default_events(as_of_dates: Sequence[dt.date], horizon_months: int) -> Callable[[DataFrame], DataFrame]:
    """Per customer and as-of date: whether a default came before it, and whether one falls in the horizon.

    Args:
        as_of_dates: The as-of dates.
        horizon_months: The label horizon ``h``.

    Returns:
        A transform of the outcomes table (``customer_id``, ``default_date``) into ``customer_id``,
        ``as_of_date``, ``defaulted_before`` (bool), ``defaults_in_horizon`` (bool), for the customers with a
        default on or before the horizon end.
    """
    dates = sorted(set(as_of_dates))

    def _events(outcomes: DataFrame) -> DataFrame:
        dd = F.col("default_date")
        table = outcomes.sparkSession.createDataFrame([(d,) for d in dates], "as_of_date date")
        paired = outcomes.join(F.broadcast(table), dd <= horizon_end_col(F.col("as_of_date"), horizon_months))
        return paired.groupBy("customer_id", "as_of_date").agg(
            F.max(dd <= F.col("as_of_date")).alias("defaulted_before"),
            F.max(dd > F.col("as_of_date")).alias("defaults_in_horizon"),
        )

    return _events


def with_labels(
    events: DataFrame | None,
    horizon_months: int,
    observed_through: dt.date | None,
    *,
    exclude_defaulted: bool = True,
) -> Callable[[DataFrame], DataFrame]:
    """Add the nullable int ``label`` (and drop customers already in default when asked).

    Args:
        events: Output of :func:`default_events`, or None when there is no outcomes table (all labels null).
        horizon_months: The label horizon ``h``.
        observed_through: Last day through which defaults are known; None = unknown (no 0 labels).
        exclude_defaulted: Drop rows of customers with a default on or before their as-of date.

    Returns:
        A transform of a frame keyed by ``customer_id``, ``as_of_date``.
    """

    def _label(population: DataFrame) -> DataFrame:
        if events is None:
            return population.withColumn("label", F.lit(None).cast("int"))
        df = population.join(events, ["customer_id", "as_of_date"], "left")
        if exclude_defaulted:
            df = df.where(~F.coalesce(F.col("defaulted_before"), F.lit(False)))
        known = (
            horizon_end_col(F.col("as_of_date"), horizon_months) <= F.lit(observed_through)
            if observed_through is not None
            else F.lit(False)
        )
        label = F.when(F.coalesce(F.col("defaults_in_horizon"), F.lit(False)), 1).when(known, 0)
        return df.withColumn("label", label.cast("int")).drop("defaulted_before", "defaults_in_horizon")

    return _label
