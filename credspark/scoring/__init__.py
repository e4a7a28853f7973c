"""Spark-free scoring: the partition scorer, scorecard points, risk bands, reason codes.

Nothing here imports pyspark: the Spark job (:mod:`credspark.pipelines.score`) ships
:class:`~credspark.scoring.partition.PartitionScorer` to ``mapInPandas``; tests run it on plain pandas.
"""

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
    "load_bundle_from_files",
    "output_columns",
    "points_from_pd",
    "read_bundle_files",
    "reason_groups",
    "risk_bands",
    "score_frame",
    "top_reasons",
    "tune_scoring_process",
]
