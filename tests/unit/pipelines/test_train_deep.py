"""``train_deep`` on the local launcher: checkpoints of another run are refused before any training."""

from __future__ import annotations

import pytest

from credspark.config import config_from_dict
from credspark.distributed._checkpoint import CheckpointMismatchError, latest_checkpoint
from credspark.errors import EXIT_CONFIG
from credspark.pipelines.train_deep import train_deep
from tests.fixtures_distributed import feature_dataframe, tiny_spec


def _cfg(ckpt_dir, **resnet):
    return config_from_dict({
        "distributed": {"backend": "local", "num_workers": 1, "oversample": False, "checkpoint_dir": str(ckpt_dir),
                        "files_per_worker": 1, "fit_sample_rows": 1000},
        "resnet_lstm": {"epochs": 1, "batch_size": 64, "embedding_dim": 6, "filters": [4, 8], "lstm_hidden": 4,
                        **resnet},
    })  # fmt: skip


def test_resuming_another_runs_checkpoint_exits_2_naming_the_differences_before_training(spark, tmp_path):
    spec = tiny_spec()
    rows = feature_dataframe(spark, spec, 160, seed=1)
    ckpt = tmp_path / "ckpt"
    lineage = {"features_version": 7, "split": {"mode": "random", "seed": 1}}
    first = train_deep(spark, rows, _cfg(ckpt), work_dir=str(tmp_path / "w1"), spec=spec, lineage=lineage)
    saved = latest_checkpoint(ckpt / "resnet_lstm").state["fingerprint"]
    assert saved["data"]["features_version"] == 7 and saved["data"]["train_rows"] == {
        "0": int(rows.where("label = 0").count()), "1": int(rows.where("label = 1").count())}
    assert first.fingerprints["resnet_lstm"]["config"]["lstm_hidden"] == 4

    # Re-run after the features changed, with a wider network: refused on the driver, nothing trained.
    with pytest.raises(CheckpointMismatchError) as err:
        train_deep(spark, rows.where("customer_id > 10"), _cfg(ckpt, lstm_hidden=5), work_dir=str(tmp_path / "w2"),
                   spec=spec, lineage={**lineage, "features_version": 8})
    assert err.value.exit_code == EXIT_CONFIG
    msg = str(err.value)
    for diff in ("config.lstm_hidden: checkpoint 4, this run 5", "data.features_version: checkpoint 7, this run 8",
                 "data.train_rows."):
        assert diff in msg
    assert "distributed.on_checkpoint_mismatch=restart" in msg
    assert not (tmp_path / "w2" / "_launch").exists() and not (tmp_path / "w2" / "models").exists()
