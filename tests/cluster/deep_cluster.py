"""Distributed deep training in ``local-cluster[2,1,1024]`` (two executors): one session, every check.

Run as a subprocess by ``tests/integration/test_distributed_deep.py`` (a local-cluster session cannot share
the test suite's JVM). Prints progress to stderr and one JSON object with the findings as the last line
of stdout; the test asserts on it. Checks:

1. ``train_deep`` with TorchDistributor, 2 workers as barrier tasks on the 2 executors, arrow feed: ACTGAN
   then generated rows then ResNet-LSTM; every replica's parameter hash, per model.
2. Resume: a second ResNet-LSTM run with the same checkpoint folder starts at the next epoch (its
   checkpoint after one epoch is epoch 1, with the first run's epoch-0 loss carried over), and
3. in the same run, rank 1 raising at epoch 2 fails the run promptly with that error (a WorkerError).

Usage: ``python tests/cluster/deep_cluster.py WORK_DIR``.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))


def _log(msg: str) -> None:
    print(f"[deep_cluster] {msg}", file=sys.stderr, flush=True)


def main(work_dir: str) -> dict:
    import torch

    from credspark.config import SparkConfig, config_from_dict
    from credspark.distributed._checkpoint import latest_checkpoint
    from credspark.distributed.launchers import WorkerError, launch
    from credspark.distributed.train_fns import WorkerOptions, train_resnet_lstm_worker
    from credspark.io.spark import build_session
    from credspark.models.inputs import arrays_from_frame
    from credspark.pipelines.train_deep import train_deep
    from tests.cluster.harness import dump_executor_logs
    from tests.fixtures_models import feature_frame, feature_schema, tiny_spec

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    torch.set_num_threads(1)
    out: dict = {}
    t0 = time.perf_counter()
    spark = build_session(
        SparkConfig(master="local-cluster[2,1,1024]", shuffle_partitions=4, driver_memory="1g", ui_enabled=False,
                    conf={"spark.executor.memory": "1g"}),
        "deep-cluster", work_dir,
    )  # fmt: skip
    from tests.cluster.harness import wait_for_executors

    out["executors"] = wait_for_executors(spark, 2)  # barrier stages need both executors' slots
    out["session_s"] = round(time.perf_counter() - t0, 1)
    _log(f"session up in {out['session_s']} s")
    try:
        spec = tiny_spec()
        pdf = feature_frame(spec, 600, seed=3)
        rows = pdf.copy()
        rows["seq"] = [list(map(float, s)) for s in rows["seq"]]
        rows["seq_mask"] = [list(map(int, m)) for m in rows["seq_mask"]]
        df = spark.createDataFrame(rows, schema=feature_schema(spec))
        train_df, valid_df = df.filter("customer_id <= 480"), df.filter("customer_id > 480")
        cfg = config_from_dict({
            "distributed": {"backend": "torch_distributor", "num_workers": 2, "local_mode": False,
                            "timeout_s": 300, "files_per_worker": 2, "generate_partitions": 2, "seed": 5},
            "resnet_lstm": {"epochs": 1, "batch_size": 64, "embedding_dim": 6, "filters": [4, 8],
                            "lstm_hidden": 4, "lr": 1e-3},
            "actgan": {"epochs": 1, "batch_size": 64, "noise_dim": 8, "generator_dims": [16],
                       "discriminator_dims": [16], "n_critic": 2},
        })  # fmt: skip

        # 1. train_deep end to end on two executors.
        t = time.perf_counter()
        res = train_deep(spark, train_df, cfg, work_dir=work_dir, spec=spec, valid_df=valid_df)
        out["train_deep_s"] = round(time.perf_counter() - t, 1)
        out["timings"] = {k: round(v, 1) for k, v in res.timings.items()}
        out["world_size"] = {k: r["world_size"] for k, r in res.runs.items()}
        out["hashes"] = {k: r["hashes"] for k, r in res.runs.items()}
        out["n_generated"] = res.n_generated
        out["generated_rows"] = spark.read.parquet(res.generated_path).count()
        out["valid_auc"] = res.histories["resnet_lstm"]["valid_auc"]
        static, dynamic, mask = arrays_from_frame(pdf.tail(10), spec)
        proba = res.resnet_lstm.predict_proba(static, dynamic, mask)
        out["proba_finite"] = bool(torch.isfinite(torch.from_numpy(proba)).all())
        out["sample_shape"] = list(res.actgan.sample(3)[1].shape)
        _log(f"train_deep done in {out['train_deep_s']} s: {out['timings']}")

        # 2 + 3 in one run (each launch costs tens of seconds here): resume from train_deep's ResNet-LSTM
        # checkpoint (epoch 0 done) with epochs=3; epoch 1 runs and is checkpointed, then rank 1 raises at
        # the start of epoch 2 and the run must fail promptly with that error.
        ckpt_dir = f"{work_dir}/checkpoints/resnet_lstm"
        opts = WorkerOptions(epochs=3, batch_size=64, seed=5, checkpoint_dir=ckpt_dir,
                             output_dir=f"{work_dir}/models/resnet_lstm_resumed", fail_at_epoch=2, fail_rank=1,
                             fingerprint=res.fingerprints["resnet_lstm"])
        params = {"embedding_dim": 6, "filters": (4, 8), "lstm_hidden": 4, "lr": 1e-3}
        t = time.perf_counter()
        try:
            launch(train_resnet_lstm_worker, backend="torch_distributor", num_workers=2, timeout_s=300,
                   args=(res.feeds["train_oversampled"], None, params, opts))
            out["failure"] = {"raised": None}
        except WorkerError as e:
            out["failure"] = {"raised": "WorkerError", "rank": e.rank, "type": e.error_type, "message": e.message,
                              "error_to_raise_s": round(time.time() - e.failed_at, 1) if e.failed_at else None}
        except Exception as e:  # noqa: BLE001 - reported, the test fails on it
            out["failure"] = {"raised": type(e).__name__, "message": str(e)[:500]}
        out["failure"]["s"] = round(time.perf_counter() - t, 1)
        ckpt = latest_checkpoint(ckpt_dir)
        out["resume"] = {"latest_epoch": ckpt.epoch, "losses": ckpt.extra["history"]["train_loss"],
                         "first_run_losses": res.histories["resnet_lstm"]["train_loss"]}
        _log(f"resume + failure: {out['resume']} {out['failure']}")
        # The session still works after the cancelled barrier stage.
        out["after_failure_count"] = spark.range(10).count()
    except BaseException:
        dump_executor_logs(spark)
        raise
    finally:
        spark.stop()
    out["total_s"] = round(time.perf_counter() - t0, 1)
    return out


if __name__ == "__main__":
    result = main(sys.argv[1])
    print(json.dumps(result))
