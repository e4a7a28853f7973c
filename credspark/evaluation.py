"""Evaluation and the quality gate of a training run (numpy only: no Spark, no models).

Thresholds are chosen on the validation part (best F1), metrics measured on the test part; the gate compares
the candidate's test AUC with a floor and with the plain XGBoost baseline's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from credspark.models.calibration import Calibrator

__all__ = [
    "MODEL_NAME",
    "UNCALIBRATED_NAME",
    "BASELINE_NAME",
    "PART_TRAIN",
    "PART_VALID",
    "PART_TEST",
    "PARTS",
    "Evaluation",
    "evaluate",
    "gate_decision",
    "calibration_summary",
    "calibration_note",
]


#: Names of the models in metrics, report and metrics.json (the uncalibrated one only when calibration is on).
MODEL_NAME = "focal XGBoost on ResNet-LSTM"
UNCALIBRATED_NAME = "focal XGBoost on ResNet-LSTM, uncalibrated"
BASELINE_NAME = "plain XGBoost baseline"

#: Part names of a training split (the ``part`` column).
PART_TRAIN, PART_VALID, PART_TEST = "train", "valid", "test"
PARTS = (PART_TRAIN, PART_VALID, PART_TEST)


@dataclass(frozen=True)
class Evaluation:
    """Test metrics of both models, with thresholds chosen on validation.

    Attributes:
        metrics: ``{model name: credit_report}`` on the test part.
        valid: ``{model name: {"auc": ..., "threshold": ...}}`` on the validation part.
        y_test: Test labels.
        scores_test: ``{model name: test probabilities}``.
    """

    metrics: dict[str, dict[str, Any]]
    valid: dict[str, dict[str, float]]
    y_test: np.ndarray
    scores_test: dict[str, np.ndarray]


def evaluate(parts: np.ndarray, y: np.ndarray, scores: Mapping[str, np.ndarray]) -> Evaluation:
    """Choose each model's threshold on validation (best F1) and compute its metrics on test.

    Args:
        parts: ``(n,)`` part names (``valid`` or ``test``).
        y: ``(n,)`` labels.
        scores: ``{model name: (n,) probabilities}``.

    Returns:
        The evaluation.
    """
    from credspark.metrics import best_f1_threshold, credit_report, roc_auc

    parts, y = np.asarray(parts), np.asarray(y).astype(np.int64)
    is_valid, is_test = parts == PART_VALID, parts == PART_TEST
    metrics, valid = {}, {}
    for name, s in scores.items():
        s = np.asarray(s, dtype=np.float64)
        t = best_f1_threshold(y[is_valid], s[is_valid])
        valid[name] = {"auc": roc_auc(y[is_valid], s[is_valid]), "threshold": t}
        metrics[name] = credit_report(y[is_test], s[is_test], t)
    test_scores = {k: np.asarray(v, dtype=np.float64)[is_test] for k, v in scores.items()}
    return Evaluation(metrics, valid, y[is_test], test_scores)


def gate_decision(model_auc: float, baseline_auc: float, min_auc: float, max_below: float) -> dict[str, Any]:
    """The quality gate: the test AUC must reach ``min_auc`` and be at most ``max_below`` under the baseline's.

    Args:
        model_auc: The candidate's test AUC.
        baseline_auc: The plain XGBoost baseline's test AUC.
        min_auc: Floor (``train.min_test_auc``).
        max_below: Allowed shortfall against the baseline (``train.max_auc_below_baseline``).

    Returns:
        ``{"passed": bool, "reasons": [...], "test_auc", "baseline_auc", "min_test_auc", "max_auc_below_baseline"}``.
    """
    reasons = []
    if not model_auc >= min_auc:
        reasons.append(f"test AUC {model_auc:.4f} is below the floor train.min_test_auc={min_auc}")
    if not model_auc >= baseline_auc - max_below:
        reasons.append(f"test AUC {model_auc:.4f} is {baseline_auc - model_auc:.4f} below the plain XGBoost baseline's "
                       f"{baseline_auc:.4f} (train.max_auc_below_baseline={max_below})")
    return {"passed": not reasons, "reasons": reasons, "test_auc": model_auc, "baseline_auc": baseline_auc,
            "min_test_auc": min_auc, "max_auc_below_baseline": max_below}


def calibration_summary(cal: Calibrator) -> dict[str, Any]:
    """The calibration map for the run summary (isotonic knots counted, not listed)."""
    d = cal.to_dict()
    if cal.method == "isotonic":
        d = {k: v for k, v in d.items() if not k.startswith("knots_")} | {"knots": len(cal.knots_margin)}
    return d


def calibration_note(cal: Calibrator, ev: Evaluation, name: str = MODEL_NAME) -> str:
    """One line for the report: the map and what it did to the test Brier score (``name``: the published model)."""
    if cal.method == "none":
        return f"calibration: none (train.calibration); pd = sigmoid(margin) of the {name}."
    how = (f"pd = sigmoid({cal.slope:.4g} * margin + {cal.intercept:.4g})" if cal.method == "platt"
           else f"{len(cal.knots_margin)} knots")
    before, after = ev.metrics[f"{name}, uncalibrated"], ev.metrics[name]
    return (f"calibration: {cal.method} fitted on {cal.n_fit:,} validation rows ({how}); test Brier "
            f"{before['brier']:.4f} -> {after['brier']:.4f}, mean pd {before['mean_score']:.4f} -> "
            f"{after['mean_score']:.4f} (observed default rate {after['positive_rate']:.4f}).")
