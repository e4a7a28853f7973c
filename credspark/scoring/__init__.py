"""Spark-free scoring: the partition scorer, scorecard points, risk bands, reason codes, drift (PSI).

Nothing here imports pyspark: the Spark job (:mod:`credspark.pipelines.score`) ships
:class:`~credspark.scoring.partition.PartitionScorer` to ``mapInPandas``; tests run it on plain pandas.
"""

from credspark.scoring.drift import drift_level, inner_edges, psi_from_shares, reference_distribution, worst_level
from credspark.scoring.partition import (
    InjectedFailureError,
    PartitionScorer,
    ScoreParams,
    ScoringModel,
    bundle_digest,
    cached_model,
    load_bundle_from_files,
    output_columns,
    read_bundle_files,
    score_frame,
    tune_scoring_process,
)
from credspark.scoring.reasons import ReasonMap, build_reason_map, reason_groups, top_reasons
from credspark.scoring.scorecard import ScorecardScale, points_from_pd, risk_bands

__all__ = [
    "InjectedFailureError",
    "PartitionScorer",
    "ReasonMap",
    "ScoreParams",
    "ScorecardScale",
    "ScoringModel",
    "build_reason_map",
    "bundle_digest",
    "cached_model",
    "drift_level",
    "inner_edges",
    "load_bundle_from_files",
    "output_columns",
    "points_from_pd",
    "psi_from_shares",
    "read_bundle_files",
    "reason_groups",
    "reference_distribution",
    "risk_bands",
    "score_frame",
    "top_reasons",
    "tune_scoring_process",
    "worst_level",
]
