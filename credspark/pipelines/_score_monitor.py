"""The scoring job's monitoring: counts, pd quantiles, band counts and PSIs of the partition a run committed.

Spark aggregations only (a few small jobs); the binning rule and the PSI arithmetic are
:mod:`credspark.monitoring`'s.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from pyspark.sql import Column, DataFrame, Row, SparkSession
from pyspark.sql import functions as F

from credspark.config import Config, ScoreConfig
from credspark.features.encoding import category_code
from credspark.models.spec import encoding_columns
from credspark.monitoring import (
    bin_count_columns,
    counts_from_row,
    drift_level,
    inner_edges,
    psi_from_shares,
    reference_distribution,
    worst_level,
)
from credspark.scoring.scorecard import ScorecardScale

__all__ = ["monitor", "training_distributions", "output_references", "drift_text"]


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


def _training_score_scale(manifest: Mapping[str, Any]) -> ScorecardScale | None:
    """The scorecard scale of the bundle's training score distribution, when the trainer recorded it."""
    data = (manifest.get("metadata") or {}).get("training_data") or manifest.get("training_data") or {}
    scale = data.get("score_scale") if isinstance(data, Mapping) else None
    try:
        return ScorecardScale(**scale) if isinstance(scale, Mapping) else None
    except (TypeError, ValueError):
        return None


def output_references(
    dists: Mapping[str, Any], manifest: Mapping[str, Any], scale: ScorecardScale
) -> dict[str, tuple[list[float], list[float]] | str]:
    """The training distributions of ``score`` and ``pd`` to compare this run with, or why one cannot be used.

    Args:
        dists: The bundle's training distributions (:func:`training_distributions`).
        manifest: The bundle manifest (for the scale its ``score`` distribution was computed on).
        scale: The scale this run scores on.

    Returns:
        ``{name: (inner edges, shares)}``, or ``{name: reason}`` for a malformed entry or a ``score``
        distribution recorded on another scale; names the bundle has no distribution of are absent.
    """
    out: dict[str, tuple[list[float], list[float]] | str] = {}
    for name in ("score", "pd"):
        if name in dists:
            try:
                out[name] = reference_distribution(dists[name])
            except ValueError as e:
                out[name] = f"malformed training distribution: {e}"
    trained = _training_score_scale(manifest)
    if "score" in out and trained is not None and trained != scale:
        out["score"] = (f"the bundle's score distribution is on the scale {trained.to_dict()}, this run scores on "
                        f"{scale.to_dict()}")
    return out


def _previous_score_date(snapshot: DataFrame, score_date: dt.date) -> dt.date | None:
    return snapshot.where(F.col("score_date") < F.lit(score_date)).agg(F.max("score_date")).first()[0]


def _previous_edges(snapshot: DataFrame, prev_date: dt.date | None, sc: ScoreConfig, accuracy: int
                    ) -> list[float] | None:
    """Inner bin edges of the previous score date's scores (``score.psi_bins`` quantile bins), None without one."""
    if prev_date is None:
        return None
    # Probability 0 gives the minimum, the others the inner quantiles (as credspark.metrics.psi).
    probs = [b / sc.psi_bins for b in range(sc.psi_bins)]
    q = (snapshot.where(F.col("score_date") == F.lit(prev_date))
         .agg(F.percentile_approx("score", probs, accuracy)).first()[0])
    return inner_edges(q[1:], q[0]) if q else None


def _aggregates(sc: ScoreConfig, accuracy: int, prev_edges: list[float] | None, ref_dists: Mapping[str, Any]
                ) -> list[Column]:
    """One score date's aggregates: rows, pd quantiles, band counts, and bin counts for every PSI of the outputs."""
    aggs = [F.count(F.lit(1)).alias("n"),
            F.percentile_approx("pd", list(sc.quantiles), accuracy).alias("pd_q")]
    aggs += [F.sum(F.when(F.col("risk_band") == F.lit(b), 1).otherwise(0)).alias(f"band__{i}")
             for i, b in enumerate(sc.band_labels)]
    if prev_edges is not None:
        aggs += bin_count_columns("prev", F.col("score"), prev_edges)
    for name, ref in ref_dists.items():
        if not isinstance(ref, str):
            aggs += bin_count_columns(f"train_{name}", F.col(name), ref[0])
    return aggs


def _output_psi(row: Row, prev_row: Row | None, prev_date: dt.date | None, prev_edges: list[float] | None,
                ref_dists: Mapping[str, Any], sc: ScoreConfig) -> dict[str, Any]:
    """PSIs of the score against the previous date's, and of ``score`` and ``pd`` against training."""
    psi: dict[str, Any] = {}
    if prev_edges is None:
        psi["score_vs_previous"] = _not_available("no earlier score date in the scores table")
    else:
        n_bins = len(prev_edges) + 1
        psi["score_vs_previous"] = _psi_entry(
            counts_from_row(prev_row, "prev", n_bins), counts_from_row(row, "prev", n_bins), sc,
            previous_score_date=prev_date.isoformat())
    for name in ("score", "pd"):
        ref = ref_dists.get(name)
        if ref is None:
            psi[f"{name}_vs_training"] = _not_available(f"the bundle stores no training distribution of '{name}'")
        elif isinstance(ref, str):
            psi[f"{name}_vs_training"] = _not_available(ref)
        else:
            psi[f"{name}_vs_training"] = _psi_entry(ref[1], counts_from_row(row, f"train_{name}", len(ref[1])), sc)
    return psi


def monitor(
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
    prev_edges = _previous_edges(snapshot, prev_date, sc, accuracy)
    ref_dists = output_references(dists, manifest, ScorecardScale.of(sc))

    aggs = _aggregates(sc, accuracy, prev_edges, ref_dists)
    dates = [score_date] + ([prev_date] if prev_date is not None else [])
    rows = {r["score_date"]: r for r in (snapshot.where(F.col("score_date").isin(dates))
                                          .groupBy("score_date").agg(*aggs).collect())}  # <= 2 rows
    row = rows[score_date]
    psi = _output_psi(row, rows[prev_date] if prev_edges is not None else None, prev_date, prev_edges, ref_dists, sc)
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
    """PSI of the stored feature distributions against this partition's values.

    The first ``psi_top_features`` in the bundle's order, and every declared attribute (entries marked
    ``attribute``); a categorical attribute's entry (``categories``) bins its :func:`category_code`.
    """
    ranked = [k for k in dists if k not in ("score", "pd")]
    attributes = [k for k in ranked if isinstance(dists[k], Mapping) and dists[k].get("attribute")]
    names = list(dict.fromkeys([*ranked[: sc.psi_top_features], *attributes]))
    out: dict[str, Any] = {}
    refs: dict[str, tuple[list[float], list[float]]] = {}
    values: dict[str, Column] = {}
    columns = set(features.columns)
    for name in names:
        cats = dists[name].get("categories") if isinstance(dists[name], Mapping) else None
        needed = encoding_columns(name, cats[:-1]) if cats else [name]
        if not set(needed) <= columns:
            out[name] = _not_available("not a column of the features table")
            continue
        try:
            refs[name] = reference_distribution(dists[name])
        except ValueError as e:
            out[name] = _not_available(f"malformed training distribution: {e}")
            continue
        values[name] = category_code(name, cats[:-1]) if cats else F.col(name)
    if refs:
        aggs = [c for i, (name, (edges, _)) in enumerate(refs.items())
                for c in bin_count_columns(f"f{i}", values[name], edges)]
        row = features.agg(*aggs).first()
        for i, (name, (_, shares)) in enumerate(refs.items()):
            out[name] = _psi_entry(shares, counts_from_row(row, f"f{i}", len(shares)), sc)
    return {name: out[name] for name in names}


def drift_text(psi: Mapping[str, Any], level: str) -> str:
    """The PSIs of a monitoring result at ``level``, as one line (``name PSI value, ...``)."""
    items = [(k, v) for k, v in psi.items() if k != "features"] + [(f"feature {k}", v)
                                                                  for k, v in psi["features"].items()]
    return ", ".join(f"{k} PSI {v['value']}" for k, v in items if v["level"] == level)
