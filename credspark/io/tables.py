"""All table reads and writes: Delta tables under the warehouse (or in a metastore database).

Names come from config and are checked against a strict identifier rule before they become paths or SQL
identifiers, so a config value can neither escape the warehouse nor inject SQL.

A write that creates its table races every other writer creating it at the same moment: Delta lets one of
them commit the table's first version and fails the others with a conflict. Such a write is retried once
against the table that now exists (nothing of the failed attempt was committed), so concurrent first runs
end with one table holding every run's rows.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import StructType

from credspark.config import Config
from credspark.errors import ConfigError, MissingDataError
from credspark.io import warehouse

__all__ = [
    "config_table",
    "TableRef",
    "table_ref",
    "safe_child",
    "table_exists",
    "read_table",
    "overwrite_table",
    "overwrite_partitions",
    "append_table",
    "set_properties",
    "get_properties",
    "partition_values",
    "read_csv",
    "read_parquet",
    "commit_version",
    "read_table_version",
    "table_version",
    "read_changes",
]

log = logging.getLogger(__name__)

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_PROP_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]{0,127}$")


def _check_ident(value: str, what: str) -> str:
    if not isinstance(value, str) or not _IDENT.match(value):
        raise ConfigError(f"{what} {value!r}: must match {_IDENT.pattern} (letters, digits, underscore)")
    return value


def safe_child(root: str | Path, *parts: str) -> Path | str:
    """``root/part/...`` inside the warehouse ``root``, refusing any result outside it.

    The check is lexical (see :mod:`credspark.io.warehouse`): nothing is resolved through the local disk, so
    it holds for ``s3a://`` and other URIs as for a local folder.

    Args:
        root: The warehouse (a local path or an accepted URI).
        *parts: Path components, each an identifier-like name.

    Returns:
        An absolute, normalised Path on a local warehouse; the URI string otherwise.
    """
    return warehouse.child(root, *parts)


@dataclass(frozen=True)
class TableRef:
    """Where one table lives: a Delta path, or a metastore table name."""

    name: str
    path: str | None = None
    qualified: str | None = None

    def __str__(self) -> str:
        return self.qualified or self.path or self.name


def table_ref(cfg: Config, name: str) -> TableRef:
    """Resolve a logical table name (e.g. ``cfg.tables.features``) to its location.

    Args:
        cfg: The job config (warehouse section).
        name: Table name, letters/digits/underscores only.

    Returns:
        A TableRef: ``<warehouse>/<name>`` or ``<database>.<name>``.
    """
    _check_ident(name, "table name")
    if cfg.warehouse.database:
        db = _check_ident(cfg.warehouse.database, "warehouse.database")
        return TableRef(name=name, qualified=f"`{db}`.`{name}`")
    return TableRef(name=name, path=warehouse.spark_path(safe_child(cfg.warehouse.path, name)))


def config_table(cfg: Config, key: str) -> TableRef:
    """The table the config's ``tables.<key>`` names (e.g. ``config_table(cfg, "outcomes")``).

    Args:
        cfg: The job config (``tables`` and warehouse sections).
        key: A field of the ``tables`` section.

    Returns:
        Its TableRef (:func:`table_ref`).
    """
    return table_ref(cfg, getattr(cfg.tables, key))


def table_exists(spark: SparkSession, ref: TableRef) -> bool:
    """True when the Delta table exists."""
    from delta.tables import DeltaTable

    if ref.qualified:
        return spark.catalog.tableExists(ref.qualified.replace("`", ""))
    return DeltaTable.isDeltaTable(spark, ref.path)


def read_table(spark: SparkSession, ref: TableRef) -> DataFrame:
    """Read a Delta table; MissingDataError names it when it does not exist."""
    if not table_exists(spark, ref):
        raise MissingDataError(f"table '{ref.name}' does not exist at {ref}")
    if ref.qualified:
        return spark.table(ref.qualified)
    return spark.read.format("delta").load(ref.path)


def _writer(df: DataFrame, mode: str, partition_by: Iterable[str] | None, user_metadata: str | None):
    w = df.write.format("delta").mode(mode)
    if partition_by:
        w = w.partitionBy(*partition_by)
    if user_metadata:
        w = w.option("userMetadata", user_metadata)
    return w


def _save_once(w, ref: TableRef) -> None:
    if ref.qualified:
        w.saveAsTable(ref.qualified.replace("`", ""))
    else:
        w.save(ref.path)


def _save(w, ref: TableRef, spark: SparkSession) -> None:
    """Write once; a write that created the table and lost that race to another writer is retried once."""
    from credspark.io.delta_retry import is_write_conflict

    creating = not table_exists(spark, ref)
    try:
        _save_once(w, ref)
    except Exception as e:
        if not (creating and is_write_conflict(e)):
            raise
        log.warning("table '%s': another writer created it first (%s); writing again into it", ref.name,
                    type(e).__name__)
        _save_once(w, ref)


def overwrite_table(
    df: DataFrame, ref: TableRef, *, partition_by: Iterable[str] | None = None, user_metadata: str | None = None
) -> None:
    """Replace a whole table in one Delta commit (schema included)."""
    w = _writer(df, "overwrite", partition_by, user_metadata).option("overwriteSchema", "true")
    _save(w, ref, df.sparkSession)


def append_table(df: DataFrame, ref: TableRef, *, partition_by: Iterable[str] | None = None) -> None:
    """Append rows in one Delta commit (creates the table if needed)."""
    _save(_writer(df, "append", partition_by, None), ref, df.sparkSession)


def _sql_literal(value: object) -> str:
    """A SQL literal for a date, int or plain string value (quotes escaped; control chars refused)."""
    if isinstance(value, dt.date):
        return f"DATE'{value.isoformat()}'"
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ConfigError(f"cannot use {value!r} as a partition value")
    if isinstance(value, int):
        return str(value)
    if any(ord(c) < 32 for c in value):
        raise ConfigError(f"partition value {value!r} contains control characters")
    # '$' as a unicode escape: Spark substitutes ${name} in SQL text with config values before parsing
    # (spark.sql.variable.substitute), which would silently change the value (and could leak a setting).
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'").replace("$", "\\u0024") + "'"


def overwrite_partitions(
    df: DataFrame,
    ref: TableRef,
    column: str,
    values: Iterable[object],
    *,
    user_metadata: str | None = None,
) -> None:
    """Atomically replace exactly the partitions ``column IN values`` (one Delta commit, replaceWhere).

    Other partitions are untouched; a failure leaves the previous version readable. Delta also checks that
    every written row satisfies the predicate, so a bug cannot spill into another partition.

    Args:
        df: Rows for those partitions only.
        ref: The table (created, partitioned by ``column``, if it does not exist yet).
        column: Partition column (an identifier).
        values: Partition values (dates, ints or plain strings).
        user_metadata: Text stored in the Delta commit info (e.g. the run id).
    """
    _check_ident(column, "partition column")
    vals = list(dict.fromkeys(values))
    if not vals:
        raise ValueError("overwrite_partitions: no partition values given")
    predicate = f"`{column}` IN ({', '.join(_sql_literal(v) for v in vals)})"
    w = _writer(df, "overwrite", [column], user_metadata).option("replaceWhere", predicate)
    _save(w, ref, df.sparkSession)


def _sql_table(ref: TableRef) -> str:
    if ref.qualified:
        return ref.qualified
    return "delta.`" + str(ref.path).replace("`", "``") + "`"


def set_properties(spark: SparkSession, ref: TableRef, props: Mapping[str, object]) -> None:
    """Set user table properties (keys are identifiers with dots; values are quoted literals)."""
    if not props:
        return
    items = []
    for k, v in props.items():
        if not _PROP_KEY.match(k):
            raise ConfigError(f"table property key {k!r} is not a plain identifier")
        items.append(f"'{k}' = {_sql_literal(str(v))}")
    spark.sql(f"ALTER TABLE {_sql_table(ref)} SET TBLPROPERTIES ({', '.join(items)})")


def get_properties(spark: SparkSession, ref: TableRef) -> dict[str, str]:
    """The table's properties."""
    from delta.tables import DeltaTable

    if not table_exists(spark, ref):
        raise MissingDataError(f"table '{ref.name}' does not exist at {ref}")
    dtab = (
        DeltaTable.forName(spark, ref.qualified.replace("`", ""))
        if ref.qualified
        else DeltaTable.forPath(spark, ref.path)
    )
    row = dtab.detail().select("properties").first()
    return dict(row["properties"] or {})


def partition_values(spark: SparkSession, ref: TableRef, column: str) -> list:
    """Distinct values of a partition column, sorted (reads only the Delta log's file list)."""
    _check_ident(column, "partition column")
    df = read_table(spark, ref)
    return sorted(r[0] for r in df.select(column).distinct().collect())


def read_csv(
    spark: SparkSession,
    path: str | Path,
    schema: StructType | str | None = None,
    *,
    header: bool = True,
) -> DataFrame:
    """Read a CSV file (or folder of CSV files) with Spark; MissingDataError names a path that does not exist.

    Args:
        spark: The session.
        path: File or folder (any Hadoop-supported URI).
        schema: Column types (a StructType or DDL string); None reads every column as a string.
        header: Whether the first line holds column names.

    Returns:
        The lazily read rows (CRLF line endings and quoted fields are handled by Spark's CSV reader).
    """
    from pyspark.errors import AnalysisException

    reader = spark.read.option("header", header).option("mode", "PERMISSIVE")
    if schema is not None:
        reader = reader.schema(schema)
    try:
        return reader.csv(str(path))
    except AnalysisException as e:
        if "PATH_NOT_FOUND" in str(e) or "Path does not exist" in str(e):
            raise MissingDataError(f"input file {path} does not exist") from e
        raise


def read_parquet(spark: SparkSession, path: str | Path) -> DataFrame:
    """Read a Parquet file (or folder of them) with Spark; MissingDataError names a path that does not exist."""
    from pyspark.errors import AnalysisException

    try:
        return spark.read.parquet(str(path))
    except AnalysisException as e:
        if "PATH_NOT_FOUND" in str(e) or "Path does not exist" in str(e):
            raise MissingDataError(f"input file {path} does not exist") from e
        raise


def _delta_table(spark: SparkSession, ref: TableRef):
    from delta.tables import DeltaTable

    if ref.qualified:
        return DeltaTable.forName(spark, ref.qualified.replace("`", ""))
    return DeltaTable.forPath(spark, ref.path)


def commit_version(spark: SparkSession, ref: TableRef, user_metadata: str, *, search: int = 50) -> int | None:
    """The version of the latest commit whose ``userMetadata`` equals ``user_metadata`` (e.g. a run id).

    Args:
        spark: The session.
        ref: The table.
        user_metadata: The text the writer stored (``user_metadata=`` of the write functions).
        search: How many recent commits to look through. Defaults to 50.

    Returns:
        The version, or None when no recent commit carries that text.
    """
    from pyspark.sql import functions as F

    hist = _delta_table(spark, ref).history(search)
    row = hist.where(F.col("userMetadata") == F.lit(user_metadata)).agg(F.max("version")).first()
    return None if row is None or row[0] is None else int(row[0])


def table_version(spark: SparkSession, ref: TableRef) -> int:
    """The table's latest Delta version (its newest commit).

    Raises:
        MissingDataError: The table does not exist.
    """
    if not table_exists(spark, ref):
        raise MissingDataError(f"table '{ref.name}' does not exist at {ref}")
    return int(_delta_table(spark, ref).history(1).select("version").first()[0])


def read_table_version(spark: SparkSession, ref: TableRef, version: int) -> DataFrame:
    """Read a Delta table as of one version (time travel), e.g. exactly what one run committed."""
    if not table_exists(spark, ref):
        raise MissingDataError(f"table '{ref.name}' does not exist at {ref}")
    if ref.qualified:
        return spark.read.option("versionAsOf", int(version)).table(ref.qualified.replace("`", ""))
    return spark.read.format("delta").option("versionAsOf", int(version)).load(ref.path)



def read_changes(spark: SparkSession, ref: TableRef, start: int, end: int) -> DataFrame:
    """The Delta change data feed of versions ``start..end`` (both included).

    The rows carry the table's columns plus ``_change_type`` and ``_commit_version``. Reading fails (with
    Delta's own error) when the table's ``delta.enableChangeDataFeed`` was off for part of the range or the
    range's log and change files are gone (log retention, VACUUM).

    Args:
        spark: The session.
        ref: The table.
        start: First version.
        end: Last version.

    Returns:
        The changes (lazy).
    """
    reader = (
        spark.read.format("delta")
        .option("readChangeFeed", "true")
        .option("startingVersion", int(start))
        .option("endingVersion", int(end))
    )
    if ref.qualified:
        return reader.table(ref.qualified.replace("`", ""))
    return reader.load(ref.path)
