"""Feeds: a Spark DataFrame of feature rows -> per-rank batches of model input arrays.

A feed has two halves:

- on the driver, ``prepare(df, *, spec, work_dir, name, num_workers, seed, options) -> FeedHandle``
  materialises the rows somewhere every worker can read (nothing is collected to the driver) and returns
  a small, picklable :class:`FeedHandle`;
- on each worker, ``handle.open(ctx) -> ShardReader`` reads only that rank's shard.

Feeds are looked up by name in a registry (:func:`register_feed`, :func:`get_feed`); ``arrow`` is defined
here, ``petastorm`` registers itself from :mod:`credspark.distributed.petastorm_feed` when that module is
importable.

The ``arrow`` feed: Spark writes the selected columns as Parquet files with rows spread at random; every
epoch, the same seeded permutation of row *blocks* is computed on every rank and the blocks are dealt
round-robin, so the union of the shards is exactly all rows and shard sizes differ by at most one block
(a block is at most one batch). A rank reads only the Parquet row groups holding its blocks with
``pyarrow``, converts the array columns with flat numpy reshapes (no per-row Python), shuffles its rows,
and a background thread prepares the next batch while the model trains on the current one.

Batch contract: every rank yields exactly :meth:`ShardReader.steps_per_epoch` batches per epoch (the
gradient all-reduce needs every rank to take the same number of steps), each with at least two rows
(BatchNorm).
"""

from __future__ import annotations

import math
import queue
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from credspark.models.inputs import LABEL_COLUMN, MASK_COLUMN, SEQ_COLUMN
from credspark.models.spec import FeatureSpec, SpecMismatchError

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa
    from pyspark.sql import DataFrame

    from credspark.distributed._context import WorkerContext

__all__ = [
    "Batch",
    "FeedHandle",
    "ShardReader",
    "ArrowFeed",
    "ArrowShardReader",
    "FeedPrepare",
    "register_feed",
    "get_feed",
    "feed_names",
    "prepare_arrow_feed",
    "feed_columns",
    "epoch_shards",
    "steps_per_epoch",
    "split_batches",
    "batch_from_table",
    "prefetch",
]


class Batch(NamedTuple):
    """Raw (unscaled) model inputs of some rows, in the layout of :mod:`credspark.models.inputs`.

    Attributes:
        static: ``(n, n_static)`` float32, categoricals as integer codes (NaN where null).
        dynamic: ``(n, T, C)`` float32.
        mask: ``(n, T)`` uint8, 1 for observed months.
        y: ``(n,)`` int64 labels.
    """

    static: np.ndarray
    dynamic: np.ndarray
    mask: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:  # type: ignore[override]
        return int(self.static.shape[0])

    def take(self, idx: np.ndarray | slice) -> Batch:
        """Rows ``idx`` of every block."""
        return Batch(self.static[idx], self.dynamic[idx], self.mask[idx], self.y[idx])

    @staticmethod
    def concat(parts: Sequence[Batch]) -> Batch:
        """Rows of several batches, in order."""
        return Batch(*(np.concatenate([getattr(p, f) for p in parts]) for f in Batch._fields))


# ------------------------------------------------------------------------------------ sharding (pure)
def _block_rows(n_rows: int, world_size: int, batch_size: int) -> int:
    if world_size < 1 or batch_size < 1:
        raise ValueError(f"need world_size >= 1 and batch_size >= 1, got {world_size}, {batch_size}")
    if n_rows < world_size:
        raise ValueError(f"{n_rows} rows cannot be shared by {world_size} workers")
    # Blocks no larger than a batch (so shards differ by at most one batch) and no larger than a fair
    # share (so every rank gets at least one block).
    return max(1, min(batch_size, n_rows // world_size))


def epoch_shards(n_rows: int, world_size: int, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
    """Global row indices of every rank's shard for one epoch (the same answer on every rank).

    Rows ``0 .. n_rows - 1`` are cut into full blocks of ``B = min(batch_size, n_rows // world_size)``
    rows and one trailing partial block. The full blocks are permuted with ``(seed, epoch)`` and dealt
    round-robin; the partial block goes to a rank that got one full block fewer (drawn with the same
    generator). Hence every row is in exactly one shard and shard sizes differ by at most ``B`` rows.

    Args:
        n_rows: Rows in the data set.
        world_size: Number of ranks.
        batch_size: Rows per batch.
        seed: Feed seed.
        epoch: Epoch number (a new permutation each epoch).

    Returns:
        ``world_size`` int64 arrays of row indices, ordered block by block.
    """
    block = _block_rows(n_rows, world_size, batch_size)
    n_full, rem = divmod(n_rows, block)
    rng = np.random.default_rng([int(seed), int(epoch)])
    order = rng.permutation(n_full)
    blocks: list[list[int]] = [list(order[r::world_size]) for r in range(world_size)]
    starts = [[b * block for b in bs] for bs in blocks]
    sizes = [[block] * len(bs) for bs in blocks]
    if rem:
        fewest = min(len(bs) for bs in blocks)
        candidates = [r for r in range(world_size) if len(blocks[r]) == fewest]
        r = candidates[int(rng.integers(len(candidates)))]
        starts[r].append(n_full * block)
        sizes[r].append(rem)
    out = []
    for st, sz in zip(starts, sizes):
        if st:
            out.append(np.concatenate([np.arange(s, s + k, dtype=np.int64) for s, k in zip(st, sz)]))
        else:
            out.append(np.empty(0, dtype=np.int64))
    return out


def steps_per_epoch(n_rows: int, world_size: int, batch_size: int) -> int:
    """Batches every rank yields per epoch: enough for the largest shard at ``batch_size`` rows.

    Args:
        n_rows: Rows in the data set.
        world_size: Number of ranks.
        batch_size: Rows per batch.

    Returns:
        The number of steps (the same on every rank).
    """
    block = _block_rows(n_rows, world_size, batch_size)
    n_full, rem = divmod(n_rows, block)
    most = math.ceil(n_full / world_size) * block
    if rem and n_full % world_size == 0:
        most += rem
    least = (n_full // world_size) * block
    steps = max(1, math.ceil(most / batch_size))
    if least // steps < 2:
        raise ValueError(
            f"{n_rows} rows over {world_size} workers at batch size {batch_size} give batches of fewer "
            "than 2 rows (BatchNorm needs 2): use fewer workers or more rows"
        )
    return steps


def split_batches(n: int, steps: int, rng: np.random.Generator | None) -> list[np.ndarray]:
    """Cut ``n`` rows into ``steps`` batches of near-equal size, shuffled when ``rng`` is given.

    Args:
        n: Rows of the shard.
        steps: Number of batches.
        rng: Generator of the row permutation; None keeps the order.

    Returns:
        ``steps`` index arrays that together hold ``0 .. n - 1`` once.
    """
    idx = rng.permutation(n) if rng is not None else np.arange(n)
    return np.array_split(idx, steps)


# ------------------------------------------------------------------------------ Arrow -> numpy (no loops)
def feed_columns(spec: FeatureSpec) -> list[str]:
    """The columns a feed carries: the spec's static columns, ``seq``, ``seq_mask`` and ``label``."""
    return [*spec.static_names, SEQ_COLUMN, MASK_COLUMN, LABEL_COLUMN]


def _list_values(col: pa.ChunkedArray | pa.Array, width: int, n: int, dtype: type, name: str) -> np.ndarray:
    import pyarrow as pa

    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if arr.null_count:
        raise SpecMismatchError(f"column {name!r}: null arrays are not allowed")
    # flatten() honours the array's offsets (``.values`` would not, for a sliced array).
    flat = arr.flatten().to_numpy(zero_copy_only=False)
    if flat.size != n * width:
        got = flat.size / n if n else 0
        raise SpecMismatchError(f"column {name!r}: expected arrays of length {width}, got {got:.2f} on average")
    return flat.astype(dtype, copy=False).reshape(n, width)


def batch_from_table(table: pa.Table, spec: FeatureSpec) -> Batch:
    """Model input arrays from an Arrow table of feature rows (loops over columns only, never rows).

    Args:
        table: Rows with :func:`feed_columns`.
        spec: The FeatureSpec.

    Returns:
        The rows as a :class:`Batch` (null static values become NaN; a null label raises).
    """
    import pyarrow.compute as pc

    missing = [c for c in feed_columns(spec) if c not in table.column_names]
    if missing:
        raise SpecMismatchError(f"feed rows lack columns {missing}")
    n = table.num_rows
    static = np.empty((n, spec.n_static), dtype=np.float32)
    for j, name in enumerate(spec.static_names):
        col = pc.cast(table.column(name), "float64")
        static[:, j] = col.to_numpy(zero_copy_only=False)  # nulls -> NaN
    dynamic = _list_values(table.column(SEQ_COLUMN), spec.T * spec.C, n, np.float32, SEQ_COLUMN)
    mask = _list_values(table.column(MASK_COLUMN), spec.T, n, np.uint8, MASK_COLUMN)
    label = table.column(LABEL_COLUMN)
    if label.null_count:
        raise SpecMismatchError("label: null labels cannot be used for training")
    y = label.to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
    return Batch(static, dynamic.reshape(n, spec.T, spec.C), mask, y)


# ------------------------------------------------------------------------------------------- prefetch
_DONE = object()


def prefetch(items: Iterable[Any], depth: int = 2) -> Iterator[Any]:
    """Iterate over ``items`` produced by a background thread, up to ``depth`` ahead.

    The producer's exception is re-raised in the consumer; closing the iterator early stops the producer.

    Args:
        items: Any iterable (its work, e.g. scaling the next batch, runs in the thread).
        depth: Items prepared ahead (0 = no thread).

    Yields:
        The items, in order.
    """
    if depth <= 0:
        yield from items
        return
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(_DONE)
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, which re-raises it
            put(e)

    thread = threading.Thread(target=produce, name="credspark-feed-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)


# ----------------------------------------------------------------------------------- reader interface
class ShardReader(ABC):
    """One rank's view of a feed (built on the worker by :meth:`FeedHandle.open`).

    A feed implements :meth:`epoch_shard` and :meth:`sample`; :meth:`epoch` cuts the shard into
    :meth:`steps_per_epoch` batches and prefetches them (a feed may override it, keeping the contract:
    the same number of batches on every rank, each of at least two rows).

    Attributes:
        num_rows (int): Rows of the whole data set (all ranks).
        rank (int): This rank.
        world_size (int): Number of ranks.
        seed (int): Feed seed.
    """

    num_rows: int
    rank: int
    world_size: int
    seed: int

    @abstractmethod
    def epoch_shard(self, epoch: int) -> Batch:
        """All of this rank's rows for ``epoch`` (raw arrays), in a random order."""

    @abstractmethod
    def sample(self, max_rows: int) -> Batch:
        """Up to ``max_rows`` rows drawn at random from the whole data set (the same on every rank)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release files or readers."""

    def steps_per_epoch(self, batch_size: int) -> int:
        """Batches per epoch on every rank (see :func:`steps_per_epoch`)."""
        return steps_per_epoch(self.num_rows, self.world_size, batch_size)

    def epoch(
        self,
        epoch: int,
        batch_size: int,
        *,
        transform: Callable[[Batch], Any] | None = None,
        prefetch_depth: int = 2,
    ) -> Iterator[Any]:
        """This rank's batches for one epoch, prepared in a background thread.

        Args:
            epoch: Epoch number (selects the shard and the row order).
            batch_size: Rows per batch (the last batches of a smaller shard are slightly smaller).
            transform: Applied to each :class:`Batch` in the background thread (e.g. scaling to tensors).
            prefetch_depth: Batches prepared ahead. Defaults to 2.

        Yields:
            ``transform(batch)`` (or the :class:`Batch`), exactly ``steps_per_epoch(batch_size)`` times.
        """
        steps = self.steps_per_epoch(batch_size)

        def produce() -> Iterator[Any]:
            shard = self.epoch_shard(epoch)
            for idx in split_batches(len(shard), steps, None):
                part = shard.take(idx)
                yield transform(part) if transform is not None else part

        return prefetch(produce(), prefetch_depth)


class FeedHandle(ABC):
    """What the driver hands to the training function: small, picklable, opened on each worker.

    Attributes:
        name (str): Feed kind (``arrow``, ``petastorm``).
        spec (FeatureSpec): Layout of the rows.
    """

    name: str
    spec: FeatureSpec

    @abstractmethod
    def open(self, ctx: WorkerContext) -> ShardReader:
        """This rank's reader."""

    def cleanup(self) -> None:  # noqa: B027 - optional hook
        """Delete materialised data (driver side, after training)."""


#: ``prepare(df, *, spec, work_dir, name, num_workers, seed, options) -> FeedHandle`` (driver side).
FeedPrepare = Callable[..., FeedHandle]

_FEEDS: dict[str, FeedPrepare] = {}


def register_feed(name: str, prepare: FeedPrepare) -> None:
    """Make a feed available to :func:`get_feed` under ``name`` (later registrations replace earlier ones)."""
    _FEEDS[name] = prepare


def feed_names() -> list[str]:
    """Names of the registered feeds (after trying to import the optional ones)."""
    _load_optional_feeds()
    return sorted(_FEEDS)


def get_feed(name: str) -> FeedPrepare:
    """The ``prepare`` function of a registered feed.

    Args:
        name: Feed name, e.g. ``"arrow"`` or ``"petastorm"``.

    Returns:
        The driver-side prepare function.
    """
    if name not in _FEEDS:
        _load_optional_feeds()
    if name not in _FEEDS:
        raise ValueError(f"unknown feed {name!r}; available: {sorted(_FEEDS)} (petastorm needs the compat lane)")
    return _FEEDS[name]


def _load_optional_feeds() -> None:
    # The petastorm feed lives in its own module (owned by the Horovod/Petastorm lane) and registers
    # itself on import; it is optional because Petastorm only installs in the compat environment.
    import importlib

    try:
        importlib.import_module("credspark.distributed.petastorm_feed")
    except ImportError:
        pass


# ---------------------------------------------------------------------------------------- arrow feed
@dataclass(frozen=True)
class _RowGroups:
    """Row-group index of a list of Parquet files: global first row of every (file, row group)."""

    files: tuple[str, ...]
    file_of: np.ndarray  # (G,) file index of each row group
    group_of: np.ndarray  # (G,) row-group number within its file
    starts: np.ndarray  # (G + 1,) global first row; starts[-1] = total rows

    @classmethod
    def scan(cls, files: Sequence[str]) -> _RowGroups:
        file_of, group_of, counts = [], [], []
        for i, path in enumerate(files):
            meta = _parquet_file(path).metadata
            for g in range(meta.num_row_groups):
                file_of.append(i)
                group_of.append(g)
                counts.append(meta.row_group(g).num_rows)
        starts = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)]).astype(np.int64)
        return cls(tuple(files), np.asarray(file_of, np.int64), np.asarray(group_of, np.int64), starts)

    @property
    def num_rows(self) -> int:
        return int(self.starts[-1])

    def read(self, rows: np.ndarray, columns: Sequence[str]) -> pa.Table:
        """Rows (global indices, any order) read from only the row groups that hold them."""
        import pyarrow as pa

        rows = np.asarray(rows, dtype=np.int64)
        if rows.size == 0:
            return pa.table({c: [] for c in columns})
        gid = np.searchsorted(self.starts, rows, side="right") - 1
        needed = np.unique(gid)
        tables, base = [], {}
        offset = 0
        for f in np.unique(self.file_of[needed]):
            in_file = needed[self.file_of[needed] == f]
            t = _parquet_file(self.files[f]).read_row_groups(
                [int(g) for g in self.group_of[in_file]], columns=list(columns)
            )
            for g in in_file:  # read_row_groups keeps the order asked for
                base[int(g)] = offset
                offset += int(self.starts[g + 1] - self.starts[g])
            tables.append(t)
        table = pa.concat_tables(tables)
        lookup = np.zeros(len(self.starts), dtype=np.int64)
        lookup[list(base)] = list(base.values())
        local = lookup[gid] + (rows - self.starts[gid])
        return table.take(pa.array(local))


def _local(path: str) -> str:
    """A ``file:`` URI as a plain path (other URIs unchanged)."""
    if path.startswith("file://"):
        return path[len("file://") :]
    if path.startswith("file:"):
        return path[len("file:") :]
    return path


def _parquet_file(path: str) -> Any:
    """Open one Parquet file given a plain path or any URI pyarrow has a file system for (s3://, hdfs://, ...)."""
    import pyarrow.parquet as pq

    path = _local(path)
    if "://" in path:
        from pyarrow import fs

        filesystem, inner = fs.FileSystem.from_uri(path)
        return pq.ParquetFile(filesystem.open_input_file(inner))
    return pq.ParquetFile(path)


class ArrowShardReader(ShardReader):
    """Reads one rank's blocks of the arrow feed's Parquet files (see the module docstring).

    Args:
        files: Parquet files (the same list, in the same order, on every rank).
        spec: Layout of the rows.
        rank: This rank.
        world_size: Number of ranks.
        batch_size: Block size bound used for sharding (the training batch size).
        seed: Feed seed.
    """

    def __init__(
        self, files: Sequence[str], spec: FeatureSpec, *, rank: int, world_size: int, batch_size: int, seed: int
    ) -> None:
        self.spec = spec
        self.rank = rank
        self.world_size = world_size
        self.batch_size = batch_size
        self.seed = seed
        self._index = _RowGroups.scan(files)
        self.num_rows = self._index.num_rows
        self._columns = feed_columns(spec)

    def shard_rows(self, epoch: int) -> np.ndarray:
        """Global indices of this rank's rows for ``epoch``, in the order they are read."""
        return epoch_shards(self.num_rows, self.world_size, self.batch_size, self.seed, epoch)[self.rank]

    def epoch_shard(self, epoch: int) -> Batch:
        """This rank's rows for ``epoch``, shuffled with ``(seed, epoch, rank)``."""
        rows = self.shard_rows(epoch)
        rng = np.random.default_rng([int(self.seed), int(epoch), int(self.rank), 1])
        return batch_from_table(self._index.read(rows[rng.permutation(rows.size)], self._columns), self.spec)

    def sample(self, max_rows: int) -> Batch:
        """Up to ``max_rows`` rows drawn without replacement with the feed seed (identical on every rank)."""
        rng = np.random.default_rng([int(self.seed), 2**31 - 1])
        n = min(int(max_rows), self.num_rows)
        rows = np.sort(rng.choice(self.num_rows, size=n, replace=False))
        return batch_from_table(self._index.read(rows, self._columns), self.spec)

    def epoch(
        self,
        epoch: int,
        batch_size: int,
        *,
        transform: Callable[[Batch], Any] | None = None,
        prefetch_depth: int = 2,
    ) -> Iterator[Any]:
        """See :meth:`ShardReader.epoch`; ``batch_size`` must be the one the reader was opened with."""
        if batch_size != self.batch_size:
            raise ValueError(f"reader was opened for batch size {self.batch_size}, asked for {batch_size}")
        return super().epoch(epoch, batch_size, transform=transform, prefetch_depth=prefetch_depth)


@dataclass(frozen=True)
class ArrowFeed(FeedHandle):
    """Handle of the arrow feed: the Parquet file list and how to shard it.

    Args:
        files: Parquet files written by Spark (readable from every worker: a shared file system or an
            object store pyarrow can open).
        spec: Layout of the rows.
        batch_size: Training batch size (bounds the shard block size).
        seed: Feed seed.
        root: Folder holding the files (deleted by :meth:`cleanup`), or None.
    """

    files: tuple[str, ...]
    spec: FeatureSpec
    batch_size: int
    seed: int
    root: str | None = None
    name: str = field(default="arrow")

    def open(self, ctx: WorkerContext) -> ArrowShardReader:
        """This rank's reader."""
        return ArrowShardReader(
            self.files, self.spec, rank=ctx.rank, world_size=ctx.world_size, batch_size=self.batch_size, seed=self.seed
        )

    def with_batch_size(self, batch_size: int) -> ArrowFeed:
        """The same files, sharded for another batch size (e.g. ACTGAN's)."""
        return ArrowFeed(self.files, self.spec, batch_size, self.seed, self.root)

    def cleanup(self) -> None:
        """Delete the materialised files (local paths only)."""
        import shutil

        if self.root:
            shutil.rmtree(_local(self.root), ignore_errors=True)


def prepare_arrow_feed(
    df: DataFrame,
    *,
    spec: FeatureSpec,
    work_dir: str,
    name: str,
    num_workers: int,
    seed: int,
    batch_size: int,
    options: dict[str, Any] | None = None,
) -> ArrowFeed:
    """Materialise ``df``'s feed columns as Parquet under ``work_dir/feeds/<name>`` (driver side).

    Args:
        df: Feature rows (static columns, ``seq``, ``seq_mask``, ``label``).
        spec: Layout of the rows.
        work_dir: Folder every worker can read.
        name: Sub-folder name (e.g. ``resnet_lstm_train``).
        num_workers: Number of ranks (sets the number of files).
        seed: Seed of the row spread and of the epoch permutations.
        batch_size: Training batch size.
        options: ``files_per_worker`` (default 4).

    Returns:
        The handle to pass to the training function.
    """
    from credspark.io.scratch import write_scratch_parquet

    opts = dict(options or {})
    files_per_worker = int(opts.pop("files_per_worker", 4))
    if opts:
        raise ValueError(f"arrow feed: unknown options {sorted(opts)}")
    root = f"{work_dir.rstrip('/')}/feeds/{name}"
    files = write_scratch_parquet(
        df.select(*feed_columns(spec)), root, files=max(1, files_per_worker * num_workers), seed=seed
    )
    return ArrowFeed(tuple(files), spec, int(batch_size), int(seed), root)


register_feed("arrow", prepare_arrow_feed)
