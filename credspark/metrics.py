"""Credit-scoring metrics on numpy arrays (no pyspark, no scikit-learn).

Conventions: ``y`` holds labels in {0, 1} with 1 = default; ``score`` is higher for riskier rows (a
probability of default for the probability metrics). A row is *predicted positive* when
``score >= threshold``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "best_f1_threshold",
    "brier_score",
    "calibration_table",
    "confusion_at",
    "credit_report",
    "ks_statistic",
    "log_loss",
    "precision_recall_f1",
    "psi",
    "roc_auc",
    "roc_points",
]

#: Share given to an empty bin in :func:`psi` so that the log ratio stays finite.
PSI_EPS = 1e-4


# --------------------------------------------------------------------------- validation
def _check_scores(score: Any, name: str = "score") -> np.ndarray:
    s = np.asarray(score, dtype=np.float64)
    if s.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {s.shape}")
    if s.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.isfinite(s).all():
        raise ValueError(f"{name} contains {int((~np.isfinite(s)).sum())} non-finite values (NaN or inf)")
    return s


def _check_binary(y: Any, score: Any) -> tuple[np.ndarray, np.ndarray]:
    y_arr = np.asarray(y)
    s = _check_scores(score)
    if y_arr.ndim != 1:
        raise ValueError(f"y must be 1-D, got shape {y_arr.shape}")
    if y_arr.shape[0] != s.shape[0]:
        raise ValueError(f"length mismatch: y has {y_arr.shape[0]} rows, score has {s.shape[0]}")
    if y_arr.dtype == bool:
        y_arr = y_arr.astype(np.int64)
    if not np.isin(y_arr, (0, 1)).all():
        raise ValueError("y must contain only 0 and 1 (1 = default)")
    return y_arr.astype(np.int64), s


def _need_both_classes(y: np.ndarray, what: str) -> None:
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == y.size:
        raise ValueError(f"{what} needs both classes in y, got only class {int(y[0])}")


def _check_probabilities(s: np.ndarray) -> None:
    if s.min() < 0.0 or s.max() > 1.0:
        raise ValueError(f"score must be a probability in [0, 1], got range [{s.min()}, {s.max()}]")


# --------------------------------------------------------------------------- ranking
def _average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks with ties given the mean of the ranks they span."""
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    # The tied group k occupies ranks (start_k + 1) .. (start_k + count_k); its mean is start_k + (count_k + 1)/2.
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    return (starts + (counts + 1) / 2.0)[inverse]


def roc_auc(y: Any, score: Any) -> float:
    """Area under the ROC curve via the Mann-Whitney rank statistic (ties count one half).

    Args:
        y: ``(n,)`` labels in {0, 1}.
        score: ``(n,)`` finite scores, higher = riskier.

    Returns:
        AUC in [0, 1].
    """
    y_arr, s = _check_binary(y, score)
    _need_both_classes(y_arr, "roc_auc")
    ranks = _average_ranks(s)
    n_pos = int(y_arr.sum())
    n_neg = y_arr.size - n_pos
    return float((ranks[y_arr == 1].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def roc_points(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct thresholds (descending) and cumulative TP/FP counts at ``score >= threshold``.

    The one ROC sweep behind the metrics here and the report's curves (:mod:`credspark.reporting.curves`).

    Args:
        y: ``(n,)`` int labels in {0, 1}, already checked.
        s: ``(n,)`` finite float scores, already checked.

    Returns:
        ``(thresholds, tps, fps)``: the distinct scores in descending order and the integer counts of positives
        and negatives with a score at or above each.
    """
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    # The last index of each run of equal scores: a threshold admits all tied rows at once.
    last = np.r_[np.nonzero(np.diff(s_sorted))[0], s_sorted.size - 1]
    tps = np.cumsum(y_sorted)[last]
    fps = (last + 1) - tps
    return s_sorted[last], tps, fps


def ks_statistic(y: Any, score: Any) -> float:
    """Kolmogorov-Smirnov statistic: the largest ``TPR - FPR`` over all thresholds.

    Args:
        y: ``(n,)`` labels in {0, 1}.
        score: ``(n,)`` finite scores, higher = riskier.

    Returns:
        KS in [0, 1] (0 when no threshold separates the classes better than chance).
    """
    y_arr, s = _check_binary(y, score)
    _need_both_classes(y_arr, "ks_statistic")
    _, tps, fps = roc_points(y_arr, s)
    n_pos = int(y_arr.sum())
    return float(max(0.0, np.max(tps / n_pos - fps / (y_arr.size - n_pos))))


# --------------------------------------------------------------------------- thresholded
def confusion_at(y: Any, score: Any, threshold: float) -> dict[str, int]:
    """Confusion counts with ``score >= threshold`` predicted positive (default).

    Args:
        y: ``(n,)`` labels in {0, 1}.
        score: ``(n,)`` finite scores.
        threshold: Decision threshold.

    Returns:
        ``{"tp", "fp", "fn", "tn"}`` counts.
    """
    y_arr, s = _check_binary(y, score)
    pred = s >= threshold
    pos = y_arr == 1
    return {
        "tp": int(np.sum(pred & pos)),
        "fp": int(np.sum(pred & ~pos)),
        "fn": int(np.sum(~pred & pos)),
        "tn": int(np.sum(~pred & ~pos)),
    }


def _prf(tp: float, fp: float, fn: float) -> tuple[float, float, float]:
    # An empty denominator gives 0 (scikit-learn's zero_division=0), not NaN, so reports stay JSON-safe.
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
    return float(precision), float(recall), float(f1)


def precision_recall_f1(y: Any, score: Any, threshold: float) -> dict[str, float]:
    """Precision, recall and F1 of the positive (default) class at ``score >= threshold``.

    Args:
        y: ``(n,)`` labels in {0, 1}.
        score: ``(n,)`` finite scores.
        threshold: Decision threshold.

    Returns:
        ``{"precision", "recall", "f1"}``; a ratio with an empty denominator is 0.
    """
    c = confusion_at(y, score, threshold)
    precision, recall, f1 = _prf(c["tp"], c["fp"], c["fn"])
    return {"precision": precision, "recall": recall, "f1": f1}


def best_f1_threshold(y: Any, score: Any) -> float:
    """The threshold (one of the observed scores) that maximises F1; choose it on validation data.

    Ties between thresholds resolve to the highest one (fewest rows flagged).

    Args:
        y: ``(n,)`` labels in {0, 1}; at least one positive.
        score: ``(n,)`` finite scores.

    Returns:
        The threshold ``t`` to use as ``score >= t``.
    """
    y_arr, s = _check_binary(y, score)
    n_pos = int(y_arr.sum())
    if n_pos == 0:
        raise ValueError("best_f1_threshold needs at least one positive in y")
    thresholds, tps, fps = roc_points(y_arr, s)
    f1 = 2 * tps / (2 * tps + fps + (n_pos - tps))
    # thresholds are descending, so argmax's first hit is the highest threshold among ties.
    return float(thresholds[int(np.argmax(f1))])


# --------------------------------------------------------------------------- probability
def brier_score(y: Any, score: Any) -> float:
    """Mean squared difference between the predicted probability and the outcome.

    Args:
        y: ``(n,)`` labels in {0, 1}.
        score: ``(n,)`` probabilities of default in [0, 1].

    Returns:
        Brier score (lower is better).
    """
    y_arr, s = _check_binary(y, score)
    _check_probabilities(s)
    return float(np.mean((s - y_arr) ** 2))


def log_loss(y: Any, score: Any, eps: float = 1e-15) -> float:
    """Mean negative log-likelihood, with probabilities clipped to ``[eps, 1 - eps]``.

    Args:
        y: ``(n,)`` labels in {0, 1}.
        score: ``(n,)`` probabilities of default in [0, 1].
        eps: Clip so that a confident mistake costs ``-log(eps)`` rather than infinity. Defaults to 1e-15.

    Returns:
        Log loss (lower is better).
    """
    y_arr, s = _check_binary(y, score)
    _check_probabilities(s)
    p = np.clip(s, eps, 1.0 - eps)
    return float(-np.mean(y_arr * np.log(p) + (1 - y_arr) * np.log1p(-p)))


# --------------------------------------------------------------------------- drift / calibration
def psi(expected: Any, actual: Any, bins: int = 10, eps: float = PSI_EPS) -> float:
    """Population stability index of ``actual`` against ``expected`` (e.g. scoring vs training scores).

    Bins are quantiles of ``expected`` (``bins`` equal-count bins; duplicate edges from ties are merged, so
    fewer bins may result); the outer bins are open-ended so every ``actual`` value falls in a bin. A value
    equal to an inner edge goes to the bin above it (bins are ``[lower, upper)``). A bin share of 0 on either
    side is replaced by ``eps`` before ``sum((a - e) * ln(a / e))``, so an empty bin adds a large but finite
    amount instead of infinity.

    Args:
        expected: Reference sample of scores.
        actual: New sample of scores.
        bins: Number of quantile bins. Defaults to 10.
        eps: Share used for empty bins. Defaults to ``PSI_EPS`` (1e-4).

    Returns:
        PSI >= 0 (rule of thumb: < 0.1 stable, 0.1 - 0.25 moderate shift, > 0.25 major shift).
    """
    e = _check_scores(expected, "expected")
    a = _check_scores(actual, "actual")
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    # The binning and PSI rules of credspark.monitoring (imported here: it imports this module).
    from credspark.monitoring import bin_counts, inner_edges, psi_from_shares

    inner = inner_edges(np.quantile(e, np.linspace(0.0, 1.0, bins + 1)[1:-1]), float(e.min()))
    return psi_from_shares(bin_counts(e, inner)[0], bin_counts(a, inner)[0], eps)


def calibration_table(y: Any, score: Any, bins: int = 10) -> list[dict[str, float]]:
    """Reliability table on equal-width probability bins over [0, 1].

    Bin ``k`` covers ``(k/bins, (k+1)/bins]`` (the first also includes 0), as in scikit-learn's
    ``calibration_curve(strategy="uniform")``; empty bins are left out.

    Args:
        y: ``(n,)`` labels in {0, 1}.
        score: ``(n,)`` probabilities of default in [0, 1].
        bins: Number of bins. Defaults to 10.

    Returns:
        One dict per non-empty bin: ``lower``, ``upper``, ``count``, ``mean_predicted``, ``observed_rate``.
    """
    y_arr, s = _check_binary(y, score)
    _check_probabilities(s)
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    edges = np.linspace(0.0, 1.0, bins + 1)
    ids = np.searchsorted(edges[1:-1], s, side="left")
    count = np.bincount(ids, minlength=bins)
    sum_pred = np.bincount(ids, weights=s, minlength=bins)
    sum_obs = np.bincount(ids, weights=y_arr, minlength=bins)
    return [
        {
            "lower": float(edges[k]),
            "upper": float(edges[k + 1]),
            "count": int(count[k]),
            "mean_predicted": float(sum_pred[k] / count[k]),
            "observed_rate": float(sum_obs[k] / count[k]),
        }
        for k in range(bins)
        if count[k]
    ]


# --------------------------------------------------------------------------- report
def credit_report(
    y: Any,
    score: Any,
    threshold: float,
    *,
    reference_score: Any = None,
    bins: int = 10,
) -> dict[str, Any]:
    """All metrics of this module for one labelled sample, as a JSON-safe dict.

    Args:
        y: ``(n,)`` labels in {0, 1}, both classes present.
        score: ``(n,)`` probabilities of default in [0, 1].
        threshold: Decision threshold (``score >= threshold`` flags a default), chosen beforehand, e.g. with
            :func:`best_f1_threshold` on validation data.
        reference_score: Optional reference scores (e.g. training); adds ``psi`` against them. Defaults to None.
        bins: Bins for ``psi`` and the calibration table. Defaults to 10.

    Returns:
        Dict with ``n``, ``n_positive``, ``positive_rate``, ``auc``, ``ks``, ``threshold``, ``tp``/``fp``/``fn``/
        ``tn``, ``precision``, ``recall``, ``f1``, ``best_f1_threshold`` (on this sample, for reference),
        ``mean_score`` (against ``positive_rate``: calibration in the large), ``brier``, ``log_loss``,
        ``calibration`` and, with ``reference_score``, ``psi``.
    """
    y_arr, s = _check_binary(y, score)
    _need_both_classes(y_arr, "credit_report")
    _check_probabilities(s)
    conf = confusion_at(y_arr, s, threshold)
    precision, recall, f1 = _prf(conf["tp"], conf["fp"], conf["fn"])
    report: dict[str, Any] = {
        "n": int(y_arr.size),
        "n_positive": int(y_arr.sum()),
        "positive_rate": float(y_arr.mean()),
        "auc": roc_auc(y_arr, s),
        "ks": ks_statistic(y_arr, s),
        "threshold": float(threshold),
        **conf,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "best_f1_threshold": best_f1_threshold(y_arr, s),
        "mean_score": float(s.mean()),
        "brier": brier_score(y_arr, s),
        "log_loss": log_loss(y_arr, s),
        "calibration": calibration_table(y_arr, s, bins),
    }
    if reference_score is not None:
        report["psi"] = psi(reference_score, s, bins)
    return report
