"""Delta partition writes that retry after an optimistic-concurrency conflict.

Two runs replacing the same partition at once make one of the two commits fail with a Delta conflict; the
loser retries (recomputing its rows from the lazy DataFrame) a bounded number of times, so the partition
always ends up holding exactly one run's complete rows, never a mix.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from pyspark.sql import DataFrame, SparkSession

from credspark.errors import CredsparkError
from credspark.io.tables import TableRef

__all__ = ["ConcurrentWriteError", "is_write_conflict", "overwrite_partitions_retrying"]

log = logging.getLogger(__name__)


class ConcurrentWriteError(CredsparkError):
    """Another run kept winning the commit of the same partition; retries exhausted (exit 1)."""


def is_write_conflict(exc: BaseException) -> bool:
    """A Delta optimistic-concurrency conflict (another writer committed first)."""
    try:
        from delta.exceptions import (
            ConcurrentAppendException,
            ConcurrentDeleteDeleteException,
            ConcurrentDeleteReadException,
            ConcurrentTransactionException,
            ConcurrentWriteException,
            DeltaConcurrentModificationException,
            MetadataChangedException,
            ProtocolChangedException,
        )

        kinds: tuple[type, ...] = (
            ConcurrentAppendException, ConcurrentDeleteDeleteException, ConcurrentDeleteReadException,
            ConcurrentTransactionException, ConcurrentWriteException, DeltaConcurrentModificationException,
            MetadataChangedException, ProtocolChangedException,
        )  # fmt: skip
    except ImportError:  # pragma: no cover - delta-spark is a dependency
        kinds = ()
    if kinds and isinstance(exc, kinds):
        return True
    # Delta versions differ in how they surface the JVM class; its name is in the message either way.
    text = f"{type(exc).__name__}: {exc}"
    return any(k in text for k in ("ConcurrentAppendException", "ConcurrentDeleteDeleteException",
                                   "ConcurrentDeleteReadException", "ConcurrentTransactionException",
                                   "ConcurrentWriteException", "MetadataChangedException",
                                   "ProtocolChangedException", "DELTA_CONCURRENT"))


def overwrite_partitions_retrying(
    spark: SparkSession,
    df: DataFrame,
    ref: TableRef,
    column: str,
    values: Sequence[Any],
    *,
    run_id: str,
    retries: int = 2,
    backoff_s: float = 1.0,
) -> int:
    """Replace some partitions of a Delta table in one commit, retrying after conflicts; return its version.

    Args:
        spark: The session.
        df: The rows (lazy: a retry recomputes them).
        ref: The table.
        column: The partition column.
        values: The partitions replaced.
        run_id: Stored as the commit's userMetadata (finds the version afterwards).
        retries: Retries after a conflict. Defaults to 2.
        backoff_s: Sleep before the first retry (doubles each time). Defaults to 1.0.

    Returns:
        The Delta version this run committed.

    Raises:
        ConcurrentWriteError: Still conflicting after the retries.
    """
    # Looked up at call time (not imported by name), so a test can stand in for the write.
    from credspark.io import tables

    where = f"{ref.name} partition {column}={', '.join(str(v) for v in values)}"
    attempt = 0
    while True:
        try:
            tables.overwrite_partitions(df, ref, column, list(values), user_metadata=run_id)
            break
        except Exception as e:
            if not is_write_conflict(e):
                raise
            if attempt >= retries:
                raise ConcurrentWriteError(
                    f"{where}: a concurrent run kept committing first ({attempt + 1} attempts; "
                    f"{type(e).__name__}); the partition holds that run's complete rows"
                ) from e
            attempt += 1
            log.warning("%s: concurrent write conflict (%s); retry %d of %d", where, type(e).__name__, attempt,
                        retries)
            time.sleep(backoff_s * 2 ** (attempt - 1))
    version = tables.commit_version(spark, ref, run_id)
    if version is None:  # pragma: no cover - the commit just happened
        raise ConcurrentWriteError(f"{ref.name}: cannot find the commit of run {run_id} in the table history")
    return version
