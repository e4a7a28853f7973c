"""The training job: features -> split -> ACTGAN + ResNet-LSTM -> embeddings -> focal XGBoost -> report -> publish.

Steps (each a function below, timed as a stage of the run summary):

1. ``read``: the feature rows of the ``--as-of`` dates with a label; the FeatureSpec from the table.
2. ``split``: train / validation / test by time or stratified at random (:mod:`._train_data`); the plan and
   the counts are recorded, and the row-level assignment is written to the ``train_splits`` table.
3. ``deep`` (only when ``paper`` is in ``train.candidates``): ACTGAN oversampling of the training part and
   ResNet-LSTM training with ``credspark.pipelines.train_deep`` (launcher, feed, workers and GPU from the
   ``distributed`` section).
   ACTGAN needs finite inputs, so for this step only, missing static values are filled with the value the
   ResNet-LSTM's scaling gives a missing input at scoring time. Generated rows exist in the training part only.
4. ``embed``: embeddings of every part on the executors (model loaded once per Python worker).
5. ``xgb``: focal XGBoost on the embeddings over Spark barrier tasks (:mod:`credspark.distributed.xgb`);
   ``baseline``: a plain XGBoost (``binary:logistic``) on the raw static features (+ flattened sequences)
   of the real training rows, through the same distributed path; ``candidates``: the tree-only candidates of
   ``train.candidates`` on the static features (:mod:`credspark.pipelines.candidates`).
6. ``score`` / ``evaluate``: probabilities on the executors; the champion is chosen on the validation part
   (:mod:`credspark.models.champion`); its calibration map (``train.calibration``,
   :mod:`credspark.models.calibration`) is fitted on the validation part, the thresholds are chosen on
   validation, the metrics computed on test for every model (only label and probabilities reach the driver).
7. ``distributions``: the training part's distributions of the top static features and of the score
   (quantile bins, Spark aggregates) for drift monitoring.
8. ``publish``: the bundle in ``<warehouse>/models/<name>/<version>/`` with ``report.html`` and
   ``metrics.json`` beside the manifest; ``current`` moves only when the quality gate passes, otherwise
   the job fails with :class:`~credspark.errors.QualityGateError` (exit code 5).

The version is ``<latest as-of, YYYYMMDD>-<run id>``: the data decide the first part, never the clock.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import math
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from credspark.config import Config
from credspark.errors import ConfigError, InputError, MissingDataError, QualityGateError
from credspark.io.runs import RunSummary
from credspark.io.tables import safe_child
from credspark.models.calibration import Calibrator
from credspark.models.spec import FeatureSpec
from credspark.pipelines._train_data import (
    KEY_COLS,
    PART_COL,
    PART_TEST,
    PART_TRAIN,
    PART_VALID,
    PARTS,
    SYNTHETIC_COL,
    SplitPlan,
    bin_count_columns,
    column_expr,
    imputation_aggregates,
    imputation_values,
    parse_dates,
    plan_split,
    raw_feature_names,
    raw_feature_vector,
    with_imputed_static,
    with_parts,
)

__all__ = [
    "train_model",
    "read_training_rows",
    "part_counts",
    "gate_decision",
    "model_version",
    "evaluate",
    "training_distributions",
    "MODEL_NAME",
    "UNCALIBRATED_NAME",
    "BASELINE_NAME",
    "calibrated_pd_column",
]

log = logging.getLogger(__name__)

#: Names of the models in metrics, report and metrics.json (the uncalibrated one only when calibration is on).
MODEL_NAME = "focal XGBoost on ResNet-LSTM"
UNCALIBRATED_NAME = "focal XGBoost on ResNet-LSTM, uncalibrated"
BASELINE_NAME = "plain XGBoost baseline"

_VALID_COL = "is_valid"
_RAW_COL = "raw_features"


# ------------------------------------------------------------------------------------------------ read
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


def _check_counts(counts: Mapping[str, Mapping[str, int]]) -> None:
    for part in PARTS:
        c = counts.get(part, {})
        if not c.get("0") or not c.get("1"):
            raise InputError(f"split: the {part} part needs rows of both classes, got {dict(c)} "
                             "(more as-of dates or customers, or other split fractions)")


# ------------------------------------------------------------------------------------------------ deep step
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


def _deep_step(spark: SparkSession, rows: DataFrame, spec: FeatureSpec, cfg: Config, work_dir: str) -> DeepModels:
    """ACTGAN oversampling + ResNet-LSTM with ``credspark.pipelines.train_deep`` (launcher from config).

    Only training rows reach ACTGAN and the network's training feed; validation rows drive early stopping.
    """
    from credspark.io.scratch import read_scratch_parquet
    from credspark.pipelines.train_deep import train_deep

    res = train_deep(spark, rows.where(F.col(PART_COL) == PART_TRAIN), cfg, work_dir=work_dir, spec=spec,
                     valid_df=rows.where(F.col(PART_COL) == PART_VALID))
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


_IMPUTATION_NOTE = (
    "ACTGAN needs finite inputs: for the deep step (ACTGAN and the ResNet-LSTM's training rows) missing static "
    "values were filled with the value the ResNet-LSTM's input scaling gives a missing input at scoring time; "
    "embeddings, XGBoost and the baseline see the values as they are."
)


def _deep_imputation(rows: DataFrame, spec: FeatureSpec) -> dict[str, dict[str, float]]:
    """Fill values for the static columns with missing values, from the real training rows (one aggregate)."""
    from credspark.models._preprocess import HEAVY_TAIL_SKEW

    row = rows.where(F.col(PART_COL) == PART_TRAIN).agg(*imputation_aggregates(spec)).first()
    return imputation_values(row.asDict(), spec, HEAVY_TAIL_SKEW)


# ------------------------------------------------------------------------------------------------ xgboost
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


def _importance(booster: Any) -> dict[str, float]:
    return {k: float(v) for k, v in booster.get_score(importance_type="total_gain").items()}


# ------------------------------------------------------------------------------------------------ evaluation
@dataclass(frozen=True)
class Evaluation:
    """Test metrics of both models, with thresholds chosen on validation.

    Attributes:
        metrics: ``{model name: credit_report}`` on the test part.
        valid: ``{model name: {"auc": ..., "threshold": ...}}`` on the validation part.
        y_test: Test labels.
        scores_test: ``{model name: test probabilities}``.
    """

    metrics: dict[str, dict[str, Any]]
    valid: dict[str, dict[str, float]]
    y_test: np.ndarray
    scores_test: dict[str, np.ndarray]


def evaluate(parts: np.ndarray, y: np.ndarray, scores: Mapping[str, np.ndarray]) -> Evaluation:
    """Choose each model's threshold on validation (best F1) and compute its metrics on test.

    Args:
        parts: ``(n,)`` part names (``valid`` or ``test``).
        y: ``(n,)`` labels.
        scores: ``{model name: (n,) probabilities}``.

    Returns:
        The evaluation.
    """
    from credspark.metrics import best_f1_threshold, credit_report, roc_auc

    parts, y = np.asarray(parts), np.asarray(y).astype(np.int64)
    is_valid, is_test = parts == PART_VALID, parts == PART_TEST
    metrics, valid = {}, {}
    for name, s in scores.items():
        s = np.asarray(s, dtype=np.float64)
        t = best_f1_threshold(y[is_valid], s[is_valid])
        valid[name] = {"auc": roc_auc(y[is_valid], s[is_valid]), "threshold": t}
        metrics[name] = credit_report(y[is_test], s[is_test], t)
    test_scores = {k: np.asarray(v, dtype=np.float64)[is_test] for k, v in scores.items()}
    return Evaluation(metrics, valid, y[is_test], test_scores)


def gate_decision(model_auc: float, baseline_auc: float, min_auc: float, max_below: float) -> dict[str, Any]:
    """The quality gate: the test AUC must reach ``min_auc`` and be at most ``max_below`` under the baseline's.

    Args:
        model_auc: The candidate's test AUC.
        baseline_auc: The plain XGBoost baseline's test AUC.
        min_auc: Floor (``train.min_test_auc``).
        max_below: Allowed shortfall against the baseline (``train.max_auc_below_baseline``).

    Returns:
        ``{"passed": bool, "reasons": [...], "test_auc", "baseline_auc", "min_test_auc", "max_auc_below_baseline"}``.
    """
    reasons = []
    if not model_auc >= min_auc:
        reasons.append(f"test AUC {model_auc:.4f} is below the floor train.min_test_auc={min_auc}")
    if not model_auc >= baseline_auc - max_below:
        reasons.append(f"test AUC {model_auc:.4f} is {baseline_auc - model_auc:.4f} below the plain XGBoost baseline's "
                       f"{baseline_auc:.4f} (train.max_auc_below_baseline={max_below})")
    return {"passed": not reasons, "reasons": reasons, "test_auc": model_auc, "baseline_auc": baseline_auc,
            "min_test_auc": min_auc, "max_auc_below_baseline": max_below}


def model_version(dates: Sequence[dt.date], run_id: str) -> str:
    """``<latest as-of as YYYYMMDD>-<run id>``: sortable by data date, then by run."""
    return f"{max(dates):%Y%m%d}-{run_id}"


# ------------------------------------------------------------------------------------------------ distributions
def _points(pd_col: Column, cfg: Config) -> Column:
    """Scorecard points from a probability column (the scoring job's scale, as a Column expression)."""
    from credspark.scoring.scorecard import PD_CLIP, ScorecardScale

    sc = cfg.score
    scale = ScorecardScale(base_points=sc.base_points, base_odds=sc.base_odds, pdo=sc.pdo)
    p = F.least(F.greatest(pd_col, F.lit(PD_CLIP)), F.lit(1.0 - PD_CLIP))
    return F.lit(scale.offset) + F.lit(scale.factor) * (F.log1p(-p) - F.log(p))


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
    from credspark.scoring.drift import inner_edges

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
        counts = [int(row[f"{aliases[n]}__{b}"] or 0) for b in range(len(edges[n]) + 1)]
        seen = sum(counts)
        if seen == 0:
            continue
        out[n] = {"edges": edges[n], "shares": [c / seen for c in counts],
                  "missing_share": (total - seen) / total if total else 0.0, "n": total, "binning": "quantile"}
    return out


def _top_static(spec: FeatureSpec, importance: Mapping[str, float], k: int) -> list[str]:
    """Static features by the baseline's gain (then in spec order for those it never split on)."""
    ranked = sorted((n for n in spec.static_names if n in importance), key=lambda n: -importance[n])
    rest = [n for n in spec.static_names if n not in importance]
    return (ranked + rest)[: max(0, k)]


# ------------------------------------------------------------------------------------------------ report data
def _sample(df: DataFrame, cols: Mapping[str, Column], n: int, seed: int) -> dict[str, np.ndarray]:
    """Up to ``n`` rows of some columns, picked by a seeded hash of the row identity (deterministic)."""
    picked = (df.orderBy(F.xxhash64(*[F.col(c) for c in KEY_COLS], F.lit(seed))).limit(n)
              .select(*[c.alias(f"c{i}") for i, c in enumerate(cols.values())]).toPandas())
    return {name: picked[f"c{i}"].to_numpy(dtype=np.float64) for i, name in enumerate(cols)}


def _config_summary(cfg: Config) -> dict[str, Any]:
    return {"train": asdict(cfg.train), "xgb": asdict(cfg.xgb), "distributed": asdict(cfg.distributed),
            "actgan": asdict(cfg.actgan), "resnet_lstm": asdict(cfg.resnet_lstm)}


# ------------------------------------------------------------------------------------------------ the job
def _dates_from_args(args: argparse.Namespace) -> tuple[list[dt.date], dt.date | None]:
    if not getattr(args, "as_of", None):
        raise ConfigError("--as-of is required (one date or a comma-separated list)")
    dates = parse_dates(args.as_of)
    val = getattr(args, "validation_as_of", None)
    return dates, (parse_dates(val, "--validation-as-of")[0] if val else None)


def _write_split(spark: SparkSession, cfg: Config, rows: DataFrame, run_id: str, version: str) -> None:
    from credspark.io.tables import overwrite_partitions, table_ref

    out = rows.select(F.lit(run_id).alias("run_id"), F.lit(version).alias("model_version"), *KEY_COLS,
                      PART_COL, "label")
    overwrite_partitions(out, table_ref(cfg, cfg.tables.train_splits), "run_id", [run_id], user_metadata=run_id)


@dataclass
class _Fitted:
    """The two XGBoost models of a run and their inputs' layout."""

    focal: Any  # FocalXGBClassifier, fitted over the workers (None when the paper pipeline is not a candidate)
    baseline: Any  # DistributedXGBResult of the plain XGBoost
    width: int  # classifier input width (embedding [+ raw static])
    raw_names: list[str]  # the baseline's input names


def _embed_step(rows: DataFrame, deep: DeepModels, spec: FeatureSpec, cfg: Config) -> DataFrame:
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


def _count_embedded(emb: DataFrame, summary: RunSummary) -> int:
    """Record where the embedded rows are (generated ones in the training part only); return the input width."""
    for r in emb.groupBy(PART_COL, SYNTHETIC_COL).count().collect():
        kind = "generated" if r[SYNTHETIC_COL] else "real"
        summary.counts[f"embedded_{r[PART_COL]}_{kind}"] = int(r["count"])
    return int(emb.select(F.size("features")).first()[0])


def _fit_step(emb: DataFrame, spec: FeatureSpec, width: int, cfg: Config, summary: RunSummary) -> _Fitted:
    """Focal XGBoost on the classifier input, then the plain baseline on the raw features of the real rows."""
    from credspark.distributed.xgb import fit_focal_xgb, global_prior_log_odds, train_distributed

    tc, xc = cfg.train, cfg.xgb
    fitting = emb.where(F.col(PART_COL).isin(PART_TRAIN, PART_VALID))
    n_raw = spec.n_static if tc.use_raw_static else 0
    names = [f"emb_{i}" for i in range(width - n_raw)] + (spec.static_names if tc.use_raw_static else [])
    focal = None
    if width:  # width 0: no embedding, the paper pipeline is not a candidate
        with summary.stage("xgb"):
            focal = fit_focal_xgb(fitting, _focal_estimator(cfg, names), num_workers=xc.num_workers,
                                  key_cols=KEY_COLS, timeout_s=xc.timeout_s, host=xc.tracker_host)
            summary.details["xgb"] = {"best_iteration": focal.best_iteration_,
                                      "worker_rows": focal.distributed_.worker_rows,
                                      "worker_seconds": focal.distributed_.worker_seconds}
    raw_names = raw_feature_names(spec, tc.baseline_with_seq)
    with summary.stage("baseline"):
        real = fitting.where(~F.col(SYNTHETIC_COL)).select(*KEY_COLS, F.col(_RAW_COL).alias("features"), "label",
                                                             _VALID_COL)
        # binary:logistic takes base_score as a probability: the global prior rate of the real training rows.
        prior = 1.0 / (1.0 + math.exp(-global_prior_log_odds(real.where(~F.col(_VALID_COL)))))
        base = train_distributed(real, _baseline_task(cfg, raw_names, prior), num_workers=xc.num_workers,
                                 key_cols=KEY_COLS, timeout_s=xc.timeout_s, host=xc.tracker_host)
        summary.details["baseline"] = {"best_iteration": base.best_iteration}
    return _Fitted(focal, base, width, raw_names)


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


def _calibration_summary(cal: Calibrator) -> dict[str, Any]:
    """The calibration map for the run summary (isotonic knots counted, not listed)."""
    d = cal.to_dict()
    if cal.method == "isotonic":
        d = {k: v for k, v in d.items() if not k.startswith("knots_")} | {"knots": len(cal.knots_margin)}
    return d


def _calibration_note(cal: Calibrator, ev: Evaluation, name: str = MODEL_NAME) -> str:
    """One line for the report: the map and what it did to the test Brier score (``name``: the published model)."""
    if cal.method == "none":
        return f"calibration: none (train.calibration); pd = sigmoid(margin) of the {name}."
    how = (f"pd = sigmoid({cal.slope:.4g} * margin + {cal.intercept:.4g})" if cal.method == "platt"
           else f"{len(cal.knots_margin)} knots")
    before, after = ev.metrics[f"{name}, uncalibrated"], ev.metrics[name]
    return (f"calibration: {cal.method} fitted on {cal.n_fit:,} validation rows ({how}); test Brier "
            f"{before['brier']:.4f} -> {after['brier']:.4f}, mean pd {before['mean_score']:.4f} -> "
            f"{after['mean_score']:.4f} (observed default rate {after['positive_rate']:.4f}).")


def _real_vs_generated(rows: DataFrame, deep: DeepModels, spec: FeatureSpec, columns: Sequence[str],
                       tc: Any) -> dict[str, tuple[np.ndarray, np.ndarray]] | None:
    """Samples of real minority training rows and of generated rows for the report's distribution plots."""
    if deep.generated is None or not columns:
        return None
    exprs = {c: column_expr(c, spec) for c in columns}
    real_pos = rows.where((F.col(PART_COL) == PART_TRAIN) & (F.col("label") == 1))
    a = _sample(real_pos, exprs, tc.report_sample_rows, tc.seed)
    b = _sample(deep.generated, exprs, tc.report_sample_rows, tc.seed)
    return {c: (a[c], b[c]) for c in columns}


@dataclass
class _Outcome:
    """Everything the publishing step writes."""

    plan: SplitPlan
    version: str
    spec: FeatureSpec
    counts: dict[str, dict[str, int]]
    deep: DeepModels
    fitted: _Fitted
    ev: Evaluation
    cal: Calibrator
    gate: dict[str, Any]
    top: list[str]
    distributions: dict[str, Any]
    real_vs_generated: dict[str, tuple[np.ndarray, np.ndarray]] | None
    imputed: dict[str, dict[str, float]]
    champion: Any  # credspark.pipelines.candidates.Champion
    trees: dict[str, Any]  # the fitted tree-only candidates


def _publish(o: _Outcome, cfg: Config, summary: RunSummary) -> Any:
    """Write the bundle, report.html and metrics.json; move ``current`` only when the gate passed."""
    from credspark.io.model_store import model_dir, set_current
    from credspark.models.bundle import save_bundle
    from credspark.pipelines.candidates import champion_model, champion_report, report_models
    from credspark.reporting import TrainingReport, write_report

    tc, focal, base = cfg.train, o.fitted.focal, o.fitted.baseline
    # ---- champion (credspark.pipelines.candidates): what the bundle holds, what the report shows
    champ = o.champion
    embedder, classifier, use_raw_static = champion_model(champ, focal, o.trees, o.deep.embedder, tc.use_raw_static)
    histories, best_rounds, importances = report_models(focal, o.trees, base, BASELINE_NAME)
    # ----
    target = model_dir(cfg.warehouse.path, tc.model_name, o.version)
    n_generated = int(o.deep.details.get("generated_rows", 0))
    metadata = {
        "run_id": summary.run_id,
        "version": o.version,
        "git_commit": os.environ.get("CREDSPARK_GIT_COMMIT"),
        "threshold": o.ev.metrics[champ.name]["threshold"],
        "metrics": {name: {k: v for k, v in m.items() if k != "calibration"} for name, m in o.ev.metrics.items()},
        "gate": o.gate,
        "training_data": {
            "as_of_dates": [d.isoformat() for d in o.plan.dates],
            "split": o.plan.to_dict(),
            "counts": o.counts,
            "generated_rows": n_generated,
            "feature_table": cfg.tables.features,
            # save_bundle sorts manifest keys, so the importance order is kept here explicitly.
            "distribution_order": [n for n in [*o.top, "score", "pd"] if n in o.distributions],
            "distributions": o.distributions,
        },
        "deep_backend": o.deep.backend,
        "xgb": {"best_iteration": classifier.best_iteration_, "num_workers": cfg.xgb.num_workers},
        "champion": champ.to_dict(),
        "preprocessing": {"deep_step_imputation": o.imputed, "note": _IMPUTATION_NOTE},
    }
    save_bundle(target, spec=o.spec, embedder=embedder, classifier=classifier, metadata=metadata,
                use_raw_static=use_raw_static, calibration=o.cal, created_at=summary.started_at)
    spec = o.spec
    report = TrainingReport(
        title=f"credspark training run {o.version}",
        run={"model": tc.model_name, "version": o.version, "run_id": summary.run_id,
             "as_of_dates": [d.isoformat() for d in o.plan.dates], "bundle": str(target),
             "started_at": summary.started_at, "deep step": o.deep.backend,
             "stage seconds": dict(summary.durations_s)},
        gate=o.gate,
        metrics=o.ev.metrics,
        y_test=o.ev.y_test,
        scores_test=o.ev.scores_test,
        data={"split": o.plan.to_dict(), "rows per part and label": o.counts, "generated rows": n_generated,
              "validation": o.ev.valid,
              "feature spec": {"static": spec.static_names, "channels": list(spec.channels), "T": spec.T,
                               "version": spec.version}},
        config=_config_summary(cfg),
        gan_history=o.deep.gan_history,
        resnet_history=o.deep.resnet_history,
        xgb_histories=histories,
        xgb_best=best_rounds,
        importances=importances,
        real_vs_generated=o.real_vs_generated,
        candidates=champion_report(champ, o.trees),
        notes=[f"champion: {champ.reason}", f"deep step: {o.deep.backend}", _calibration_note(o.cal, o.ev, champ.name)]
        + ([f"{_IMPUTATION_NOTE} Imputed: "
            + ", ".join(f"{k} = {v['value']:.4g} ({v['missing_share']:.1%} missing)" for k, v in o.imputed.items())]
           if o.imputed else []),
    )
    write_report(target, report)
    summary.details["bundle"] = str(target)
    if o.gate["passed"]:
        set_current(cfg.warehouse.path, tc.model_name, o.version)
    return target


def train_model(spark: SparkSession, cfg: Config, args: argparse.Namespace, summary: RunSummary) -> int:
    """The ``train`` job body (see the module docstring for the steps).

    Args:
        spark: The session.
        cfg: The job config.
        args: Parsed arguments: ``as_of`` (``D1[,D2,...]``), ``validation_as_of`` (or None).
        summary: The run summary to fill in.

    Returns:
        0 when the model was published as ``current``.

    Raises:
        QualityGateError: The model was stored but failed the quality gate (exit code 5).
    """
    from credspark.pipelines.candidates import (
        configured_candidates,
        evaluate_candidates,
        fit_tree_candidates,
        score_candidates,
        score_col,
        without_deep_models,
    )

    tc = cfg.train
    candidates = configured_candidates(cfg)  # ---- candidates: checked before Spark work starts
    with_paper = any(c.needs_embedder for c in candidates)
    dates, validation_as_of = _dates_from_args(args)
    plan = plan_split(dates, validation_as_of, tc)
    version = model_version(plan.dates, summary.run_id)
    summary.details |= {"split": plan.to_dict(), "model_name": tc.model_name, "version": version}
    # Feeds, checkpoints and generated rows of this run; shared by driver and workers (the warehouse's file
    # system). Removed after a successful run, kept after a failure for inspection.
    work_dir = safe_child(cfg.warehouse.path, "_work", "train", summary.run_id)
    persisted: list[DataFrame] = []

    def keep(df: DataFrame) -> DataFrame:
        persisted.append(df.persist(StorageLevel.MEMORY_AND_DISK))
        return persisted[-1]

    try:
        with summary.stage("read"):
            features, spec = read_training_rows(spark, cfg, plan.dates)
        with summary.stage("split"):
            cols = [*KEY_COLS, *spec.static_names, "seq", "seq_mask", "label"]
            rows = keep(features.select(*cols).transform(with_parts(plan)).withColumn(SYNTHETIC_COL, F.lit(False)))
            counts = part_counts(rows, plan.dates)
            summary.counts |= {f"{p}_{c}": n for p, cc in counts.items() for c, n in cc.items()}
            _check_counts(counts)
            _write_split(spark, cfg, rows, summary.run_id, version)
        if with_paper:
            with summary.stage("deep"):
                imputed = _deep_imputation(rows, spec)
                summary.details["deep_imputation"] = imputed
                deep = _deep_step(spark, rows.transform(with_imputed_static(imputed)), spec, cfg, str(work_dir))
                summary.counts["generated_rows"] = int(deep.details.get("generated_rows", 0))
                summary.details["deep"] = {"backend": deep.backend, **deep.details}
            with summary.stage("embed"):
                emb = keep(_embed_step(rows, deep, spec, cfg))
                width = _count_embedded(emb, summary)
        else:  # ---- candidates: no deep model needed
            imputed, width = {}, 0
            deep, emb = without_deep_models(rows, spec, cfg)
            emb = keep(emb)
        fitted = _fit_step(emb, spec, width, cfg, summary)
        # ---- candidates (credspark.pipelines.candidates): fit the tree-only ones, score all, champion on validation
        with summary.stage("candidates"):
            trees = fit_tree_candidates(emb, spec, candidates, cfg, summary)
        with summary.stage("score"):
            scored = keep(score_candidates(emb, spec, fitted.focal, width, trees, fitted.baseline,
                                           len(fitted.raw_names), cfg))
        with summary.stage("evaluate"):
            ev, cal, champ = evaluate_candidates(scored, counts, candidates, cfg)
            summary.details["champion"] = champ.to_dict()
            # ----
            summary.details["calibration"] = _calibration_summary(cal)
            gate = gate_decision(ev.metrics[champ.name]["auc"], ev.metrics[BASELINE_NAME]["auc"],
                                 tc.min_test_auc, tc.max_auc_below_baseline)
            summary.details["metrics"] = {name: {k: m[k] for k in ("auc", "ks", "recall", "f1", "brier")}
                                          for name, m in ev.metrics.items()}
            summary.details["gate"] = gate
        top = _top_static(spec, _importance(fitted.baseline.booster()), tc.drift_features)
        with summary.stage("distributions"):
            dist_cols: dict[str, Column] = {n: F.col(n).cast("double") for n in top}
            pd_col = calibrated_pd_column(cal, F.col(score_col(champ.key)))  # what scoring writes: the calibrated pd
            dist_cols |= {"pd": pd_col, "score": _points(pd_col, cfg)}
            dists = training_distributions(scored.where(F.col(PART_COL) == PART_TRAIN), dist_cols, tc.drift_bins,
                                           tc.quantile_error)
        with summary.stage("report_data"):
            columns = list(tc.report_columns) if tc.report_columns is not None else top[:6]
            real_vs_generated = _real_vs_generated(rows, deep, spec, columns, tc)
        with summary.stage("publish"):
            target = _publish(_Outcome(plan, version, spec, counts, deep, fitted, ev, cal, gate, top, dists,
                                       real_vs_generated, imputed, champ, trees), cfg, summary)
    finally:
        for df in persisted:
            df.unpersist()

    shutil.rmtree(work_dir, ignore_errors=True)
    if not gate["passed"]:
        raise QualityGateError(f"model {tc.model_name} version {version} stored at {target} but not published: "
                               + "; ".join(gate["reasons"]))
    log.info("published %s version %s, champion %s (test AUC %.4f)", tc.model_name, version, champ.name,
             gate["test_auc"])
    return 0
