"""Training's evaluation through the scoring path: the staged champion bundle scores the held-out rows.

The champion is chosen and calibrated on the validation part from the candidate step's probabilities
(:func:`credspark.pipelines._train_champion.evaluate_candidates`). Its bundle is then staged
(:func:`credspark.pipelines._train_publish.stage_bundle`: written and read back, not in the model store yet) and
the real validation and test rows go through the nightly scoring job's partition scorer
(:class:`~credspark.scoring.partition.PartitionScorer`: the broadcast bundle bytes, the executor cache, the
``score`` section's parameters). From those scores come:

- the published champion's metrics and its threshold (chosen on validation), hence the quality gate and the
  report's calibration note;
- the ``pd`` and ``score`` reference distributions of the scoring job's PSI (rows the model never trained on:
  its scores of its own training rows are more extreme than those of new rows).

The other candidates, the uncalibrated champion and the plain baseline keep the candidate step's probabilities
(they are compared, never published). How far the scoring path's pd lies from the candidate step's calibrated pd
of the same rows is recorded under ``details.scoring_path``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from credspark.config import Config
from credspark.errors import InputError
from credspark.evaluation import BASELINE_NAME, PART_TEST, PART_VALID, Evaluation, evaluate, gate_decision
from credspark.models.calibration import Calibrator
from credspark.models.champion import CANDIDATES
from credspark.models.spec import FeatureSpec
from credspark.pipelines._score_inputs import ArrowBatchSize, partition_scores, score_params
from credspark.pipelines._train_data import KEY_COLS, PART_COL
from credspark.pipelines.candidates import _PD_BASE, score_col  # the candidate step's column names
from credspark.scoring.partition import BundleFiles, PartitionScorer, bundle_digest

__all__ = ["HeldOut", "evaluate_through_scoring", "training_distributions", "PD_AGREEMENT"]

#: Largest difference between the scoring path's pd and the candidate step's calibrated pd of a row that is
#: logged as agreement (float32 embeddings and the folded network differ from the eager one by rounding only).
PD_AGREEMENT = 1e-6


@dataclass(frozen=True)
class HeldOut:
    """What the scoring path's held-out scores give the training job.

    Attributes:
        ev: Test metrics of every model (the champion's from the scoring path), thresholds chosen on validation.
        gate: :func:`credspark.evaluation.gate_decision` of the champion against the baseline.
        distributions: The ``pd`` and ``score`` reference distributions (:func:`training_distributions`).
        agreement: ``{"rows", "max_abs_pd_difference", "within"}``: the scoring path against the candidate
            step's calibrated pd on the same rows.
    """

    ev: Evaluation
    gate: dict[str, Any]
    distributions: dict[str, dict[str, Any]]
    agreement: dict[str, Any]


def _score_columns(names: list[str], champion: Any) -> dict[str, str]:
    """``{model name: column}`` for the names of the candidate step's evaluation (champion: scoring path pd)."""
    by_name = {c.name: score_col(k) for k, c in CANDIDATES.items()}
    by_name |= {BASELINE_NAME: _PD_BASE, f"{champion.name}, uncalibrated": score_col(champion.key), champion.name: "pd"}
    return {n: by_name[n] for n in names}


def evaluate_through_scoring(
    spark: SparkSession, rows: DataFrame, scored: DataFrame, files: BundleFiles, spec: FeatureSpec,
    champion: Any, cal: Calibrator, chosen: Evaluation, n_held_out: int, cfg: Config, keep: Any,
) -> HeldOut:
    """Score the held-out rows with the staged bundle through the partition scorer; evaluate, gate and bin them.

    Args:
        spark: The session.
        rows: The split's real rows (``part``, keys, the model inputs).
        scored: The candidate step's probabilities of the real rows (keys, ``part``, ``label``, ``pd__<key>``,
            ``pd_baseline``).
        files: The staged bundle's bytes (:func:`credspark.pipelines._train_publish.stage_bundle`).
        spec: The FeatureSpec.
        champion: The chosen candidate (:class:`credspark.pipelines._train_champion.Champion`).
        cal: Its calibration map (as stored in the bundle).
        chosen: The candidate step's evaluation (its model names and their order are kept).
        n_held_out: Validation + test rows of the split (each must get exactly one score).
        cfg: The job config (``score`` section: the scorer's parameters; ``train``: gate and bins).
        keep: Persists a DataFrame until the job ends (the pipeline's ``keep``).

    Returns:
        The held-out evaluation.

    Raises:
        InputError: The scorer did not return exactly one score per validation and test row.
    """
    tc = cfg.train
    # The scoring job's parameters; its fault-injection hook is for the scoring job's tests only.
    params = replace(score_params(cfg.score, bundle_digest(files), spec), fail_after_batches=None)
    held_out = rows.where(F.col(PART_COL).isin(PART_VALID, PART_TEST))
    columns = _score_columns(list(chosen.metrics), champion)
    raw_col = score_col(champion.key)
    others = sorted({c for c in columns.values() if c != "pd"} | {raw_col})
    bc = spark.sparkContext.broadcast(dict(files))
    try:
        out = partition_scores(held_out, PartitionScorer(files=bc, params=params, keep=("as_of_date",)))
        out = keep(out.select(*KEY_COLS, "pd", "score").join(
            scored.select(*KEY_COLS, PART_COL, "label", *others), list(KEY_COLS)))
        with ArrowBatchSize(spark, cfg.score.arrow_batch_size):
            pdf = out.select(PART_COL, "label", "pd", *others).toPandas()
            dists = training_distributions(out, {"pd": F.col("pd"), "score": F.col("score")}, tc.drift_bins,
                                           tc.quantile_error)
    finally:
        bc.destroy()
    if len(pdf) != n_held_out:
        raise InputError(f"training evaluation: the scoring path returned {len(pdf)} scores for {n_held_out} "
                         "validation and test rows (duplicate customer_id/as_of_date in the features table?)")
    parts, y = pdf[PART_COL].to_numpy(), pdf["label"].to_numpy().astype(np.int64)
    ev = evaluate(parts, y, {n: pdf[c].to_numpy(dtype=np.float64) for n, c in columns.items()})
    gate = gate_decision(ev.metrics[champion.name]["auc"], ev.metrics[BASELINE_NAME]["auc"], tc.min_test_auc,
                         tc.max_auc_below_baseline)
    expected = cal.pd_from_raw_pd(pdf[raw_col].to_numpy(np.float64))  # the candidate step's calibrated pd
    diff = float(np.max(np.abs(pdf["pd"].to_numpy(np.float64) - expected))) if len(pdf) else 0.0
    agreement = {"rows": len(pdf), "max_abs_pd_difference": diff, "within": diff <= PD_AGREEMENT}
    return HeldOut(ev, gate, dists, agreement)


def training_distributions(
    df: DataFrame, columns: Mapping[str, Column], bins: int, relative_error: float,
    fixed_edges: Mapping[str, Sequence[float]] | None = None,
) -> dict[str, dict[str, Any]]:
    """Quantile-binned distributions of some columns (two Spark passes: quantiles, then one aggregate).

    Each entry is ``{"edges": inner edges, "shares": len(edges)+1 shares of the non-missing rows,
    "missing_share", "n", "binning": "quantile"}``; bin ``i`` holds ``edges[i-1] <= v < edges[i]`` (outer bins
    open), as the scoring job's PSI expects. A column without any value is left out.

    Args:
        df: The rows (the real training rows for features, the held-out rows for ``pd`` and ``score``).
        columns: ``{name: double column}``.
        bins: Quantile bins wanted (ties merge edges, so fewer may result).
        relative_error: approxQuantile's relative error.
        fixed_edges: ``{name: inner edges}`` of columns binned by given edges instead of quantiles
            (``binning: "fixed"``; a categorical attribute's codes). Defaults to None.

    Returns:
        ``{name: entry}`` in the order of ``columns``.
    """
    from credspark.monitoring import bin_count_columns, counts_from_row, inner_edges

    names = list(columns)
    if not names:
        return {}
    aliases = {n: f"c{i}" for i, n in enumerate(names)}
    # NaN would sort above every number in approxQuantile: treat it as missing, like null.
    vals = df.select(*[F.when(F.isnan(c), None).otherwise(c).alias(aliases[n]) for n, c in columns.items()])
    probs = [b / bins for b in range(bins)]  # 0 gives the minimum, the rest the inner quantiles
    fixed = {n: [float(e) for e in v] for n, v in (fixed_edges or {}).items() if n in columns}
    by_quantile = [n for n in names if n not in fixed]
    quantiles = vals.approxQuantile([aliases[n] for n in by_quantile], probs, relative_error) if by_quantile else []
    edges = {n: inner_edges(q[1:], q[0]) if q else [] for n, q in zip(by_quantile, quantiles)} | fixed
    aggs = [F.count(F.lit(1)).alias("n")]
    for n in names:
        aggs += bin_count_columns(aliases[n], F.col(aliases[n]), edges[n])
    row = vals.agg(*aggs).first()
    total = int(row["n"])
    out = {}
    for n in names:
        counts = counts_from_row(row, aliases[n], len(edges[n]) + 1)
        seen = sum(counts)
        if seen == 0:
            continue
        out[n] = {"edges": edges[n], "shares": [c / seen for c in counts],
                  "missing_share": (total - seen) / total if total else 0.0, "n": total,
                  "binning": "fixed" if n in fixed else "quantile"}
    return out
