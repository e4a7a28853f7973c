"""Static (named-column) features: the encoded profile and rolling-window behaviour aggregates.

Everything here is an aggregate expression or a column expression over the rows produced by
:func:`credspark.features.sequences.activity_by_as_of` (monthly activity rows paired with an as-of date and
``k``, the months before the as-of month), so the pipeline computes all static features and the sequences in
ONE ``groupBy(customer_id, as_of_date)``.

Names are ``<stem>_<w>m`` for a window of ``w`` months ending with the as-of month (``spend_3m``,
``util_max_6m``). Definitions, per window:

- ``spend`` / ``payments`` / ``cash_advance``: sum of purchase / payment / cash-advance transaction amounts
  (0.0 when the customer had none; the transactions source exists).
- ``util_mean`` / ``util_max``: mean / max of the monthly utilisation (statement bill / credit limit) over
  the window's statements; null when the window has no statement.
- ``pay_ratio``: total paid / total billed over the window's statements; null when the total bill <= 0.
- ``months_delinquent``: statements with delinquency >= 1; ``worst_delinquency``: their maximum delinquency
  (UCI scale -2..9). Null when the window has no statement.
- ``util_trend``: least-squares slope of utilisation on the month number (utilisation points per month;
  > 0 = rising), over the window's statements; null with fewer than 2 statements. Windows of 1 month have
  no trend column.

Profile: ``age`` (as-of year - birth year), ``sex``, ``education``, ``marital_status`` (integer codes of
:mod:`credspark.contract`), ``income`` (nullable), ``tenure_months`` (whole months from the start month to
the as-of month, the start month being the earlier of the open date's month and the first month with a
transaction or statement), ``credit_limit`` (of the latest statement up to the as-of date).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from credspark.contract import DELINQUENCY_RANGE, EDUCATION_CODES, MARITAL_CODES, SEX_CODES
from credspark.features.sequences import month_index
from credspark.models.spec import StaticFeature

__all__ = [
    "PROFILE_FEATURES",
    "static_features",
    "static_aggregations",
    "profile_aggregations",
    "with_profile_features",
]


@dataclass(frozen=True)
class _Feature:
    """How one static feature (or one per window) is named, typed and computed."""

    stem: str
    source: str
    kind: str
    dtype: str
    windowed: bool
    #: Aggregate (or post-aggregate) expression; gets the window length (None for non-windowed ones).
    build: Callable[[int | None], Column] | None
    categories: tuple[int, ...] = ()
    lower: float | None = None
    upper: float | None = None
    min_window: int = 1


def _in(w: int, col: str) -> Column:
    """``col`` for rows inside the last ``w`` months, else null (so aggregates skip it)."""
    return F.when(F.col("k") < w, F.col(col))


def _sum_or_zero(col: str) -> Callable[[int | None], Column]:
    return lambda w: F.coalesce(F.sum(_in(w, col)), F.lit(0.0))


def _pay_ratio(w: int | None) -> Column:
    billed = F.sum(_in(w, "bill_amount"))
    return F.when(billed > 0, F.sum(_in(w, "paid_amount")) / billed)


def _months_delinquent(w: int | None) -> Column:
    return F.sum(F.when(F.col("k") < w, (F.col("delinquency") >= 1).cast("int")))


def monthly_slope(w: int | None, value: Column) -> Column:
    """Least-squares slope of ``value`` on the month number over the last ``w`` months (per month; > 0 = rising).

    An aggregate over rows with ``k``; rows where ``value`` is null are skipped; fewer than 2 points (or all in
    one month) give null.
    """
    # y = value on x = -k (later months larger), with the usual closed form; a zero denominator gives null.
    inside = (F.col("k") < w) & value.isNotNull()
    x = F.when(inside, -F.col("k").cast("double"))
    y = F.when(inside, value)
    n = F.count(x).cast("double")
    sx, sy, sxy, sxx = F.sum(x), F.sum(y), F.sum(x * y), F.sum(x * x)
    den = n * sxx - sx * sx
    return F.when(den != 0, (n * sxy - sx * sy) / den)


def _util_trend(w: int | None) -> Column:
    return monthly_slope(w, F.col("utilisation"))


_FEATURES: tuple[_Feature, ...] = (
    _Feature("age", "customers", "integer", "int", False, None, lower=0),
    _Feature("sex", "customers", "categorical", "int", False, None, categories=SEX_CODES),
    _Feature("education", "customers", "categorical", "int", False, None, categories=EDUCATION_CODES),
    _Feature("marital_status", "customers", "categorical", "int", False, None, categories=MARITAL_CODES),
    _Feature("income", "customers", "continuous", "double", False, None, lower=0),
    _Feature("tenure_months", "any", "integer", "int", False, None, lower=0),
    _Feature("credit_limit", "statements", "continuous", "double", False,
             lambda _: F.max_by("credit_limit", F.when(F.col("credit_limit").isNotNull(), F.col("k") * -1)),
             lower=0),
    _Feature("spend", "transactions", "continuous", "double", True, _sum_or_zero("purchase_amount"), lower=0),
    _Feature("payments", "transactions", "continuous", "double", True, _sum_or_zero("payment_amount"), lower=0),
    _Feature("cash_advance", "transactions", "continuous", "double", True, _sum_or_zero("cash_advance_amount"),
             lower=0),
    _Feature("util_mean", "statements", "continuous", "double", True, lambda w: F.avg(_in(w, "utilisation"))),
    _Feature("util_max", "statements", "continuous", "double", True, lambda w: F.max(_in(w, "utilisation"))),
    _Feature("pay_ratio", "statements", "continuous", "double", True, _pay_ratio),
    _Feature("months_delinquent", "statements", "integer", "int", True, _months_delinquent, lower=0),
    _Feature("worst_delinquency", "statements", "integer", "int", True, lambda w: F.max(_in(w, "delinquency")),
             lower=DELINQUENCY_RANGE[0], upper=DELINQUENCY_RANGE[1]),
    _Feature("util_trend", "statements", "continuous", "double", True, _util_trend, min_window=2),
)

#: The profile features (from the customers table), under the names UCI's columns carry.
PROFILE_FEATURES: tuple[str, ...] = tuple(f.stem for f in _FEATURES if f.source == "customers")


def _expand(present: set[str], windows: Sequence[int], features: Sequence[_Feature] = _FEATURES
            ) -> Iterable[tuple[str, _Feature, int | None, bool]]:
    """(name, feature, window, available) for every column of ``features``, in table order."""
    for f in features:
        available = f.source == "any" or f.source in present
        if not f.windowed:
            yield f.stem, f, None, available
            continue
        for w in windows:
            if w >= f.min_window:
                upper = float(w) if f.stem in _UPPER_IS_WINDOW else f.upper
                yield f"{f.stem}_{w}m", _with_upper(f, upper), w, available


#: Windowed counts of months whose upper bound is the window length.
_UPPER_IS_WINDOW = ("months_delinquent", "months_since_delinquency")


def _with_upper(f: _Feature, upper: float | None) -> _Feature:
    return f if upper == f.upper else replace(f, upper=upper)


def _groups(behaviour: bool) -> tuple[_Feature, ...]:
    if not behaviour:
        return _FEATURES
    from credspark.features.behaviour import BEHAVIOUR_FEATURES

    return _FEATURES + BEHAVIOUR_FEATURES


def static_features(
    present_sources: Iterable[str], windows: Sequence[int], *, behaviour: bool = False
) -> tuple[list[StaticFeature], dict[str, list[str]]]:
    """The static columns the sources allow, and those left out because their source is absent.

    Args:
        present_sources: Names of the input tables that exist.
        windows: Window lengths in months (config ``features.windows``).
        behaviour: Append the behaviour group (:mod:`credspark.features.behaviour`, config
            ``features.behaviour``). Defaults to False.

    Returns:
        ``(features, left_out)``: StaticFeature entries in column order, and left-out names keyed by source.
    """
    present = set(present_sources)
    out: list[StaticFeature] = []
    left_out: dict[str, list[str]] = {}
    for name, f, _, available in _expand(present, windows, _groups(behaviour)):
        if available:
            out.append(StaticFeature(name, f.kind, f.categories, f.lower, f.upper))
        else:
            left_out.setdefault(f.source, []).append(name)
    return out, left_out


def static_aggregations(present_sources: Iterable[str], windows: Sequence[int], *, behaviour: bool = False
                        ) -> list[Column]:
    """Aggregate expressions for the behaviour features (per customer and as-of date).

    Args:
        present_sources: Names of the input tables that exist.
        windows: Window lengths in months.
        behaviour: Append the behaviour group (:mod:`credspark.features.behaviour`). Defaults to False.

    Returns:
        Named aggregate columns over rows with ``k`` and the monthly activity columns (profile columns are
        added afterwards by :func:`with_profile_features`).
    """
    present = set(present_sources)
    return [
        f.build(w).cast(f.dtype).alias(name)
        for name, f, w, available in _expand(present, windows, _groups(behaviour))
        if available and f.build is not None
    ]


def profile_aggregations(present_sources: Iterable[str]) -> list[Column]:
    """Aggregates carrying the profile and the first-seen months through the per-customer aggregation.

    Args:
        present_sources: Names of the input tables that exist.

    Returns:
        ``first_month`` (first month with a transaction or statement), ``open_month`` (null without
        customers) and, with customers, ``birth_year``, ``sex``, ``education``, ``marital_status``, ``income``.
    """
    aggs = [F.min("first_month").alias("first_month")]
    if "customers" not in set(present_sources):
        return [*aggs, F.lit(None).cast("int").alias("open_month")]
    # One profile row per customer (the contract's key), so max() just carries its values.
    profile = [F.max(c).alias(c) for c in ("birth_year", "sex", "education", "marital_status", "income")]
    return [*aggs, *profile, F.min("open_month").alias("open_month")]


def with_profile_features(present_sources: Iterable[str]) -> Callable[[DataFrame], DataFrame]:
    """Add ``age``, the profile codes, ``income`` and ``tenure_months`` after the per-customer aggregation.

    Args:
        present_sources: Names of the input tables that exist (profile columns need ``customers``).

    Returns:
        A transform needing ``as_of_date``, ``start_month`` and, with customers, the aggregated
        ``birth_year``, ``sex``, ``education``, ``marital_status``, ``income``; it drops ``birth_year``.
    """
    present = set(present_sources)

    def _add(df: DataFrame) -> DataFrame:
        tenure = (month_index("as_of_date") - F.col("start_month")).cast("int")
        df = df.withColumn("tenure_months", tenure)
        if "customers" not in present:
            return df
        age = (F.year("as_of_date") - F.col("birth_year")).cast("int")
        return (
            df.withColumn("age", age)
            .withColumn("sex", F.col("sex").cast("int"))
            .withColumn("education", F.col("education").cast("int"))
            .withColumn("marital_status", F.col("marital_status").cast("int"))
            .withColumn("income", F.col("income").cast("double"))
            .drop("birth_year")
        )

    return _add
