"""Candidates and the champion: which models a training run fits, and the rule that picks the published one.

Spark-free. The training job fits every candidate named in ``train.candidates``, scores the validation and test
parts, and calls :func:`choose_champion`, which sees the validation rows only: the test part can never move the
choice (the quality gate and the report use it afterwards).

The rule: rank the candidates by the validation metric (``train.champion_metric``, higher is better); every
candidate within ``train.champion_margin`` of the best is "as good", and among those the simplest one (lowest
:attr:`Candidate.complexity`) wins; a tie in complexity goes to the higher metric, then to the name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "CANDIDATES",
    "METRICS",
    "Candidate",
    "Selection",
    "candidates_from_config",
    "choose_champion",
    "select_champion",
    "validation_metrics",
]


@dataclass(frozen=True)
class Candidate:
    """One kind of model the training job can fit.

    Attributes:
        key: The name used in ``train.candidates``.
        name: The name in metrics, report and ``metrics.json``.
        complexity: Rank of simplicity (0 = simplest); decides between candidates within the margin.
        needs_embedder: Whether it runs on the ResNet-LSTM's embedding (ACTGAN + ResNet-LSTM are trained).
        objective: ``focal`` (focal loss, ``xgb.focal_alpha``/``focal_gamma``) or ``logistic`` (``binary:logistic``).
    """

    key: str
    name: str
    complexity: int
    needs_embedder: bool
    objective: str


#: Every candidate kind, by key.
CANDIDATES: Mapping[str, Candidate] = {
    c.key: c
    for c in (
        Candidate("paper", "focal XGBoost on ResNet-LSTM", 2, True, "focal"),
        Candidate("focal_static", "focal XGBoost on static features", 1, False, "focal"),
        Candidate("plain_static", "plain XGBoost on static features", 0, False, "logistic"),
    )
}

#: Selection metrics (all: higher is better).
METRICS = ("auc", "ks")


def candidates_from_config(keys: Sequence[str]) -> list[Candidate]:
    """The configured candidates, checked.

    Args:
        keys: ``train.candidates``.

    Returns:
        The candidates in the configured order.

    Raises:
        ValueError: Empty, unknown or repeated keys (the message names ``train.candidates``).
    """
    if not keys:
        raise ValueError(f"train.candidates: at least one candidate is needed, known: {sorted(CANDIDATES)}")
    unknown = [k for k in keys if k not in CANDIDATES]
    if unknown:
        raise ValueError(f"train.candidates: unknown candidate(s) {unknown}, known: {sorted(CANDIDATES)}")
    if len(set(keys)) != len(keys):
        raise ValueError(f"train.candidates: a candidate is listed twice in {list(keys)}")
    return [CANDIDATES[k] for k in keys]


@dataclass(frozen=True)
class Selection:
    """The outcome of the champion rule.

    Attributes:
        champion: Key of the chosen candidate.
        metric: The metric compared.
        margin: The simplicity margin.
        valid: ``{key: validation metric}`` of every candidate.
        best: Key of the candidate with the highest validation metric.
        reason: One sentence saying why the champion won.
    """

    champion: str
    metric: str
    margin: float
    valid: dict[str, float]
    best: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (for ``metrics.json`` and the run summary)."""
        return {"champion": self.champion, "metric": self.metric, "margin": self.margin, "valid": dict(self.valid),
                "best": self.best, "reason": self.reason}


def select_champion(valid: Mapping[str, float], metric: str = "auc", margin: float = 0.0) -> Selection:
    """Apply the champion rule to validation metrics.

    Args:
        valid: ``{candidate key: validation metric}`` (keys from :data:`CANDIDATES`).
        metric: Name of the metric (for the reason). Defaults to ``"auc"``.
        margin: Candidates at most this far below the best count as equal; the simplest of them wins.
            Defaults to 0.0.

    Returns:
        The selection.

    Raises:
        ValueError: No candidates, an unknown key, a non-finite metric or a negative margin.
    """
    if not valid:
        raise ValueError("champion: no candidate to choose from")
    if margin < 0 or not np.isfinite(margin):
        raise ValueError(f"train.champion_margin must be a finite number >= 0, got {margin}")
    for key, value in valid.items():
        if key not in CANDIDATES:
            raise ValueError(f"champion: unknown candidate {key!r}, known: {sorted(CANDIDATES)}")
        if not np.isfinite(value):
            raise ValueError(f"champion: candidate {key!r} has a non-finite validation {metric} ({value})")
    values = {k: float(v) for k, v in valid.items()}
    best = max(values, key=lambda k: (values[k], -CANDIDATES[k].complexity, k))
    close = [k for k in values if values[k] >= values[best] - margin]
    champion = min(close, key=lambda k: (CANDIDATES[k].complexity, -values[k], k))
    name = CANDIDATES[champion].name
    if champion == best:
        others = [k for k in values if k != best]
        if others:
            runner = max(others, key=lambda k: values[k])
            reason = (f"{name} has the highest validation {metric} ({values[best]:.4f}; next "
                      f"{CANDIDATES[runner].name} {values[runner]:.4f})")
        else:
            reason = f"{name} is the only candidate (validation {metric} {values[best]:.4f})"
    else:
        reason = (f"{name} (validation {metric} {values[champion]:.4f}) is within train.champion_margin={margin} "
                  f"of the best, {CANDIDATES[best].name} ({values[best]:.4f}), and simpler")
    return Selection(champion, metric, float(margin), values, best, reason)


def validation_metrics(parts: np.ndarray, y: np.ndarray, scores: Mapping[str, np.ndarray], metric: str,
                       valid_part: str = "valid") -> dict[str, float]:
    """Each candidate's metric on the validation rows only.

    Args:
        parts: ``(n,)`` part names.
        y: ``(n,)`` labels.
        scores: ``{candidate key: (n,) probabilities}``.
        metric: One of :data:`METRICS`.
        valid_part: The validation part's name. Defaults to ``"valid"``.

    Returns:
        ``{candidate key: metric on the validation rows}``.

    Raises:
        ValueError: An unknown metric, or no validation rows.
    """
    from credspark.metrics import ks_statistic, roc_auc

    funcs = {"auc": roc_auc, "ks": ks_statistic}
    if metric not in funcs:
        raise ValueError(f"train.champion_metric: unknown metric {metric!r}, known: {list(METRICS)}")
    is_valid = np.asarray(parts) == valid_part
    if not is_valid.any():
        raise ValueError(f"champion: no rows in the {valid_part!r} part")
    y_valid = np.asarray(y)[is_valid]
    return {k: float(funcs[metric](y_valid, np.asarray(s, dtype=np.float64)[is_valid])) for k, s in scores.items()}


def choose_champion(parts: np.ndarray, y: np.ndarray, scores: Mapping[str, np.ndarray], metric: str = "auc",
                    margin: float = 0.0, valid_part: str = "valid") -> Selection:
    """Pick the champion from candidate scores, looking at the validation rows only.

    Args:
        parts: ``(n,)`` part names (rows of other parts are ignored).
        y: ``(n,)`` labels.
        scores: ``{candidate key: (n,) probabilities}``.
        metric: One of :data:`METRICS`. Defaults to ``"auc"``.
        margin: The simplicity margin (``train.champion_margin``). Defaults to 0.0.
        valid_part: The validation part's name. Defaults to ``"valid"``.

    Returns:
        The selection (see :func:`select_champion`).
    """
    return select_champion(validation_metrics(parts, y, scores, metric, valid_part), metric, margin)
