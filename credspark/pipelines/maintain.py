"""Table maintenance: the retention properties brought up to date and VACUUM with each table's own retention.

For each credspark table in the warehouse (the names of the config's ``tables`` section and the inputs'
``<table>_rejects``; or those a request names): set ``delta.deletedFileRetentionDuration`` and
``delta.logRetentionDuration`` from ``cfg.retention`` where they differ (one metadata commit, none when equal),
then VACUUM without a ``RETAIN`` clause, so Delta deletes only files that the current version does not use and
that are older than the table's ``delta.deletedFileRetentionDuration``. A dry run changes nothing and lists what
VACUUM would delete now (by the table's current retention). Run it when no job writes: the metadata commit fails
the commits of writers running at that moment (docs/jobs.md).
"""

from __future__ import annotations

import dataclasses
import logging

from pyspark.sql import SparkSession

from credspark.config import Config
from credspark.errors import ConfigError, MissingDataError
from credspark.io.tables import get_properties, table_exists, table_ref, update_properties, vacuum_table
from credspark.job_requests import MaintainRequest
from credspark.pipelines.validate import INPUT_TABLES
from credspark.runner import JobResult, Run

__all__ = ["credspark_tables", "check_maintain_tables", "maintain_tables", "MAX_LISTED_FILES"]

log = logging.getLogger(__name__)

#: Input tables whose rejected rows the ingest jobs append to ``<table>_rejects`` (credspark.pipelines.ingest).
_VALIDATED_INPUTS = (*INPUT_TABLES, "attributes")
#: Files listed per table in the run summary (all are counted).
MAX_LISTED_FILES = 1000


def credspark_tables(cfg: Config) -> list[str]:
    """The names of every Delta table credspark writes under this config (the run-summary folder excluded)."""
    names = [getattr(cfg.tables, f.name) for f in dataclasses.fields(cfg.tables) if f.name != "runs"]
    names += [f"{getattr(cfg.tables, t)}_rejects" for t in _VALIDATED_INPUTS]
    return list(dict.fromkeys(names))


def check_maintain_tables(cfg: Config, request: MaintainRequest) -> None:
    """Before the session starts: every ``--table`` is one of :func:`credspark_tables`.

    Raises:
        ConfigError: Naming the unknown table and the known ones.
    """
    known = credspark_tables(cfg)
    for name in request.tables:
        if name not in known:
            raise ConfigError(f"--table {name!r} is not a credspark table (known: {', '.join(known)})")


def maintain_tables(spark: SparkSession, cfg: Config, request: MaintainRequest, run: Run) -> JobResult:
    """Apply the retention properties and VACUUM each table; the run summary reports what was deleted.

    Args:
        spark: The session.
        cfg: The config (``retention``, ``tables``, ``warehouse``).
        request: The tables (empty = every credspark table that exists) and whether this is a dry run.
        run: The run; ``details.tables.<name>`` gets, per table: ``properties_set`` (or
            ``properties_to_set`` in a dry run), ``retention``, ``files`` (at most :data:`MAX_LISTED_FILES`,
            relative to ``location``), ``file_count``, ``bytes``; counts: ``tables``, ``files_deleted`` and
            ``bytes_deleted`` (``files_to_delete``, ``bytes_to_delete`` in a dry run).

    Returns:
        Exit code 0.

    Raises:
        MissingDataError: A named table does not exist (nothing is changed).
    """
    named = bool(request.tables)
    refs = [table_ref(cfg, name) for name in (request.tables or credspark_tables(cfg))]
    present = [ref for ref in refs if table_exists(spark, ref)]
    absent = [ref.name for ref in refs if ref not in present]
    if named and absent:
        raise MissingDataError(f"table(s) {', '.join(absent)} do not exist in the warehouse {cfg.warehouse.path}")
    run.details.update(dry_run=request.dry_run, absent_tables=absent, tables={})
    verb = "to_delete" if request.dry_run else "deleted"
    files_total = bytes_total = 0
    for ref in present:
        with run.stage(f"maintain_{ref.name}"):
            if request.dry_run:
                current = get_properties(spark, ref)
                props = {k: v for k, v in ref.properties if current.get(k) != v}
            else:
                props = update_properties(spark, ref)
            result = vacuum_table(spark, ref, dry_run=request.dry_run)
        if request.dry_run:
            for path in result.files:
                log.info("DRY RUN: %s: would delete %s", ref.name, path)
        run.details["tables"][ref.name] = {
            "properties_to_set" if request.dry_run else "properties_set": props,
            "retention": result.retention,
            "location": result.location,
            "file_count": len(result.files),
            "bytes": result.bytes,
            "files": list(result.files[:MAX_LISTED_FILES]),
        }
        files_total += len(result.files)
        bytes_total += result.bytes
    run.counts.update({"tables": len(present), f"files_{verb}": files_total, f"bytes_{verb}": bytes_total})
    return run.result()
