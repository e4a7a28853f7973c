"""The training job on the UCI credit-card features: wall time per stage, test metrics against the baseline.

    python benchmarks/train_uci.py                       # ingest + features + train, 2 workers (many minutes)
    python benchmarks/train_uci.py --reuse               # keep the warehouse's features table if present
    python benchmarks/train_uci.py --quick               # small models: a smoke run of the whole path
    python benchmarks/train_uci.py --set actgan.epochs=50 --set resnet_lstm.epochs=20

Steps, all in one Spark application (``--master``, default ``local-cluster[2,1,2048]``: two executors):

1. ``jobs/ingest_uci.py`` (the CSV to the input tables), 2. ``jobs/build_features.py --as-of 2005-09-30``
with ``features.T=6`` and ``features.horizon_months=1``, 3. ``jobs/train.py --as-of 2005-09-30``: the
paper's 70/30 split with 20% of train for validation, ACTGAN to minority/majority 0.4, the ResNet-LSTM
(``distributed.num_workers`` workers), focal XGBoost over ``xgb.num_workers`` = 2 barrier tasks, and the
plain XGBoost baseline on the raw features of the same split.

Reported: seconds per job and per stage of the training job (from its run summary), the test metrics of
the model and of the baseline, the quality gate, the bundle folder. The last line is ONE JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks._common import emit_json  # noqa: E402

AS_OF = "2005-09-30"
FEATURES = ["features.T=6", "features.horizon_months=1"]
#: Model sizes of a full run (paper-like architecture, fewer epochs than the paper to fit a shared 2-core box).
FULL = ["actgan.epochs=20", "resnet_lstm.epochs=10", "resnet_lstm.patience=3", "xgb.n_estimators=500"]
#: The issue's six real-vs-generated columns for UCI: AGE, LIMIT_BAL, BILL_AMT1..4 (BILL_AMT1 = the as-of month).
REPORT = ['train.report_columns=["age","credit_limit","bill_amount[-1]","bill_amount[-2]","bill_amount[-3]",'
          '"bill_amount[-4]"]']
QUICK = ["actgan.epochs=2", "actgan.batch_size=256", "actgan.generator_dims=[64]", "actgan.discriminator_dims=[64]",
         "resnet_lstm.epochs=2", "resnet_lstm.filters=[8,16]", "resnet_lstm.lstm_hidden=16",
         "resnet_lstm.embedding_dim=16", "resnet_lstm.lr=0.001", "xgb.n_estimators=100"]
METRICS = ("auc", "ks", "recall", "precision", "f1", "mean_score", "positive_rate", "brier", "log_loss", "threshold")


def _run(module: str, argv: list[str]) -> tuple[int, float]:
    import importlib

    job = importlib.import_module(module)
    t0 = time.perf_counter()
    try:
        job.main(argv)
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    return code, round(time.perf_counter() - t0, 1)


def _sets(items: list[str]) -> list[str]:
    return [a for s in items for a in ("--set", s)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--warehouse", default=str(REPO / "warehouse" / "bench_train_uci"))
    p.add_argument("--master", default="local-cluster[2,1,2048]")
    p.add_argument("--input", default=None, help="UCI CSV (default: uci.input from config)")
    p.add_argument("--backend", default="torch_distributor", choices=["torch_distributor", "local", "horovod"],
                   help="distributed.backend of the deep step ('local' runs one worker in the driver)")
    p.add_argument("--deep-workers", type=int, default=2, help="distributed.num_workers (1 with --backend local)")
    p.add_argument("--reuse", action="store_true", help="skip ingest + features when the features table exists")
    p.add_argument("--quick", action="store_true", help="tiny models (a smoke run)")
    p.add_argument("--set", dest="overrides", action="append", default=[], help="extra train config, key=value")
    a = p.parse_args()

    from credspark.config import SparkConfig
    from credspark.io.spark import build_session

    wh = Path(a.warehouse).resolve()
    common = ["--warehouse", str(wh), "--set", f"spark.master={a.master}"]
    t0 = time.perf_counter()
    spark = build_session(SparkConfig(master=a.master, driver_memory="3g", shuffle_partitions=8,
                                      conf={"spark.executor.memory": "2g"}), "bench-train-uci", str(wh))
    out: dict = {"master": a.master, "session_s": round(time.perf_counter() - t0, 1), "jobs_s": {}}
    print(f"session up in {out['session_s']} s", file=sys.stderr, flush=True)
    try:
        if not (a.reuse and (wh / "features" / "_delta_log").is_dir()):
            ingest = common + (["--input", a.input] if a.input else [])
            code, out["jobs_s"]["ingest_uci"] = _run("jobs.ingest_uci", ingest)
            if code:
                raise SystemExit(f"ingest_uci failed with exit code {code}")
            code, out["jobs_s"]["build_features"] = _run("jobs.build_features",
                                                         common + ["--as-of", AS_OF] + _sets(FEATURES))
            if code:
                raise SystemExit(f"build_features failed with exit code {code}")
        settings = FEATURES + REPORT + (QUICK if a.quick else FULL) + [
            f"distributed.backend={a.backend}", f"distributed.num_workers={a.deep_workers}", "xgb.num_workers=2",
        ] + a.overrides
        code, out["jobs_s"]["train"] = _run("jobs.train", common + ["--as-of", AS_OF] + _sets(settings))
        out["train_exit"] = code
        out["settings"] = settings
    finally:
        spark.stop()
    summary = json.loads(sorted((wh / "_runs").glob("train-*.json"))[-1].read_text())
    out["run_id"], out["status"], out["reason"] = summary["run_id"], summary["status"], summary["reason"]
    out["stages_s"] = summary["durations_s"]
    out["counts"] = summary["counts"]
    bundle = summary["details"].get("bundle")
    if bundle:
        doc = json.loads((Path(bundle) / "metrics.json").read_text())
        out["bundle"] = bundle
        out["metrics"] = {name: {k: m[k] for k in METRICS} for name, m in doc["metrics"].items()}
        out["gate"] = {k: doc["gate"][k] for k in ("passed", "reasons")}
        print(f"\n{'metric':<10}" + "".join(f"{n:>44}" for n in out["metrics"]), file=sys.stderr)
        for k in METRICS:
            print(f"{k:<10}" + "".join(f"{m[k]:>44.4f}" for m in out["metrics"].values()), file=sys.stderr)
    print("stages (s): " + ", ".join(f"{k} {v}" for k, v in out["stages_s"].items()), file=sys.stderr)
    emit_json(out)


if __name__ == "__main__":
    main()
