"""The ``score_runs`` table: one row per scoring run (counts, quantiles, bands, PSIs, drift, exit code)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import types as T

from credspark.config import Config
from credspark.io.tables import append_table, table_ref

__all__ = ["score_runs_schema", "score_run_record", "append_score_run"]


def score_runs_schema() -> T.StructType:
    """Schema of ``tables.score_runs``: one row per scoring run."""
    return T.StructType([
        T.StructField("run_id", T.StringType(), False),
        T.StructField("score_date", T.DateType(), False),
        T.StructField("model_version", T.StringType(), True),
        T.StructField("bundle_sha256", T.StringType(), True),
        T.StructField("started_at", T.StringType(), True),
        T.StructField("finished_at", T.StringType(), True),
        T.StructField("scores_version", T.LongType(), True),
        T.StructField("features_rows", T.LongType(), True),
        T.StructField("scored", T.LongType(), True),
        T.StructField("rejected", T.LongType(), True),
        T.StructField("pd_quantiles", T.MapType(T.StringType(), T.DoubleType()), True),
        T.StructField("band_counts", T.MapType(T.StringType(), T.LongType()), True),
        T.StructField("psi_score_vs_previous", T.DoubleType(), True),
        T.StructField("previous_score_date", T.DateType(), True),
        T.StructField("psi_score_vs_training", T.DoubleType(), True),
        T.StructField("psi_features", T.MapType(T.StringType(), T.DoubleType()), True),
        T.StructField("drift", T.StringType(), True),
        T.StructField("exit_code", T.IntegerType(), True),
        T.StructField("monitoring_json", T.StringType(), True),
    ])  # fmt: skip


def append_score_run(spark: SparkSession, cfg: Config, record: Mapping[str, Any]) -> None:
    """Append one run's record (:func:`score_run_record`) to ``tables.score_runs``."""
    df = spark.createDataFrame([dict(record)], schema=score_runs_schema())  # one row built on the driver
    append_table(df, table_ref(cfg, cfg.tables.score_runs))


def score_run_record(
    *,
    run_id: str,
    started_at: str,
    score_date: dt.date,
    model_version: str,
    bundle_sha256: str,
    scores_version: int,
    features_rows: int | None,
    rejected: int | None,
    monitoring: Mapping[str, Any],
    exit_code: int,
) -> dict[str, Any]:
    """The ``score_runs`` row of a scoring run (``monitoring`` as the scoring job's monitor returns it)."""
    mon = monitoring
    psi = mon["psi"]
    prev = psi["score_vs_previous"].get("previous_score_date")
    return {
        "run_id": run_id,
        "score_date": score_date,
        "model_version": model_version,
        "bundle_sha256": bundle_sha256,
        "started_at": started_at,
        # Wall-clock time stamps the record only; it decides nothing about what data is read.
        "finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "scores_version": scores_version,
        "features_rows": features_rows,
        "scored": mon["scored"],
        "rejected": rejected,
        "pd_quantiles": mon["pd_quantiles"],
        "band_counts": mon["band_counts"],
        "psi_score_vs_previous": psi["score_vs_previous"]["value"],
        "previous_score_date": dt.date.fromisoformat(prev) if prev else None,
        "psi_score_vs_training": psi["score_vs_training"]["value"],
        "psi_features": {k: v["value"] for k, v in psi["features"].items() if v["value"] is not None},
        "drift": mon["drift"],
        "exit_code": exit_code,
        "monitoring_json": json.dumps(mon, sort_keys=True, default=str),
    }
