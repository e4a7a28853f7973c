"""The steps of the training pipeline (:mod:`credspark.pipelines.train` runs them in order).

Each step is a function of the rows it reads and the config; Spark actions happen only where a step says so
(counts, the collected evaluation rows, the distribution aggregates).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from credspark.config import Config
from credspark.errors import InputError, MissingDataError
from credspark.evaluation import (
    PART_TRAIN,
    PART_VALID,
    PARTS,
)
from credspark.models.calibration import Calibrator
from credspark.models.spec import FeatureSpec
from credspark.pipelines._train_data import (
    KEY_COLS,
    PART_COL,
    SYNTHETIC_COL,
    column_expr,
    imputation_aggregates,
    imputation_values,
    raw_feature_names,
    raw_feature_vector,
)
from credspark.runner import Run

__all__ = [
    "read_training_rows",
    "part_counts",
    "check_counts",
    "DeepModels",
    "deep_step",
    "IMPUTATION_NOTE",
    "deep_imputation",
    "gain_importance",
    "training_distributions",
    "top_static",
    "write_split",
    "Fitted",
    "embed_step",
    "count_embedded",
    "fit_step",
    "calibrated_pd_column",
    "real_vs_generated",
]


def read_training_rows(spark: SparkSession, cfg: Config, dates: Sequence[dt.date]) -> tuple[DataFrame, FeatureSpec]:
    """Labelled feature rows of the given as-of dates (lazy), and the table's FeatureSpec.

    Args:
        spark: The session.
        cfg: The job config (tables, warehouse).
        dates: As-of dates to read.

    Returns:
        ``(rows, spec)``; :func:`part_counts` checks that every date has rows.

    Raises:
        MissingDataError: The table does not exist.
    """
    from credspark.features.spec import spec_from_table
    from credspark.io.tables import get_properties, read_table, table_ref

    ref = table_ref(cfg, cfg.tables.features)
    table = read_table(spark, ref)
    spec = spec_from_table(table.schema, get_properties(spark, ref))
    return table.where(F.col("as_of_date").isin(list(dates)) & F.col("label").isNotNull()), spec


def part_counts(rows: DataFrame, dates: Sequence[dt.date] = ()) -> dict[str, dict[str, int]]:
    """Rows per part and label with one small aggregate: ``{part: {"0": n, "1": n}}``.

    Args:
        rows: Rows with ``part``, ``label`` and ``as_of_date``.
        dates: As-of dates that must have rows.

    Raises:
        MissingDataError: A date in ``dates`` has no labelled rows.
    """
    out: dict[str, dict[str, int]] = {p: {"0": 0, "1": 0} for p in PARTS}
    seen = set()
    for r in rows.groupBy("as_of_date", PART_COL, "label").count().collect():
        seen.add(r["as_of_date"])
        cell = out.setdefault(r[PART_COL], {"0": 0, "1": 0})
        cell[str(int(r["label"]))] += int(r["count"])
    missing = [d.isoformat() for d in dates if d not in seen]
    if missing:
        raise MissingDataError(f"features: no labelled rows for as-of date(s) {', '.join(missing)}")
    return out


def check_counts(counts: Mapping[str, Mapping[str, int]]) -> None:
    """Refuse a split whose train, validation or test part lacks one of the classes."""
    for part in PARTS:
        c = counts.get(part, {})
        if not c.get("0") or not c.get("1"):
            raise InputError(f"split: the {part} part needs rows of both classes, got {dict(c)} "
                             "(more as-of dates or customers, or other split fractions)")


@dataclass
class DeepModels:
    """What the deep-learning step hands to the rest of the job.

    Attributes:
        embedder: The fitted ResNet-LSTM.
        generated: Generated minority rows shaped like the real rows (``customer_id`` -1, -2, ..., null
            ``as_of_date``, ``part`` = train, ``is_synthetic`` = True, label 1), or None.
        gan_history: ACTGAN records (one per epoch), or None when nothing was generated.
        resnet_history: ``{"train_loss": [...], "valid_auc": [...], ...}`` per epoch.
        backend: Which launcher trained them (for the report).
        details: Generated row count, timings, replica hashes.
    """

    embedder: Any
    generated: DataFrame | None
    gan_history: list[dict[str, Any]] | None
    resnet_history: dict[str, list[float]] | None
    backend: str
    details: dict[str, Any]


def deep_step(spark: SparkSession, rows: DataFrame, spec: FeatureSpec, cfg: Config, work_dir: str,
              lineage: dict[str, Any] | None = None) -> DeepModels:
    """ACTGAN oversampling + ResNet-LSTM with ``credspark.pipelines.train_deep`` (launcher from config).

    Only training rows reach ACTGAN and the network's training feed; validation rows drive early stopping.
    ``lineage`` (the rows' identity) goes into the checkpoints' fingerprint.
    """
    from credspark.io.scratch import read_scratch_parquet
    from credspark.pipelines.train_deep import train_deep

    res = train_deep(spark, rows.where(F.col(PART_COL) == PART_TRAIN), cfg, work_dir=work_dir, spec=spec,
                     valid_df=rows.where(F.col(PART_COL) == PART_VALID), lineage=lineage)
    generated = None
    if res.generated_path and res.n_generated > 0:
        gen = read_scratch_parquet(spark, res.generated_path)
        # Negative ids can never meet a real customer; the ids follow the (seeded) files, so they are stable.
        generated = gen.select(
            (-(F.monotonically_increasing_id() + 1)).alias("customer_id"),
            F.lit(None).cast("date").alias("as_of_date"),
            *[F.col(c) for c in gen.columns],
            F.lit(PART_TRAIN).alias(PART_COL),
            F.lit(True).alias(SYNTHETIC_COL),
        )
    dc = cfg.distributed
    return DeepModels(
        embedder=res.resnet_lstm,
        generated=generated,
        gan_history=list(res.histories.get("actgan") or []) or None,
        resnet_history=dict(res.histories.get("resnet_lstm") or {}),
        backend=f"train_deep: {dc.backend}, {dc.num_workers} worker(s), {dc.feed} feed, "
                f"{'GPU' if dc.use_gpu else 'CPU'}",
        details={"generated_rows": int(res.n_generated), "timings_s": {k: round(v, 2) for k, v in res.timings.items()},
                 "replica_hashes": {k: r.get("hashes") for k, r in res.runs.items()}},
    )


IMPUTATION_NOTE = (
    "ACTGAN needs finite inputs: for the deep step (ACTGAN and the ResNet-LSTM's training rows) missing static "
    "values were filled with the value the ResNet-LSTM's input scaling gives a missing input at scoring time; "
    "embeddings, XGBoost and the baseline see the values as they are."
)


def deep_imputation(rows: DataFrame, spec: FeatureSpec) -> dict[str, dict[str, float]]:
    """Fill values for the static columns with missing values, from the real training rows (one aggregate)."""
    from credspark.models._preprocess import HEAVY_TAIL_SKEW

    row = rows.where(F.col(PART_COL) == PART_TRAIN).agg(*imputation_aggregates(spec)).first()
    return imputation_values(row.asDict(), spec, HEAVY_TAIL_SKEW)


def _focal_estimator(cfg: Config, feature_names: list[str]) -> Any:
    from credspark.models.focal_xgb import FocalXGBClassifier

    x = cfg.xgb
    return FocalXGBClassifier(
        alpha=x.focal_alpha, gamma=x.focal_gamma, n_estimators=x.n_estimators, learning_rate=x.learning_rate,
        max_depth=x.max_depth, min_child_weight=x.min_child_weight, subsample=x.subsample,
        colsample_bytree=x.colsample_bytree, reg_lambda=x.reg_lambda, early_stopping_rounds=x.early_stopping_rounds,
        n_jobs=x.nthread, random_state=cfg.train.seed, feature_names=feature_names,
    )


def _baseline_task(cfg: Config, feature_names: list[str], base_score: float) -> Any:
    from credspark.distributed._xgb_worker import WorkerTask

    x = cfg.xgb
    params = {
        "objective": "binary:logistic", "eval_metric": "logloss", "base_score": base_score,
        "eta": x.learning_rate, "max_depth": x.max_depth, "min_child_weight": x.min_child_weight,
        "subsample": x.subsample, "colsample_bytree": x.colsample_bytree, "lambda": x.reg_lambda,
        "tree_method": "hist", "seed": cfg.train.seed, "verbosity": 0,
    }
    return WorkerTask(params=params, num_boost_round=x.n_estimators, n_features=len(feature_names),
                      feature_names=tuple(feature_names), early_stopping_rounds=x.early_stopping_rounds,
                      has_validation=True, nthread=x.nthread)


def gain_importance(booster: Any) -> dict[str, float]:
    """Total gain per feature of an XGBoost booster."""
    return {k: float(v) for k, v in booster.get_score(importance_type="total_gain").items()}


def training_distributions(
    df: DataFrame, columns: Mapping[str, Column], bins: int, relative_error: float
) -> dict[str, dict[str, Any]]:
    """Quantile-binned distributions of some columns (two Spark passes: quantiles, then one aggregate).

    Each entry is ``{"edges": inner edges, "shares": len(edges)+1 shares of the non-missing rows,
    "missing_share", "n", "binning": "quantile"}``; bin ``i`` holds ``edges[i-1] <= v < edges[i]`` (outer bins
    open), as the scoring job's PSI expects. A column without any value is left out.

    Args:
        df: The rows (the real training rows).
        columns: ``{name: double column}``.
        bins: Quantile bins wanted (ties merge edges, so fewer may result).
        relative_error: approxQuantile's relative error.

    Returns:
        ``{name: entry}`` in the order of ``columns``.
    """
    from credspark.monitoring import bin_count_columns, counts_from_row, inner_edges

    names = list(columns)
    if not names:
        return {}
    aliases = {n: f"c{i}" for i, n in enumerate(names)}
    # NaN would sort above every number in approxQuantile: treat it as missing, like null.
    vals = df.select(*[F.when(F.isnan(c), None).otherwise(c).alias(aliases[n]) for n, c in columns.items()])
    probs = [b / bins for b in range(bins)]  # 0 gives the minimum, the rest the inner quantiles
    quantiles = vals.approxQuantile([aliases[n] for n in names], probs, relative_error)
    edges = {n: inner_edges(q[1:], q[0]) if q else [] for n, q in zip(names, quantiles)}
    aggs = [F.count(F.lit(1)).alias("n")]
    for n in names:
        aggs += bin_count_columns(aliases[n], F.col(aliases[n]), edges[n])
    row = vals.agg(*aggs).first()
    total = int(row["n"])
    out = {}
    for n in names:
        counts = counts_from_row(row, aliases[n], len(edges[n]) + 1)
        seen = sum(counts)
        if seen == 0:
            continue
        out[n] = {"edges": edges[n], "shares": [c / seen for c in counts],
                  "missing_share": (total - seen) / total if total else 0.0, "n": total, "binning": "quantile"}
    return out


def top_static(spec: FeatureSpec, importance: Mapping[str, float], k: int) -> list[str]:
    """Static features by the baseline's gain (then in spec order for those it never split on)."""
    ranked = sorted((n for n in spec.static_names if n in importance), key=lambda n: -importance[n])
    rest = [n for n in spec.static_names if n not in importance]
    return (ranked + rest)[: max(0, k)]


def _sample(df: DataFrame, cols: Mapping[str, Column], n: int, seed: int) -> dict[str, np.ndarray]:
    """Up to ``n`` rows of some columns, picked by a seeded hash of the row identity (deterministic)."""
    picked = (df.orderBy(F.xxhash64(*[F.col(c) for c in KEY_COLS], F.lit(seed))).limit(n)
              .select(*[c.alias(f"c{i}") for i, c in enumerate(cols.values())]).toPandas())
    return {name: picked[f"c{i}"].to_numpy(dtype=np.float64) for i, name in enumerate(cols)}


def write_split(spark: SparkSession, cfg: Config, rows: DataFrame, run_id: str, version: str) -> None:
    """Record every row's part in ``tables.train_splits`` (the partition of this run)."""
    from credspark.io.tables import overwrite_partitions, table_ref

    out = rows.select(F.lit(run_id).alias("run_id"), F.lit(version).alias("model_version"), *KEY_COLS,
                      PART_COL, "label")
    overwrite_partitions(out, table_ref(cfg, cfg.tables.train_splits), "run_id", [run_id], user_metadata=run_id)


@dataclass
class Fitted:
    """The two XGBoost models of a run and their inputs' layout."""

    focal: Any  # FocalXGBClassifier, fitted over the workers (None when the paper pipeline is not a candidate)
    baseline: Any  # DistributedXGBResult of the plain XGBoost
    width: int  # classifier input width (embedding [+ raw static])
    raw_names: list[str]  # the baseline's input names


def embed_step(rows: DataFrame, deep: DeepModels, spec: FeatureSpec, cfg: Config) -> DataFrame:
    """Every row (real and generated) with its classifier input ``features`` and raw baseline vector; lazy."""
    from credspark.distributed.embed import with_embeddings

    tc = cfg.train
    every = rows if deep.generated is None else rows.unionByName(deep.generated.select(*rows.columns))
    every = every.withColumn(_RAW_COL, raw_feature_vector(spec, tc.baseline_with_seq))
    emb = with_embeddings(every, deep.embedder, spec,
                          keep=[*KEY_COLS, *spec.static_names, PART_COL, "label", SYNTHETIC_COL, _RAW_COL],
                          use_raw_static=tc.use_raw_static, batch_size=tc.embed_batch_size,
                          torch_threads=cfg.distributed.torch_threads)
    return emb.withColumn(_VALID_COL, F.col(PART_COL) == PART_VALID)


def count_embedded(emb: DataFrame, run: Run) -> int:
    """Record where the embedded rows are (generated ones in the training part only); return the input width."""
    for r in emb.groupBy(PART_COL, SYNTHETIC_COL).count().collect():
        kind = "generated" if r[SYNTHETIC_COL] else "real"
        run.counts[f"embedded_{r[PART_COL]}_{kind}"] = int(r["count"])
    return int(emb.select(F.size("features")).first()[0])


def fit_step(emb: DataFrame, spec: FeatureSpec, width: int, cfg: Config, run: Run) -> Fitted:
    """Focal XGBoost on the classifier input, then the plain baseline on the raw features of the real rows."""
    from credspark.distributed.xgb import fit_focal_xgb, global_prior_log_odds, train_distributed

    tc, xc = cfg.train, cfg.xgb
    fitting = emb.where(F.col(PART_COL).isin(PART_TRAIN, PART_VALID))
    n_raw = spec.n_static if tc.use_raw_static else 0
    names = [f"emb_{i}" for i in range(width - n_raw)] + (spec.static_names if tc.use_raw_static else [])
    focal = None
    if width:  # width 0: no embedding, the paper pipeline is not a candidate
        with run.stage("xgb"):
            focal = fit_focal_xgb(fitting, _focal_estimator(cfg, names), num_workers=xc.num_workers,
                                  key_cols=KEY_COLS, timeout_s=xc.timeout_s, host=xc.tracker_host)
            run.details["xgb"] = {"best_iteration": focal.best_iteration_,
                                  "worker_rows": focal.distributed_.worker_rows,
                                  "worker_seconds": focal.distributed_.worker_seconds}
    raw_names = raw_feature_names(spec, tc.baseline_with_seq)
    with run.stage("baseline"):
        real = fitting.where(~F.col(SYNTHETIC_COL)).select(*KEY_COLS, F.col(_RAW_COL).alias("features"), "label",
                                                             _VALID_COL)
        # binary:logistic takes base_score as a probability: the global prior rate of the real training rows.
        prior = 1.0 / (1.0 + math.exp(-global_prior_log_odds(real.where(~F.col(_VALID_COL)))))
        base = train_distributed(real, _baseline_task(cfg, raw_names, prior), num_workers=xc.num_workers,
                                 key_cols=KEY_COLS, timeout_s=xc.timeout_s, host=xc.tracker_host)
        run.details["baseline"] = {"best_iteration": base.best_iteration}
    return Fitted(focal, base, width, raw_names)


def calibrated_pd_column(cal: Calibrator, raw_pd: Column) -> Column:
    """The calibrated probability as a Spark column, from the uncalibrated ``sigmoid(margin)`` column.

    ``platt`` is a column expression (no Python worker); ``isotonic`` runs :meth:`Calibrator.pd_from_raw_pd`
    in a pandas UDF; ``none`` returns ``raw_pd``. Both go through the margin recovered from the probability,
    so for margins beyond about +-34 (probabilities that round to 0 or 1) the result is the map's value there.
    """
    if cal.method == "none":
        return raw_pd
    if cal.method == "platt":
        p = F.least(F.greatest(raw_pd.cast("double"), F.lit(1e-15)), F.lit(1.0 - 1e-15))
        z = F.lit(cal.slope) * (F.log(p) - F.log1p(-p)) + F.lit(cal.intercept)
        return F.lit(1.0) / (F.lit(1.0) + F.exp(-z))

    @F.pandas_udf("double")  # type: ignore[call-overload]
    def _iso(s: pd.Series) -> pd.Series:
        return pd.Series(cal.pd_from_raw_pd(s.to_numpy(dtype=np.float64)), index=s.index)

    return _iso(raw_pd)


def real_vs_generated(rows: DataFrame, deep: DeepModels, spec: FeatureSpec, columns: Sequence[str],
                       tc: Any) -> dict[str, tuple[np.ndarray, np.ndarray]] | None:
    """Samples of real minority training rows and of generated rows for the report's distribution plots."""
    if deep.generated is None or not columns:
        return None
    exprs = {c: column_expr(c, spec) for c in columns}
    real_pos = rows.where((F.col(PART_COL) == PART_TRAIN) & (F.col("label") == 1))
    a = _sample(real_pos, exprs, tc.report_sample_rows, tc.seed)
    b = _sample(deep.generated, exprs, tc.report_sample_rows, tc.seed)
    return {c: (a[c], b[c]) for c in columns}


_VALID_COL = "is_valid"


_RAW_COL = "raw_features"

