"""The training rows and their split: read the labelled features, count and check the parts, record the split.

The split rule itself (which row goes to which part) is the pure transform :func:`._train_data.with_parts`;
here are the Spark actions around it: one count per part and label, and the ``train_splits`` write.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from credspark.config import Config
from credspark.errors import InputError, MissingDataError
from credspark.evaluation import PARTS
from credspark.models.spec import FeatureSpec
from credspark.pipelines._train_data import KEY_COLS, PART_COL

__all__ = ["read_training_rows", "part_counts", "check_counts", "write_split"]


def read_training_rows(spark: SparkSession, cfg: Config, dates: Sequence[dt.date]) -> tuple[DataFrame, FeatureSpec]:
    """Labelled feature rows of the given as-of dates (lazy), and the table's FeatureSpec.

    Args:
        spark: The session.
        cfg: The job config (tables, warehouse).
        dates: As-of dates to read.

    Returns:
        ``(rows, spec)``; :func:`part_counts` checks that every date has rows.

    Raises:
        MissingDataError: The table does not exist.
    """
    from credspark.features.spec import spec_from_table
    from credspark.io.tables import get_properties, read_table, table_ref

    ref = table_ref(cfg, cfg.tables.features)
    table = read_table(spark, ref)
    spec = spec_from_table(table.schema, get_properties(spark, ref))
    return table.where(F.col("as_of_date").isin(list(dates)) & F.col("label").isNotNull()), spec


def part_counts(rows: DataFrame, dates: Sequence[dt.date] = ()) -> dict[str, dict[str, int]]:
    """Rows per part and label with one small aggregate: ``{part: {"0": n, "1": n}}``.

    Args:
        rows: Rows with ``part``, ``label`` and ``as_of_date``.
        dates: As-of dates that must have rows.

    Raises:
        MissingDataError: A date in ``dates`` has no labelled rows.
    """
    out: dict[str, dict[str, int]] = {p: {"0": 0, "1": 0} for p in PARTS}
    seen = set()
    for r in rows.groupBy("as_of_date", PART_COL, "label").count().collect():
        seen.add(r["as_of_date"])
        cell = out.setdefault(r[PART_COL], {"0": 0, "1": 0})
        cell[str(int(r["label"]))] += int(r["count"])
    missing = [d.isoformat() for d in dates if d not in seen]
    if missing:
        raise MissingDataError(f"features: no labelled rows for as-of date(s) {', '.join(missing)}")
    return out


def check_counts(counts: Mapping[str, Mapping[str, int]]) -> None:
    """Refuse a split whose train, validation or test part lacks one of the classes."""
    for part in PARTS:
        c = counts.get(part, {})
        if not c.get("0") or not c.get("1"):
            raise InputError(f"split: the {part} part needs rows of both classes, got {dict(c)} "
                             "(more as-of dates or customers, or other split fractions)")


def write_split(spark: SparkSession, cfg: Config, rows: DataFrame, run_id: str, version: str) -> None:
    """Record every row's part in ``tables.train_splits`` (the partition of this run)."""
    from credspark.io.tables import overwrite_partitions, table_ref

    out = rows.select(F.lit(run_id).alias("run_id"), F.lit(version).alias("model_version"), *KEY_COLS,
                      PART_COL, "label")
    overwrite_partitions(out, table_ref(cfg, cfg.tables.train_splits), "run_id", [run_id], user_metadata=run_id)
