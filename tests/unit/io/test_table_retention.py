"""Retention: the config's retention becomes each table's Delta properties, and VACUUM with the table's own
retention deletes only what no version younger than it needs."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import time
from pathlib import Path

import pytest

from credspark.config import config_from_dict
from credspark.io.tables import (
    append_table,
    get_properties,
    overwrite_table,
    read_table,
    read_table_version,
    table_ref,
    table_version,
    update_properties,
    vacuum_table,
)

pytestmark = pytest.mark.spark

D1, D2 = dt.date(2025, 1, 31), dt.date(2025, 2, 28)
SCHEMA = "id int, as_of_date date, v double"
V0 = [(1, D1, 1.0), (2, D2, 2.0)]
V1 = [(10, D1, 10.0), (20, D2, 20.0)]
#: Delta's guard against VACUUM RETAIN below the table's retention; these tests leave it on.
CHECK = "spark.databricks.delta.retentionDurationCheck.enabled"
FILES = "delta.deletedFileRetentionDuration"
#: Delta 4.4 refuses time travel to versions committed longer ago than the table's deleted-file retention.
TIME_TRAVEL_GUARD = "spark.databricks.delta.vacuum.enforceTimeTravelWithinDeletedFileRetentionDuration"


def _ref(wh, name, deleted_files="7 days"):
    return table_ref(config_from_dict({"warehouse": {"path": str(wh)}, "retention": {"deleted_files": deleted_files}}),
                     name)


def _rows(df):
    return sorted(tuple(r) for r in df.collect())


def _files(path) -> dict[str, int]:
    """Data files of a table folder (not the log, not the local filesystem's hidden .crc files) -> size."""
    root = Path(path)
    return {p.relative_to(root).as_posix(): p.stat().st_size for p in root.rglob("*")
            if p.is_file() and "_delta_log" not in p.parts and not p.name.startswith(".")}


def _used_by(spark, ref, version) -> set[str]:
    """Files a version reads (None: the latest), relative to the table's folder."""
    prefix = "file:" + ref.path.rstrip("/") + "/"
    df = read_table(spark, ref) if version is None else read_table_version(spark, ref, version)
    return {f.removeprefix(prefix) for f in df.inputFiles()}


def _two_versions(spark, ref) -> None:
    overwrite_table(spark.createDataFrame(V0, SCHEMA), ref)  # version 0
    overwrite_table(spark.createDataFrame(V1, SCHEMA), ref)  # version 1: every file of version 0 removed


def test_a_created_table_gets_the_retention_properties_and_maintenance_updates_them_once(spark, warehouse):
    ref = _ref(warehouse, "props")
    overwrite_table(spark.createDataFrame(V0, SCHEMA), ref)
    props = get_properties(spark, ref)
    assert props[FILES] == "interval 7 days" and props["delta.logRetentionDuration"] == "interval 30 days"
    assert table_version(spark, ref) == 0  # set in the commit that created the table, no second commit

    shorter = _ref(warehouse, "props", deleted_files="2 days")
    append_table(spark.createDataFrame(V1, SCHEMA), shorter)  # a later write leaves the properties as they are
    assert get_properties(spark, shorter)[FILES] == "interval 7 days"
    assert update_properties(spark, shorter) == {FILES: "interval 2 days"}
    assert get_properties(spark, shorter)[FILES] == "interval 2 days"
    version = table_version(spark, shorter)
    assert update_properties(spark, shorter) == {}  # idempotent: nothing differs, nothing committed
    assert table_version(spark, shorter) == version


def test_vacuum_deletes_an_old_orphan_file_and_keeps_every_version_younger_than_the_retention(spark, warehouse):
    ref = _ref(warehouse, "kept", deleted_files="1 hour")
    _two_versions(spark, ref)
    assert get_properties(spark, ref)[FILES] == "interval 1 hours"
    expected = {v: _rows(read_table_version(spark, ref, v)) for v in (0, 1)}
    assert expected == {0: sorted(V0), 1: sorted(V1)}
    # A killed write's leftover: a data file that no commit references, last written two hours ago.
    orphan = Path(ref.path) / "part-00000-0badc0de-0000-4000-8000-000000000000-c000.snappy.parquet"
    shutil.copyfile(next(Path(ref.path).glob("part-*.parquet")), orphan)
    os.utime(orphan, (time.time() - 7200, time.time() - 7200))
    before = _files(ref.path)
    assert _used_by(spark, ref, 0) | _used_by(spark, ref, 1) | {orphan.name} == set(before)

    dry = vacuum_table(spark, ref, dry_run=True)
    assert dry.dry_run and dry.files == (orphan.name,) and dry.bytes == before[orphan.name]
    assert _files(ref.path) == before  # a dry run deletes nothing

    out = vacuum_table(spark, ref)
    assert out.files == (orphan.name,) and out.bytes == before[orphan.name] and out.retention == "interval 1 hours"
    assert not orphan.exists()
    # Version 0's files were removed by version 1 less than an hour ago: both versions read as before.
    assert _files(ref.path) == {f: n for f, n in before.items() if f != orphan.name}
    assert {v: _rows(read_table_version(spark, ref, v)) for v in (0, 1)} == expected
    assert spark.conf.get(CHECK) == "true"


def test_after_the_retention_vacuum_deletes_the_replaced_versions_files_and_the_current_one_reads_the_same(
    spark, warehouse
):
    ref = _ref(warehouse, "short", deleted_files="2 seconds")
    # The files of each version from the folder (time travel to version 0 may already be refused: see below).
    overwrite_table(spark.createDataFrame(V0, SCHEMA), ref)
    old = set(_files(ref.path))
    overwrite_table(spark.createDataFrame(V1, SCHEMA), ref)
    current = set(_files(ref.path)) - old
    assert old and current and _used_by(spark, ref, None) == current
    time.sleep(3.0)  # version 1 removed version 0's files more than the 2-second retention ago
    # Delta's safety check stays on: it compares a RETAIN clause with the table's retention, and there is none.
    assert spark.conf.get(CHECK) == "true"

    out = vacuum_table(spark, ref)
    assert set(out.files) == old
    assert set(_files(ref.path)) == current
    assert _rows(read_table(spark, ref)) == sorted(V1)
    # Delta refuses time travel to a version committed longer ago than the retention (its own guard) ...
    with pytest.raises(Exception, match="TIME_TRAVEL_BEYOND_DELETED_FILE_RETENTION"):  # noqa: B017 - Spark's error
        read_table_version(spark, ref, 0).collect()
    # ... and without that guard (this test only) version 0 cannot be read either: its files are gone.
    spark.conf.set(TIME_TRAVEL_GUARD, "false")
    try:
        assert _rows(read_table_version(spark, ref, 1)) == sorted(V1)
        with pytest.raises(Exception, match="(?i)FILE_NOT_EXIST|FileNotFound|not found"):  # noqa: B017
            read_table_version(spark, ref, 0).collect()
    finally:
        spark.conf.unset(TIME_TRAVEL_GUARD)
