"""The model steps of the training pipeline: the deep models, the embedding, the focal XGBoost and the baseline.

:mod:`credspark.pipelines.train` runs them in order. Each step is a function of the rows it reads and the config;
Spark actions happen only where a step says so (the imputation aggregate, the embedded row counts, the fits).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from credspark.config import Config
from credspark.evaluation import PART_TRAIN, PART_VALID
from credspark.models.spec import FeatureSpec
from credspark.pipelines._train_data import (
    KEY_COLS,
    PART_COL,
    SYNTHETIC_COL,
    imputation_aggregates,
    raw_feature_names,
    raw_feature_vector,
)
from credspark.runner import Run

__all__ = [
    "DeepModels",
    "deep_step",
    "IMPUTATION_NOTE",
    "deep_imputation",
    "gain_importance",
    "top_static",
    "Fitted",
    "embed_step",
    "count_embedded",
    "fit_step",
]

#: True on validation rows (the distributed XGBoost's early-stopping set).
_VALID_COL = "is_valid"
#: The plain baseline's input vector (static features and, optionally, the flattened sequences).
_RAW_COL = "raw_features"


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
    from credspark.models.imputation import imputation_values

    row = rows.where(F.col(PART_COL) == PART_TRAIN).agg(*imputation_aggregates(spec)).first()
    return imputation_values(row.asDict(), spec)


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


def top_static(spec: FeatureSpec, importance: Mapping[str, float], k: int) -> list[str]:
    """Static features by the baseline's gain (then in spec order for those it never split on)."""
    ranked = sorted((n for n in spec.static_names if n in importance), key=lambda n: -importance[n])
    rest = [n for n in spec.static_names if n not in importance]
    return (ranked + rest)[: max(0, k)]


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
