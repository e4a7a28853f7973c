"""The training rows and their split: read the labelled features, count and check the parts, record the split.

The split rule itself (which row goes to which part) is the pure transform :func:`._train_data.with_parts`;
here are the Spark actions around it: one count per part and label, and the ``train_splits`` write, and
:func:`split_rows`, the training job's ``split`` step that runs them in order.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from credspark.config import Config
from credspark.errors import InputError, MissingDataError
from credspark.evaluation import PART_TRAIN, PARTS
from credspark.features.encoding import (
    categorical_attributes,
    encoded_spec,
    fit_category_encoding,
    with_category_encoding,
)
from credspark.models.spec import FeatureSpec
from credspark.pipelines._train_data import KEY_COLS, PART_COL, SYNTHETIC_COL, SplitPlan, with_parts
from credspark.runner import Run

__all__ = ["read_training_rows", "part_counts", "check_counts", "write_split", "split_rows"]


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


def split_rows(spark: SparkSession, cfg: Config, features: DataFrame, spec: FeatureSpec, plan: SplitPlan,
               version: str, run: Run, keep: Callable[[DataFrame], DataFrame]
               ) -> tuple[DataFrame, FeatureSpec, dict[str, dict[str, int]]]:
    """The training job's ``split`` step: every row's part, the categorical encoding, the counts, the record.

    The categorical attributes' encoding is fitted on the training part and replaces their text columns; the
    counts per part and label are recorded on ``run`` and checked; the assignment is written to
    ``tables.train_splits``.

    Args:
        spark: The session.
        cfg: The job config.
        features: The labelled feature rows (:func:`read_training_rows`).
        spec: Their FeatureSpec.
        plan: The split plan.
        version: The model version the split is recorded under.
        run: The run to record counts and the encoding on.
        keep: Persists a DataFrame until the job ends.

    Returns:
        ``(rows, spec, counts)``: the real rows with ``part`` (persisted), the FeatureSpec extended with the
        encoded attributes' 0/1 features, and ``{part: {"0": n, "1": n}}``.
    """
    texts = list(categorical_attributes(spec))
    cols = [*KEY_COLS, *spec.static_names, *texts, "seq", "seq_mask", "label"]
    rows = keep(features.select(*cols).transform(with_parts(plan)).withColumn(SYNTHETIC_COL, F.lit(False)))
    if texts:  # categorical attributes: the encoding is fitted on the training part, the spec extended
        encoding, run.details["category_encoding"] = fit_category_encoding(
            rows.where(F.col(PART_COL) == PART_TRAIN), spec)
        spec = encoded_spec(spec, encoding)
        rows = rows.transform(with_category_encoding(encoding)).drop(*texts)
    counts = part_counts(rows, plan.dates)
    run.counts |= {f"{p}_{c}": n for p, cc in counts.items() for c, n in cc.items()}
    check_counts(counts)
    write_split(spark, cfg, rows, run.run_id, version)
    return rows, spec, counts
