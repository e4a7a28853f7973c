"""The scoring job in ``local-cluster[2,1,1024]`` (two executor JVMs, their own Python workers): every check.

Run as a subprocess by ``tests/integration/test_jobs_score.py`` (a local-cluster session cannot share the test
suite's JVM). Prints progress to stderr and one JSON object with the findings as the last line of stdout;
the test asserts on it. Checks, in one session:

1. ``jobs/score_portfolio.py`` main() scores a features partition (exit 0) with the bundle shipped to the
   executors as broadcast bytes;
2. a re-run gives exactly the same rows (values; the run_id is the new run's);
3. Spark's scores equal in-process scoring of the same rows by the same bundle (max abs pd difference);
4. a run with an exception injected in the UDF after one model batch fails (exit 1) and leaves the previous
   partition readable and unchanged.

Usage: ``python tests/cluster/score_cluster.py WORK_DIR``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
# Executor JVMs inherit the driver's environment: their Python workers must import this checkout too.
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)

MASTER = "local-cluster[2,1,1024]"
DAY = dt.date(2025, 12, 31)


def _log(msg: str) -> None:
    print(f"[score_cluster] {msg}", file=sys.stderr, flush=True)


def _job(argv: list[str]) -> int:
    from jobs import score_portfolio

    try:
        score_portfolio.main(argv)
    except SystemExit as e:
        return int(e.code or 0)
    return 0


def _values(spark, cfg):
    from pyspark.sql import functions as F

    from credspark.io.tables import read_table, table_ref

    df = read_table(spark, table_ref(cfg, cfg.tables.scores)).where(F.col("score_date") == F.lit(DAY))
    pdf = df.toPandas().sort_values("customer_id").reset_index(drop=True)
    return pdf.drop(columns=["run_id"]), sorted(set(pdf["run_id"]))


def main(work_dir: str) -> dict:
    import numpy as np

    from credspark.config import SparkConfig, config_from_dict
    from credspark.faults import SCORE_FAIL_AFTER_BATCHES
    from credspark.io.model_store import model_dir
    from credspark.io.spark import build_session
    from credspark.io.tables import read_table, table_ref
    from credspark.models.bundle import load_bundle
    from credspark.pipelines.score import score_params
    from credspark.scoring.partition import ScoringModel, score_frame
    from tests.cluster.harness import wait_for_executors
    from tests.fixtures_models import feature_frame, publish_tiny_bundle, tiny_spec, write_feature_partition

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    wh = str(Path(work_dir) / "warehouse")
    spark_conf = {"spark.executor.memory": "1g", "spark.task.maxFailures": "1",
                  "spark.databricks.delta.snapshotPartitions": "2"}
    out: dict = {}
    t0 = time.perf_counter()
    spark = build_session(SparkConfig(master=MASTER, shuffle_partitions=4, driver_memory="1g", ui_enabled=False,
                                      conf=spark_conf),
                          "score_portfolio", wh)
    # local-cluster registers its executors after the session is up: under load that took longer than
    # building the session (seen in CI: 0 executors counted right after build_session).
    out["executors"] = wait_for_executors(spark, 2)
    out["session_s"] = round(time.perf_counter() - t0, 1)
    _log(f"session up in {out['session_s']} s with {out['executors']} executors")
    try:
        cfg = config_from_dict({"warehouse": {"path": wh}, "score": {"model_name": "m"}})
        spec = tiny_spec()
        rows = feature_frame(spec, 600, seed=11, as_of=DAY, first_id=5000)
        write_feature_partition(spark, cfg, rows, spec)
        publish_tiny_bundle(wh, "m", "v1", spec, feature_frame(spec, 300, seed=1))
        base = ["--score-date", DAY.isoformat(), "--warehouse", wh, "--set", f"spark.master={MASTER}",
                "--set", "score.model_name=m", "--set", "score.arrow_batch_size=100"]

        t = time.perf_counter()
        out["exit_first"] = _job(base)
        out["first_s"] = round(time.perf_counter() - t, 1)
        first, first_ids = _values(spark, cfg)
        t = time.perf_counter()
        out["exit_rerun"] = _job(base)
        out["rerun_s"] = round(time.perf_counter() - t, 1)
        again, again_ids = _values(spark, cfg)
        out["rows"] = len(again)
        out["run_ids"] = [len(first_ids), len(again_ids), first_ids != again_ids]
        out["rerun_identical"] = bool(first.equals(again))
        _log(f"scored {len(again)} rows twice ({out['first_s']} s, {out['rerun_s']} s)")

        # The same rows, scored here by the same bundle.
        features = read_table(spark, table_ref(cfg, cfg.tables.features)).toPandas().sort_values("customer_id")
        model = ScoringModel(load_bundle(model_dir(wh, "m", "v1"), expected_spec=spec))
        local = score_frame(features, model, score_params(cfg.score, "local", spec)).reset_index(drop=True)
        out["max_abs_pd_diff"] = float(np.abs(local["pd"].to_numpy() - again["pd"].to_numpy()).max())
        out["same_ids"] = bool((local["customer_id"].to_numpy() == again["customer_id"].to_numpy()).all())
        out["same_bands"] = bool((local["risk_band"] == again["risk_band"]).all())

        t = time.perf_counter()
        os.environ[SCORE_FAIL_AFTER_BATCHES] = "1"
        try:
            out["exit_injected"] = _job([*base, "--set", "score.model_batch_size=50"])
        finally:
            del os.environ[SCORE_FAIL_AFTER_BATCHES]
        out["injected_s"] = round(time.perf_counter() - t, 1)
        after, after_ids = _values(spark, cfg)
        out["intact_after_failure"] = bool(after.equals(again) and after_ids == again_ids)
        summaries = sorted((Path(wh) / "_runs").glob("score_portfolio-*.json"), key=lambda p: p.stat().st_mtime)
        last = json.loads(summaries[-1].read_text())
        out["injected_reason"] = (last.get("reason") or "")[:300]
        _log(f"injected failure: exit {out['exit_injected']}, partition intact: {out['intact_after_failure']}")
    except BaseException:
        from tests.cluster.harness import dump_executor_logs

        dump_executor_logs(spark)
        raise
    finally:
        spark.stop()
    out["total_s"] = round(time.perf_counter() - t0, 1)
    return out


if __name__ == "__main__":
    result = main(sys.argv[1])
    print(json.dumps(result, sort_keys=True))
