"""What the scoring job reads and checks before it scores: the features partition, the bundle, the rows.

Nothing here writes; every check names the table, partition, bundle version or rule that failed.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from credspark.config import Config, ScoreConfig
from credspark.errors import ContractError, InputError, MissingDataError
from credspark.faults import SCORE_FAIL_AFTER_BATCHES, injected
from credspark.features.encoding import encoded_spec
from credspark.models.bundle import Bundle, BundleError
from credspark.models.spec import FeatureSpec, SpecMismatchError, encoding_columns
from credspark.scoring.partition import (
    PartitionScorer,
    ScoreParams,
    ScoringModel,
    load_bundle_from_files,
    output_columns,
)
from credspark.scoring.scorecard import ScorecardScale

__all__ = [
    "ModelRefusedError",
    "missing_partition",
    "read_feature_partition",
    "count_rows",
    "unseen_category_counts",
    "load_verified_bundle",
    "score_params",
    "reject_reasons",
    "reject_reason",
    "udf_output_schema",
    "partition_scores",
    "scored_rows",
    "reason_method",
    "ArrowBatchSize",
]

_ARROW_CONF = "spark.sql.execution.arrow.maxRecordsPerBatch"


class ModelRefusedError(InputError):
    """The bundle failed verification (tampered, malformed) or does not fit the feature table (exit 4)."""


def missing_partition(ref: object, score_date: dt.date, why: str = "") -> MissingDataError:
    """The error for a features partition that does not exist (says how to build it)."""
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
        raise missing_partition(ref, score_date, ": the features table does not exist")
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


def unseen_category_counts(features: DataFrame, spec: FeatureSpec) -> dict[str, int]:
    """Rows per categorical attribute of the bundle's encoding (``spec``) whose ``<name>__other`` is 1.

    ``features`` carry the encoding's 0/1 features; no Spark job when the bundle has no categorical attribute.
    """
    others = {name: encoding_columns(name, cats)[-1] for name, cats in spec.category_encoding.items()}
    if not others:
        return {}
    row = features.agg(*(F.sum(F.col(col)).alias(name) for name, col in others.items())).first()
    return {name: int(row[name] or 0) for name in others}


def load_verified_bundle(
    cfg: Config, version: str | None, spec: FeatureSpec, model_uri: str | None = None
) -> tuple[dict[str, bytes], Bundle, str, str]:
    """Resolve, read and verify the bundle to score with.

    The bytes returned are exactly the bytes verified (hashes, format, FeatureSpec), so what the executors
    load is what was checked here.

    Args:
        cfg: Job config (warehouse, score.model_name).
        version: ``--model-version``, or None for ``current``.
        spec: The feature table's FeatureSpec; the bundle's must equal it extended with the bundle's categorical
            encoding (:func:`credspark.features.encoding.encoded_spec`).
        model_uri: ``--model-uri`` (``models:/NAME@champion``): the bundle of an MLflow model version
            (:func:`credspark.tracking.fetch_bundle_files`) instead of the store's. Defaults to None.

    Returns:
        ``(files, bundle, version name, bundle directory or model URI)``.

    Raises:
        MissingDataError: Nothing published / no such version.
        ModelRefusedError: Tampered or malformed bundle, or a FeatureSpec mismatch.
    """
    from credspark.io.model_store import read_bundle, resolve_bundle_dir
    from credspark.io.warehouse import location_name

    name = model_uri or version or "current"  # named in the errors below until the bundle's own name is known
    try:
        if model_uri:
            from credspark.tracking import fetch_bundle_files

            files, name = fetch_bundle_files(cfg.tracking, model_uri)
            where = model_uri
        else:
            bundle_dir = resolve_bundle_dir(cfg.warehouse.path, cfg.score.model_name, version)
            name, where = location_name(bundle_dir), str(bundle_dir)
            files = read_bundle(bundle_dir)
        bundle = load_bundle_from_files(files)
        # Categorical attributes are text in the table: the bundle reads the rows with its encoding applied.
        encoded_spec(spec, bundle.spec.category_encoding).check_compatible(bundle.spec, what=f"bundle {where}")
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
        scale=ScorecardScale.of(sc),
        band_cutoffs=tuple(sc.band_cutoffs),
        band_labels=tuple(sc.band_labels),
        n_reasons=sc.n_reasons,
        model_batch_size=sc.model_batch_size,
        reason_contribs=sc.reason_contribs,
        torch_threads=sc.torch_threads,
        xgb_threads=sc.xgb_threads,
        reason_groups=tuple((g, tuple(m)) for g, m in sc.reason_groups.items()),
        fail_after_batches=injected(SCORE_FAIL_AFTER_BATCHES),
    )


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


def partition_scores(features: DataFrame, scorer: PartitionScorer) -> DataFrame:
    """The partition scorer's output for feature rows (lazy; the model runs in ``mapInPandas``).

    Args:
        features: Feature rows that passed :func:`reject_reason`.
        scorer: The partition scorer (broadcast bundle + parameters + columns to keep).

    Returns:
        :func:`~credspark.scoring.partition.output_columns`, then the scorer's ``keep`` columns.
    """
    # Only the columns the model reads (and those kept) travel to Python; the rest stay in the JVM.
    spec = FeatureSpec.from_dict(scorer.params.spec)
    inputs = features.select("customer_id", *spec.static_names, "seq", "seq_mask", *scorer.keep)
    schema = udf_output_schema(scorer.params.n_reasons)
    for col in scorer.keep:
        schema = schema.add(inputs.schema[col])
    return inputs.mapInPandas(scorer, schema)


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
    return partition_scores(features, scorer).select(
        "customer_id",
        F.lit(score_date).alias("score_date"),
        "pd",
        "score",
        "risk_band",
        *(f"reason_{i + 1}" for i in range(n)),
        F.lit(model_version).alias("model_version"),
        F.lit(run_id).alias("run_id"),
    )


def reason_method(bundle: Bundle, params: ScoreParams) -> dict[str, Any]:
    """How the reason codes of this bundle are computed (method, reason groups, contributions).

    Built on the driver before any task runs, so a ``score.reason_groups`` member the bundle does not have
    fails the job here (ConfigError naming it).
    """
    model = ScoringModel(bundle, xgb_threads=params.xgb_threads, reason_groups=dict(params.reason_groups))
    return {"method": model.reason_map.method, "groups": list(model.reason_map.groups),
            "contributions": params.reason_contribs}


class ArrowBatchSize:
    """Set ``maxRecordsPerBatch`` for a scoring query and restore it afterwards (a session-wide setting).

    Args:
        spark: The session.
        size: Rows per Arrow batch (``score.arrow_batch_size``); None leaves the session's setting.
    """

    def __init__(self, spark: SparkSession, size: int | None) -> None:
        self.spark, self.size, self.old = spark, size, None

    def __enter__(self) -> ArrowBatchSize:
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
