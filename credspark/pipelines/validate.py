"""Input validation: the feature job's first step over the input tables that exist.

``validate_inputs`` reads the input tables, applies the contract (credspark.contract), appends rejected rows
to ``<table>_rejects``, counts everything into the run, enforces ``validation.max_reject_fraction`` and
returns the clean frames. ``outcomes_observed_through`` reads the date the outcomes are complete through.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import DateType, TimestampType

from credspark.config import AttributeConfig, Config
from credspark.contract import (
    EVENT_TABLES,
    INPUT_SCHEMAS,
    OBSERVED_THROUGH_PROPERTY,
    REQUIRED_TABLES,
    STATUS_AFTER_AS_OF,
    STATUS_CLEAN,
    STATUS_REJECTED,
    clean_rows,
    rejected_rows,
    tag_counts,
    tag_rows,
    with_run_info,
)
from credspark.errors import InputError, MissingDataError, RejectThresholdError
from credspark.io.tables import append_table, config_table, get_properties, read_table, table_exists, table_ref
from credspark.runner import Run

__all__ = ["validate_inputs", "outcomes_observed_through", "attribute_tables", "INPUT_TABLES"]

#: The input tables in the order they are written and validated.
INPUT_TABLES = ("customers", "statements", "transactions", "outcomes")


def attribute_tables(declared: Mapping[str, AttributeConfig], snapshot_columns: Sequence[str] | None
                     ) -> dict[str, dict[str, AttributeConfig]]:
    """Which input table holds each declared attribute: the ``attributes`` snapshots, else ``customers``.

    An attribute comes from the snapshots when that table has its column, otherwise from ``customers``.

    Args:
        declared: The ``attributes`` config section.
        snapshot_columns: The ``attributes`` table's columns (None = the table does not exist).

    Returns:
        ``{"customers": {...}, "attributes": {...}}`` (declaration order kept in each).
    """
    have = {c.lower() for c in snapshot_columns or ()}
    out: dict[str, dict[str, AttributeConfig]] = {"customers": {}, "attributes": {}}
    for name, a in declared.items():
        out["attributes" if name in have else "customers"][name] = a
    return out



def outcomes_observed_through(spark: SparkSession, cfg: Config) -> dt.date | None:
    """The date the outcomes are complete through (table property), or None when not recorded."""
    ref = config_table(cfg, "outcomes")
    if not table_exists(spark, ref):
        return None
    value = get_properties(spark, ref).get(OBSERVED_THROUGH_PROPERTY)
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError as e:
        raise InputError(f"outcomes: table property {OBSERVED_THROUGH_PROPERTY}={value!r} is not a date") from e


def _table_stats(rows: list) -> dict:
    """Fold tag_counts rows into the summary's per-table counts."""
    out: dict = {"rows": 0, STATUS_CLEAN: 0, STATUS_REJECTED: 0, STATUS_AFTER_AS_OF: 0, "reject_reasons": {},
                 "mapped": {}}
    for r in rows:
        d = r.asDict()
        out["rows"] += d["rows"]
        out[d["status"]] += d["rows"]
        if d["status"] == STATUS_REJECTED:
            out["reject_reasons"][d["reason"]] = out["reject_reasons"].get(d["reason"], 0) + d["rows"]
        elif d["status"] == STATUS_CLEAN:
            for k, v in d.items():
                if k.startswith("mapped_"):
                    out["mapped"][k[len("mapped_"):]] = out["mapped"].get(k[len("mapped_"):], 0) + int(v or 0)
    return out


#: The event-time column of each event table, as the contract types it (what ``events_from`` bounds).
_EVENT_TIME = {"transactions": ("txn_ts", TimestampType()), "statements": ("statement_month", DateType())}


def _events_since(df: DataFrame, name: str, start: dt.date) -> tuple[DataFrame, str]:
    """The rows of event table ``name`` from ``start`` on, and the scope in words.

    Rows without an event time stay, for the contract to reject. A column not yet of its contract type is left
    whole: a filter before the cast could not be pushed down, and a string compared with a date is no rule to
    rely on.
    """
    column, kind = _EVENT_TIME[name]
    if df.schema[column].dataType != kind:
        return df, f"all rows ({column} is {df.schema[column].dataType.simpleString()}, not "\
                   f"{kind.simpleString()}: no row can be skipped)"
    bound = dt.datetime.combine(start, dt.time()) if isinstance(kind, TimestampType) else start
    return df.where((F.col(column) >= F.lit(bound)) | F.col(column).isNull()), f"{column} >= {start.isoformat()}"


def validate_inputs(spark: SparkSession, cfg: Config, as_of: dt.date, run_id: str,
                    run: Run, *, events_from: dt.date | None = None) -> dict[str, DataFrame]:
    """Validate the input tables that exist and return their clean rows.

    Rejected rows are appended to ``<table>_rejects`` (one commit per table, only when there are any and
    ``validation.write_rejects``); counts per table (rows, clean, rejected, after_as_of, reject reasons,
    mapped values) go to ``run.counts["validation"]``; which tables exist to
    ``run.details["inputs"]``. Absent optional tables are absent from the result, never replaced.

    Args:
        spark: The session.
        cfg: Job config (``tables``, ``validation``).
        as_of: The run's as-of date: later events are excluded (and counted as ``after_as_of``).
        run_id: Stamped on the rejects.
        run: The run to record on.
        events_from: Read only the transactions and statements from this day on (and those without an event
            time): the feature job passes the first day of the oldest month it computes when the monthly
            table holds the earlier ones (their rows were validated when they were stored). None = every row.
            The scope goes to ``run.details["validation_scope"]``.

    Returns:
        Contract-typed clean DataFrames by table name (lazy: each action re-reads and re-validates, so a
        caller that uses one several times may want to persist it).

    Raises:
        MissingDataError: customers is absent, or both transactions and statements are and no attribute is
            declared.
        ContractError: a table lacks a required column or has an uncastable column type.
        RejectThresholdError: a table's rejected share (of its rows up to the as-of date) exceeds
            ``validation.max_reject_fraction``; the rejects are written first, so they can be inspected.
    """
    refs = {name: config_table(cfg, name) for name in INPUT_SCHEMAS}
    present = {name: ref for name, ref in refs.items() if table_exists(spark, ref)}
    # The optional attributes table is listed when it exists or attributes are declared.
    listed = [n for n in INPUT_SCHEMAS if n != "attributes" or "attributes" in present or cfg.attributes]
    run.details["inputs"] = {name: "present" if name in present else "absent" for name in listed}
    for name in REQUIRED_TABLES:
        if name not in present:
            raise MissingDataError(f"table '{refs[name].name}' does not exist at {refs[name]} (required input)")
    if not any(name in present for name in EVENT_TABLES) and not cfg.attributes:
        raise MissingDataError(
            f"neither '{refs['transactions'].name}' nor '{refs['statements'].name}' exists: a source needs "
            "transactions, statements or both, or declared attributes (config 'attributes') for static-only data")
    snapshots = read_table(spark, present["attributes"]).columns if "attributes" in present else None
    held = attribute_tables(cfg.attributes, snapshots)
    if cfg.attributes:
        run.details["attribute_tables"] = {t: list(a) for t, a in held.items() if a}

    clean: dict[str, DataFrame] = {}
    stats: dict[str, dict] = {}
    with run.stage("validate"):
        for name in (*INPUT_TABLES, "attributes"):
            if name not in present:
                continue
            attrs = held.get(name, {})
            source = read_table(spark, present[name])
            if name in _EVENT_TIME:
                scope = "all rows"
                if events_from is not None:
                    source, scope = _events_since(source, name, events_from)
                run.details.setdefault("validation_scope", {})[name] = scope
            tagged = source.transform(tag_rows(name, as_of, attrs))
            stats[name] = _table_stats(tag_counts(tagged).collect())
            if stats[name][STATUS_REJECTED] and cfg.validation.write_rejects:
                rejects_ref = table_ref(cfg, f"{present[name].name}_rejects")
                append_table(with_run_info(rejected_rows(tagged), run_id, as_of), rejects_ref)
            clean[name] = clean_rows(tagged, name, attrs)
    run.counts["validation"] = stats

    limit = cfg.validation.max_reject_fraction
    for name, st in stats.items():
        in_scope = st["rows"] - st[STATUS_AFTER_AS_OF]
        fraction = st[STATUS_REJECTED] / in_scope if in_scope else 0.0
        st["reject_fraction"] = round(fraction, 6)
        if fraction > limit:
            raise RejectThresholdError(
                f"table '{present[name].name}': {fraction:.2%} of rows rejected ({st[STATUS_REJECTED]} of "
                f"{in_scope}), above validation.max_reject_fraction = {limit}")
    return clean
