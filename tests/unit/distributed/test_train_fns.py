"""Training functions on the local backend (world size 1): checkpoints, resume, saved models, failures."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from credspark.distributed._oversample import generate_partition, generated_arrow_schema
from credspark.distributed.feeds import ArrowFeed, batch_from_table, feed_columns
from credspark.distributed.launchers import (
    ERROR_MARKER,
    WorkerError,
    _error_from_text,
    _first_error,
    launch,
    run_worker,
)
from credspark.distributed.train_fns import WorkerOptions, train_actgan_worker, train_resnet_lstm_worker
from credspark.models.actgan import ACTGAN
from credspark.models.inputs import arrays_from_frame
from credspark.models.resnet_lstm import ResNetLSTM
from credspark.models.spec import FeatureSpec
from tests.fixtures_models import feature_frame, tiny_spec

torch.set_num_threads(1)
SPEC = tiny_spec()
RL_PARAMS = {"embedding_dim": 6, "filters": (4, 8), "lstm_hidden": 4, "lr": 1e-3, "patience": 3}
GAN_PARAMS = {"noise_dim": 8, "generator_dims": (16,), "discriminator_dims": (16,), "n_critic": 2}


@pytest.fixture(scope="module")
def feed(tmp_path_factory):
    root = tmp_path_factory.mktemp("feed")
    pdf = feature_frame(SPEC, 320, seed=2)
    table = pa.Table.from_pandas(pdf[feed_columns(SPEC)], preserve_index=False)
    paths = []
    for i in range(2):
        p = root / f"part-{i}.parquet"
        pq.write_table(table.slice(i * 160, 160), p, row_group_size=50)
        paths.append(str(p))
    return ArrowFeed(tuple(paths), SPEC, batch_size=64, seed=4), pdf


def _opts(tmp_path, name, epochs, **kw):
    return WorkerOptions(
        epochs=epochs, batch_size=64, seed=4, checkpoint_dir=str(tmp_path / "ckpt" / name),
        output_dir=str(tmp_path / "out" / name), **kw,
    )  # fmt: skip


def test_resnet_lstm_worker_checkpoints_resumes_and_saves_a_loadable_model(tmp_path, feed):
    handle, pdf = feed
    first = launch(train_resnet_lstm_worker, backend="local", num_workers=1,
                   args=(handle, handle, RL_PARAMS, _opts(tmp_path, "rl", 1)))
    assert first["start_epoch"] == 0 and first["epochs_run"] == 1 and len(first["hashes"]) == 1
    resumed = launch(train_resnet_lstm_worker, backend="local", num_workers=1,
                     args=(handle, handle, RL_PARAMS, _opts(tmp_path, "rl", 2)))
    assert resumed["start_epoch"] == 1 and resumed["epochs_run"] == 1
    assert resumed["history"]["train_loss"][0] == first["history"]["train_loss"][0]  # carried over
    assert len(resumed["history"]["valid_auc"]) == 2

    # Resuming reproduces the uninterrupted run exactly (optimizer state and per-epoch seeds restored).
    straight = launch(train_resnet_lstm_worker, backend="local", num_workers=1,
                      args=(handle, handle, RL_PARAMS, _opts(tmp_path, "straight", 2)))
    assert straight["hashes"] == resumed["hashes"]

    model = ResNetLSTM.load(resumed["model_dir"])
    static, dynamic, mask = arrays_from_frame(pdf.head(20), SPEC)
    p = model.predict_proba(static, dynamic, mask)
    assert p.shape == (20,) and np.isfinite(p).all()
    assert model.embed(static, dynamic, mask).shape == (20, 6)
    meta = json.loads((tmp_path / "out" / "rl" / "resnet_lstm.json").read_text())
    assert meta["best_epoch"] in (0, 1)


def test_actgan_worker_trains_resumes_and_generates_feature_rows(tmp_path, feed):
    handle, _ = feed
    first = launch(train_actgan_worker, backend="local", num_workers=1,
                   args=(handle, GAN_PARAMS, _opts(tmp_path, "gan", 1)))
    resumed = launch(train_actgan_worker, backend="local", num_workers=1,
                     args=(handle, GAN_PARAMS, _opts(tmp_path, "gan", 2)))
    assert (first["start_epoch"], resumed["start_epoch"]) == (0, 1)
    assert [h["epoch"] for h in resumed["history"]] == [0, 1]
    model = ACTGAN.load(resumed["model_dir"])
    static, dynamic, mask = model.sample(7)
    assert static.shape == (7, SPEC.n_static) and dynamic.shape == (7, SPEC.T, SPEC.C)

    # The mapInArrow body: one generated feature row per id, readable by the feed's converter.
    ids = [pa.RecordBatch.from_pydict({"id": pa.array(np.arange(s, s + 5), pa.int64())}) for s in (0, 5)]
    out = list(generate_partition(iter(ids), model_dir=resumed["model_dir"], seed=1))
    table = pa.Table.from_batches(out)
    assert table.schema.equals(generated_arrow_schema(SPEC.static_names))
    batch = batch_from_table(table, SPEC)
    assert len(batch) == 10 and (batch.y == 1).all()
    assert set(np.unique(batch.mask)) <= {0, 1}
    again = pa.Table.from_batches(list(generate_partition(iter(ids), model_dir=resumed["model_dir"], seed=1)))
    assert again.equals(table)  # seeded by batch, not by scheduling


def test_injected_failure_and_error_records(tmp_path, feed):
    handle, _ = feed
    with pytest.raises(RuntimeError, match="injected failure on rank 0 at epoch 0"):
        launch(train_resnet_lstm_worker, backend="local", num_workers=1,
               args=(handle, None, RL_PARAMS, _opts(tmp_path, "fail", 1, fail_at_epoch=0, fail_rank=0)))

    class Ctx:
        rank, is_chief = 1, False

    def boom(ctx, x):
        raise ValueError(f"bad {x}")

    with pytest.raises(ValueError):
        run_worker(Ctx(), boom, (3,), str(tmp_path))
    info = _first_error(str(tmp_path))
    assert (info["rank"], info["type"], info["message"]) == (1, "ValueError", "bad 3")
    assert "boom" in info["traceback"]
    marked = json.dumps({"rank": 1, "type": "KeyError", "message": "k"})
    text = f"Command failed. output:\nnoise\n{ERROR_MARKER}{marked}\n"
    assert _error_from_text(text) == {"rank": 1, "type": "KeyError", "message": "k"}
    with pytest.raises(ValueError, match="num_workers to 1"):
        launch(boom, backend="local", num_workers=2)
    with pytest.raises(ValueError, match="unknown backend"):
        launch(boom, backend="mpi", num_workers=1)
    assert issubclass(WorkerError, RuntimeError)


class _FakeSparkContext:
    def __init__(self):
        self.cancelled: list[str] = []

    def cancelJobsWithTag(self, tag):  # noqa: N802 - Spark's name
        self.cancelled.append(tag)


def test_watchdog_cancels_on_a_recorded_error_or_at_the_deadline(tmp_path):
    from credspark.distributed.launchers import _Watchdog

    sc = _FakeSparkContext()
    dog = _Watchdog(sc, "tag-a", str(tmp_path), timeout_s=60, poll_s=0.02)
    dog.start()
    (tmp_path / "rank-1.json").write_text(json.dumps({"rank": 1, "type": "E", "message": "m", "time": 1.0}))
    dog.join(5)
    assert (sc.cancelled, dog.reason) == (["tag-a"], "error")

    empty = tmp_path / "empty"
    empty.mkdir()
    dog = _Watchdog(sc, "tag-b", str(empty), timeout_s=0.1, poll_s=0.02)
    dog.start()
    dog.join(5)
    assert (sc.cancelled[-1], dog.reason) == ("tag-b", "timeout")

    dog = _Watchdog(sc, "tag-c", str(empty), timeout_s=60, poll_s=0.02)
    dog.start()
    dog.done.set()  # the run finished: nothing is cancelled
    dog.join(5)
    assert "tag-c" not in sc.cancelled and dog.reason is None


def test_a_checkpoint_of_another_run_is_refused_naming_what_differs_or_replaced_on_restart(tmp_path, feed):
    from credspark.distributed._checkpoint import CheckpointMismatchError, latest_checkpoint
    from credspark.errors import EXIT_CONFIG

    handle, _ = feed
    run_a = {"data": {"features_version": 3, "train_rows": {"0": 250, "1": 70}}, "config": {"lr": 1e-3}}
    run_b = {"data": {"features_version": 4, "train_rows": {"0": 250, "1": 70}}, "config": {"lr": 1e-2}}
    first = launch(train_resnet_lstm_worker, backend="local", num_workers=1,
                   args=(handle, None, RL_PARAMS, _opts(tmp_path, "fp", 2, fingerprint=run_a)))
    assert first["epochs_run"] == 2
    assert latest_checkpoint(tmp_path / "ckpt" / "fp").state["fingerprint"] == {"format": 2, **run_a}

    with pytest.raises(CheckpointMismatchError) as err:
        launch(train_resnet_lstm_worker, backend="local", num_workers=1,
               args=(handle, None, RL_PARAMS, _opts(tmp_path, "fp", 3, fingerprint=run_b)))
    assert err.value.exit_code == EXIT_CONFIG
    msg = str(err.value)
    assert "config.lr: checkpoint 0.001, this run 0.01" in msg
    assert "data.features_version: checkpoint 3, this run 4" in msg
    assert "train_rows" not in msg and "epoch 1" in msg  # only the differences; the epoch it stopped at

    # The same run (same fingerprint) resumes.
    same = launch(train_resnet_lstm_worker, backend="local", num_workers=1,
                  args=(handle, None, RL_PARAMS, _opts(tmp_path, "fp", 3, fingerprint=run_a)))
    assert (same["start_epoch"], same["epochs_run"]) == (2, 1)

    # restart: trains from epoch 0; its checkpoint replaces the stale ones, later epochs included.
    fresh = launch(train_resnet_lstm_worker, backend="local", num_workers=1,
                   args=(handle, None, RL_PARAMS,
                         _opts(tmp_path, "fp", 1, fingerprint=run_b, on_mismatch="restart")))
    assert (fresh["start_epoch"], fresh["epochs_run"]) == (0, 1)
    ckpt = latest_checkpoint(tmp_path / "ckpt" / "fp")
    assert (ckpt.epoch, ckpt.state["fingerprint"]) == (0, {"format": 2, **run_b})
    assert sorted(p.name for p in (tmp_path / "ckpt" / "fp").glob("epoch-*")) == ["epoch-00000"]


def test_a_checkpoint_without_a_fingerprint_is_another_format_and_not_resumed(tmp_path):
    from credspark.distributed._checkpoint import CheckpointMismatchError, checkpoint_to_resume, save_checkpoint

    save_checkpoint(tmp_path, 0, modules={"m": torch.nn.Linear(2, 1)}, optimizers={}, extra={})
    assert checkpoint_to_resume(tmp_path, None) is not None  # the format version alone matches
    state = tmp_path / "epoch-00000" / "state.json"
    old = json.loads(state.read_text())
    del old["fingerprint"]  # as written by format 1
    state.write_text(json.dumps(old))
    with pytest.raises(CheckpointMismatchError, match="format: checkpoint 1, this run 2"):
        checkpoint_to_resume(tmp_path, None)
    assert checkpoint_to_resume(tmp_path, None, on_mismatch="restart") is None


def test_static_only_rows_train_both_workers_and_generate_rows_with_an_empty_sequence(tmp_path):
    spec = FeatureSpec(static=SPEC.static, channels=(), T=0)
    pdf = feature_frame(spec, 320, seed=2)
    assert all(len(s) == 0 for s in pdf["seq"]) and all(len(m) == 0 for m in pdf["seq_mask"])
    path = tmp_path / "part-0.parquet"
    pq.write_table(pa.Table.from_pandas(pdf[feed_columns(spec)], preserve_index=False), path, row_group_size=80)
    handle = ArrowFeed((str(path),), spec, batch_size=64, seed=4)
    rl = launch(train_resnet_lstm_worker, backend="local", num_workers=1,
                args=(handle, handle, RL_PARAMS, _opts(tmp_path, "rl", 2)))
    model = ResNetLSTM.load(rl["model_dir"])
    assert model.module_.lstm is None and len(rl["history"]["valid_auc"]) == 2
    static, dynamic, mask = arrays_from_frame(pdf, spec)
    assert dynamic.shape == (320, 0, 0)
    assert model.embed(static, dynamic, mask).shape == (320, 6)
    gan = launch(train_actgan_worker, backend="local", num_workers=1,
                 args=(handle, GAN_PARAMS, _opts(tmp_path, "gan", 1)))
    ids = [pa.RecordBatch.from_pydict({"id": pa.array(np.arange(6), pa.int64())})]
    table = pa.Table.from_batches(list(generate_partition(iter(ids), model_dir=gan["model_dir"], seed=1)))
    assert table.schema.equals(generated_arrow_schema(spec.static_names))
    batch = batch_from_table(table, spec)
    assert len(batch) == 6 and batch.dynamic.shape == (6, 0, 0) and batch.mask.shape == (6, 0)
    assert set(np.unique(batch.static[:, spec.static_names.index("sex")])) <= {1, 2}
