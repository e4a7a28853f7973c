"""All table reads and writes: Delta tables under the warehouse (or in a metastore database).

Names come from config and are checked against a strict identifier rule before they become paths or SQL
identifiers, so a config value can neither escape the warehouse nor inject SQL.

A write that creates its table races every other writer creating it at the same moment: Delta lets one of
them commit the table's first version and fails the others with a conflict. Such a write is retried once
against the table that now exists (nothing of the failed attempt was committed), so concurrent first runs
end with one table holding every run's rows.

Retention: every table credspark writes gets the Delta table properties of the config's ``retention`` section
(``delta.deletedFileRetentionDuration``, ``delta.logRetentionDuration``) in the commit that creates it.
:func:`update_properties` brings an existing table up to date (``jobs/maintain_tables.py`` does, not every
write: a metadata commit fails the commits of writers running at that moment) and :func:`vacuum_table` deletes
what the table's own retention allows: files the current version does not use that are older than
``delta.deletedFileRetentionDuration``.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
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
    "update_properties",
    "table_location",
    "VacuumResult",
    "vacuum_table",
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
    """Where one table lives: a Delta path, or a metastore table name.

    Attributes:
        name: The table's name.
        path: Its Delta path (path-based tables).
        qualified: Its quoted metastore name (managed tables).
        properties: Delta table properties set in the commit that creates the table (the retention settings;
            ``(key, value)`` pairs). Defaults to none.
    """

    name: str
    path: str | None = None
    qualified: str | None = None
    properties: tuple[tuple[str, str], ...] = field(default=(), compare=False)

    def __str__(self) -> str:
        return self.qualified or self.path or self.name


def table_ref(cfg: Config, name: str) -> TableRef:
    """Resolve a logical table name (e.g. ``cfg.tables.features``) to its location.

    Args:
        cfg: The job config (warehouse section).
        name: Table name, letters/digits/underscores only.

    Returns:
        A TableRef: ``<warehouse>/<name>`` or ``<database>.<name>``, carrying the retention properties
        (``cfg.retention``) that a write creating the table sets.
    """
    _check_ident(name, "table name")
    props = tuple(cfg.retention.table_properties().items())
    if cfg.warehouse.database:
        db = _check_ident(cfg.warehouse.database, "warehouse.database")
        return TableRef(name=name, qualified=f"`{db}`.`{name}`", properties=props)
    return TableRef(name=name, path=warehouse.spark_path(safe_child(cfg.warehouse.path, name)), properties=props)


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
    """Write once; a write that created the table and lost that race to another writer is retried once.

    A write that creates the table sets ``ref.properties`` in its first commit (Delta takes ``delta.*`` writer
    options as table properties when it creates a table and ignores them afterwards).
    """
    from credspark.io.delta_retry import is_write_conflict

    creating = not table_exists(spark, ref)
    if creating:
        for key, value in ref.properties:
            w = w.option(key, value)
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
    if "${" in str(ref.path):
        # Spark substitutes ${name} everywhere in SQL text, inside quoted identifiers too (spark.sql.variable.
        # substitute): the statement would name another path.
        raise ConfigError(f"table '{ref.name}': its path {ref.path!r} holds '${{'; Spark would substitute it in SQL")
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


def update_properties(spark: SparkSession, ref: TableRef, props: Mapping[str, str] | None = None) -> dict[str, str]:
    """Give an existing table these properties (default: ``ref.properties``); a commit only when one differs.

    Idempotent: a table that already has every value gets no commit. The commit changes the table's metadata,
    which fails the commits of writers running at that moment (Delta's ``MetadataChangedException``; the
    scoring and monthly writes retry it): run it when no job writes, as ``jobs/maintain_tables.py`` is meant to.

    Args:
        spark: The session.
        ref: The table.
        props: Properties to set. Defaults to the retention properties the ref carries.

    Returns:
        The properties that were set (those that differed); empty when none did.

    Raises:
        MissingDataError: The table does not exist.
    """
    wanted = dict(ref.properties) if props is None else {k: str(v) for k, v in props.items()}
    current = get_properties(spark, ref)
    changed = {k: v for k, v in wanted.items() if current.get(k) != v}
    set_properties(spark, ref, changed)
    return changed


def table_location(spark: SparkSession, ref: TableRef) -> str:
    """Where the table's files are, as Delta names the folder (``file:/...``, ``s3a://...``)."""
    if not table_exists(spark, ref):
        raise MissingDataError(f"table '{ref.name}' does not exist at {ref}")
    return str(_delta_table(spark, ref).detail().select("location").first()[0])


@dataclass(frozen=True)
class VacuumResult:
    """What one VACUUM deleted (or, in a dry run, would delete).

    Attributes:
        table: The table's name.
        location: The table's folder.
        dry_run: True when nothing was deleted (the files are those VACUUM would delete now).
        files: Paths deleted (would be), relative to the table's folder, sorted.
        bytes: Their total size.
        retention: The table's ``delta.deletedFileRetentionDuration`` that decided (None = Delta's default, 7 days).
    """

    table: str
    location: str
    dry_run: bool
    files: tuple[str, ...]
    bytes: int
    retention: str | None


def _data_files(location: str) -> dict[str, int]:
    """The table folder's files that VACUUM may delete, relative path -> size.

    Not the Delta log, and no hidden file: the local filesystem's ``.<name>.crc`` checksums go with their file.
    """
    files = warehouse.list_tree(warehouse.as_location(location))
    return {p: n for p, n in files.items()
            if not p.startswith("_delta_log/") and not p.rsplit("/", 1)[-1].startswith(".")}


def vacuum_table(spark: SparkSession, ref: TableRef, *, dry_run: bool = False) -> VacuumResult:
    """Delta VACUUM with the table's own retention: no version younger than it loses a file.

    Deleted: files under the table's folder that the current version does not use and that are older than the
    table property ``delta.deletedFileRetentionDuration``, counted from the commit that removed them (files a
    commit replaced) or from their modification time (files no commit references: a killed or failed write's).
    So every version committed within that interval, the current one included, stays readable, and a write
    still running keeps its files while it is younger than the interval. No ``RETAIN`` clause is given (Delta
    4.4 uses the table property and ignores ``RETAIN n HOURS`` for n other than 0), so Delta's safety check
    ``spark.databricks.delta.retentionDurationCheck.enabled`` stays on and has nothing to refuse.

    The files are counted by listing the table's folder through :mod:`credspark.io.warehouse` before and after
    (any warehouse: local, ``s3a://``, ...); a dry run asks Delta (``VACUUM ... DRY RUN``) what it would delete.

    Args:
        spark: The session.
        ref: The table.
        dry_run: List what would be deleted and delete nothing. Defaults to False.

    Returns:
        The files deleted (would be) and their size.

    Raises:
        MissingDataError: The table does not exist.
    """
    from urllib.parse import unquote

    location = table_location(spark, ref)
    retention = get_properties(spark, ref).get("delta.deletedFileRetentionDuration")
    before = _data_files(location)
    if dry_run:
        prefix = location.rstrip("/") + "/"
        files = set()
        for row in spark.sql(f"VACUUM {_sql_table(ref)} DRY RUN").collect():
            path = str(row["path"])
            rel = path[len(prefix):] if path.startswith(prefix) else path
            files.add(rel if rel in before else unquote(rel))
    else:
        _delta_table(spark, ref).vacuum()  # no argument: the table's delta.deletedFileRetentionDuration
        files = set(before) - set(_data_files(location))
    size = sum(before.get(f, 0) for f in files)
    log.info("%svacuum %s: %d files, %d bytes%s (retention %s)", "DRY RUN: " if dry_run else "", ref.name,
             len(files), size, " would be deleted" if dry_run else " deleted", retention or "Delta's default")
    return VacuumResult(table=ref.name, location=location, dry_run=dry_run, files=tuple(sorted(files)), bytes=size,
                        retention=retention)
