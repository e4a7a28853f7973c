"""Distributed deep-training throughput on the UCI data (issue 4, section 6): not a test.

For each launcher/feed of the main lane (TorchDistributor + arrow; the in-process ``local`` backend as a
no-launcher reference) and 1 and 2 workers, trains ResNet-LSTM and ACTGAN epochs on the UCI features in
``local-cluster[2,1,1024]`` (2 executors, 1 core each) and reports:

- rows/s per epoch as the chief measures it (epoch wall time = the slowest rank's), so launcher start-up
  is excluded; the launch's total wall time is reported beside it;
- the 2-worker speed-up (rows/s with 2 workers / rows/s with 1), which on a 2-core machine shared with
  the Spark JVMs is not guaranteed to exceed 1;
- the feed alone: one epoch of the arrow feed (Parquet shard read + Arrow->numpy + scaling to tensors),
  no model, in this process.

The UCI features are built with Spark from the CSV in the feature table's layout (``seq`` month-major,
oldest month first, C = 3 channels: repayment status, bill amount, paid amount; T = 6; all months
observed; static: LIMIT_BAL, SEX, EDUCATION, MARRIAGE, AGE).

Usage::

    .venv/bin/python benchmarks/train_deep.py                       # small epochs, all 30,000 rows
    .venv/bin/python benchmarks/train_deep.py --rows 5000 --out docs/results.md

The last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from _common import emit_json, write_section  # noqa: E402

DEFAULT_CSV = REPO.parent / "shared" / "data" / "uci_taiwan" / "UCI_Credit_Card.csv"
PAY = ("PAY_6", "PAY_5", "PAY_4", "PAY_3", "PAY_2", "PAY_0")  # oldest month first
BILL = tuple(f"BILL_AMT{k}" for k in range(6, 0, -1))
PAID = tuple(f"PAY_AMT{k}" for k in range(6, 0, -1))


def uci_spec():
    from credspark.models.spec import FeatureSpec, StaticFeature

    return FeatureSpec(
        static=(
            StaticFeature("LIMIT_BAL", "continuous", lower=0),
            StaticFeature("SEX", "categorical", (1, 2)),
            StaticFeature("EDUCATION", "categorical", (0, 1, 2, 3, 4, 5, 6)),
            StaticFeature("MARRIAGE", "categorical", (0, 1, 2, 3)),
            StaticFeature("AGE", "integer", lower=18),
        ),
        channels=("pay_status", "bill_amount", "paid_amount"),
        T=6,
    )


def uci_features(spark, csv: str, rows: int | None):
    """Feature rows (static columns, seq, seq_mask, label) from the UCI CSV, built by Spark."""
    from pyspark.sql import functions as F

    raw = spark.read.option("header", True).option("inferSchema", True).csv(csv)
    if rows:
        raw = raw.orderBy("ID").limit(rows)
    seq = F.array(*[F.col(c).cast("float") for t in range(6) for c in (PAY[t], BILL[t], PAID[t])])
    return raw.select(
        F.col("LIMIT_BAL").cast("double"),
        *[F.col(c).cast("int") for c in ("SEX", "EDUCATION", "MARRIAGE", "AGE")],
        seq.alias("seq"),
        F.array(*[F.lit(1).cast("tinyint")] * 6).alias("seq_mask"),
        F.col("`default.payment.next.month`").cast("int").alias("label"),
    )


def feed_only_epoch(feed, batch_size: int, fit_rows: int) -> dict[str, float]:
    """One epoch of the arrow feed on one rank of one (all rows), with scaling to tensors, no model."""
    from credspark.distributed._context import LocalContext
    from credspark.distributed.train_fns import _resnet_tensors
    from credspark.models._preprocess import InputPreprocessor

    reader = feed.open(LocalContext())
    s = reader.sample(fit_rows)
    pre = InputPreprocessor().fit(feed.spec, s.static, s.dynamic, s.mask)
    out = {}
    for epoch in range(2):  # epoch 0 warms the page cache and imports
        t = time.perf_counter()
        n = 0
        for batch in reader.epoch(epoch, batch_size, transform=lambda b: _resnet_tensors(pre, b)):
            n += batch[0].shape[0]
        out[f"epoch{epoch}_s"] = round(time.perf_counter() - t, 3)
    out["rows"] = n
    out["rows_per_s"] = round(n / out["epoch1_s"], 1)
    return out


def run_case(model: str, backend: str, workers: int, feed, cfg, work: str) -> dict[str, Any]:
    import dataclasses

    from credspark.distributed.launchers import launch
    from credspark.distributed.train_fns import WorkerOptions, train_actgan_worker, train_resnet_lstm_worker

    section = cfg.resnet_lstm if model == "resnet_lstm" else cfg.actgan
    params = {k: v for k, v in dataclasses.asdict(section).items() if k not in ("epochs", "batch_size")}
    tag = f"{model}-{backend}-{workers}"
    opts = WorkerOptions(
        epochs=section.epochs, batch_size=section.batch_size, seed=cfg.distributed.seed,
        checkpoint_dir=f"{work}/ckpt/{tag}", output_dir=f"{work}/out/{tag}", resume=False, torch_threads=1,
    )  # fmt: skip
    args = (feed, None, params, opts) if model == "resnet_lstm" else (feed, params, opts)
    fn = train_resnet_lstm_worker if model == "resnet_lstm" else train_actgan_worker
    t = time.perf_counter()
    res = launch(fn, backend=backend, num_workers=workers, local_mode=False, timeout_s=3600, args=args)
    wall = time.perf_counter() - t
    rates = [r for r in res["rows_per_s"] if r]
    return {
        "model": model, "backend": backend, "feed": "arrow", "workers": workers,
        "rows_per_s_epochs": [round(r, 1) for r in rates],
        "rows_per_s": round(max(rates), 1),  # best epoch: the first may include warm-up
        "launch_wall_s": round(wall, 1),
        "replicas_identical": len(set(res["hashes"])) == 1,
    }  # fmt: skip


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--csv", default=str(DEFAULT_CSV))
    p.add_argument("--rows", type=int, default=None, help="use the first N rows (default: all 30,000)")
    p.add_argument("--rl-epochs", type=int, default=2)
    p.add_argument("--gan-epochs", type=int, default=2)
    p.add_argument("--models", default="resnet_lstm,actgan")
    p.add_argument("--backends", default="torch_distributor,local")
    p.add_argument("--out", default=None, help="also write a section of this Markdown file")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)

    import torch

    from credspark.config import SparkConfig, config_from_dict
    from credspark.distributed.feeds import prepare_arrow_feed
    from credspark.io.spark import build_session

    torch.set_num_threads(1)
    cfg = config_from_dict({"resnet_lstm": {"epochs": args.rl_epochs}, "actgan": {"epochs": args.gan_epochs}})
    work = tempfile.mkdtemp(prefix="bench-train-deep-")
    t = time.perf_counter()
    spark = build_session(SparkConfig(master="local-cluster[2,1,1024]", shuffle_partitions=4, driver_memory="1g"),
                          "bench-train-deep", work)
    result: dict[str, Any] = {"session_s": round(time.perf_counter() - t, 1), "machine_cores": 2, "cases": []}
    try:
        spec = uci_spec()
        df = uci_features(spark, args.csv, args.rows)
        t = time.perf_counter()
        feed = prepare_arrow_feed(df, spec=spec, work_dir=work, name="uci", num_workers=2, seed=7,
                                  batch_size=cfg.resnet_lstm.batch_size)
        result["materialise_s"] = round(time.perf_counter() - t, 1)
        result["feed_only"] = feed_only_epoch(feed, cfg.resnet_lstm.batch_size, cfg.distributed.fit_sample_rows)
        result["rows"] = result["feed_only"]["rows"]
        print(f"feed: materialised in {result['materialise_s']} s, one epoch alone {result['feed_only']}",
              file=sys.stderr, flush=True)
        for model in args.models.split(","):
            for backend in args.backends.split(","):
                for workers in ((1,) if backend == "local" else (1, 2)):
                    case = run_case(model, backend, workers, feed, cfg, work)
                    result["cases"].append(case)
                    print(f"case: {case}", file=sys.stderr, flush=True)
    finally:
        spark.stop()
    speedups = {}
    for model in args.models.split(","):
        by_w = {c["workers"]: c["rows_per_s"] for c in result["cases"]
                if c["model"] == model and c["backend"] == "torch_distributor"}
        if 1 in by_w and 2 in by_w:
            speedups[f"{model}/torch_distributor/arrow"] = round(by_w[2] / by_w[1], 2)
    result["speedup_2_workers"] = speedups
    result["settings"] = {
        "rl_epochs": args.rl_epochs, "gan_epochs": args.gan_epochs, "rl_batch": cfg.resnet_lstm.batch_size,
        "gan_batch": cfg.actgan.batch_size, "torch_threads_per_worker": 1, "gpu": False,
    }  # fmt: skip
    if args.out:
        write_section(args.out, "Distributed deep training (benchmarks/train_deep.py)", _markdown(result))
    return result


def _markdown(r: dict[str, Any]) -> str:
    lines = [
        f"{r['rows']} UCI rows, local-cluster[2,1,1024] on 2 cores, CPU (gloo), 1 torch thread per worker.",
        f"Feed materialised by Spark in {r['materialise_s']} s; one arrow-feed epoch alone (read + convert + "
        f"scale, no model): {r['feed_only']['epoch1_s']} s ({r['feed_only']['rows_per_s']:.0f} rows/s).",
        "",
        "| model | launcher | feed | workers | rows/s (best epoch) | launch wall s | replicas identical |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in r["cases"]:
        lines.append(f"| {c['model']} | {c['backend']} | {c['feed']} | {c['workers']} | {c['rows_per_s']:.0f} | "
                     f"{c['launch_wall_s']} | {c['replicas_identical']} |")
    lines += ["", f"2-worker speed-up: {r['speedup_2_workers']}"]
    return "\n".join(lines)


if __name__ == "__main__":
    emit_json(main())
