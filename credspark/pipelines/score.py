"""The nightly scoring job: the features partition of a score date -> the ``scores`` partition + monitoring.

Order of work (nothing is written before every check passed):

1. read the ``features`` partition ``as_of_date = D`` (``--build-features`` builds it first) and rebuild its
   FeatureSpec from the table properties;
2. resolve the bundle (``current`` or ``--model-version``), read its files into memory and verify exactly
   those bytes (hashes, format, FeatureSpec == the feature table's); any mismatch stops the job here;
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

import argparse
import datetime as dt
import functools
import json
import logging
import operator
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from credspark.config import Config, ScoreConfig
from credspark.errors import (
    EXIT_DRIFT,
    EXIT_OK,
    ConfigError,
    ContractError,
    CredsparkError,
    InputError,
    MissingDataError,
    RejectThresholdError,
)
from credspark.io.runs import RunSummary
from credspark.models.bundle import Bundle, BundleError
from credspark.models.spec import FeatureSpec, SpecMismatchError
from credspark.scoring.drift import (
    drift_level,
    inner_edges,
    psi_from_shares,
    reference_distribution,
    worst_level,
)
from credspark.scoring.partition import (
    PartitionScorer,
    ScoreParams,
    bundle_digest,
    load_bundle_from_files,
    output_columns,
    read_bundle_files,
)
from credspark.scoring.scorecard import ScorecardScale

__all__ = [
    "ModelRefusedError",
    "ConcurrentWriteError",
    "ScoringFailedError",
    "score_portfolio",
    "count_rows",
    "reject_reasons",
    "parse_score_date",
    "check_score_config",
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

_ARROW_CONF = "spark.sql.execution.arrow.maxRecordsPerBatch"


class ModelRefusedError(InputError):
    """The bundle failed verification (tampered, malformed) or does not fit the feature table (exit 4)."""


class ScoringFailedError(CredsparkError):
    """The model raised inside a Spark task; the message carries the Python error's last line (exit 1)."""


class ConcurrentWriteError(CredsparkError):
    """Another run kept winning the commit of the same scores partition; retries exhausted (exit 1)."""


# ------------------------------------------------------------------------------------------- arguments
def parse_score_date(text: str | None) -> dt.date:
    """``--score-date`` as a date; ConfigError names the flag."""
    if not text:
        raise ConfigError("--score-date DATE is required (YYYY-MM-DD, the as-of date of the features)")
    try:
        return dt.date.fromisoformat(text)
    except ValueError as e:
        raise ConfigError(f"--score-date {text!r}: expected a date YYYY-MM-DD") from e


def check_score_config(sc: ScoreConfig) -> None:
    """Refuse a ``score`` section that cannot work, naming the key (before any data is read)."""
    if len(sc.band_labels) != len(sc.band_cutoffs) + 1:
        raise ConfigError(f"score.band_labels: {len(sc.band_cutoffs)} cut-offs need {len(sc.band_cutoffs) + 1} "
                          f"labels, got {len(sc.band_labels)}")
    if any(b <= a for a, b in zip(sc.band_cutoffs, sc.band_cutoffs[1:])):
        raise ConfigError(f"score.band_cutoffs must be strictly ascending, got {list(sc.band_cutoffs)}")
    if len(set(sc.band_labels)) != len(sc.band_labels):
        raise ConfigError("score.band_labels must be distinct")
    for key, value in (("model_batch_size", sc.model_batch_size), ("n_reasons", sc.n_reasons),
                       ("psi_bins", sc.psi_bins), ("torch_threads", sc.torch_threads),
                       ("xgb_threads", sc.xgb_threads)):
        if value < 1:
            raise ConfigError(f"score.{key} must be >= 1, got {value}")
    if sc.arrow_batch_size is not None and sc.arrow_batch_size < 1:
        raise ConfigError(f"score.arrow_batch_size must be >= 1 or null, got {sc.arrow_batch_size}")
    if not (sc.base_odds > 0 and sc.pdo > 0):
        raise ConfigError("score.base_odds and score.pdo must be > 0")
    if not 0 < sc.psi_warn <= sc.psi_fail:
        raise ConfigError(f"score.psi_warn ({sc.psi_warn}) must be > 0 and <= score.psi_fail ({sc.psi_fail})")
    if any(not 0.0 <= q <= 1.0 for q in sc.quantiles):
        raise ConfigError(f"score.quantiles must lie in [0, 1], got {list(sc.quantiles)}")
    if sc.write_retries < 0:
        raise ConfigError(f"score.write_retries must be >= 0, got {sc.write_retries}")


# ----------------------------------------------------------------------------------------------- inputs
def _missing_partition(ref: object, score_date: dt.date, why: str = "") -> MissingDataError:
    return MissingDataError(f"features partition as_of_date={score_date.isoformat()} does not exist{why} "
                            f"(table {ref}; build it with jobs/build_features.py --as-of {score_date} or pass "
                            "--build-features)")


def read_feature_partition(spark: SparkSession, cfg: Config, score_date: dt.date) -> tuple[DataFrame, FeatureSpec]:
    """The features partition ``as_of_date = score_date`` (lazy) and the feature table's FeatureSpec.

    An empty result means the partition does not exist; :func:`score_portfolio` finds out with the row count
    it needs anyway (one Spark job fewer).

    Args:
        spark: The session.
        cfg: Job config (tables, warehouse).
        score_date: The as-of date to score.

    Returns:
        ``(rows, spec)``.

    Raises:
        MissingDataError: The table does not exist (the message names the partition and the table).
        ContractError: The table's spec properties are missing or disagree with its columns.
    """
    from credspark.features.spec import spec_from_table
    from credspark.io.tables import get_properties, read_table, table_exists, table_ref

    ref = table_ref(cfg, cfg.tables.features)
    if not table_exists(spark, ref):
        raise _missing_partition(ref, score_date, ": the features table does not exist")
    table = read_table(spark, ref)
    try:
        spec = spec_from_table(table.schema, get_properties(spark, ref))
    except SpecMismatchError as e:
        raise ContractError(ref.name, None, "the FeatureSpec properties must describe the table", str(e)) from e
    return table.where(F.col("as_of_date") == F.lit(score_date)), spec


def count_rows(features: DataFrame, spec: FeatureSpec) -> tuple[int, dict[str, int]]:
    """Rows of the partition and, per :func:`reject_reasons` text, how many cannot be scored (one Spark job)."""
    reason = reject_reason(spec)
    texts = reject_reasons(spec)
    row = features.agg(
        F.count(F.lit(1)).alias("n"),
        *(F.sum(F.when(reason == F.lit(t), 1).otherwise(0)).alias(f"r{i}") for i, t in enumerate(texts)),
    ).first()
    by_reason = {t: int(row[f"r{i}"] or 0) for i, t in enumerate(texts)}
    return int(row["n"]), {t: c for t, c in by_reason.items() if c}


def load_verified_bundle(
    cfg: Config, version: str | None, spec: FeatureSpec, model_uri: str | None = None
) -> tuple[dict[str, bytes], Bundle, str, Path | str]:
    """Resolve, read and verify the bundle to score with.

    The bytes returned are exactly the bytes verified (hashes, format, FeatureSpec), so what the executors
    load is what was checked here.

    Args:
        cfg: Job config (warehouse, score.model_name).
        version: ``--model-version``, or None for ``current``.
        spec: The feature table's FeatureSpec; the bundle's must be equal.
        model_uri: ``--model-uri`` (``models:/NAME@champion``): the bundle of an MLflow model version
            (:func:`credspark.tracking.fetch_bundle_files`) instead of the store's. Defaults to None.

    Returns:
        ``(files, bundle, version name, bundle directory or model URI)``.

    Raises:
        MissingDataError: Nothing published / no such version.
        ModelRefusedError: Tampered or malformed bundle, or a FeatureSpec mismatch.
    """
    from credspark.io.model_store import resolve_bundle_dir

    name = model_uri or version or "current"  # named in the errors below until the bundle's own name is known
    try:
        if model_uri:
            from credspark.tracking import fetch_bundle_files

            files, name = fetch_bundle_files(cfg.tracking, model_uri)
            where: Path | str = model_uri
        else:
            where = resolve_bundle_dir(cfg.warehouse.path, cfg.score.model_name, version)
            name = where.name
            files = read_bundle_files(where)
        bundle = load_bundle_from_files(files, expected_spec=spec)
    except SpecMismatchError as e:  # BundleSpecError is both a BundleError and a SpecMismatchError
        raise ModelRefusedError(f"model {cfg.score.model_name} version {name} does not fit the "
                                f"features table: {e}") from e
    except BundleError as e:
        raise ModelRefusedError(f"model {model_uri or cfg.score.model_name} version {name} refused: {e}") from e
    return files, bundle, name, where


def score_params(sc: ScoreConfig, digest: str, spec: FeatureSpec) -> ScoreParams:
    """The partition scorer's parameters from the ``score`` config section."""
    return ScoreParams(
        digest=digest,
        spec=spec.to_dict(),
        scale=ScorecardScale(base_points=sc.base_points, base_odds=sc.base_odds, pdo=sc.pdo),
        band_cutoffs=tuple(sc.band_cutoffs),
        band_labels=tuple(sc.band_labels),
        n_reasons=sc.n_reasons,
        model_batch_size=sc.model_batch_size,
        reason_contribs=sc.reason_contribs,
        torch_threads=sc.torch_threads,
        xgb_threads=sc.xgb_threads,
        fail_after_batches=sc.fail_after_batches,
    )


# ------------------------------------------------------------------------------------------- transforms
def _reject_rules(spec: FeatureSpec) -> list[tuple[Column, str]]:
    return [
        (F.col("customer_id").isNull(), "customer_id is null"),
        (F.col("seq").isNull(), "seq is null"),
        (F.size("seq") != F.lit(spec.T * spec.C), f"seq length != T*C ({spec.T * spec.C})"),
        (F.col("seq_mask").isNull(), "seq_mask is null"),
        (F.size("seq_mask") != F.lit(spec.T), f"seq_mask length != T ({spec.T})"),
    ]


def reject_reasons(spec: FeatureSpec) -> list[str]:
    """The texts :func:`reject_reason` can give, in order of precedence."""
    return [text for _, text in _reject_rules(spec)]


def reject_reason(spec: FeatureSpec) -> Column:
    """Why a feature row cannot be scored (null when it can): null id, or ``seq``/``seq_mask`` null or mis-sized."""
    rules = _reject_rules(spec)
    out = F.when(rules[0][0], F.lit(rules[0][1]))
    for cond, text in rules[1:]:
        out = out.when(cond, F.lit(text))
    return out


def udf_output_schema(n_reasons: int) -> T.StructType:
    """Schema of the partition scorer's output (:func:`credspark.scoring.partition.output_columns`)."""
    types = {"customer_id": T.LongType(), "pd": T.DoubleType(), "score": T.DoubleType(),
             "risk_band": T.StringType()}
    return T.StructType([T.StructField(c, types.get(c, T.StringType()), True) for c in output_columns(n_reasons)])


def scored_rows(
    features: DataFrame,
    scorer: PartitionScorer,
    *,
    score_date: dt.date,
    model_version: str,
    run_id: str,
) -> DataFrame:
    """The ``scores`` rows of valid feature rows (lazy; the model runs in ``mapInPandas``).

    Args:
        features: Feature rows that passed :func:`reject_reason`.
        scorer: The partition scorer (broadcast bundle + parameters).
        score_date: Written into every row.
        model_version: Written into every row.
        run_id: Written into every row.

    Returns:
        customer_id, score_date, pd, score, risk_band, reason_1..n, model_version, run_id.
    """
    n = scorer.params.n_reasons
    # Only the columns the model reads travel to Python (labels and other columns stay in the JVM).
    spec = FeatureSpec.from_dict(scorer.params.spec)
    inputs = features.select("customer_id", *spec.static_names, "seq", "seq_mask")
    return inputs.mapInPandas(scorer, udf_output_schema(n)).select(
        "customer_id",
        F.lit(score_date).alias("score_date"),
        "pd",
        "score",
        "risk_band",
        *(f"reason_{i + 1}" for i in range(n)),
        F.lit(model_version).alias("model_version"),
        F.lit(run_id).alias("run_id"),
    )


# ---------------------------------------------------------------------------------------------- writing
def _is_write_conflict(exc: BaseException) -> bool:
    """A Delta optimistic-concurrency conflict (another writer committed first)."""
    try:
        from delta.exceptions import (
            ConcurrentAppendException,
            ConcurrentDeleteDeleteException,
            ConcurrentDeleteReadException,
            ConcurrentTransactionException,
            ConcurrentWriteException,
            DeltaConcurrentModificationException,
            MetadataChangedException,
            ProtocolChangedException,
        )

        kinds: tuple[type, ...] = (
            ConcurrentAppendException, ConcurrentDeleteDeleteException, ConcurrentDeleteReadException,
            ConcurrentTransactionException, ConcurrentWriteException, DeltaConcurrentModificationException,
            MetadataChangedException, ProtocolChangedException,
        )  # fmt: skip
    except ImportError:  # pragma: no cover - delta-spark is a dependency
        kinds = ()
    if kinds and isinstance(exc, kinds):
        return True
    # Delta versions differ in how they surface the JVM class; its name is in the message either way.
    text = f"{type(exc).__name__}: {exc}"
    return any(k in text for k in ("ConcurrentAppendException", "ConcurrentDeleteDeleteException",
                                   "ConcurrentDeleteReadException", "ConcurrentTransactionException",
                                   "ConcurrentWriteException", "MetadataChangedException",
                                   "ProtocolChangedException", "DELTA_CONCURRENT"))


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

    A concurrent run writing the same date makes one of the two commits fail with a Delta conflict; the
    loser retries (recomputing its rows) up to ``retries`` times, so the partition always ends up holding
    exactly one run's complete rows.

    Args:
        spark: The session.
        cfg: Job config.
        scores: The rows (lazy).
        score_date: The partition.
        run_id: Stored as the commit's userMetadata (finds the version afterwards).
        retries: Retries after a conflict. Defaults to 2.
        backoff_s: Sleep before the first retry (doubles each time). Defaults to 1.0.

    Returns:
        The Delta version this run committed.

    Raises:
        ConcurrentWriteError: Still conflicting after the retries.
    """
    from credspark.io.tables import commit_version, overwrite_partitions, table_ref

    ref = table_ref(cfg, cfg.tables.scores)
    attempt = 0
    while True:
        try:
            overwrite_partitions(scores, ref, "score_date", [score_date], user_metadata=run_id)
            break
        except Exception as e:
            if not _is_write_conflict(e):
                raise
            if attempt >= retries:
                raise ConcurrentWriteError(
                    f"scores partition score_date={score_date}: a concurrent run kept committing first "
                    f"({attempt + 1} attempts; {type(e).__name__}); the partition holds that run's complete rows"
                ) from e
            attempt += 1
            log.warning("scores partition %s: concurrent write conflict (%s); retry %d of %d", score_date,
                        type(e).__name__, attempt, retries)
            time.sleep(backoff_s * 2 ** (attempt - 1))
    version = commit_version(spark, ref, run_id)
    if version is None:  # pragma: no cover - the commit just happened
        raise ConcurrentWriteError(f"scores: cannot find the commit of run {run_id} in the table history")
    return version


# ------------------------------------------------------------------------------------------- monitoring
def _bucket(col: Column, edges: Sequence[float]) -> Column:
    """Bin index of a value: the number of edges <= value (null stays null), as credspark.scoring.drift."""
    if not edges:
        return F.when(col.isNotNull(), F.lit(0))
    return functools.reduce(operator.add, [(col >= F.lit(float(e))).cast("int") for e in edges])


def _bin_count_columns(key: str, col: Column, edges: Sequence[float]) -> list[Column]:
    bucket = _bucket(col, edges)
    return [F.sum(F.when(bucket == b, 1).otherwise(0)).alias(f"{key}__{b}") for b in range(len(edges) + 1)]


def _counts_from_row(row: Any, key: str, n_bins: int) -> list[int]:
    return [int(row[f"{key}__{b}"] or 0) for b in range(n_bins)]


def _psi_entry(expected: Sequence[float], actual: Sequence[int], sc: ScoreConfig, **extra: Any) -> dict[str, Any]:
    if sum(actual) == 0:
        return {"value": None, "level": "not_available", "reason": "no values in this run", **extra}
    value = psi_from_shares(expected, actual)
    return {"value": round(value, 6), "level": drift_level(value, sc.psi_warn, sc.psi_fail), **extra}


def _not_available(reason: str, **extra: Any) -> dict[str, Any]:
    return {"value": None, "level": "not_available", "reason": reason, **extra}


def training_distributions(manifest: Mapping[str, Any]) -> dict[str, Any] | None:
    """The training distributions stored in a bundle manifest, in the trainer's order of importance, or None.

    Looked up at ``metadata.training_data.distributions`` (where ``save_bundle`` puts the trainer's
    metadata) and, failing that, ``training_data.distributions``. The manifest is written with sorted keys,
    so the order comes from ``training_data.distribution_order`` when present (names not listed follow).
    """
    for holder in (manifest.get("metadata") or {}, manifest):
        data = holder.get("training_data") if isinstance(holder, Mapping) else None
        dists = data.get("distributions") if isinstance(data, Mapping) else None
        if isinstance(dists, Mapping) and dists:
            order = [n for n in (data.get("distribution_order") or []) if n in dists]
            return {n: dists[n] for n in [*order, *(n for n in dists if n not in order)]}
    return None


def _previous_score_date(snapshot: DataFrame, score_date: dt.date) -> dt.date | None:
    return snapshot.where(F.col("score_date") < F.lit(score_date)).agg(F.max("score_date")).first()[0]


def _monitor(
    spark: SparkSession,
    cfg: Config,
    version: int,
    score_date: dt.date,
    features: DataFrame,
    manifest: Mapping[str, Any],
) -> dict[str, Any]:
    """Counts, quantiles, bands and PSIs of the partition this run committed (Spark aggregations only).

    Three small jobs over the scores snapshot (the previous score date, its score quantiles, then one grouped
    aggregation over both dates) and one over the features when the bundle stores feature distributions.
    """
    from credspark.io.tables import read_table_version, table_ref

    sc = cfg.score
    snapshot = read_table_version(spark, table_ref(cfg, cfg.tables.scores), version)
    dists = training_distributions(manifest) or {}
    accuracy = max(1, round(1.0 / sc.quantile_error))

    prev_date = _previous_score_date(snapshot, score_date)
    prev_edges = None
    if prev_date is not None:
        # Probability 0 gives the minimum, the others the inner quantiles (as credspark.metrics.psi).
        probs = [b / sc.psi_bins for b in range(sc.psi_bins)]
        q = (snapshot.where(F.col("score_date") == F.lit(prev_date))
             .agg(F.percentile_approx("score", probs, accuracy)).first()[0])
        prev_edges = inner_edges(q[1:], q[0]) if q else None

    ref_dists: dict[str, tuple[list[float], list[float]] | str] = {}
    for name in ("score", "pd"):
        if name in dists:
            try:
                ref_dists[name] = reference_distribution(dists[name])
            except ValueError as e:
                ref_dists[name] = f"malformed training distribution: {e}"

    aggs = [F.count(F.lit(1)).alias("n"),
            F.percentile_approx("pd", list(sc.quantiles), accuracy).alias("pd_q")]
    aggs += [F.sum(F.when(F.col("risk_band") == F.lit(b), 1).otherwise(0)).alias(f"band__{i}")
             for i, b in enumerate(sc.band_labels)]
    if prev_edges is not None:
        aggs += _bin_count_columns("prev", F.col("score"), prev_edges)
    for name, ref in ref_dists.items():
        if not isinstance(ref, str):
            aggs += _bin_count_columns(f"train_{name}", F.col(name), ref[0])
    dates = [score_date] + ([prev_date] if prev_date is not None else [])
    rows = {r["score_date"]: r for r in (snapshot.where(F.col("score_date").isin(dates))
                                          .groupBy("score_date").agg(*aggs).collect())}  # <= 2 rows
    row = rows[score_date]

    psi: dict[str, Any] = {}
    if prev_edges is None:
        psi["score_vs_previous"] = _not_available("no earlier score date in the scores table")
    else:
        n_bins = len(prev_edges) + 1
        psi["score_vs_previous"] = _psi_entry(
            _counts_from_row(rows[prev_date], "prev", n_bins), _counts_from_row(row, "prev", n_bins), sc,
            previous_score_date=prev_date.isoformat())
    for name in ("score", "pd"):
        ref = ref_dists.get(name)
        if ref is None:
            psi[f"{name}_vs_training"] = _not_available(f"the bundle stores no training distribution of '{name}'")
        elif isinstance(ref, str):
            psi[f"{name}_vs_training"] = _not_available(ref)
        else:
            psi[f"{name}_vs_training"] = _psi_entry(ref[1], _counts_from_row(row, f"train_{name}", len(ref[1])), sc)
    psi["features"] = _feature_psi(features, dists, sc)

    levels = [v["level"] for k, v in psi.items() if k != "features"] + [v["level"] for v in psi["features"].values()]
    return {
        "scored": int(row["n"]),
        "pd_quantiles": {str(q): round(float(v), 8) for q, v in zip(sc.quantiles, row["pd_q"] or [])},
        "band_counts": {b: int(row[f"band__{i}"] or 0) for i, b in enumerate(sc.band_labels)},
        "psi": psi,
        "drift": worst_level(levels),
    }


def _feature_psi(features: DataFrame, dists: Mapping[str, Any], sc: ScoreConfig) -> dict[str, Any]:
    """PSI of the first ``psi_top_features`` stored feature distributions against this partition's values."""
    names = [k for k in dists if k not in ("score", "pd")][: sc.psi_top_features]
    out: dict[str, Any] = {}
    refs: dict[str, tuple[list[float], list[float]]] = {}
    columns = set(features.columns)
    for name in names:
        if name not in columns:
            out[name] = _not_available("not a column of the features table")
            continue
        try:
            refs[name] = reference_distribution(dists[name])
        except ValueError as e:
            out[name] = _not_available(f"malformed training distribution: {e}")
    if refs:
        aggs = [c for i, (name, (edges, _)) in enumerate(refs.items())
                for c in _bin_count_columns(f"f{i}", F.col(name).cast("double"), edges)]
        row = features.agg(*aggs).first()
        for i, (name, (_, shares)) in enumerate(refs.items()):
            out[name] = _psi_entry(shares, _counts_from_row(row, f"f{i}", len(shares)), sc)
    return {name: out[name] for name in names}


def _score_runs_schema() -> T.StructType:
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


def _append_score_run(spark: SparkSession, cfg: Config, record: dict[str, Any]) -> None:
    from credspark.io.tables import append_table, table_ref

    df = spark.createDataFrame([record], schema=_score_runs_schema())  # one row built on the driver
    append_table(df, table_ref(cfg, cfg.tables.score_runs))


# --------------------------------------------------------------------------------------------- the job
def _build_features_first(spark: SparkSession, cfg: Config, score_date: dt.date, summary: RunSummary) -> None:
    """Run the feature pipeline for the score date, recording its own summary inside this run's."""
    from credspark.pipelines.features import build_features

    sub = RunSummary(job="build_features", run_id=f"{summary.run_id}-features", started_at=summary.started_at)
    ns = argparse.Namespace(as_of=score_date.isoformat(), date_from=None, date_to=None, every="month")
    try:
        build_features(spark, cfg, ns, sub)
        sub.status = "ok"
    finally:
        summary.details["build_features"] = {k: v for k, v in sub.to_dict().items() if k != "versions"}


class _ArrowBatchSize:
    """Set ``maxRecordsPerBatch`` for the scoring query and restore it afterwards (a session-wide setting)."""

    def __init__(self, spark: SparkSession, size: int | None) -> None:
        self.spark, self.size, self.old = spark, size, None

    def __enter__(self) -> _ArrowBatchSize:
        if self.size is not None:
            self.old = self.spark.conf.get(_ARROW_CONF, None)
            self.spark.conf.set(_ARROW_CONF, str(self.size))
        return self

    def __exit__(self, *exc: object) -> None:
        if self.size is not None:
            if self.old is None:
                self.spark.conf.unset(_ARROW_CONF)
            else:
                self.spark.conf.set(_ARROW_CONF, self.old)


def score_portfolio(spark: SparkSession, cfg: Config, args: argparse.Namespace, summary: RunSummary) -> int:
    """The scoring job body (for ``run_job``): score the features of ``--score-date`` into ``scores``.

    Args:
        spark: The session.
        cfg: Job config (``score`` section, tables, warehouse, validation).
        args: ``score_date`` (str), ``model_version`` (str | None), ``build_features`` (bool).
        summary: The run summary to fill (counts, monitoring, model version).

    Returns:
        0, or 3 (``EXIT_DRIFT``) when a PSI reached ``score.psi_fail`` (the scores are written).
    """
    sc = cfg.score
    check_score_config(sc)
    score_date = parse_score_date(getattr(args, "score_date", None))
    summary.params["score_date"] = score_date.isoformat()
    if getattr(args, "build_features", False):
        with summary.stage("build_features"):
            _build_features_first(spark, cfg, score_date, summary)

    with summary.stage("read_features"):
        features, spec = read_feature_partition(spark, cfg, score_date)
        total, rejected_by_reason = count_rows(features, spec)
    if total == 0:
        from credspark.io.tables import table_ref

        raise _missing_partition(table_ref(cfg, cfg.tables.features), score_date)
    rejected = sum(rejected_by_reason.values())
    summary.counts.update(features_rows=total, rejected=rejected)
    if rejected:
        summary.details["rejected_by_reason"] = rejected_by_reason
        log.warning("score %s: %d of %d feature rows cannot be scored: %s", score_date, rejected, total,
                    rejected_by_reason)

    with summary.stage("verify_bundle"):
        files, bundle, version, bundle_dir = load_verified_bundle(cfg, getattr(args, "model_version", None), spec,
                                                                 getattr(args, "model_uri", None))
    digest = bundle_digest(files)
    summary.details.update(model_name=sc.model_name, model_version=version, bundle_dir=str(bundle_dir),
                           bundle_sha256=digest, use_raw_static=bundle.use_raw_static)
    log.info("score %s: model %s version %s (sha256 %s...)", score_date, sc.model_name, version, digest[:12])

    if rejected == total or rejected / total > cfg.validation.max_reject_fraction:
        raise RejectThresholdError(
            f"features partition as_of_date={score_date}: {rejected} of {total} rows cannot be scored "
            f"(> validation.max_reject_fraction={cfg.validation.max_reject_fraction}, or none left): "
            f"{rejected_by_reason}")
    valid = features.where(reject_reason(spec).isNull())

    params = score_params(sc, digest, spec)
    summary.details["reason_codes"] = _reason_method(bundle, params)
    bc = spark.sparkContext.broadcast(dict(files))
    try:
        scores = scored_rows(valid, PartitionScorer(files=bc, params=params), score_date=score_date,
                             model_version=version, run_id=summary.run_id)
        with summary.stage("score_and_write"), _ArrowBatchSize(spark, sc.arrow_batch_size):
            committed = write_scores(spark, cfg, scores, score_date, summary.run_id, retries=sc.write_retries)
    except Exception as e:
        line = _python_worker_error(e)
        if line is None:
            raise
        raise ScoringFailedError(f"scoring failed in a Python worker, nothing was committed: {line}") from e
    finally:
        bc.destroy()
    summary.details["scores_version"] = committed

    with summary.stage("monitor"):
        mon = _monitor(spark, cfg, committed, score_date, valid, bundle.manifest)
    summary.counts["scored"] = mon["scored"]
    summary.details["monitoring"] = mon
    code = EXIT_DRIFT if mon["drift"] == "fail" else EXIT_OK
    if code == EXIT_DRIFT:
        summary.reason = "drift beyond score.psi_fail: " + _drift_text(mon["psi"], "fail")
    elif mon["drift"] == "warn":
        log.warning("score %s: drift warning: %s", score_date, _drift_text(mon["psi"], "warn"))
    with summary.stage("score_runs"):
        _append_score_run(spark, cfg, _score_run_record(summary, score_date, version, digest, committed, mon, code))
    log.info("score %s: %d scored, %d rejected, bands %s, drift %s", score_date, mon["scored"], rejected,
             mon["band_counts"], mon["drift"])
    return code


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


def _reason_method(bundle: Bundle, params: ScoreParams) -> dict[str, Any]:
    from credspark.scoring.partition import ScoringModel

    model = ScoringModel(bundle, xgb_threads=params.xgb_threads)
    return {"method": model.reason_map.method, "groups": list(model.reason_map.groups),
            "contributions": params.reason_contribs}


def _drift_text(psi: Mapping[str, Any], level: str) -> str:
    items = [(k, v) for k, v in psi.items() if k != "features"] + [(f"feature {k}", v)
                                                                  for k, v in psi["features"].items()]
    return ", ".join(f"{k} PSI {v['value']}" for k, v in items if v["level"] == level)


def _score_run_record(summary: RunSummary, score_date: dt.date, version: str, digest: str, committed: int,
                      mon: Mapping[str, Any], code: int) -> dict[str, Any]:
    psi = mon["psi"]
    prev = psi["score_vs_previous"].get("previous_score_date")
    return {
        "run_id": summary.run_id,
        "score_date": score_date,
        "model_version": version,
        "bundle_sha256": digest,
        "started_at": summary.started_at,
        # Wall-clock time stamps the record only; it decides nothing about what data is read.
        "finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "scores_version": committed,
        "features_rows": summary.counts.get("features_rows"),
        "scored": mon["scored"],
        "rejected": summary.counts.get("rejected"),
        "pd_quantiles": mon["pd_quantiles"],
        "band_counts": mon["band_counts"],
        "psi_score_vs_previous": psi["score_vs_previous"]["value"],
        "previous_score_date": dt.date.fromisoformat(prev) if prev else None,
        "psi_score_vs_training": psi["score_vs_training"]["value"],
        "psi_features": {k: v["value"] for k, v in psi["features"].items() if v["value"] is not None},
        "drift": mon["drift"],
        "exit_code": code,
        "monitoring_json": json.dumps(mon, sort_keys=True, default=str),
    }
