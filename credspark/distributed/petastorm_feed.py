"""The ``petastorm`` feed: Spark DataFrame -> ``petastorm.spark`` converter -> per-rank torch batches.

Compat lane only: Petastorm 0.13.1 needs pyarrow <= 14, numpy < 2 and pyspark <= 4.0 (``make test-compat``
builds that environment). Importing this module registers the feed as ``petastorm``
(:func:`credspark.distributed.feeds.get_feed` tries the import on demand); where Petastorm is missing the
import fails and the feed is simply not offered.

Driver side (:func:`prepare_petastorm_feed`): the feed columns plus a row id are repartitioned round-robin
into ``num_workers * k`` near-equal partitions and handed to ``petastorm.spark.make_spark_converter``,
which writes them as Parquet under ``<work_dir>/feeds/petastorm`` with one row group per file (the row
group size is set above the file size). Petastorm shards by row group (row group ``i`` goes to rank
``i % world_size``), so equal single-row-group files give shards that differ by a few rows only.

Worker side (:class:`PetastormShardReader`): ``converter.make_torch_dataloader(cur_shard=rank,
shard_count=world_size, reader_pool_type='process', ...)`` streams this rank's rows as tensors
(``BatchedDataLoader``: column-wise, no per-row Python in the loader). The process pool is required: the
default thread pool of 0.13.1 returns empty epochs on small data sets. The rows are ordered by row id
and then shuffled with ``(seed, epoch, rank)``, so an epoch is reproducible whatever order the pool's
processes deliver row groups in.

Differences from the ``arrow`` feed, honestly: Petastorm 0.13.1 assigns row groups to shards by index,
so a rank sees the same rows every epoch (only their order changes; ``shard_seed`` does not move rows
between shards in this version); and by default the shard read in the first epoch is kept in memory for
the later ones (``cache_shard``), because re-reading would deliver exactly the same rows.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

# Fail at import (so the feed is not registered) where Petastorm is not installed.
import petastorm  # noqa: F401 - availability check, see the module docstring

from credspark.distributed.feeds import Batch, FeedHandle, ShardReader, feed_columns, register_feed
from credspark.models.inputs import LABEL_COLUMN, MASK_COLUMN, SEQ_COLUMN
from credspark.models.spec import FeatureSpec, SpecMismatchError

if TYPE_CHECKING:  # pragma: no cover
    from petastorm.spark import SparkDatasetConverter
    from pyspark.sql import DataFrame

    from credspark.distributed._context import WorkerContext

__all__ = ["PetastormFeed", "PetastormShardReader", "prepare_petastorm_feed", "ROW_ID_COLUMN"]

#: Hidden column carrying a unique row id (exactly-once checks, reproducible order).
ROW_ID_COLUMN = "feed_row_id"

#: Above the size of a file of ``max_rows_per_file`` rows (about 75 MB at 24 months x 6 channels), so that every
#: file is a single row group (balanced shards, see the module docstring); Spark's Parquet writer buffers up to
#: this much per task.
_ROW_GROUP_BYTES = 128 << 20

_LOAD_BATCH_ROWS = 4096


@dataclass(frozen=True)
class PetastormFeed(FeedHandle):
    """Handle of the petastorm feed (picklable: the converter holds only URLs and a row count).

    Args:
        converter: The ``SparkDatasetConverter`` made on the driver.
        spec: Layout of the rows.
        seed: Seed of the per-epoch row order and of :meth:`PetastormShardReader.sample`.
        workers_count: Processes of Petastorm's process pool, per rank.
        cache_shard: Keep a rank's rows in memory after the first read (they are the same every epoch).
    """

    converter: SparkDatasetConverter
    spec: FeatureSpec
    seed: int
    workers_count: int = 1
    cache_shard: bool = True
    name: str = field(default="petastorm")

    def open(self, ctx: WorkerContext) -> PetastormShardReader:
        """This rank's reader."""
        return PetastormShardReader(self, rank=ctx.rank, world_size=ctx.world_size)

    def with_batch_size(self, batch_size: int) -> PetastormFeed:
        """The same feed (its shards do not depend on the batch size)."""
        return self

    def cleanup(self) -> None:
        """Delete the converter's Parquet files."""
        self.converter.delete()


def _shard_sizes(files: list[str], world_size: int) -> list[int]:
    """Rows of every rank's shard, from the Parquet footers, in Petastorm's row-group order.

    Petastorm 0.13.1 (no summary metadata, footers read) numbers the row groups file by file in the order of
    the converter's file list and gives row group ``i`` to shard ``i % world_size``.
    """
    import pyarrow.parquet as pq

    from credspark.distributed.feeds import _local

    counts = []
    for path in files:
        meta = pq.ParquetFile(_local(path)).metadata
        counts.extend(meta.row_group(g).num_rows for g in range(meta.num_row_groups))
    if len(counts) < world_size:
        raise ValueError(f"petastorm feed: {len(counts)} row groups cannot be shared by {world_size} workers")
    return [int(sum(counts[r::world_size])) for r in range(world_size)]


def _batch_from_columns(cols: dict[str, np.ndarray], spec: FeatureSpec) -> tuple[Batch, np.ndarray]:
    """A :class:`Batch` and the row ids from column arrays (one array per column, rows first)."""
    n = int(cols[ROW_ID_COLUMN].shape[0])
    static = np.empty((n, spec.n_static), dtype=np.float32)
    for j, name in enumerate(spec.static_names):
        static[:, j] = cols[name]
    width = spec.T * spec.C
    seq = cols[SEQ_COLUMN].reshape(n, -1) if n else np.empty((0, width), np.float32)
    mask = cols[MASK_COLUMN].reshape(n, -1) if n else np.empty((0, spec.T), np.uint8)
    if seq.shape[1] != width:
        raise SpecMismatchError(f"column {SEQ_COLUMN!r}: expected arrays of length {width}, got {seq.shape[1]}")
    if mask.shape[1] != spec.T:
        raise SpecMismatchError(f"column {MASK_COLUMN!r}: expected arrays of length {spec.T}, got {mask.shape[1]}")
    y = cols[LABEL_COLUMN]
    if y.dtype.kind == "f" and np.isnan(y).any():  # Petastorm turns a null int into NaN
        raise SpecMismatchError("label: null labels cannot be used for training")
    batch = Batch(
        static,
        seq.astype(np.float32, copy=False).reshape(n, spec.T, spec.C),
        mask.astype(np.uint8, copy=False),
        y.astype(np.int64, copy=False),
    )
    return batch, cols[ROW_ID_COLUMN].astype(np.int64, copy=False)


def _concat_columns(parts: list[dict[str, np.ndarray]], names: list[str]) -> dict[str, np.ndarray]:
    if not parts:
        return {k: np.empty(0) for k in names}
    return {k: np.concatenate([p[k] for p in parts]) for k in names}


class PetastormShardReader(ShardReader):
    """One rank's rows of a :class:`PetastormFeed` (see the module docstring).

    Args:
        feed: The handle.
        rank: This rank.
        world_size: Number of ranks.
    """

    def __init__(self, feed: PetastormFeed, *, rank: int, world_size: int) -> None:
        self.feed = feed
        self.spec = feed.spec
        self.rank = rank
        self.world_size = world_size
        self.seed = feed.seed
        self.num_rows = int(len(feed.converter))
        self.shard_sizes = _shard_sizes(list(feed.converter.file_urls), world_size)
        self._columns = [*feed_columns(feed.spec), ROW_ID_COLUMN]
        self._cache: tuple[Batch, np.ndarray] | None = None

    # ------------------------------------------------------------------ reading through Petastorm
    def _loader_batches(self, *, shard: bool, pool: str) -> Iterator[dict[str, np.ndarray]]:
        from petastorm.pytorch import BatchedDataLoader

        kwargs: dict[str, Any] = {
            "batch_size": _LOAD_BATCH_ROWS,
            "num_epochs": 1,
            "workers_count": int(self.feed.workers_count),
            "reader_pool_type": pool,
            "shuffle_row_groups": False,
            "shuffling_queue_capacity": 0,
            "data_loader_fn": BatchedDataLoader,
            "schema_fields": self._columns,
        }
        if shard and self.world_size > 1:
            kwargs.update(cur_shard=int(self.rank), shard_count=int(self.world_size))
        with self.feed.converter.make_torch_dataloader(**kwargs) as loader:
            for batch in loader:
                yield {k: v.numpy() for k, v in batch.items()}

    def read_shard(self) -> tuple[Batch, np.ndarray]:
        """This rank's rows and their row ids, ordered by row id, read through Petastorm's process pool.

        Returns:
            ``(batch, row_ids)``.
        """
        cols = _concat_columns(list(self._loader_batches(shard=True, pool="process")), self._columns)
        batch, ids = _batch_from_columns(cols, self.spec)
        order = np.argsort(ids, kind="stable")
        return batch.take(order), ids[order]

    def _shard(self) -> tuple[Batch, np.ndarray]:
        if self._cache is not None:
            return self._cache
        shard = self.read_shard()
        if self.feed.cache_shard:
            self._cache = shard
        return shard

    # ------------------------------------------------------------------ ShardReader interface
    def shard_row_ids(self, epoch: int) -> np.ndarray:
        """Row ids of this rank's rows for ``epoch``, in the order :meth:`epoch_shard` returns them."""
        _, ids = self._shard()
        return ids[self._order(epoch, ids.size)]

    def _order(self, epoch: int, n: int) -> np.ndarray:
        return np.random.default_rng([int(self.seed), int(epoch), int(self.rank), 1]).permutation(n)

    def epoch_shard(self, epoch: int) -> Batch:
        """This rank's rows, shuffled with ``(seed, epoch, rank)``."""
        batch, ids = self._shard()
        return batch.take(self._order(epoch, ids.size))

    def sample(self, max_rows: int) -> Batch:
        """Up to ``max_rows`` rows drawn without replacement with the feed seed (identical on every rank).

        Reads the whole data set once, in order (Petastorm's single-process ``dummy`` pool), keeping only
        the drawn rows.
        """
        n = min(int(max_rows), self.num_rows)
        rng = np.random.default_rng([int(self.seed), 2**31 - 1])
        take = np.zeros(self.num_rows, dtype=bool)
        take[rng.choice(self.num_rows, size=n, replace=False)] = True
        parts, pos = [], 0
        for cols in self._loader_batches(shard=False, pool="dummy"):
            rows = int(cols[ROW_ID_COLUMN].shape[0])
            keep = take[pos : pos + rows]
            pos += rows
            if keep.any():
                parts.append({k: v[keep] for k, v in cols.items()})
        if pos != self.num_rows:
            raise RuntimeError(f"petastorm feed: read {pos} rows, the converter holds {self.num_rows}")
        batch, ids = _batch_from_columns(_concat_columns(parts, self._columns), self.spec)
        return batch.take(np.argsort(ids, kind="stable"))

    def steps_per_epoch(self, batch_size: int) -> int:
        """Batches per epoch on every rank: enough for the largest shard at ``batch_size`` rows."""
        steps = max(1, math.ceil(max(self.shard_sizes) / int(batch_size)))
        if min(self.shard_sizes) // steps < 2:
            raise ValueError(
                f"petastorm feed: shards of {self.shard_sizes} rows at batch size {batch_size} give batches of "
                "fewer than 2 rows (BatchNorm needs 2): use fewer workers or more rows"
            )
        return steps


def prepare_petastorm_feed(
    df: DataFrame,
    *,
    spec: FeatureSpec,
    work_dir: str,
    name: str,
    num_workers: int,
    seed: int,
    batch_size: int,
    options: dict[str, Any] | None = None,
) -> PetastormFeed:
    """Materialise ``df``'s feed columns with ``petastorm.spark.make_spark_converter`` (driver side).

    Sets the session's ``petastorm.spark.converter.parentCacheDirUrl`` to ``<work_dir>/feeds/petastorm``
    (Petastorm reads its cache location only from there).

    Args:
        df: Feature rows (static columns, ``seq``, ``seq_mask``, ``label``).
        spec: Layout of the rows.
        work_dir: Folder every worker can read (a local path or a ``file:`` URL).
        name: Feed name (for logs; Petastorm names its own folders).
        num_workers: Number of ranks.
        seed: Seed of the per-epoch row order.
        batch_size: Training batch size (unused: Petastorm's shards do not depend on it).
        options: ``files_per_worker`` (default 4), ``max_rows_per_file`` (default 100,000),
            ``workers_count`` (Petastorm processes per rank, default 1), ``cache_shard`` (default True).

    Returns:
        The handle to pass to the training function.
    """
    from petastorm.spark import SparkDatasetConverter, make_spark_converter
    from pyspark.sql import functions as F  # noqa: N812 - Spark convention
    from pyspark.sql.types import ArrayType, DoubleType, FloatType, IntegerType, LongType

    del name, batch_size  # part of the feed interface; see the docstring
    opts = dict(options or {})
    files_per_worker = int(opts.pop("files_per_worker", 4))
    max_rows_per_file = int(opts.pop("max_rows_per_file", 100_000))
    workers_count = int(opts.pop("workers_count", 1))
    cache_shard = bool(opts.pop("cache_shard", True))
    if opts:
        raise ValueError(f"petastorm feed: unknown options {sorted(opts)}")

    spark = df.sparkSession
    cache_url = work_dir.rstrip("/") + "/feeds/petastorm"
    if "://" not in cache_url and not cache_url.startswith("file:"):
        from pathlib import Path

        cache_url = Path(cache_url).resolve().as_uri()
    spark.conf.set(SparkDatasetConverter.PARENT_CACHE_DIR_URL_CONF, cache_url)

    # Types Petastorm turns into tensors without surprises: static columns as floats (codes included:
    # float32 holds them exactly), arrays of float / int, a long label.
    cols = [F.col(c).cast(DoubleType()).alias(c) for c in spec.static_names]
    cols += [
        F.col(SEQ_COLUMN).cast(ArrayType(FloatType())).alias(SEQ_COLUMN),
        F.col(MASK_COLUMN).cast(ArrayType(IntegerType())).alias(MASK_COLUMN),
        F.col(LABEL_COLUMN).cast(LongType()).alias(LABEL_COLUMN),
        F.monotonically_increasing_id().alias(ROW_ID_COLUMN),
    ]
    rows = df.select(*cols)
    n = rows.count()
    if n < 2 * num_workers:
        raise ValueError(f"petastorm feed: {n} rows are too few for {num_workers} workers")
    per_worker = max(files_per_worker, math.ceil(n / (num_workers * max_rows_per_file)))
    # Round-robin repartition: near-equal files; never more files than rows (no empty file, no empty shard).
    parts = num_workers * max(1, min(per_worker, n // num_workers))
    converter = make_spark_converter(
        rows.repartition(parts), parquet_row_group_size_bytes=_ROW_GROUP_BYTES, dtype="float32"
    )
    return PetastormFeed(converter, spec, int(seed), workers_count=workers_count, cache_shard=cache_shard)


register_feed("petastorm", prepare_petastorm_feed)
