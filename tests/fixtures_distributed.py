"""Shared helpers of the distributed-training tests (Horovod lanes): tiny feature DataFrames and run settings.

Plain functions, used by tests/integration/test_horovod.py and tests/compat/*::

    spec = tiny_spec()
    df = feature_dataframe(spark, spec, 160, seed=0)
    opts = worker_options(tmp_path / "resnet", epochs=2, batch_size=32)
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

from tests.fixtures_models import feature_frame, feature_schema, tiny_spec

__all__ = ["tiny_spec", "feature_dataframe", "worker_options", "train_both", "TINY_RESNET", "TINY_ACTGAN"]

#: ResNet-LSTM constructor parameters small enough for a 2-worker run in a few seconds.
TINY_RESNET: dict[str, Any] = {"embedding_dim": 6, "filters": (4, 8), "lstm_hidden": 4, "lr": 1e-3}
#: ACTGAN constructor parameters, likewise.
TINY_ACTGAN: dict[str, Any] = {
    "noise_dim": 8, "generator_dims": (16,), "discriminator_dims": (16,), "n_cross": 3, "n_critic": 2, "lr": 1e-3,
}  # fmt: skip


def feature_dataframe(spark, spec, n: int, *, seed: int = 0):
    """A Spark DataFrame of ``n`` feature-table rows for ``spec`` (customer_id 1..n), with a learnable label."""
    pdf = feature_frame(spec, n, seed=seed)
    pdf["seq"] = [list(map(float, s)) for s in pdf["seq"]]
    pdf["seq_mask"] = [list(map(int, m)) for m in pdf["seq_mask"]]
    return spark.createDataFrame(pdf, schema=feature_schema(spec))


def worker_options(root: Path, **kw: Any):
    """WorkerOptions writing checkpoints and the final model under ``root`` (one thread per worker)."""
    from credspark.distributed.train_fns import WorkerOptions

    base = {"epochs": 2, "batch_size": 32, "seed": 0, "fit_sample_rows": 10_000, "torch_threads": 1}
    base.update(kw)
    return WorkerOptions(checkpoint_dir=str(root / "ckpt"), output_dir=str(root / "model"), **base)


def train_both(ctx, feed, resnet_opts, actgan_opts):
    """ResNet-LSTM then ACTGAN in one distributed run (one launcher start-up instead of two, which on a
    2-core machine is most of a tiny run's time); returns both chief summaries.

    Top-level in an importable module so every backend's workers can unpickle it by reference.
    """
    from credspark.distributed.train_fns import train_actgan_worker, train_resnet_lstm_worker

    res = train_resnet_lstm_worker(ctx, feed, None, TINY_RESNET, resnet_opts)
    gan = train_actgan_worker(ctx, feed, TINY_ACTGAN, actgan_opts)
    return {"resnet_lstm": res, "actgan": gan} if ctx.is_chief else None


def _pickle_this_module_by_value() -> None:
    # Launchers ship the training function to workers that need not have the repository on sys.path
    # (TorchDistributor's torchrun runs elsewhere than the driver's cwd): send this module's functions by
    # value, with both the cloudpickle Horovod uses and the copy pyspark vendors.
    for name in ("cloudpickle", "pyspark.cloudpickle"):
        try:
            importlib.import_module(name).register_pickle_by_value(sys.modules[__name__])
        except (ImportError, AttributeError):
            continue


_pickle_this_module_by_value()
