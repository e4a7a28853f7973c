"""The nightly scoring job: the features partition of a score date -> the ``scores`` partition + monitoring.

Order of work (nothing is written before every check passed):

1. read the ``features`` partition ``as_of_date = D`` (``--build-features`` builds it first) and rebuild its
   FeatureSpec from the table properties;
2. resolve the bundle (``current`` or ``--model-version``), read its files into memory and verify exactly
   those bytes (hashes, format, FeatureSpec == the feature table's extended with the bundle's categorical
   encoding, which then gives the rows their 0/1 attribute features); any mismatch stops the job here;
3. count rows that cannot be scored (null id, ``seq``/``seq_mask`` missing or of the wrong length) and stop
   if their share exceeds ``validation.max_reject_fraction``;
4. score with ``mapInPandas``: the verified bytes are broadcast; each Python worker loads the bundle once
   (:mod:`credspark.scoring.partition`);
5. write the partition ``score_date = D`` of ``scores`` in one Delta commit (``replaceWhere``), retrying
   after a concurrent-write conflict;
6. monitoring, from exactly the Delta version this run committed: counts, pd quantiles, band counts, PSI of
   the score against the previous score date and against the training distributions stored in the bundle;
   one row appended to ``score_runs``. Drift beyond ``score.psi_fail`` returns exit code 3 (the scores
   stay written: see docs/scoring.md).
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from pyspark.sql import DataFrame, SparkSession

from credspark.config import Config
from credspark.errors import EXIT_DRIFT, EXIT_OK, CredsparkError, RejectThresholdError
from credspark.features.encoding import with_category_encoding
from credspark.io.delta_retry import ConcurrentWriteError, overwrite_partitions_retrying
from credspark.io.score_runs import append_score_run, score_run_record
from credspark.io.tables import table_ref
from credspark.job_requests import FeaturesRequest, ScoreRequest
from credspark.models.bundle import Bundle
from credspark.models.spec import FeatureSpec
from credspark.pipelines._score_inputs import (
    ArrowBatchSize,
    ModelRefusedError,
    count_rows,
    load_verified_bundle,
    missing_partition,
    read_feature_partition,
    reason_method,
    reject_reason,
    reject_reasons,
    score_params,
    scored_rows,
    udf_output_schema,
    unseen_category_counts,
)
from credspark.pipelines._score_monitor import drift_text, monitor, training_distributions
from credspark.runner import JobResult, Run
from credspark.scoring.partition import BundleFiles, PartitionScorer, bundle_digest

__all__ = [
    "ModelRefusedError",
    "ConcurrentWriteError",
    "ScoringFailedError",
    "score_portfolio",
    "count_rows",
    "reject_reasons",
    "read_feature_partition",
    "load_verified_bundle",
    "score_params",
    "reject_reason",
    "udf_output_schema",
    "scored_rows",
    "write_scores",
    "training_distributions",
]

log = logging.getLogger("credspark.score")

class ScoringFailedError(CredsparkError):
    """The model raised inside a Spark task; the message carries the Python error's last line (exit 1)."""


def write_scores(
    spark: SparkSession,
    cfg: Config,
    scores: DataFrame,
    score_date: dt.date,
    run_id: str,
    *,
    retries: int = 2,
    backoff_s: float = 1.0,
) -> int:
    """Replace the partition ``score_date`` of ``scores`` in one Delta commit; return the committed version.

    A concurrent run writing the same date makes one of the two commits fail; the loser retries, so the
    partition always ends up holding exactly one run's complete rows. Arguments and errors as
    :func:`credspark.io.delta_retry.overwrite_partitions_retrying` (``run_id`` stamps the commit).
    """
    return overwrite_partitions_retrying(spark, scores, table_ref(cfg, cfg.tables.scores), "score_date",
                                         [score_date], run_id=run_id, retries=retries, backoff_s=backoff_s)


# --------------------------------------------------------------------------------------------- the job
def _build_features_first(spark: SparkSession, cfg: Config, score_date: dt.date, run: Run) -> None:
    """Run the feature pipeline for the score date, recording its own summary inside this run's."""
    from credspark.pipelines.features import build_features

    request = FeaturesRequest((score_date,))
    sub = run.child("build_features", "features")
    status, code = "running", 0
    try:
        code = build_features(spark, cfg, request, sub).exit_code
        status = "ok"
    finally:
        record = sub.summary({"as_of_dates": [score_date.isoformat()]}, status, code, None).to_dict()
        run.details["build_features"] = {k: v for k, v in record.items() if k != "versions"}


def _read_features(spark: SparkSession, cfg: Config, score_date: dt.date, run: Run
                   ) -> tuple[DataFrame, FeatureSpec, int, dict[str, int]]:
    """Stage ``read_features``: the score date's feature rows, their spec, and the rows that cannot be scored.

    Returns:
        ``(features, spec, total rows, rejected rows by reason)``; the counts are recorded on ``run``.

    Raises:
        MissingDataError: The partition is empty or missing.
    """
    with run.stage("read_features"):
        features, spec = read_feature_partition(spark, cfg, score_date)
        total, rejected_by_reason = count_rows(features, spec)
    if total == 0:
        raise missing_partition(table_ref(cfg, cfg.tables.features), score_date)
    rejected = sum(rejected_by_reason.values())
    run.counts.update(features_rows=total, rejected=rejected)
    if rejected:
        run.details["rejected_by_reason"] = rejected_by_reason
        log.warning("score %s: %d of %d feature rows cannot be scored: %s", score_date, rejected, total,
                    rejected_by_reason)
    return features, spec, total, rejected_by_reason


def _verify_bundle(cfg: Config, request: ScoreRequest, spec: FeatureSpec, run: Run
                   ) -> tuple[BundleFiles, Bundle, str, str]:
    """Stage ``verify_bundle``: the requested (or ``current``) bundle, verified against the features' spec.

    Returns:
        ``(files, bundle, version, sha256 digest)``; the model is recorded on ``run``.
    """
    with run.stage("verify_bundle"):
        files, bundle, version, bundle_dir = load_verified_bundle(cfg, request.model_version, spec,
                                                                 request.model_uri)
    digest = bundle_digest(files)
    run.details.update(model_name=cfg.score.model_name, model_version=version, bundle_dir=str(bundle_dir),
                       bundle_sha256=digest, use_raw_static=bundle.use_raw_static)
    log.info("score %s: model %s version %s (sha256 %s...)", request.score_date, cfg.score.model_name, version,
             digest[:12])
    return files, bundle, version, digest


def _check_rejects(cfg: Config, score_date: dt.date, total: int, rejected_by_reason: dict[str, int]) -> None:
    """Refuse the run when no row, or more than ``validation.max_reject_fraction`` of them, can be scored."""
    rejected = sum(rejected_by_reason.values())
    if rejected == total or rejected / total > cfg.validation.max_reject_fraction:
        raise RejectThresholdError(
            f"features partition as_of_date={score_date}: {rejected} of {total} rows cannot be scored "
            f"(> validation.max_reject_fraction={cfg.validation.max_reject_fraction}, or none left): "
            f"{rejected_by_reason}")


def _score_and_write(spark: SparkSession, cfg: Config, valid: DataFrame, files: BundleFiles, bundle: Bundle,
                     spec: FeatureSpec, digest: str, version: str, score_date: dt.date, run: Run) -> int:
    """Stage ``score_and_write``: score the valid rows on the executors and commit them to ``scores``.

    Returns:
        The committed ``scores`` table version.

    Raises:
        ScoringFailedError: A Python worker failed; nothing was committed.
    """
    sc = cfg.score
    params = score_params(sc, digest, spec)
    run.details["reason_codes"] = reason_method(bundle, params)
    bc = spark.sparkContext.broadcast(dict(files))
    try:
        scores = scored_rows(valid, PartitionScorer(files=bc, params=params), score_date=score_date,
                             model_version=version, run_id=run.run_id)
        with run.stage("score_and_write"), ArrowBatchSize(spark, sc.arrow_batch_size):
            return write_scores(spark, cfg, scores, score_date, run.run_id, retries=sc.write_retries)
    except Exception as e:
        line = _python_worker_error(e)
        if line is None:
            raise
        raise ScoringFailedError(f"scoring failed in a Python worker, nothing was committed: {line}") from e
    finally:
        bc.destroy()


def _exit_code(mon: dict[str, Any], score_date: dt.date) -> tuple[int, str | None]:
    """The run's exit code and reason from the monitoring: 3 on drift beyond ``score.psi_fail``; a warning logged."""
    if mon["drift"] == "fail":
        return EXIT_DRIFT, "drift beyond score.psi_fail: " + drift_text(mon["psi"], "fail")
    if mon["drift"] == "warn":
        log.warning("score %s: drift warning: %s", score_date, drift_text(mon["psi"], "warn"))
    return EXIT_OK, None


def score_portfolio(spark: SparkSession, cfg: Config, request: ScoreRequest, run: Run) -> JobResult:
    """The scoring pipeline (for ``run_job``): score the features of the score date into ``scores``.

    Args:
        spark: The session.
        cfg: Job config (``score`` section, tables, warehouse, validation).
        request: The score date, the bundle version (None = ``current``), whether to build the features first.
        run: The run to record on (counts, monitoring, model version).

    Returns:
        Exit code 0, or 3 (``EXIT_DRIFT``) when a PSI reached ``score.psi_fail`` (the scores are written).
    """
    score_date = request.score_date
    if request.build_features:
        with run.stage("build_features"):
            _build_features_first(spark, cfg, score_date, run)
    features, spec, total, rejected_by_reason = _read_features(spark, cfg, score_date, run)
    files, bundle, version, digest = _verify_bundle(cfg, request, spec, run)
    encoding = bundle.spec.category_encoding
    if encoding:  # categorical attributes: the bundle's encoding; values outside it score as 'other', counted
        features, spec = features.transform(with_category_encoding(encoding)), bundle.spec
        run.counts["unseen_categories"] = unseen_category_counts(features, spec)
    _check_rejects(cfg, score_date, total, rejected_by_reason)
    valid = features.where(reject_reason(spec).isNull())
    committed = _score_and_write(spark, cfg, valid, files, bundle, spec, digest, version, score_date, run)
    run.details["scores_version"] = committed

    with run.stage("monitor"):
        mon = monitor(spark, cfg, committed, score_date, valid, bundle.manifest)
    run.counts["scored"] = mon["scored"]
    run.details["monitoring"] = mon
    code, reason = _exit_code(mon, score_date)
    with run.stage("score_runs"):
        append_score_run(spark, cfg, score_run_record(
            run_id=run.run_id, started_at=run.started_at, score_date=score_date, model_version=version,
            bundle_sha256=digest, scores_version=committed, features_rows=run.counts.get("features_rows"),
            rejected=run.counts.get("rejected"), monitoring=mon, exit_code=code))
    log.info("score %s: %d scored, %d rejected, bands %s, drift %s", score_date, mon["scored"],
             run.counts["rejected"], mon["band_counts"], mon["drift"])
    return run.result(code, reason)


def _python_worker_error(exc: BaseException) -> str | None:
    """The ``Type: message`` line of a Python exception raised in a Spark task, or None for other errors."""
    text = str(exc)
    if "PythonException" not in type(exc).__name__ and "Traceback (most recent call last)" not in text:
        return None
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for ln in reversed(lines):
        head = ln.split(":", 1)[0]
        if ":" in ln and head.replace(".", "").replace("_", "").isalnum() and head[:1].isalpha():
            return ln[:500]
    return lines[-1][:500] if lines else None


