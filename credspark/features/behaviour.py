"""The behaviour group of static features: ratios, delinquency recency, trends, volatility, transaction shares.

Switched on as a group by ``features.behaviour`` (:func:`credspark.features.static.static_features` and
:func:`~credspark.features.static.static_aggregations` with ``behaviour=True``). Like every static feature they
are aggregates over the monthly activity rows paired with an as-of date (``k`` = months before the as-of
month, 0 = the as-of month, never a later month), so they are point-in-time correct by construction and come
out of the feature job's single ``groupBy``. Per window of ``w`` months ending with the as-of month:

- ``paid_prev_bill_<w>m`` (windows of 2 months or more): each month's payment against the previous month's
  bill, both inside the window: paid in months ``k = 0..w-2`` / billed in months ``k = 1..w-1``; null when
  those bills sum to <= 0.
- ``months_since_delinquency_<w>m``: months since the latest statement with delinquency >= 1 inside the window
  (0 = the as-of month); ``w`` when the window's statements show none; null without a statement in the window.
- ``pay_ratio_trend_<w>m`` (windows of 3 months or more): least-squares slope of the monthly pay ratio (paid /
  bill, months with a bill > 0) on the month number; null with fewer than 2 such months.
- ``bill_std_<w>m`` / ``paid_std_<w>m`` (windows of 2 months or more): population standard deviation of the
  monthly bill / paid amount over the window's statements (months without a statement are skipped); null
  without a statement.
- ``cash_advance_share_<w>m``: cash advances / (purchases + cash advances); ``fee_share_<w>m``: fees /
  (purchases + cash advances + fees + interest); null when the denominator is 0 (no such transaction).

The minimum payment due (``statements.min_due``) is not part of the monthly activity rows, so no paid / min
due ratio is built.
"""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import Column
from pyspark.sql import functions as F

from credspark.features.static import _Feature, _in, monthly_slope

__all__ = ["BEHAVIOUR_FEATURES"]


def _paid_prev_bill(w: int | None) -> Column:
    # Pairs (paid in month k, bill of month k + 1) with both months inside the window.
    prev = F.sum(F.when((F.col("k") >= 1) & (F.col("k") < w), F.col("bill_amount")))
    return F.when(prev > 0, F.coalesce(F.sum(_in(w - 1, "paid_amount")), F.lit(0.0)) / prev)


def _months_since_delinquency(w: int | None) -> Column:
    latest = F.min(F.when((F.col("k") < w) & (F.col("delinquency") >= 1), F.col("k")))
    seen = F.count(_in(w, "delinquency")) > 0
    return F.when(seen, F.coalesce(latest, F.lit(w)))


def _pay_ratio_trend(w: int | None) -> Column:
    ratio = F.when(F.col("bill_amount") > 0, F.col("paid_amount") / F.col("bill_amount"))
    return monthly_slope(w, ratio)


def _share(num: str, *den: str) -> Callable[[int | None], Column]:
    def build(w: int | None) -> Column:
        total = sum((F.coalesce(F.sum(_in(w, c)), F.lit(0.0)) for c in den), F.lit(0.0))
        return F.when(total > 0, F.coalesce(F.sum(_in(w, num)), F.lit(0.0)) / total)

    return build


#: The behaviour group, in column order (appended after the base static features).
BEHAVIOUR_FEATURES: tuple[_Feature, ...] = (
    _Feature("paid_prev_bill", "statements", "continuous", "double", True, _paid_prev_bill, lower=0, min_window=2),
    _Feature("months_since_delinquency", "statements", "integer", "int", True, _months_since_delinquency, lower=0),
    _Feature("pay_ratio_trend", "statements", "continuous", "double", True, _pay_ratio_trend, min_window=3),
    _Feature("bill_std", "statements", "continuous", "double", True,
             lambda w: F.stddev_pop(_in(w, "bill_amount")), lower=0, min_window=2),
    _Feature("paid_std", "statements", "continuous", "double", True,
             lambda w: F.stddev_pop(_in(w, "paid_amount")), lower=0, min_window=2),
    _Feature("cash_advance_share", "transactions", "continuous", "double", True,
             _share("cash_advance_amount", "purchase_amount", "cash_advance_amount"), lower=0, upper=1),
    _Feature("fee_share", "transactions", "continuous", "double", True,
             _share("fee_amount", "purchase_amount", "cash_advance_amount", "fee_amount", "interest_amount"),
             lower=0, upper=1),
)
