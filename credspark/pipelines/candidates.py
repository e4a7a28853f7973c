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
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from credspark.config import Config
from credspark.errors import ConfigError, InputError
from credspark.models.calibration import Calibrator, fit_calibrator, margin_from_pd
from credspark.models.champion import CANDIDATES, Candidate, Selection, candidates_from_config, choose_champion
from credspark.models.spec import FeatureSpec
from credspark.pipelines._train_data import (
    KEY_COLS,
    PART_COL,
    PART_TEST,
    PART_TRAIN,
    PART_VALID,
    SYNTHETIC_COL,
    raw_feature_vector,
)
from credspark.runner import Run

__all__ = [
    "STATIC_COL",
    "Champion",
    "configured_candidates",
    "candidates_for_spec",
    "evaluate_candidates",
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


def candidates_for_spec(candidates: Sequence[Candidate], spec: FeatureSpec, run: Run) -> list[Candidate]:
    """The configured candidates the features allow: without a sequence (a static-only source) no embedder.

    A skipped candidate is logged and reported (``details.skipped_candidates``: key -> reason).

    Raises:
        ConfigError: No configured candidate is left.
    """
    if not spec.static_only:
        return list(candidates)
    reason = ("the features have no sequence channels (static-only source): the ResNet-LSTM has no sequence "
              "to read, so only the tree-only candidates run")
    skipped = {c.key: reason for c in candidates if c.needs_embedder}
    for key in skipped:
        log.warning("train: candidate %s skipped: %s", key, reason)
    kept = [c for c in candidates if not c.needs_embedder]
    if not kept:
        trees = sorted(k for k, c in CANDIDATES.items() if not c.needs_embedder)
        raise ConfigError(f"train.candidates {[c.key for c in candidates]}: none can run on static-only features "
                          f"(add a tree-only candidate: {trees})")
    if skipped:
        run.details["skipped_candidates"] = skipped
    return kept


# ------------------------------------------------------------------------------------------------ fit
def fit_tree_candidates(
    emb: DataFrame, spec: FeatureSpec, candidates: Sequence[Candidate], cfg: Config, run: Run
) -> dict[str, Any]:
    """Fit every tree-only candidate over the Spark XGBoost workers, each tuned first when tuning is on.

    Args:
        emb: The job's rows (real and, with the paper pipeline, generated) with the static columns, ``part``,
            ``label``, ``is_synthetic`` and ``is_valid``.
        spec: The FeatureSpec (static column order = the classifier's input order).
        candidates: The configured candidates (those needing the embedder are skipped).
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


# ------------------------------------------------------------------------------------------------ evaluate
@dataclass(frozen=True)
class Champion:
    """The chosen candidate and how every candidate did.

    Attributes:
        key: The champion's candidate key.
        name: Its name in metrics, report and ``metrics.json``.
        selection: The rule's outcome (validation metrics, reason).
        table: One row per candidate: ``name``, ``champion``, validation and test AUC and KS (uncalibrated
            probabilities; a strictly increasing calibration leaves both unchanged).
    """

    key: str
    name: str
    selection: Selection
    table: list[dict[str, Any]] = field(default_factory=list)

    @property
    def reason(self) -> str:
        """Why the champion won (one sentence)."""
        return self.selection.reason

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (manifest metadata, metrics.json, run summary)."""
        return {"key": self.key, "name": self.name, **self.selection.to_dict(), "candidates": self.table}


def _candidate_table(parts: np.ndarray, y: np.ndarray, raw: Mapping[str, np.ndarray], champion: str
                     ) -> list[dict[str, Any]]:
    from credspark.metrics import ks_statistic, roc_auc

    rows = []
    for key, s in raw.items():
        row: dict[str, Any] = {"key": key, "name": CANDIDATES[key].name, "champion": key == champion}
        for part in (PART_VALID, PART_TEST):
            m = parts == part
            row[f"{part}_auc"] = roc_auc(y[m], s[m])
            row[f"{part}_ks"] = ks_statistic(y[m], s[m])
        rows.append(row)
    return rows


def evaluate_candidates(
    scored: DataFrame, counts: Mapping[str, Mapping[str, int]], candidates: Sequence[Candidate], cfg: Config
) -> tuple[Any, Calibrator, Champion]:
    """Choose the champion on the validation part, calibrate it there, and evaluate every model on test.

    Brings (part, label, every probability) of the validation and test rows to the driver. The metrics are
    keyed by name and ordered for the report's table: the calibrated champion, the best other candidate (the
    table's difference column compares these two; with one candidate, the baseline), the other candidates,
    the uncalibrated champion (unless ``train.calibration`` is ``none``), then the plain baseline.

    Returns:
        ``(evaluation, calibration map of the champion, champion)``.

    Raises:
        ConfigError: Too many rows for the driver, or a bad ``train.champion_*`` value.
        InputError: The calibration cannot be fitted on the validation part.
    """
    from credspark.evaluation import BASELINE_NAME, evaluate

    tc = cfg.train
    n_eval = sum(counts[p]["0"] + counts[p]["1"] for p in (PART_VALID, PART_TEST))
    if n_eval > tc.max_eval_rows:
        raise ConfigError(f"{n_eval} validation + test rows exceed train.max_eval_rows={tc.max_eval_rows}")
    cols = [score_col(c.key) for c in candidates]
    # Only labels and probabilities reach the driver; the metrics do not depend on row order.
    pdf = (scored.where(F.col(PART_COL).isin(PART_VALID, PART_TEST)).select(PART_COL, "label", *cols, _PD_BASE)
           .toPandas())
    parts, y = pdf[PART_COL].to_numpy(), pdf["label"].to_numpy().astype(np.int64)
    raw = {c.key: pdf[score_col(c.key)].to_numpy(dtype=np.float64) for c in candidates}
    try:
        selection = choose_champion(parts, y, raw, tc.champion_metric, tc.champion_margin, PART_VALID)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    key = selection.champion
    champion = Champion(key, CANDIDATES[key].name, selection, _candidate_table(parts, y, raw, key))
    is_valid = parts == PART_VALID
    try:
        cal = fit_calibrator(tc.calibration, margin_from_pd(raw[key][is_valid]), y[is_valid])
    except ValueError as exc:
        raise InputError(f"train.calibration={tc.calibration!r} on the {PART_VALID} part: {exc}") from exc
    others = sorted((k for k in raw if k != key), key=lambda k: -selection.valid[k])
    baseline = pdf[_PD_BASE].to_numpy(dtype=np.float64)
    scores = {champion.name: cal.pd_from_raw_pd(raw[key])}
    scores |= {CANDIDATES[k].name: raw[k] for k in others} if others else {BASELINE_NAME: baseline}
    if cal.method != "none":
        scores[f"{champion.name}, uncalibrated"] = raw[key]
    scores[BASELINE_NAME] = baseline
    return evaluate(parts, y, scores), cal, champion


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


def champion_model(champion: Champion, paper: Any, trees: Mapping[str, Any], embedder: Any,
                   use_raw_static: bool) -> tuple[Any, Any, bool]:
    """What the bundle holds for the champion: ``(embedder or None, classifier, use_raw_static)``."""
    if CANDIDATES[champion.key].needs_embedder:
        return embedder, paper, use_raw_static
    return None, trees[champion.key], True


def champion_report(champion: Champion, trees: Mapping[str, Any]) -> dict[str, Any]:
    """The report's and metrics.json's ``candidates`` entry: the selection, every candidate, and the tuning trials."""
    tuning = {k: m.tuning_.to_dict() for k, m in trees.items() if getattr(m, "tuning_", None) is not None}
    return champion.to_dict() | {"tuning": tuning}


def report_models(paper: Any, trees: Mapping[str, Any], baseline: Any, baseline_name: str
                  ) -> tuple[dict[str, Any], dict[str, int], dict[str, dict[str, float]]]:
    """Boosting histories, best rounds and gain importances of every fitted model, by name (for the report)."""
    models = ({CANDIDATES["paper"].name: paper} if paper is not None else {}) | {
        CANDIDATES[k].name: m for k, m in trees.items()}
    histories = {n: m.evals_result_ for n, m in models.items()} | {baseline_name: baseline.evals_result}
    best = {n: int(m.best_iteration_) for n, m in models.items()} | {baseline_name: int(baseline.best_iteration)}
    gain = {f"{n} (total gain)": {k: float(v) for k, v in m.booster_.get_score(importance_type="total_gain").items()}
            for n, m in models.items()}
    gain[f"{baseline_name} (total gain)"] = {
        k: float(v) for k, v in baseline.booster().get_score(importance_type="total_gain").items()}
    return histories, best, gain
