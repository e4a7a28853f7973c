"""The published champion on UCI through the jobs, against plain XGBoost on the 23 raw UCI columns, per split seed.

    python benchmarks/champion_uci.py                          # seeds 0..4, default candidates (hours on 2 cores)
    python benchmarks/champion_uci.py --seeds 0,1 --quick      # small deep models (the paper candidate is weak)
    python benchmarks/champion_uci.py --set 'train.candidates=[focal_static,plain_static]'
    python benchmarks/champion_uci.py --write-results          # also write its section of docs/results.md

One Spark application: ``jobs/ingest_uci.py`` -> ``jobs/build_features.py --as-of 2005-09-30`` (``features.T=6``,
``features.horizon_months=1``) once, then per seed ``jobs/train.py --as-of 2005-09-30 --set train.seed=<seed>``:
the paper's 70/30 split (stratified, seeded by ``train.seed``) with 20% of train for validation; the job fits
``train.candidates``, picks the champion on validation and evaluates it on test.

The reference on the SAME split: XGBoost (``binary:logistic``, the ``xgb`` section's default parameters, early
stopping on the same validation rows) on the file's 23 raw columns (LIMIT_BAL, SEX, EDUCATION, MARRIAGE, AGE,
PAY_0..PAY_6, BILL_AMT1..6, PAY_AMT1..6), rows joined to the job's ``train_splits`` table by ``ID``. Nothing is
tuned on the test part. Per seed: the champion, its test AUC and KS, the reference's, and the paired difference.
The last line is ONE JSON object with ``champion_auc_mean``, ``champion_ks_mean``, ``paired_auc_diff_min``
(champion minus reference, the worst seed), ``paired_auc_diff_mean`` and the per-seed rows.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks._common import emit_json, write_section  # noqa: E402

AS_OF = "2005-09-30"
FEATURES = ["features.T=6", "features.horizon_months=1"]
#: Deep model sizes of a full run (as benchmarks/train_uci.py: fewer epochs than the paper, for a 2-core box;
#: byod_uci.py uses them too).
FULL = ["actgan.epochs=20", "resnet_lstm.epochs=10", "resnet_lstm.patience=3"]
QUICK = ["actgan.epochs=2", "actgan.batch_size=256", "actgan.generator_dims=[64]", "actgan.discriminator_dims=[64]",
         "resnet_lstm.epochs=2", "resnet_lstm.filters=[8,16]", "resnet_lstm.lstm_hidden=16",
         "resnet_lstm.embedding_dim=16", "resnet_lstm.lr=0.001"]
#: The deep models train in the driver process, one worker: on the benchmarks' ``local[2]`` master two gloo ranks
#: would only share the same two cores (byod_uci.py trains the same way).
DEEP_LOCAL = ["distributed.backend=local", "distributed.num_workers=1"]
#: The gate must not stop the benchmark: a refused bundle is stored and its metrics are read all the same.
GATE = ["train.min_test_auc=0.5", "train.max_auc_below_baseline=1"]


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


def raw_xgboost_auc(csv: str, split: Any, seed: int) -> dict[str, float]:
    """Test AUC and KS of XGBoost on the 23 raw UCI columns, on the rows and parts of ``split``.

    Args:
        csv: The UCI CSV (Kaggle layout: ``ID``, 23 columns, the target last).
        split: pandas frame with ``customer_id`` (= ``ID``) and ``part`` (train / valid / test).
        seed: XGBoost seed.

    Returns:
        ``{"auc", "ks", "best_iteration"}`` on the test part.
    """
    import numpy as np
    import pandas as pd
    import xgboost as xgb

    from credspark.config import config_from_dict
    from credspark.metrics import ks_statistic, roc_auc

    raw = pd.read_csv(csv)
    target = raw.columns[-1]
    cols = [c for c in raw.columns if c not in ("ID", target)]
    if len(cols) != 23:
        raise SystemExit(f"{csv}: expected 23 feature columns besides ID and the target, found {len(cols)}")
    rows = raw.merge(split[["customer_id", "part"]], left_on="ID", right_on="customer_id", how="inner")
    if len(rows) != len(split):
        raise SystemExit(f"{csv}: {len(split)} split rows but {len(rows)} matched by ID")
    x = config_from_dict({}).xgb
    part = rows["part"].to_numpy()

    def dm(p: str) -> xgb.DMatrix:
        m = part == p
        return xgb.DMatrix(rows.loc[m, cols].to_numpy(np.float32), label=rows.loc[m, target].to_numpy(),
                           feature_names=cols)

    dtrain, dvalid, dtest = dm("train"), dm("valid"), dm("test")
    params = {"objective": "binary:logistic", "eval_metric": "logloss", "eta": x.learning_rate,
              "max_depth": x.max_depth, "min_child_weight": x.min_child_weight, "subsample": x.subsample,
              "colsample_bytree": x.colsample_bytree, "lambda": x.reg_lambda, "tree_method": "hist",
              "seed": seed, "nthread": 2, "verbosity": 0}
    booster = xgb.train(params, dtrain, num_boost_round=x.n_estimators, evals=[(dvalid, "valid")],
                        early_stopping_rounds=x.early_stopping_rounds, verbose_eval=False)
    p = booster.predict(dtest, iteration_range=(0, booster.best_iteration + 1))
    y = dtest.get_label()
    return {"auc": roc_auc(y, p), "ks": ks_statistic(y, p), "best_iteration": int(booster.best_iteration)}


def _split(spark: Any, wh: Path, run_id: str) -> Any:
    from pyspark.sql import functions as F

    from credspark.config import config_from_dict
    from credspark.io.tables import read_table, table_ref

    cfg = config_from_dict({"warehouse": {"path": str(wh)}})
    t = read_table(spark, table_ref(cfg, cfg.tables.train_splits))
    return t.where(F.col("run_id") == run_id).select("customer_id", "part").toPandas()


def _table(rows: list[dict[str, Any]]) -> str:
    lines = ["| seed | champion | champion test AUC | champion test KS | raw-column XGBoost test AUC | "
             "raw-column XGBoost test KS | paired AUC difference |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['seed']} | {r['champion']} | {r['champion_auc']:.4f} | {r['champion_ks']:.4f} | "
                     f"{r['raw_auc']:.4f} | {r['raw_ks']:.4f} | {r['paired_auc_diff']:+.4f} |")
    return "\n".join(lines)


def _summary(rows: list[dict[str, Any]]) -> dict[str, float]:
    return {"champion_auc_mean": statistics.fmean(r["champion_auc"] for r in rows),
            "champion_ks_mean": statistics.fmean(r["champion_ks"] for r in rows),
            "paired_auc_diff_min": min(r["paired_auc_diff"] for r in rows),
            "paired_auc_diff_mean": statistics.fmean(r["paired_auc_diff"] for r in rows)}


def _write_results(a: argparse.Namespace, rows: list[dict[str, Any]], seeds: list[int]) -> None:
    s = _summary(rows)
    done = "" if len(rows) == len(seeds) else f" ({len(rows)} of the {len(seeds)} seeds asked for had finished)"
    body = (f"`python benchmarks/champion_uci.py --seeds {a.seeds}{' --quick' if a.quick else ''}"
            + "".join(f" --set '{o}'" for o in a.overrides) + f"` (`{a.master}`, the jobs end to end){done}.\n\n"
            + _table(rows) + "\n\n"
            + f"Mean champion test AUC {s['champion_auc_mean']:.4f}, KS {s['champion_ks_mean']:.4f}; paired AUC "
            f"difference (champion - raw-column XGBoost) min {s['paired_auc_diff_min']:+.4f}, mean "
            f"{s['paired_auc_diff_mean']:+.4f}.")
    write_section(REPO / "docs" / "results.md", "The published champion on UCI (benchmarks/champion_uci.py)", body,
                  marker="champion-uci")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--warehouse", default=str(REPO / "warehouse" / "bench_champion_uci"))
    p.add_argument("--master", default="local[2]")
    p.add_argument("--input", default=str(REPO.parent / "shared" / "data" / "uci_taiwan" / "UCI_Credit_Card.csv"),
                   help="the UCI CSV (Kaggle layout)")
    p.add_argument("--seeds", default="0,1,2,3,4", help="split seeds (train.seed), comma-separated")
    p.add_argument("--quick", action="store_true", help="small deep models (the paper candidate is then weak)")
    p.add_argument("--reuse", action="store_true", help="skip ingest + features when the features table exists")
    p.add_argument("--set", dest="overrides", action="append", default=[], help="extra train config, key=value")
    p.add_argument("--write-results", action="store_true",
                   help="write the table into docs/results.md (after every seed)")
    a = p.parse_args()

    from credspark.config import SparkConfig
    from credspark.io.spark import build_session

    seeds = [int(s) for s in a.seeds.split(",") if s.strip()]
    wh = Path(a.warehouse).resolve()
    common = ["--warehouse", str(wh), "--set", f"spark.master={a.master}"]
    spark = build_session(SparkConfig(master=a.master, driver_memory="4g", shuffle_partitions=8),
                          "bench-champion-uci", str(wh))
    settings = FEATURES + GATE + (QUICK if a.quick else FULL) + DEEP_LOCAL + ["xgb.num_workers=2"] + a.overrides
    out: dict[str, Any] = {"master": a.master, "settings": settings, "seeds": seeds, "jobs_s": {}, "per_seed": []}
    try:
        if not (a.reuse and (wh / "features" / "_delta_log").is_dir()):
            code, out["jobs_s"]["ingest_uci"] = _run("jobs.ingest_uci", common + ["--input", a.input])
            if code:
                raise SystemExit(f"ingest_uci failed with exit code {code}")
            code, out["jobs_s"]["build_features"] = _run("jobs.build_features",
                                                         common + ["--as-of", AS_OF] + _sets(FEATURES))
            if code:
                raise SystemExit(f"build_features failed with exit code {code}")
        for seed in seeds:
            code, secs = _run("jobs.train", common + ["--as-of", AS_OF] + _sets(settings + [f"train.seed={seed}"]))
            summary = json.loads(sorted((wh / "_runs").glob("train-*.json"), key=lambda q: q.stat().st_mtime_ns)[-1]
                                 .read_text())
            if code not in (0, 5) or "bundle" not in summary["details"]:
                raise SystemExit(f"train seed {seed} failed with exit code {code}: {summary.get('reason')}")
            doc = json.loads((Path(summary["details"]["bundle"]) / "metrics.json").read_text())
            champ = doc["candidates"]
            m = doc["metrics"][champ["name"]]
            ref = raw_xgboost_auc(a.input, _split(spark, wh, summary["run_id"]), seed)
            row = {"seed": seed, "champion": champ["key"], "champion_auc": m["auc"], "champion_ks": m["ks"],
                   "raw_auc": ref["auc"], "raw_ks": ref["ks"], "paired_auc_diff": m["auc"] - ref["auc"],
                   "candidates": champ["candidates"], "reason": champ["reason"], "train_exit": code,
                   "train_s": secs, "gate_baseline_auc": doc["gate"]["baseline_auc"]}
            out["per_seed"].append(row)
            if a.write_results:  # after every seed, so a run cut short still leaves its finished seeds
                _write_results(a, out["per_seed"], seeds)
            print(f"seed {seed}: champion {row['champion']} test AUC {row['champion_auc']:.4f} KS "
                  f"{row['champion_ks']:.4f}; raw-column XGBoost {row['raw_auc']:.4f}; paired "
                  f"{row['paired_auc_diff']:+.4f} ({secs} s)", file=sys.stderr, flush=True)
    finally:
        spark.stop()
    rows = out["per_seed"]
    out |= _summary(rows)
    print(_table(rows), file=sys.stderr)
    emit_json(out)


if __name__ == "__main__":
    main()
