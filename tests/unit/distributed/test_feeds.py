"""The arrow feed without Spark: sharding, exactly-once epochs, Arrow -> numpy conversion, prefetch."""

from __future__ import annotations

import threading
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from credspark.distributed._context import LocalContext
from credspark.distributed.feeds import (
    ArrowFeed,
    ArrowShardReader,
    batch_from_table,
    epoch_shards,
    feed_columns,
    get_feed,
    prefetch,
    split_batches,
    steps_per_epoch,
)
from credspark.models.inputs import arrays_from_frame
from credspark.models.spec import SpecMismatchError
from tests.fixtures_models import feature_frame, tiny_spec

SPEC = tiny_spec()


@pytest.mark.parametrize(
    "n, world, batch",
    [(1000, 2, 64), (1001, 3, 64), (97, 2, 10), (10, 3, 100), (64, 2, 32), (129, 4, 32), (50, 1, 7)],
)
def test_epoch_shards_cover_every_row_once_and_differ_by_at_most_one_batch(n, world, batch):
    for epoch in range(3):
        shards = epoch_shards(n, world, batch, seed=5, epoch=epoch)
        assert len(shards) == world
        joined = np.concatenate(shards)
        assert np.array_equal(np.sort(joined), np.arange(n))  # exactly once
        sizes = [len(s) for s in shards]
        assert max(sizes) - min(sizes) <= batch
        assert min(sizes) > 0


def test_epoch_shards_reshuffle_per_epoch_and_agree_across_calls():
    a = epoch_shards(1000, 2, 50, seed=1, epoch=0)
    again = epoch_shards(1000, 2, 50, seed=1, epoch=0)  # what another rank computes
    b = epoch_shards(1000, 2, 50, seed=1, epoch=1)
    assert all(np.array_equal(x, y) for x, y in zip(a, again))
    assert not np.array_equal(a[0], b[0])


def test_steps_are_equal_on_every_rank_and_batches_have_two_rows():
    for n, world, batch in [(1000, 2, 64), (1001, 3, 64), (97, 2, 10), (130, 4, 32)]:
        steps = steps_per_epoch(n, world, batch)
        for shard in epoch_shards(n, world, batch, seed=0, epoch=0):
            parts = split_batches(len(shard), steps, np.random.default_rng(0))
            assert len(parts) == steps
            assert all(2 <= len(p) <= batch for p in parts)
            assert np.array_equal(np.sort(np.concatenate(parts)), np.arange(len(shard)))
    with pytest.raises(ValueError, match="fewer than 2 rows"):
        steps_per_epoch(5, 4, 2)
    with pytest.raises(ValueError, match="cannot be shared"):
        epoch_shards(3, 4, 2, seed=0, epoch=0)


def _write_feed(tmp_path, n, *, files=3, row_group=37, seed=0):
    pdf = feature_frame(SPEC, n, seed=seed)
    pdf["credit_limit"] = np.arange(n, dtype=np.float64)  # a unique row id carried in a static column
    table = pa.Table.from_pandas(pdf[feed_columns(SPEC)], preserve_index=False)
    bounds = np.linspace(0, n, files + 1).astype(int)
    paths = []
    for i in range(files):
        p = tmp_path / f"part-{i}.parquet"
        pq.write_table(table.slice(bounds[i], bounds[i + 1] - bounds[i]), p, row_group_size=row_group)
        paths.append("file:" + str(p))
    return pdf, tuple(paths)


def test_arrow_shard_readers_see_every_row_exactly_once_per_epoch(tmp_path):
    n, world, batch = 403, 3, 32
    pdf, files = _write_feed(tmp_path, n)
    feed = ArrowFeed(files, SPEC, batch, seed=11)
    readers = [ArrowShardReader(files, SPEC, rank=r, world_size=world, batch_size=batch, seed=11) for r in range(world)]
    assert all(r.num_rows == n for r in readers)
    orders = []
    for epoch in range(2):
        ids, counts = [], []
        for reader in readers:
            batches = list(reader.epoch(epoch, batch))
            counts.append(len(batches))
            assert all(2 <= len(b) <= batch for b in batches)
            rows = np.concatenate([b.static[:, 2] for b in batches]).astype(int)
            ids.append(rows)
            # The rank's rows are its epoch shard, and the values line up with the source rows.
            assert set(rows) == set(reader.shard_rows(epoch))
            b0 = batches[0]
            ref_static, ref_dyn, ref_mask, ref_y = arrays_from_frame(
                pdf.iloc[b0.static[:, 2].astype(int)], SPEC, with_label=True
            )
            np.testing.assert_array_equal(b0.static, ref_static)
            np.testing.assert_array_equal(b0.dynamic, ref_dyn)
            np.testing.assert_array_equal(b0.mask, ref_mask)
            np.testing.assert_array_equal(b0.y, ref_y)
        assert len(set(counts)) == 1  # same number of steps on every rank
        everything = np.concatenate(ids)
        assert np.array_equal(np.sort(everything), np.arange(n))  # every row exactly once
        sizes = [len(i) for i in ids]
        assert max(sizes) - min(sizes) <= batch
        orders.append(ids[0])
    assert not np.array_equal(orders[0], orders[1])  # reshuffled between epochs
    # The handle opens the same reader for a context.
    assert feed.open(LocalContext()).num_rows == n


def test_reader_reads_only_the_row_groups_it_needs(tmp_path, monkeypatch):
    _, files = _write_feed(tmp_path, 400, files=2, row_group=20)
    reader = ArrowShardReader(files, SPEC, rank=0, world_size=4, batch_size=20, seed=0)
    asked: list[int] = []
    original = pq.ParquetFile.read_row_groups

    def spy(self, row_groups, *args, **kwargs):
        asked.extend(row_groups)
        return original(self, row_groups, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "read_row_groups", spy)
    shard = reader.epoch_shard(0)
    assert len(shard) == 100
    assert len(asked) == 5  # 100 rows in blocks of 20 aligned with 20-row groups: 5 of the 20 groups


def test_sample_is_the_same_on_every_rank(tmp_path):
    _, files = _write_feed(tmp_path, 200)
    a = ArrowShardReader(files, SPEC, rank=0, world_size=2, batch_size=16, seed=3).sample(50)
    b = ArrowShardReader(files, SPEC, rank=1, world_size=2, batch_size=16, seed=3).sample(50)
    assert len(a) == 50
    np.testing.assert_array_equal(a.static, b.static)
    assert len(np.unique(a.static[:, 2])) == 50


def test_batch_from_table_handles_sliced_lists_nulls_and_bad_lengths():
    pdf = feature_frame(SPEC, 10, seed=1)
    table = pa.Table.from_pandas(pdf[feed_columns(SPEC)], preserve_index=False)
    sliced = table.slice(3, 4)  # list offsets no longer start at 0
    got = batch_from_table(sliced, SPEC)
    ref = arrays_from_frame(pdf.iloc[3:7], SPEC, with_label=True)
    for g, r in zip(got, ref):
        np.testing.assert_array_equal(g, r)
    assert got.dynamic.dtype == np.float32 and got.mask.dtype == np.uint8 and got.y.dtype == np.int64

    nulls = table.set_column(0, "age", pa.array([None] + [30] * 9, pa.int32()))
    assert np.isnan(batch_from_table(nulls, SPEC).static[0, 0])
    bad = table.set_column(table.column_names.index("seq"), "seq", pa.array([[1.0, 2.0]] * 10))
    with pytest.raises(SpecMismatchError, match="seq"):
        batch_from_table(bad, SPEC)
    no_label = table.set_column(table.column_names.index("label"), "label", pa.array([None] * 10, pa.int32()))
    with pytest.raises(SpecMismatchError, match="null labels"):
        batch_from_table(no_label, SPEC)


def test_prefetch_keeps_order_runs_ahead_and_propagates_errors():
    produced: list[int] = []

    def items():
        for i in range(5):
            produced.append(i)
            yield i

    it = prefetch(items(), depth=2)
    assert next(it) == 0
    time.sleep(0.3)
    assert len(produced) >= 3  # the background thread prepared the next items already
    assert list(it) == [1, 2, 3, 4]

    def broken():
        yield 1
        raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        list(prefetch(broken(), depth=1))

    before = threading.active_count()
    it = prefetch(iter(range(1000)), depth=1)
    next(it)
    it.close()  # closing early stops the producer thread
    time.sleep(0.3)
    assert threading.active_count() <= before


def test_feed_registry():
    assert get_feed("arrow").__name__ == "prepare_arrow_feed"
    with pytest.raises(ValueError, match="unknown feed"):
        get_feed("carrier-pigeon")
