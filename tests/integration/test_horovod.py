"""Horovod backend in the main lane (Horovod built by `make horovod`, arrow feed), 2 workers on local[2].

- ResNet-LSTM and ACTGAN (the WGAN-GP critic's double backward, gradients all-reduced after backward):
  every replica identical, and the same models as TorchDistributor trains from the same feed (both
  average the same gradients: with two ranks the sum a + b is exact in either order);
- a worker that raises fails the run promptly with that worker's error.
"""

from __future__ import annotations

import math
import time

import pytest

pytest.importorskip("horovod.torch", reason="needs Horovod (make horovod)")

from credspark.distributed.feeds import get_feed  # noqa: E402
from credspark.distributed.horovod_backend import horovod_available  # noqa: E402
from credspark.distributed.launchers import WorkerError, launch  # noqa: E402
from credspark.distributed.train_fns import train_resnet_lstm_worker  # noqa: E402
from tests.fixtures_distributed import TINY_RESNET, feature_dataframe, tiny_spec, train_both, worker_options  # noqa: E402

pytestmark = [pytest.mark.spark, pytest.mark.slow]


@pytest.fixture(scope="module")
def arrow_feed(spark, tmp_path_factory):
    spec = tiny_spec()
    feed = get_feed("arrow")(
        feature_dataframe(spark, spec, 160, seed=2), spec=spec, work_dir=str(tmp_path_factory.mktemp("feeds")),
        name="train", num_workers=2, seed=7, batch_size=32,
    )  # fmt: skip
    yield feed
    feed.cleanup()


def _both(backend, feed, root):
    return launch(
        train_both, backend=backend, num_workers=2, timeout_s=600,
        args=(feed, worker_options(root / "resnet", epochs=2), worker_options(root / "actgan", epochs=1)),
    )  # fmt: skip


def test_horovod_is_built_with_gloo():
    assert horovod_available()


def test_replicas_identical_and_same_models_as_torch_distributor(arrow_feed, tmp_path):
    hv = _both("horovod", arrow_feed, tmp_path / "hv")
    for model in ("resnet_lstm", "actgan"):
        assert hv[model]["world_size"] == 2 and len(hv[model]["hashes"]) == 2
        assert len(set(hv[model]["hashes"])) == 1, model
    losses = hv["resnet_lstm"]["history"]["train_loss"]
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses)
    assert all(math.isfinite(h["wasserstein"]) for h in hv["actgan"]["history"])

    td = _both("torch_distributor", arrow_feed, tmp_path / "td")
    assert hv["resnet_lstm"]["hashes"] == td["resnet_lstm"]["hashes"]
    assert hv["actgan"]["hashes"] == td["actgan"]["hashes"]


def test_a_failing_worker_fails_the_run_with_its_error(arrow_feed, tmp_path):
    opts = worker_options(tmp_path, epochs=2, fail_at_epoch=0, fail_rank=1)
    started = time.monotonic()
    with pytest.raises(WorkerError) as info:
        launch(train_resnet_lstm_worker, backend="horovod", num_workers=2, timeout_s=300,
               args=(arrow_feed, None, TINY_RESNET, opts))
    assert info.value.rank == 1 and info.value.error_type == "RuntimeError"
    assert "injected failure" in info.value.message
    assert time.monotonic() - started < 240  # the surviving rank did not wait out the 300 s timeout
