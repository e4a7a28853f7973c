"""Declared attributes as feature-table columns: point-in-time values.

A numeric attribute is one static feature of its own name. A categorical attribute is one text column of its
own name holding the contract's clean value (a value outside the declared categories is ``other``); it is
not a static feature of the table. Its 0/1 features come from an encoding the training job fits on its
training rows and stores in the bundle (:mod:`credspark.features.encoding`), so the booster sees indicators,
never category codes read as ordered numbers.

Attributes held by ``customers`` are joined by customer; those of the ``attributes`` snapshot table
point-in-time: for each (customer, as-of date) the latest snapshot dated on or before the as-of date.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from credspark.config import AttributeConfig
from credspark.errors import ConfigError
from credspark.models.spec import StaticFeature, category_column, encoding_columns

__all__ = [
    "SPEC_KEY",
    "category_column",
    "attribute_columns",
    "encoding_columns",
    "categorical_columns",
    "attribute_features",
    "attribute_spec",
    "attribute_monotone",
    "latest_snapshots",
    "with_attributes",
    "static_only_rows",
]

#: Key of ``FeatureSpec.extra`` holding the declared attributes (see :func:`attribute_spec`).
SPEC_KEY = "attributes"

def attribute_columns(name: str, attribute: AttributeConfig) -> list[str]:
    """The 0/1 feature columns of a declared category list (:func:`encoding_columns`).

    Raises:
        ConfigError: Two categories give the same column name.
    """
    cols = encoding_columns(name, attribute.categories)
    if len(set(cols)) != len(cols):
        raise ConfigError(f"attributes.{name}.categories: {list(attribute.categories)} give the same feature "
                          f"name twice ({cols}); categories must differ in letters or digits")
    return cols


def categorical_columns(declared: Mapping[str, AttributeConfig]) -> list[str]:
    """The text columns of the categorical attributes (in the features table, beside the static features)."""
    return [name for name, a in declared.items() if a.kind == "categorical"]


def attribute_features(declared: Mapping[str, AttributeConfig], taken: Sequence[str] = ()) -> list[StaticFeature]:
    """The static features of the numeric attributes, in declaration order.

    Args:
        declared: The ``attributes`` config section.
        taken: Names already used by other static features (a clash is an error).

    Returns:
        StaticFeature entries, ``continuous`` with the declared bounds.

    Raises:
        ConfigError: An attribute's name (or a declared category's feature name) clashes with another
            static feature or another attribute's.
    """
    out: list[StaticFeature] = []
    seen = {n.lower() for n in taken}
    for name, a in declared.items():
        cols = [name] + (attribute_columns(name, a) if a.kind == "categorical" else [])
        for col in cols:
            if col in seen:
                raise ConfigError(f"attributes.{name}: feature {col!r} has the name of another static feature")
            seen.add(col)
        if a.kind == "numeric":
            out.append(StaticFeature(name, "continuous", (), a.lower, a.upper))
    return out


def attribute_spec(declared: Mapping[str, AttributeConfig]) -> dict[str, dict[str, Any]]:
    """The declarations as the FeatureSpec and the bundle record them (``extra["attributes"]``), JSON-safe."""
    out: dict[str, dict[str, Any]] = {}
    for name, a in declared.items():
        entry: dict[str, Any] = {"kind": a.kind, "categories": list(a.categories), "lower": a.lower,
                                 "upper": a.upper, "missing": a.missing, "monotone": a.monotone}
        if a.kind == "categorical" and not a.categories:
            entry["max_categories"] = a.max_categories  # the fit's cap (features.encoding)
        out[name] = entry
    return out


def attribute_monotone(declared: Mapping[str, AttributeConfig]) -> dict[str, int]:
    """``{feature: 1 or -1}`` of the numeric attributes declared monotone (for ``train.monotone``)."""
    return {name: a.monotone for name, a in declared.items() if a.kind == "numeric" and a.monotone}


def latest_snapshots(snapshots: DataFrame, names: Sequence[str], as_of_dates: Sequence[dt.date]) -> DataFrame:
    """Each customer's latest snapshot on or before each as-of date (never a later one).

    Args:
        snapshots: Clean ``attributes`` rows: ``customer_id``, ``snapshot_date`` and the attribute columns.
        names: The attribute columns to carry.
        as_of_dates: The as-of dates (a small list: broadcast, so no range join).

    Returns:
        ``customer_id``, ``as_of_date``, ``snapshot_date`` and ``names``: one row per customer and as-of date
        that has a snapshot by then.
    """
    spark = snapshots.sparkSession
    dates = spark.createDataFrame([(d,) for d in as_of_dates], "as_of_date date")
    latest = F.max_by(F.struct("snapshot_date", *names), F.col("snapshot_date")).alias("s")
    return (snapshots.join(F.broadcast(dates), F.col("snapshot_date") <= F.col("as_of_date"))
            .groupBy("customer_id", "as_of_date").agg(latest)
            .select("customer_id", "as_of_date", "s.snapshot_date", *[F.col(f"s.{n}").alias(n) for n in names]))


def _typed(declared: Mapping[str, AttributeConfig]) -> list:
    return [F.col(name).cast("double" if a.kind == "numeric" else "string").alias(name)
            for name, a in declared.items()]


def with_attributes(
    declared: Mapping[str, AttributeConfig],
    customers: DataFrame | None,
    snapshots: DataFrame | None,
    as_of_dates: Sequence[dt.date],
) -> Callable[[DataFrame], DataFrame]:
    """Add the declared attributes' feature columns to rows keyed by ``customer_id`` and ``as_of_date``.

    Args:
        declared: The ``attributes`` config section.
        customers: Clean customers rows holding the attributes not in the snapshots (None: none there).
        snapshots: Clean ``attributes`` rows (None: the table does not exist).
        as_of_dates: The as-of dates of the rows.

    Returns:
        A transform adding one column per attribute (double or text; a customer without a value, or without
        a snapshot by the as-of date, gets null).
    """
    in_snapshots = [n for n in declared if snapshots is not None and n in snapshots.columns]
    in_customers = [n for n in declared if n not in in_snapshots]

    def _add(rows: DataFrame) -> DataFrame:
        out = rows.drop(*declared)  # a static-only population carries the customers' columns already
        if in_customers:
            if customers is None:
                raise ConfigError(f"attributes {in_customers}: the customers table is needed for them")
            out = out.join(customers.select("customer_id", *in_customers), "customer_id", "left")
        if in_snapshots:
            pit = latest_snapshots(snapshots, in_snapshots, as_of_dates).drop("snapshot_date")
            out = out.join(pit, ["customer_id", "as_of_date"], "left")
        keep = [c for c in out.columns if c not in declared]
        return out.select(*keep, *_typed(declared))

    return _add


def static_only_rows(customers: DataFrame, as_of_dates: Sequence[dt.date]) -> DataFrame:
    """The population of a static-only source: each customer at each as-of date it is known by.

    A customer is known at an as-of date when it opened by then or has no open date. The dynamic block is
    empty (``seq`` and ``seq_mask`` of length 0: no channels, ``T = 0``).

    Args:
        customers: Clean customers rows.
        as_of_dates: The as-of dates.

    Returns:
        The customers' columns with ``as_of_date``, ``start_month`` (the open date's month index, null when
        unknown), ``first_month`` (null), ``open_month`` and empty ``seq``/``seq_mask``.
    """
    from credspark.features.sequences import month_index

    dates = customers.sparkSession.createDataFrame([(d,) for d in as_of_dates], "as_of_date date")
    known = F.col("open_date").isNull() | (F.col("open_date") <= F.col("as_of_date"))
    return (customers.join(F.broadcast(dates), known)
            .withColumn("open_month", month_index("open_date"))
            .withColumn("start_month", F.col("open_month"))
            .withColumn("seq", F.array().cast("array<float>"))
            .withColumn("seq_mask", F.array().cast("array<tinyint>")))
