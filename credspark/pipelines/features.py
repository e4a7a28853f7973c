"""The feature job: clean inputs -> the ``features`` table, one partition per as-of date.

Shape of the computation (two shuffles whatever the number of as-of dates):

1. :func:`~credspark.features.sequences.monthly_activity`: ONE scan of each source into a customer x month
   table with every channel (transactions, statements and the profile row side by side); the job reads the
   closed months from the persisted ``monthly_activity`` table instead (:mod:`credspark.pipelines.monthly`)
   and scans only the as-of month's rows;
2. :func:`~credspark.features.monthly.in_customer_order`: each monthly row paired with the as-of dates it
   precedes (a broadcast of the dates: a backfill never rescans the raw transactions), partitioned by
   customer and sorted by month, so the aggregates round the same way whichever way the rows were made;
3. ONE ``groupBy(customer_id, as_of_date)`` computing the rolling-window aggregates (conditional
   aggregation) and collecting the last T months, turned into the fixed-shape ``seq`` with higher-order
   functions; then profile features, labels by horizon, and one atomic write of all the dates' partitions.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from credspark.config import Config, FeaturesConfig
from credspark.errors import MissingDataError
from credspark.features.attributes import (
    SPEC_KEY,
    attribute_features,
    attribute_spec,
    categorical_columns,
    static_only_rows,
    with_attributes,
)
from credspark.features.labels import default_events, with_labels
from credspark.features.monthly import in_customer_order
from credspark.features.sequences import (
    month_index_of,
    monthly_activity,
    resolve_channels,
    sequence_rows,
    with_sequences,
)
from credspark.features.spec import PROP_SPEC, feature_table_properties
from credspark.features.static import (
    profile_aggregations,
    static_aggregations,
    static_features,
    with_profile_features,
)
from credspark.job_requests import FeaturesRequest
from credspark.models.spec import FeatureSpec
from credspark.pipelines._features_write import summarise_features, write_features
from credspark.runner import JobResult, Run

__all__ = ["FeatureFrames", "build_feature_frames", "build_features", "lookback_start"]

log = logging.getLogger("credspark.features")

#: Input tables the feature job reads behaviour and profiles from (outcomes give the labels).
_FEATURE_SOURCES = ("customers", "transactions", "statements")
_IDENTITY = ("customer_id", "as_of_date")
_TAIL = ("seq", "seq_mask", "label", "feature_version")


@dataclass(frozen=True)
class FeatureFrames:
    """What :func:`build_feature_frames` builds: the rows to write and what describes them.

    Attributes:
        features: customer_id, as_of_date, the static columns, seq, seq_mask, label, feature_version.
        spec: The FeatureSpec of those rows.
        as_of_dates: The as-of dates, ascending.
        present_sources: Input tables used for features.
        absent_sources: Input tables (of customers, transactions, statements, outcomes) that did not exist.
        left_out: Features and channels left out, keyed by their absent source.
        observed_through: Last day defaults are known for (None = unknown: no 0 labels).
        properties: Table properties to store with the table.
    """

    features: DataFrame
    spec: FeatureSpec
    as_of_dates: tuple[dt.date, ...]
    present_sources: tuple[str, ...]
    absent_sources: tuple[str, ...]
    left_out: dict[str, list[str]]
    observed_through: dt.date | None
    properties: dict[str, str] = field(default_factory=dict)


def _default_observed_through(inputs: Mapping[str, DataFrame]) -> dt.date | None:
    """Latest of the outcomes' default dates and the statements' month ends (None when neither exists)."""
    parts = []
    if "outcomes" in inputs:
        parts.append(inputs["outcomes"].agg(F.max("default_date").alias("d")))
    if "statements" in inputs:
        parts.append(inputs["statements"].agg(F.last_day(F.max("statement_month")).alias("d")))
    if not parts:
        return None
    both = parts[0] if len(parts) == 1 else parts[0].unionByName(parts[1])
    return both.agg(F.max("d")).first()[0]  # one scalar to the driver


def _check_dates(as_of_dates: Sequence[dt.date]) -> tuple[dt.date, ...]:
    """Month ends, ascending, without repeats (the rule of :class:`FeaturesRequest`)."""
    return FeaturesRequest(tuple(as_of_dates)).as_of_dates


def lookback_start(as_of_dates: Sequence[dt.date], fc: FeaturesConfig) -> int:
    """Oldest month index the features of these (ascending) as-of dates look at; older months are folded."""
    return month_index_of(as_of_dates[0]) - max(fc.T, max(fc.windows)) + 1


def _merge(*maps: Mapping[str, list[str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for m in maps:
        for k, v in m.items():
            out.setdefault(k, []).extend(v)
    return out


def build_feature_frames(
    inputs: Mapping[str, DataFrame],
    as_of_dates: Sequence[dt.date],
    cfg: Config,
    *,
    observed_through: dt.date | None = None,
    monthly: DataFrame | None = None,
) -> FeatureFrames:
    """Build the feature rows of several as-of dates in one pass over the inputs (lazy: nothing is written).

    Args:
        inputs: Clean input tables keyed ``customers``, ``transactions``, ``statements``, ``outcomes``
            (as :func:`credspark.pipelines.validate.validate_inputs` returns them); absent keys = absent tables.
        as_of_dates: Month-end as-of dates.
        cfg: Job config (the ``features`` section).
        observed_through: Last day defaults are known for; None = the latest outcome default date or
            statement month end found in the inputs.
        monthly: The monthly activity rows to aggregate, as
            :func:`credspark.features.monthly.activity_for_as_of` builds them from the ``monthly_activity``
            table; None = computed from the inputs' raw rows (the from-scratch build; the same features).

    Returns:
        A :class:`FeatureFrames`.

    Raises:
        MissingDataError: Neither transactions nor statements exist and no attribute is declared, or no
            sequence channel can be built.
        ConfigError: Bad as-of dates or feature config.
    """
    fc = cfg.features
    dates = _check_dates(as_of_dates)
    present = tuple(s for s in _FEATURE_SOURCES if s in inputs)
    absent = tuple(s for s in (*_FEATURE_SOURCES, "outcomes") if s not in inputs)
    static_only = "transactions" not in present and "statements" not in present
    if static_only and not (cfg.attributes and "customers" in present):
        raise MissingDataError("features: neither a transactions nor a statements table exists (a static-only "
                               "source needs customers and declared attributes)")
    channels, left_channels = resolve_channels(fc.channels, present)
    if not channels and not static_only:
        raise MissingDataError(f"features: none of the channels {fc.channels} has its source table")
    statics, left_static = static_features(present, fc.windows, behaviour=fc.behaviour)
    statics += attribute_features(cfg.attributes, taken=[*(f.name for f in statics), *_IDENTITY, *_TAIL])
    if observed_through is None:
        observed_through = _default_observed_through(inputs)
    if static_only:
        features = static_only_rows(inputs["customers"], dates).transform(with_profile_features(present))
        return _finish(features, inputs, dates, cfg, statics, channels=(), T=0, present=present, absent=absent,
                       left_out=_merge(left_static, left_channels), observed_through=observed_through)

    if monthly is None:
        monthly = monthly_activity(inputs, until=dates[-1], lookback_start_month=lookback_start(dates, fc))
    grouped = (
        monthly.transform(in_customer_order(dates))
        .groupBy(*_IDENTITY)
        .agg(
            *profile_aggregations(present),
            *static_aggregations(present, fc.windows, behaviour=fc.behaviour),
            sequence_rows(channels, fc.T),
        )
    )
    features = (
        grouped.withColumn("start_month", F.least("open_month", "first_month"))
        # Known at the as-of date: opened by then, or (no open date) active by then.
        .where(F.col("start_month").isNotNull())
        .transform(with_sequences(len(channels), fc.T))
        .transform(with_profile_features(present))
    )
    return _finish(features, inputs, dates, cfg, statics, channels=channels, T=fc.T, present=present,
                   absent=absent,
                   left_out=_merge(left_static, left_channels), observed_through=observed_through)


def _finish(features: DataFrame, inputs: Mapping[str, DataFrame], dates: tuple[dt.date, ...], cfg: Config,
            statics: list, *, channels: tuple[str, ...], T: int, present: tuple[str, ...],  # noqa: N803
            absent: tuple[str, ...], left_out: dict[str, list[str]], observed_through: dt.date | None
            ) -> FeatureFrames:
    """Declared attributes, labels and the version on the population rows; the spec and table properties."""
    fc = cfg.features
    if cfg.attributes:
        features = features.transform(
            with_attributes(cfg.attributes, inputs.get("customers"), inputs.get("attributes"), dates))
    events = (
        inputs["outcomes"].transform(default_events(dates, fc.horizon_months)) if "outcomes" in inputs else None
    )
    features = features.transform(
        with_labels(events, fc.horizon_months, observed_through, exclude_defaulted=fc.exclude_defaulted)
    ).withColumn("feature_version", F.lit(fc.version))
    static_names = [f.name for f in statics]
    # Categorical attributes stay text: the training job fits their encoding (credspark.features.encoding).
    features = features.select(*_IDENTITY, *static_names, *categorical_columns(cfg.attributes), *_TAIL)

    extra = {"horizon_months": fc.horizon_months, "windows": list(fc.windows), "absent_sources": list(absent)}
    if cfg.attributes:
        extra[SPEC_KEY] = attribute_spec(cfg.attributes)
    spec = FeatureSpec(static=tuple(statics), channels=channels, T=T, version=fc.version, extra=extra)
    props = feature_table_properties(spec, absent_sources=absent, left_out=left_out,
                                     horizon_months=fc.horizon_months)
    return FeatureFrames(features, spec, dates, present, absent, left_out, observed_through, props)


# ------------------------------------------------------------------------------------------------ the job


def build_features(spark: SparkSession, cfg: Config, request: FeaturesRequest, run: Run) -> JobResult:
    """The feature job: validate the inputs, build the features of the as-of date(s), write them.

    Args:
        spark: The session.
        cfg: Job config.
        request: The as-of date(s).
        run: The run to record on (counts per as-of date, sources, channels, left-out features).

    Returns:
        Exit code 0 with the counts and details (errors raise and become exit codes in the job runner).
    """
    from credspark.pipelines.monthly import early_plan, events_from, source_versions, update_monthly_activity
    from credspark.pipelines.validate import outcomes_observed_through, validate_inputs

    dates = list(request.as_of_dates)
    log.info("features: %d as-of date(s) %s .. %s", len(dates), dates[0], dates[-1])
    versions = source_versions(spark, cfg)  # before the inputs are read (see source_versions)
    observed = outcomes_observed_through(spark, cfg)
    events = {s: None for s, v in versions.items() if v is not None}
    plan = early_plan(spark, cfg, events, dates, versions, rebuild=request.rebuild_months) if events else None
    # With the earlier months stored, only the rows of the months this run computes are read and validated;
    # not when the outcomes do not record their observed-through date: its fallback reads every statement.
    scope = None if plan is None or observed is None else events_from(plan, dates[-1])
    # validate_inputs times itself (stage "validate"); it is lazy: the build below re-reads the clean rows.
    inputs = validate_inputs(spark, cfg, dates[-1], run.run_id, run, events_from=scope)
    monthly_rows = None
    if any(s in inputs for s in ("transactions", "statements")):  # static-only sources have no monthly rows
        with run.stage("monthly_activity"):
            monthly = update_monthly_activity(
                spark, cfg, inputs, dates, versions, lookback_start_month=lookback_start(dates, cfg.features),
                run_id=run.run_id, rebuild=request.rebuild_months, plan=plan)
        run.details["monthly_activity"] = monthly.plan.summary()
        monthly_rows = monthly.rows
    with run.stage("plan"):
        frames = build_feature_frames(inputs, dates, cfg, observed_through=observed, monthly=monthly_rows)
    run.details.update(
        feature_version=frames.spec.version,
        T=frames.spec.T,
        channels=list(frames.spec.channels),
        static_features=frames.spec.static_names,
        categorical_attributes=categorical_columns(cfg.attributes),
        present_sources=list(frames.present_sources),
        absent_sources=list(frames.absent_sources),
        left_out=frames.left_out,
        observed_through=frames.observed_through.isoformat() if frames.observed_through else None,
        observed_through_source="outcomes property" if observed else "max of inputs",
    )
    for source, names in frames.left_out.items():
        log.warning("features: source %s is absent: left out %s", source, ", ".join(names))
    log.info("features: building %d static columns and seq of T=%d x C=%d (%s)", frames.spec.n_static,
             frames.spec.T, frames.spec.C, ",".join(frames.spec.channels))
    with run.stage("build_and_write"):
        mode = write_features(spark, cfg, frames, run.run_id)
    run.details["write_mode"] = mode
    run.details["spec"] = json.loads(frames.properties[PROP_SPEC])
    with run.stage("summarise"):
        summarise_features(spark, cfg, frames, run)
    log.info("features: wrote %d rows for %d as-of date(s) (%s)", run.counts["rows"], len(dates), mode)
    return run.result()
