"""The design's own shape (compat lane: make test-compat): ``train_deep`` with Horovod (2 workers) and the
Petastorm feed: ACTGAN oversampling, then the ResNet-LSTM on real + generated rows, all fed by Petastorm
from Spark DataFrames; every replica ends identical and the driver gets usable models."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("petastorm", reason="compat lane only (make test-compat)")
pytest.importorskip("horovod.torch", reason="needs Horovod (make horovod)")

from credspark.config import config_from_dict  # noqa: E402
from credspark.distributed.petastorm_feed import PetastormFeed  # noqa: E402
from credspark.models.inputs import arrays_from_frame  # noqa: E402
from credspark.pipelines.train_deep import train_deep  # noqa: E402
from tests.fixtures_distributed import TINY_ACTGAN, TINY_RESNET, feature_dataframe, tiny_spec  # noqa: E402
from tests.fixtures_models import feature_frame  # noqa: E402

pytestmark = [pytest.mark.spark, pytest.mark.slow]


def test_train_deep_with_horovod_fed_by_petastorm(spark, tmp_path):
    spec = tiny_spec()
    df = feature_dataframe(spark, spec, 300, seed=1)
    train_df, valid_df = df.filter("customer_id <= 240"), df.filter("customer_id > 240")
    cfg = config_from_dict({
        "distributed": {"backend": "horovod", "feed": "petastorm", "num_workers": 2, "timeout_s": 600,
                        "generate_partitions": 2, "seed": 5},
        "resnet_lstm": {"epochs": 2, "batch_size": 32, **TINY_RESNET, "filters": list(TINY_RESNET["filters"])},
        "actgan": {"epochs": 1, "batch_size": 32, **{k: list(v) if isinstance(v, tuple) else v
                                                    for k, v in TINY_ACTGAN.items()}},
    })  # fmt: skip
    res = train_deep(spark, train_df, cfg, work_dir=str(tmp_path), spec=spec, valid_df=valid_df)

    assert all(isinstance(f, PetastormFeed) for f in res.feeds.values()) and "train_oversampled" in res.feeds
    # Identical replicas: the gradient all-reduce (incl. the WGAN-GP double backward) kept the ranks in step.
    for model in ("actgan", "resnet_lstm"):
        run = res.runs[model]
        assert run["world_size"] == 2 and len(run["hashes"]) == 2 and len(set(run["hashes"])) == 1, model
    assert res.n_generated > 0
    losses = res.histories["resnet_lstm"]["train_loss"]
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses)
    assert len(res.histories["resnet_lstm"]["valid_auc"]) == 2

    static, dynamic, mask, _ = arrays_from_frame(feature_frame(spec, 20, seed=9), spec, with_label=True)
    p = res.resnet_lstm.predict_proba(static, dynamic, mask)
    assert p.shape == (20,) and np.all((p >= 0) & (p <= 1))
    assert res.actgan is not None and len(res.actgan.sample(5)[0]) == 5
