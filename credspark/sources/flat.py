"""A flat file of the user's own onto the contract tables, as a :class:`~credspark.sources.mapping.TableMapping` says.

Flat labels. A label column with an observation date (e.g. "defaulted within ``h`` months after the
application date") becomes the contract's ``outcomes``: a positive row gets one default dated the end of its
horizon, the last day of the ``h``-th month after the observation month (:func:`credspark.features.labels.
horizon_end`); so the features of the observation month's end, with ``features.horizon_months`` = ``h``, carry
the file's label (1 inside the horizon, 0 once the outcomes are observed through its end). The outcomes are
complete through the latest such horizon end: the ingest records it as ``credspark.observed_through``. A
customers mapping without an ``open_date`` takes the observation date as the open date, so no customer is
known before it was observed.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from credspark.contract import CUSTOMERS, _col
from credspark.features.labels import horizon_end, horizon_end_col
from credspark.sources.mapping import LabelMapping, TableMapping

__all__ = ["parsed", "mapped_rows", "mapped_table", "flat_outcomes", "observed_through", "unparseable_counts"]


def parsed(source: Column, parse: str) -> Column:
    """A source value parsed as ``parse`` (text is trimmed first; a value that does not parse gives null)."""
    text = F.trim(source.cast("string"))
    if parse == "string":
        return F.when(text != "", text)
    if parse in ("int", "bigint"):
        number = text.try_cast("double")  # accepts 1e+05; a fractional value does not parse
        return F.when(number == F.floor(number), number.try_cast(parse))
    return text.try_cast(parse)


def _observation(lab: LabelMapping) -> Column:
    return F.lit(lab.observation_date) if lab.observation_date is not None else parsed(
        _col(lab.observation_date_column), "date")


def mapped_rows(raw: DataFrame, mapping: TableMapping) -> DataFrame:
    """Every source row with its mapped columns parsed: ``customer_id``, the targets, ``_obs``, ``_label``.

    ``_obs`` (date) and ``_label`` (1, 0 or null) are present when the mapping has a label.
    """
    sel = [parsed(_col(mapping.key), "bigint").alias("customer_id")]
    sel += [parsed(_col(c.source), c.type).alias(c.name) for c in mapping.columns]
    if mapping.snapshot_date is not None:
        sel.append(F.lit(mapping.snapshot_date).alias("snapshot_date"))
    elif mapping.snapshot_date_column is not None:
        sel.append(parsed(_col(mapping.snapshot_date_column), "date").alias("snapshot_date"))
    lab = mapping.label
    if lab is not None:
        value = parsed(_col(lab.column), "string")
        sel += [_observation(lab).alias("_obs"),
                F.when(value.isNull(), F.lit(None)).when(value.isin(*lab.positive), 1).otherwise(0)
                .cast("int").alias("_label")]
    return raw.select(*sel)


def mapped_table(rows: DataFrame, mapping: TableMapping) -> DataFrame:
    """The contract table's rows (its columns, then the declared attributes, in mapping order)."""
    attrs = [c.name for c in mapping.columns if c.name not in {f.name for f in CUSTOMERS.fields}]
    if mapping.table == "attributes":
        return rows.select("customer_id", "snapshot_date", *attrs)
    targets = set(mapping.targets)
    contract = []
    for f in CUSTOMERS.fields[1:]:
        if f.name in targets:
            contract.append(F.col(f.name).cast(f.dataType).alias(f.name))
        elif f.name == "open_date" and mapping.label is not None:
            contract.append(F.col("_obs").alias("open_date"))
        else:
            contract.append(F.lit(None).cast(f.dataType).alias(f.name))
    return rows.select("customer_id", *contract, *attrs)


def flat_outcomes(rows: DataFrame, mapping: TableMapping) -> DataFrame:
    """The outcomes of the positive rows: ``customer_id`` and ``default_date`` = the end of the label's horizon."""
    h = mapping.label.horizon_months
    return rows.where(F.col("_label") == 1).select(
        "customer_id", horizon_end_col(F.last_day("_obs"), h).alias("default_date"))


def observed_through(rows: DataFrame, mapping: TableMapping) -> dt.date | None:
    """The last day the flat labels are complete for: the latest horizon end (one aggregate when dates vary)."""
    lab = mapping.label
    if lab.observation_date is not None:
        return horizon_end(lab.observation_date, lab.horizon_months)
    return rows.agg(F.max(horizon_end_col(F.last_day("_obs"), lab.horizon_months))).first()[0]


def unparseable_counts(raw: DataFrame, mapping: TableMapping) -> list[Column]:
    """Aggregates counting, per target, the non-empty source values that did not parse (``bad_<target>``)."""
    pairs = [("customer_id", mapping.key, "bigint")] + [(c.name, c.source, c.type) for c in mapping.columns]
    if mapping.label is not None and mapping.label.observation_date_column is not None:
        pairs.append(("observation_date", mapping.label.observation_date_column, "date"))
    if mapping.snapshot_date_column is not None:
        pairs.append(("snapshot_date", mapping.snapshot_date_column, "date"))
    out = []
    for name, src, parse in pairs:
        present = F.trim(_col(src).cast("string")) != ""
        out.append(F.sum((present & parsed(_col(src), parse).isNull()).cast("long")).alias(f"bad_{name}"))
    return out
