"""The training job's candidates on Spark: fit the tree-only ones, score every one, pick and describe the champion.

The rule itself (which candidate wins, on the validation part only) is Spark-free, in
:mod:`credspark.models.champion`; this module runs the distributed fits and the executor-side scoring and
brings only (part, label, probabilities) of the validation and test rows to the driver.

Tree-only candidates (``focal_static``, ``plain_static``) train on the real training rows' static features (no
generated rows, no embedding); validation rows drive their early stopping, exactly as for the paper pipeline's
focal XGBoost. Their input is the static block the scoring job already reads, so the champion can be published
as a tree-only bundle.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from credspark.config import Config
from credspark.errors import ConfigError, InputError
from credspark.models.champion import Candidate, candidates_from_config
from credspark.models.spec import FeatureSpec
from credspark.pipelines._train_data import (
    KEY_COLS,
    PART_COL,
    PART_TRAIN,
    PART_VALID,
    SYNTHETIC_COL,
    raw_feature_vector,
)
from credspark.runner import Run

__all__ = [
    "STATIC_COL",
    "configured_candidates",
    "fit_tree_candidates",
    "score_candidates",
    "score_col",
]

log = logging.getLogger(__name__)

#: The static block as array<float> (the tree-only candidates' input).
STATIC_COL = "static_features"
_VALID_COL = "is_valid"
_PD_BASE = "pd_baseline"


def score_col(key: str) -> str:
    """The column holding candidate ``key``'s uncalibrated probability in the scored frame."""
    return f"pd__{key}"


def configured_candidates(cfg: Config) -> list[Candidate]:
    """``train.candidates`` checked (ConfigError naming the key)."""
    try:
        return candidates_from_config(list(cfg.train.candidates))
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc


# ------------------------------------------------------------------------------------------------ fit
def fit_tree_candidates(
    emb: DataFrame, spec: FeatureSpec, candidates: Sequence[Candidate], cfg: Config, run: Run
) -> dict[str, Any]:
    """Fit every tree-only candidate over the Spark XGBoost workers, each tuned first when tuning is on.

    Args:
        emb: The job's rows (real and, with the paper pipeline, generated) with the static columns, ``part``,
            ``label``, ``is_synthetic`` and ``is_valid``.
        spec: The FeatureSpec (static column order = the classifier's input order).
        candidates: The configured candidates (those needing the embedder are fitted elsewhere and left out here).
        cfg: The job config (``xgb`` section; ``train.seed``, ``train.tuning_*``, ``train.monotone``).
        run: The run (best rounds and tuning under ``details.candidates``).

    Returns:
        ``{candidate key: fitted FocalXGBClassifier on the static features}``, each with ``tuning_`` (the
        :class:`~credspark.models.tuning.TuningResult`, or None). A ``logistic`` candidate's booster
        (``binary:logistic``) is held in the same class, whose parameters then read ``alpha`` 0.5 and ``gamma``
        0: the focal loss with those is half the logistic loss, the same objective.

    Raises:
        ConfigError: ``train.monotone`` names an unknown feature or a value other than 1 / -1.
    """
    from credspark.distributed._xgb_worker import WorkerTask
    from credspark.distributed.xgb import fit_focal_xgb, global_prior_log_odds, train_distributed
    from credspark.models.focal_xgb import FocalXGBClassifier
    from credspark.models.tuning import monotone_vector
    from credspark.pipelines._train_steps import _focal_estimator

    xc, tc = cfg.xgb, cfg.train
    names = list(spec.static_names)
    from credspark.features.attributes import attribute_monotone

    try:
        # Declared attributes' directions first; train.monotone (explicit, per feature) wins over them.
        monotone = monotone_vector(names, attribute_monotone(cfg.attributes) | dict(tc.monotone))
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    real = (emb.where(~F.col(SYNTHETIC_COL) & F.col(PART_COL).isin(PART_TRAIN, PART_VALID))
            .select(*KEY_COLS, raw_feature_vector(spec, False).alias("features"), "label", _VALID_COL))
    sample = _tuning_sample(real, len(names), tc) if tc.tuning_trials > 0 and any(
        not c.needs_embedder for c in candidates) else None
    out: dict[str, Any] = {}
    for c in candidates:
        if c.needs_embedder:
            continue
        estimator = _focal_estimator(cfg, names)
        tuning = None
        if sample is not None:
            tuning = _tune(sample, c, estimator, monotone, cfg)
            estimator = FocalXGBClassifier(**(estimator.get_params() | tuning.best_params))
        if monotone is not None:
            estimator = FocalXGBClassifier(**(estimator.get_params() | {"monotone_constraints": list(monotone)}))
        if c.objective == "focal":
            model = fit_focal_xgb(real, estimator, num_workers=xc.num_workers, key_cols=KEY_COLS,
                                  timeout_s=xc.timeout_s, host=xc.tracker_host)
        else:
            prior = 1.0 / (1.0 + math.exp(-global_prior_log_odds(real.where(~F.col(_VALID_COL)))))
            params = {k: v for k, v in estimator.xgb_params(prior).items() if k != "disable_default_eval_metric"}
            task = WorkerTask(params=params | {"objective": "binary:logistic", "eval_metric": "logloss"},
                              num_boost_round=estimator.n_estimators, n_features=len(names),
                              feature_names=tuple(names), early_stopping_rounds=estimator.early_stopping_rounds,
                              has_validation=True, nthread=int(estimator.n_jobs or 1))
            res = train_distributed(real, task, num_workers=xc.num_workers, key_cols=KEY_COLS,
                                    timeout_s=xc.timeout_s, host=xc.tracker_host)
            model = FocalXGBClassifier.from_booster_bytes(res.model, **(estimator.get_params()
                                                                        | {"alpha": 0.5, "gamma": 0.0}))
            model.evals_result_, model.best_iteration_ = res.evals_result, int(res.best_iteration)
        model.tuning_ = tuning
        out[c.key] = model
        run.details.setdefault("candidates", {})[c.key] = {
            "best_iteration": int(model.best_iteration_),
            "tuning": None if tuning is None else {k: v for k, v in tuning.to_dict().items() if k != "trials"}
            | {"trials": len(tuning.trials)}}
    return out


def _tuning_sample(real: DataFrame, width: int, tc: Any) -> tuple[np.ndarray, ...]:
    """Up to ``train.tuning_max_rows`` training + validation rows on the driver, picked by a seeded hash."""
    from credspark.models.inputs import stack_array_column

    rows = real.orderBy(F.xxhash64(*[F.col(c) for c in KEY_COLS], F.lit(tc.seed))).limit(tc.tuning_max_rows)
    pdf = rows.select("features", "label", _VALID_COL).toPandas()
    X = stack_array_column(pdf["features"], width, np.float32, "features")
    y, valid = pdf["label"].to_numpy(np.int64), pdf[_VALID_COL].to_numpy(bool)
    for part, rows_of in (("train", ~valid), ("valid", valid)):
        if len(set(y[rows_of])) < 2:
            raise InputError(f"tuning: the {part} rows of the sample (train.tuning_max_rows={tc.tuning_max_rows}) "
                             "need both classes")
    return X[~valid], y[~valid], X[valid], y[valid]


def _tune(sample: tuple[np.ndarray, ...], c: Candidate, estimator: Any, monotone: Any, cfg: Config) -> Any:
    from credspark.models.tuning import tune_booster

    tc, xc = cfg.train, cfg.xgb
    X_train, y_train, X_valid, y_valid = sample
    return tune_booster(X_train, y_train, X_valid, y_valid, objective=c.objective, n_trials=tc.tuning_trials,
                        timeout_s=tc.tuning_timeout_s, n_estimators=xc.n_estimators,
                        early_stopping_rounds=xc.early_stopping_rounds or xc.n_estimators, seed=tc.seed,
                        focal_alpha=xc.focal_alpha, focal_gamma=xc.focal_gamma, monotone=monotone,
                        nthread=max(1, xc.nthread))


def score_candidates(emb: DataFrame, spec: FeatureSpec, paper: Any, width: int, trees: Mapping[str, Any],
                     baseline: Any, raw_width: int, cfg: Config) -> DataFrame:
    """Real rows with every candidate's probability (``pd__<key>``) and the baseline's, on the executors; lazy.

    Args:
        emb: Rows with ``features`` (when ``paper`` is given), ``raw_features`` and the static columns.
        spec: The FeatureSpec.
        paper: The paper pipeline's fitted focal XGBoost on the embedding, or None.
        width: Its input width.
        trees: Fitted tree-only candidates (:func:`fit_tree_candidates`).
        baseline: The plain XGBoost baseline (``DistributedXGBResult``).
        raw_width: The baseline's input width.
        cfg: The job config.
    """
    from credspark.distributed.embed import with_scores

    n = spec.n_static
    models: dict[str, tuple[bytes, str, int]] = {}
    if paper is not None:
        models[score_col("paper")] = (paper.to_booster_bytes(), "features", width)
    for key, model in trees.items():
        models[score_col(key)] = (model.to_booster_bytes(), STATIC_COL, n)
    models[_PD_BASE] = (baseline.model, "raw_features", raw_width)
    keep = [*KEY_COLS, *spec.static_names, PART_COL, "label"]
    rows = emb.where(~F.col(SYNTHETIC_COL)).withColumn(STATIC_COL, raw_feature_vector(spec, False))
    return with_scores(rows, models, keep=keep, nthread=cfg.xgb.nthread)


# ------------------------------------------------------------------------------------------------ publish
def without_deep_models(rows: DataFrame, spec: FeatureSpec, cfg: Config) -> tuple[Any, DataFrame]:
    """When no candidate needs the embedder: no deep model, and the rows with the baseline's inputs only.

    Returns:
        ``(DeepModels with nothing trained, rows with raw_features and is_valid)``; lazy.
    """
    from credspark.pipelines._train_steps import DeepModels

    deep = DeepModels(embedder=None, generated=None, gan_history=None, resnet_history=None,
                      backend="none (no candidate in train.candidates needs the ResNet-LSTM)", details={})
    out = (rows.withColumn("raw_features", raw_feature_vector(spec, cfg.train.baseline_with_seq))
           .withColumn(_VALID_COL, F.col(PART_COL) == PART_VALID))
    return deep, out
