"""The feature job's write: the partitions in one commit, refused when other dates hold another feature set.

Also the per-date counts read back from the written partitions for the run summary.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from credspark.config import Config
from credspark.errors import ConfigError
from credspark.features.attributes import SPEC_KEY
from credspark.features.spec import spec_from_table_properties
from credspark.models.spec import FeatureSpec, SpecMismatchError
from credspark.runner import Run

if TYPE_CHECKING:
    from credspark.pipelines.features import FeatureFrames

__all__ = ["write_features", "summarise_features"]

log = logging.getLogger("credspark.features")


def _feature_set_differences(old: Mapping[str, str], spec: FeatureSpec) -> list[str]:
    """What differs between the existing table's feature set and this build's (empty = the same)."""
    try:
        old_spec = spec_from_table_properties(old)
    except SpecMismatchError:
        return ["feature spec (missing or unreadable on the existing table)"]
    out = []
    if old_spec.version != spec.version:
        out.append(f"version {old_spec.version} vs {spec.version}")
    if old_spec.T != spec.T:
        out.append(f"T {old_spec.T} vs {spec.T}")
    if old_spec.channels != spec.channels:
        out.append("channels")
    if old_spec.static != spec.static:
        out.append("static columns")
    # categorical attributes are text columns, not static features: their declarations are compared here
    if old_spec.extra.get(SPEC_KEY, {}) != spec.extra.get(SPEC_KEY, {}):
        out.append("declared attributes")
    return out


def write_features(spark: SparkSession, cfg: Config, frames: FeatureFrames, run_id: str) -> str:
    """Write the partitions in one commit; returns how (``partitions`` or ``table``)."""
    from credspark.io.tables import (
        get_properties,
        overwrite_partitions,
        overwrite_table,
        partition_values,
        set_properties,
        table_exists,
        table_ref,
    )

    ref = table_ref(cfg, cfg.tables.features)
    mode = "partitions"
    if table_exists(spark, ref):
        old = get_properties(spark, ref)
        differ = _feature_set_differences(old, frames.spec)
        if differ:
            others = sorted(set(partition_values(spark, ref, "as_of_date")) - set(frames.as_of_dates))
            if others:
                raise ConfigError(
                    f"features table {ref.name}: {len(others)} other as-of date(s) (e.g. {others[0]}) were built "
                    f"with a different feature set ({', '.join(differ)} differ); rebuild them in the same "
                    "backfill, bump features.version into a new table (tables.features), or drop the table"
                )
            mode = "table"  # every existing partition is being rebuilt: replace the table, schema included
        props = {k: v for k, v in frames.properties.items() if old.get(k) != v}
    else:
        props = dict(frames.properties)
    if mode == "table":
        overwrite_table(frames.features, ref, partition_by=["as_of_date"], user_metadata=run_id)
    else:
        overwrite_partitions(frames.features, ref, "as_of_date", frames.as_of_dates, user_metadata=run_id)
    # A metadata-only commit, and only when something changed (a plain re-run adds no second commit).
    set_properties(spark, ref, props)
    return mode


def summarise_features(spark: SparkSession, cfg: Config, frames: FeatureFrames, run: Run) -> None:
    """Per-date counts read back from the written partitions (a line per date in the log)."""
    from credspark.io.tables import read_table, table_ref

    table = read_table(spark, table_ref(cfg, cfg.tables.features))
    stats = (
        table.where(F.col("as_of_date").isin(list(frames.as_of_dates)))
        .groupBy("as_of_date")
        .agg(F.count(F.lit(1)).alias("rows"), F.count("label").alias("labelled"),
             F.sum("label").alias("positives"))
        .orderBy("as_of_date")
        .collect()  # one row per as-of date
    )
    per_date = {}
    for r in stats:
        per_date[r["as_of_date"].isoformat()] = {
            "rows": r["rows"], "labelled": r["labelled"], "positives": int(r["positives"] or 0)
        }
        log.info("features %s: %d rows, %d labelled, %d positive", r["as_of_date"], r["rows"], r["labelled"],
                 int(r["positives"] or 0))
    run.counts["rows"] = sum(v["rows"] for v in per_date.values())
    run.counts["labelled"] = sum(v["labelled"] for v in per_date.values())
    run.counts["positives"] = sum(v["positives"] for v in per_date.values())
    run.counts["as_of_dates"] = len(frames.as_of_dates)
    run.details["per_as_of_date"] = per_date
