"""The training job: features -> split -> candidates (paper pipeline, tree-only boosters) -> champion -> publish.

Steps (each timed as a stage of the run summary; the step functions live in :mod:`._train_split`,
:mod:`._train_steps`, :mod:`.candidates`, :mod:`._train_evaluate` and :mod:`._train_publish`):

1. ``read``: the feature rows of the ``--as-of`` dates with a label; the FeatureSpec from the table.
2. ``split``: train / validation / test by time or stratified at random (:mod:`._train_data`); the plan and
   the counts are recorded, and the row-level assignment is written to the ``train_splits`` table. The
   categorical attributes' encoding is fitted on the training part (:mod:`credspark.features.encoding`);
   every later step, and the bundle, use the FeatureSpec extended with their 0/1 features.
3. ``deep`` (only when ``paper`` is in ``train.candidates``): ACTGAN oversampling of the training part and
   ResNet-LSTM training with ``credspark.pipelines.train_deep`` (launcher, feed, workers and GPU from the
   ``distributed`` section). ACTGAN needs finite inputs, so for this step only, missing static values are
   filled with the value the ResNet-LSTM's scaling gives a missing input at scoring time. Generated rows exist
   in the training part only.
4. ``embed``: embeddings of every part on the executors (model loaded once per Python worker).
5. ``xgb``: focal XGBoost on the embeddings over Spark barrier tasks (:mod:`credspark.distributed.xgb`);
   ``baseline``: a plain XGBoost (``binary:logistic``) on the raw static features (+ flattened sequences)
   of the real training rows, through the same distributed path; ``candidates``: the tree-only candidates of
   ``train.candidates`` on the static features, each tuned within its budget first.
6. ``score`` / ``evaluate``: every candidate's probabilities on the executors; the champion is chosen on the
   validation part (:mod:`credspark.models.champion`) and its calibration map (``train.calibration``,
   :mod:`credspark.models.calibration`) fitted there.
7. ``stage_bundle`` / ``score_held_out``: the champion's bundle is written to a private folder and read back;
   the real validation and test rows go through the scoring job's partition scorer with it
   (:mod:`._train_evaluate`). The champion's threshold (validation), its test metrics, the quality gate and
   the ``pd`` / ``score`` reference distributions come from those scores; the other models keep the
   probabilities of step 6. Only part, label and probabilities reach the driver.
8. ``distributions``: the training part's distributions of the top static features (quantile bins, Spark
   aggregates), beside the held-out ``pd`` and ``score`` ones, for drift monitoring.
9. ``publish``: the champion's bundle in ``<warehouse>/models/<name>/<version>/`` (model files byte for byte
   the staged ones) with ``report.html`` and ``metrics.json`` beside the manifest; ``current`` moves only when
   the quality gate (champion against the plain baseline on test) passes, otherwise the job fails with
   :class:`~credspark.errors.QualityGateError` (exit code 5).

The version is ``<latest as-of, YYYYMMDD>-<run id>``: the data decide the first part, never the clock.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from credspark.config import Config, TrainConfig
from credspark.distributed.slots import plan_workers
from credspark.errors import QualityGateError
from credspark.evaluation import (
    BASELINE_NAME,
    MODEL_NAME,
    PART_TEST,
    PART_TRAIN,
    PART_VALID,
    UNCALIBRATED_NAME,
    calibration_summary,
    evaluate,
    gate_decision,
)
from credspark.features.encoding import drift_columns, mark_attributes
from credspark.io import warehouse
from credspark.io.scratch import work_folder
from credspark.io.tables import table_ref, table_version
from credspark.job_requests import TrainRequest
from credspark.models.calibration import Calibrator
from credspark.models.spec import FeatureSpec
from credspark.pipelines._train_champion import evaluate_candidates
from credspark.pipelines._train_data import PART_COL, SplitPlan, plan_split, with_imputed_static
from credspark.pipelines._train_evaluate import HeldOut, evaluate_through_scoring, training_distributions
from credspark.pipelines._train_publish import Outcome, publish, real_vs_generated, stage_bundle
from credspark.pipelines._train_split import part_counts, read_training_rows, split_rows
from credspark.pipelines._train_steps import (
    count_embedded,
    deep_imputation,
    deep_step,
    embed_step,
    fit_step,
    gain_importance,
    top_static,
)
from credspark.pipelines.candidates import (
    configured_candidates,
    fit_tree_candidates,
    score_candidates,
    without_deep_models,
)
from credspark.runner import JobResult, Run

__all__ = [
    "train_model",
    "check_train_request",
    "read_training_rows",
    "part_counts",
    "gate_decision",
    "model_version",
    "evaluate",
    "training_distributions",
    "top_static",
    "MODEL_NAME",
    "UNCALIBRATED_NAME",
    "BASELINE_NAME",
]

log = logging.getLogger(__name__)


def model_version(dates: Sequence[dt.date], run_id: str) -> str:
    """``<latest as-of as YYYYMMDD>-<run id>``: sortable by data date, then by run."""
    return f"{max(dates):%Y%m%d}-{run_id}"


# ------------------------------------------------------------------------------------------------ the job
def check_train_request(cfg: Config, request: TrainRequest) -> SplitPlan:
    """The split plan of a request under the ``train`` config; ConfigError when they do not fit together.

    Cheap and Spark-free: :func:`credspark.runner.run_job` calls it before the session starts.
    """
    return plan_split(request.as_of_dates, request.validation_as_of, cfg.train)


class _Persisted:
    """The DataFrames a job persists (memory and disk) until it ends; call it on a DataFrame to keep that one."""

    def __init__(self) -> None:
        self._kept: list[DataFrame] = []

    def __call__(self, df: DataFrame) -> DataFrame:
        """Persist ``df``; return the persisted DataFrame."""
        self._kept.append(df.persist(StorageLevel.MEMORY_AND_DISK))
        return self._kept[-1]

    def release(self) -> None:
        """Unpersist every kept DataFrame."""
        for df in self._kept:
            df.unpersist()


def _plan(cfg: Config, request: TrainRequest, run: Run) -> tuple[SplitPlan, str]:
    """The split plan and the model version of a request, recorded on ``run``."""
    plan = check_train_request(cfg, request)
    version = model_version(plan.dates, run.run_id)
    run.details |= {"split": plan.to_dict(), "model_name": cfg.train.model_name, "version": version}
    return plan, version


def _champion_step(spark: SparkSession, rows: DataFrame, scored: DataFrame, counts: dict[str, dict[str, int]],
                   candidates: Sequence[Any], spec: FeatureSpec, fitted: Any, trees: dict[str, Any], deep: Any,
                   cfg: Config, run: Run, keep: _Persisted) -> tuple[Any, Calibrator, Any, HeldOut]:
    """Steps ``evaluate``, ``stage_bundle`` and ``score_held_out``: the champion, its bundle and its test.

    The champion is chosen and calibrated on the validation part only; its staged bundle then scores the
    validation and test rows through the scoring job's partition scorer, and the evaluation and the gate come
    from those scores.

    Returns:
        ``(champion, calibration, staged bundle files, held-out evaluation)``.
    """
    with run.stage("evaluate"):
        chosen, cal, champ = evaluate_candidates(scored, counts, candidates, cfg)
        run.details["champion"] = champ.to_dict()
        run.details["calibration"] = calibration_summary(cal)
    with run.stage("stage_bundle"):
        staged = stage_bundle(spec, champ, fitted, trees, deep, cal, cfg, run)
    with run.stage("score_held_out"):
        n_held_out = sum(counts[p]["0"] + counts[p]["1"] for p in (PART_VALID, PART_TEST))
        held = evaluate_through_scoring(spark, rows, scored, staged, spec, champ, cal, chosen, n_held_out, cfg,
                                        keep)
        run.details["scoring_path"] = held.agreement
        run.details["metrics"] = {name: {k: m[k] for k in ("auc", "ks", "recall", "f1", "brier")}
                                  for name, m in held.ev.metrics.items()}
        run.details["gate"] = held.gate
    return champ, cal, staged, held


def _distributions(scored: DataFrame, spec: FeatureSpec, top: list[str], held: HeldOut, tc: TrainConfig
                   ) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """The reference distributions for drift monitoring and the monitored feature names.

    Features: the training part's (the top static features, then every declared attribute, a categorical one
    over its categories); ``pd`` and ``score``: the held-out rows' scores.
    """
    monitored, fixed = drift_columns(spec, top)
    dists = training_distributions(scored.where(F.col(PART_COL) == PART_TRAIN), monitored, tc.drift_bins,
                                   tc.quantile_error, fixed)
    return list(monitored), mark_attributes(dists, spec) | held.distributions


def _check_gate(gate: dict[str, Any], model_name: str, version: str, target: Any, champion: str) -> None:
    """Fail the job when the quality gate refused the stored model; log the publication otherwise.

    Raises:
        QualityGateError: The gate did not pass (exit code 5).
    """
    if not gate["passed"]:
        raise QualityGateError(f"model {model_name} version {version} stored at {target} but not published: "
                               + "; ".join(gate["reasons"]))
    log.info("published %s version %s, champion %s (test AUC %.4f)", model_name, version, champion,
             gate["test_auc"])


def train_model(spark: SparkSession, cfg: Config, request: TrainRequest, run: Run) -> JobResult:
    """The ``train`` pipeline (see the module docstring for the steps).

    Args:
        spark: The session.
        cfg: The job config.
        request: The as-of dates and the time split's validation date.
        run: The run to record on.

    Returns:
        Exit code 0 when the model was published as ``current``, with the counts and details.

    Raises:
        QualityGateError: The model was stored but failed the quality gate (exit code 5).
    """
    cfg = plan_workers(spark, cfg)  # every distributed stage's workers fit the free slots; 'auto' resolved
    tc = cfg.train
    candidates = configured_candidates(cfg)
    plan, version = _plan(cfg, request, run)
    # Feeds, checkpoints and generated rows of this run, shared by driver and workers; removed when the run
    # ends, failed or not.
    work_dir = work_folder(cfg.warehouse.path, "train", run.run_id, spark.sparkContext.master,
                           cfg.distributed.work_dir)
    keep = _Persisted()
    try:
        with run.stage("read"):
            features, spec = read_training_rows(spark, cfg, plan.dates)
            features_version = table_version(spark, table_ref(cfg, cfg.tables.features))
        with_paper = any(c.needs_embedder for c in candidates)
        with run.stage("split"):
            rows, spec, counts = split_rows(spark, cfg, features, spec, plan, version, run, keep)
        if with_paper:
            with run.stage("deep"):
                imputed = deep_imputation(rows, spec)
                run.details["deep_imputation"] = imputed
                lineage = {"features_version": features_version, "split": plan.to_dict()}
                deep = deep_step(spark, rows.transform(with_imputed_static(imputed)), spec, cfg, str(work_dir),
                                 lineage)
                run.counts["generated_rows"] = int(deep.details.get("generated_rows", 0))
                run.details["deep"] = {"backend": deep.backend, **deep.details}
            with run.stage("embed"):
                emb = keep(embed_step(rows, deep, spec, cfg))
                width = count_embedded(emb, run)
        else:  # no candidate needs the ResNet-LSTM: no deep model is trained
            imputed, width = {}, 0
            deep, emb = without_deep_models(rows, spec, cfg)
            emb = keep(emb)
        fitted = fit_step(emb, spec, width, cfg, run)
        with run.stage("candidates"):  # the tree-only candidates, each tuned within its budget
            trees = fit_tree_candidates(emb, spec, candidates, cfg, run)
        with run.stage("score"):
            scored = keep(score_candidates(emb, spec, fitted.focal, width, trees, fitted.baseline,
                                           len(fitted.raw_names), cfg))
        champ, cal, staged, held = _champion_step(spark, rows, scored, counts, candidates, spec, fitted, trees, deep,
                                                  cfg, run, keep)
        top = top_static(spec, gain_importance(fitted.baseline.booster()), tc.drift_features)
        with run.stage("distributions"):
            monitored, dists = _distributions(scored, spec, top, held, tc)
        with run.stage("report_data"):
            columns = list(tc.report_columns) if tc.report_columns is not None else top[:6]
            samples = real_vs_generated(rows, deep, spec, columns, tc)
        with run.stage("publish"):
            target = publish(Outcome(plan, version, spec, counts, deep, fitted, held.ev, cal, held.gate, monitored,
                                     dists, samples, imputed, champ, trees), staged, cfg, run)
    finally:
        keep.release()
        warehouse.remove_tree(work_dir)

    _check_gate(held.gate, tc.model_name, version, target, champ.name)
    return run.result()
