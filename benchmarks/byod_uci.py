"""Bring your own data on UCI: the file as an application data set through the generic ingest job, static-only.

    python benchmarks/byod_uci.py                         # seed 0, the default candidates
    python benchmarks/byod_uci.py --seeds 0,1,2
    python benchmarks/byod_uci.py --quick                 # small deep models (the paper candidate is weak)

One Spark application: ``jobs/ingest_table.py --env uci_application --mapping conf/mappings/uci_application.yaml``
(the 23 columns as declared attributes, the target as a flat label observed 2005-09-30 with a 1-month horizon)
-> ``jobs/build_features.py --env uci_application --as-of 2005-09-30`` (no transactions or statements: no sequence
channels) -> per seed ``jobs/train.py --env uci_application --as-of 2005-09-30 --set train.seed=<seed>`` (the
candidates compared: the paper one, whose ResNet-LSTM runs its static branch alone, and the tuned tree-only ones;
``--set 'train.candidates=[focal_static,plain_static]'`` leaves the paper one out). The deep models train in the
driver process, one worker (:data:`benchmarks.champion_uci.DEEP_LOCAL`), with champion_uci's sizes: the paper's
architecture with fewer epochs (:data:`benchmarks.champion_uci.FULL`), or small models with ``--quick``
(:data:`benchmarks.champion_uci.QUICK`).

The reference on the SAME split: plain XGBoost on the file's 23 raw columns
(:func:`benchmarks.champion_uci.raw_xgboost_auc`, rows joined to the job's ``train_splits`` by ``ID``). The last
line is ONE JSON object: per seed the champion, its test AUC, the reference's and the difference, and
``max_auc_shortfall`` (reference minus champion, the worst seed) with ``within_0_005``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks._common import emit_json  # noqa: E402
from benchmarks.champion_uci import DEEP_LOCAL, FULL, GATE, QUICK, _run, _sets, _split, raw_xgboost_auc  # noqa: E402

AS_OF = "2005-09-30"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--warehouse", default=str(REPO / "warehouse" / "bench_byod_uci"))
    p.add_argument("--master", default="local[2]")
    p.add_argument("--input", default=str(REPO.parent / "shared" / "data" / "uci_taiwan" / "UCI_Credit_Card.csv"),
                   help="the UCI CSV (Kaggle layout)")
    p.add_argument("--seeds", default="0", help="split seeds (train.seed), comma-separated")
    p.add_argument("--quick", action="store_true", help="small deep models (the paper candidate is then weak)")
    p.add_argument("--set", dest="overrides", action="append", default=[], help="extra train config, key=value")
    a = p.parse_args()

    from credspark.config import SparkConfig
    from credspark.io.spark import build_session

    seeds = [int(s) for s in a.seeds.split(",") if s.strip()]
    wh = Path(a.warehouse).resolve()
    common = ["--env", "uci_application", "--warehouse", str(wh), "--set", f"spark.master={a.master}"]
    spark = build_session(SparkConfig(master=a.master, driver_memory="4g", shuffle_partitions=8),
                          "bench-byod-uci", str(wh))
    settings = GATE + (QUICK if a.quick else FULL) + DEEP_LOCAL + ["xgb.num_workers=2"] + a.overrides
    out: dict[str, Any] = {"master": a.master, "settings": settings, "seeds": seeds, "jobs_s": {}, "per_seed": []}
    try:
        mapping = str(REPO / "conf" / "mappings" / "uci_application.yaml")
        code, out["jobs_s"]["ingest_table"] = _run("jobs.ingest_table", common + [
            "--input", a.input, "--format", "csv", "--mapping", mapping])
        if code:
            raise SystemExit(f"ingest_table failed with exit code {code}")
        code, out["jobs_s"]["build_features"] = _run("jobs.build_features", common + ["--as-of", AS_OF])
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
            out["per_seed"].append({
                "seed": seed, "champion": champ["key"], "champion_auc": m["auc"], "champion_ks": m["ks"],
                "raw_auc": ref["auc"], "raw_ks": ref["ks"], "auc_diff": m["auc"] - ref["auc"],
                "candidates": champ["candidates"], "train_exit": code, "train_s": secs})
            print(f"seed {seed}: champion {champ['key']} test AUC {m['auc']:.4f}, raw XGBoost {ref['auc']:.4f}",
                  file=sys.stderr)
    finally:
        spark.stop()
    shortfall = max(r["raw_auc"] - r["champion_auc"] for r in out["per_seed"])
    out |= {"max_auc_shortfall": shortfall, "within_0_005": shortfall <= 0.005, "finished_at": time.time()}
    emit_json(out)


if __name__ == "__main__":
    main()
