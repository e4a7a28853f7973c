"""Curves behind the report's plots (numpy only): ROC, KS, precision/recall by threshold.

Conventions as in :mod:`credspark.metrics`: ``y`` in {0, 1} with 1 = default, a higher score is riskier,
``score >= threshold`` flags a default. Curves are thinned to at most ``max_points`` points for plotting;
the end points and the KS maximum are always kept.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from credspark.metrics import roc_points

__all__ = ["roc_curve", "ks_curve", "threshold_curves", "thin"]


def _check(y: Any, score: Any) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y).astype(np.int64)
    s = np.asarray(score, dtype=np.float64)
    if y.ndim != 1 or y.shape != s.shape or y.size == 0:
        raise ValueError(f"y and score must be 1-D of the same non-zero length, got {y.shape} and {s.shape}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("y must contain only 0 and 1")
    if not np.isfinite(s).all():
        raise ValueError("score contains non-finite values")
    if y.sum() == 0 or y.sum() == y.size:
        raise ValueError("curves need both classes in y")
    return y, s


def thin(n: int, max_points: int, keep: tuple[int, ...] = ()) -> np.ndarray:
    """Indices of at most ``max_points`` (+ ``keep``) evenly spread points of ``n``, ends included."""
    if n <= max_points:
        return np.arange(n)
    idx = np.unique(np.r_[np.linspace(0, n - 1, max_points).round().astype(np.int64), np.asarray(keep, np.int64)])
    return idx


def roc_curve(y: Any, score: Any, max_points: int = 500) -> dict[str, np.ndarray]:
    """ROC curve points.

    Args:
        y: ``(n,)`` labels.
        score: ``(n,)`` scores.
        max_points: Thinning limit. Defaults to 500.

    Returns:
        ``{"fpr", "tpr", "threshold"}``, starting at (0, 0) (threshold +inf) and ending at (1, 1).
    """
    y, s = _check(y, score)
    thr, tps, fps = roc_points(y, s)
    fpr = np.r_[0.0, fps / (y.size - y.sum())]
    tpr = np.r_[0.0, tps / y.sum()]
    thr = np.r_[np.inf, thr]
    idx = thin(fpr.size, max_points)
    return {"fpr": fpr[idx], "tpr": tpr[idx], "threshold": thr[idx]}


def ks_curve(y: Any, score: Any, max_points: int = 500) -> dict[str, Any]:
    """Cumulative share of defaults and non-defaults flagged as the threshold falls, and the KS point.

    Args:
        y: ``(n,)`` labels.
        score: ``(n,)`` scores.
        max_points: Thinning limit. Defaults to 500.

    Returns:
        ``{"threshold", "flagged", "bad", "good"}`` arrays (descending thresholds; ``flagged`` = share of all
        rows at or above the threshold, ``bad`` = TPR, ``good`` = FPR), and ``ks`` (max of bad - good),
        ``ks_threshold``.
    """
    y, s = _check(y, score)
    thr, tps, fps = roc_points(y, s)
    bad, good = tps / y.sum(), fps / (y.size - y.sum())
    k = int(np.argmax(bad - good))
    idx = thin(thr.size, max_points, keep=(k,))
    flagged = (tps + fps) / y.size
    return {"threshold": thr[idx], "flagged": flagged[idx], "bad": bad[idx], "good": good[idx],
            "ks": float(max(0.0, bad[k] - good[k])), "ks_threshold": float(thr[k])}


def threshold_curves(y: Any, score: Any, max_points: int = 500) -> dict[str, np.ndarray]:
    """Precision, recall and F1 of the default class at each distinct threshold.

    Args:
        y: ``(n,)`` labels.
        score: ``(n,)`` scores.
        max_points: Thinning limit. Defaults to 500.

    Returns:
        ``{"threshold", "precision", "recall", "f1"}`` (descending thresholds).
    """
    y, s = _check(y, score)
    thr, tps, fps = roc_points(y, s)
    precision = tps / (tps + fps)
    recall = tps / y.sum()
    f1 = 2 * tps / (2 * tps + fps + (y.sum() - tps))
    idx = thin(thr.size, max_points)
    return {"threshold": thr[idx], "precision": precision[idx], "recall": recall[idx], "f1": f1[idx]}
