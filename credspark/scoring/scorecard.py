"""Scorecard points and risk bands from a probability of default (plain numpy/pandas, no Spark).

Points follow the usual scorecard scaling: with odds ``good:bad = (1 - pd) / pd``,

    points = offset + factor * ln(odds),   factor = PDO / ln 2,   offset = base_points - factor * ln(base_odds)

so a customer at the base odds gets ``base_points`` and every doubling of the odds adds ``PDO`` points
(600 points at 50:1 with 20 PDO: 620 points at 100:1, 580 at 25:1). Higher points = lower risk.
:func:`points_from_pd` is the formula (numpy); the scoring job applies it in its pandas UDF.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    pass

__all__ = ["PD_CLIP", "ScorecardScale", "points_from_pd", "risk_bands"]

#: pd is clipped to [PD_CLIP, 1 - PD_CLIP] before the log odds, so pd = 0 or 1 gives finite points
#: (about +-300 points around the base at 20 PDO).
PD_CLIP = 1e-6


@dataclass(frozen=True)
class ScorecardScale:
    """How probabilities map to points.

    Args:
        base_points: Points at the base odds. Defaults to 600.
        base_odds: Good:bad odds that earn ``base_points`` (50 = 50:1). Defaults to 50.
        pdo: Points to double the odds. Defaults to 20.
    """

    base_points: float = 600.0
    base_odds: float = 50.0
    pdo: float = 20.0

    def __post_init__(self) -> None:
        if not (self.base_odds > 0 and self.pdo > 0 and math.isfinite(self.base_points)):
            raise ValueError(f"scorecard: need base_odds > 0 and pdo > 0, got {self.base_odds}, {self.pdo}")

    @classmethod
    def of(cls, section: Any) -> ScorecardScale:
        """The scale of a config section with ``base_points``, ``base_odds`` and ``pdo`` (the ``score`` one)."""
        return cls(base_points=section.base_points, base_odds=section.base_odds, pdo=section.pdo)

    def to_dict(self) -> dict[str, float]:
        """The scale as a JSON-safe mapping (recorded in the bundle with the training score distribution)."""
        return {"base_points": self.base_points, "base_odds": self.base_odds, "pdo": self.pdo}

    @property
    def factor(self) -> float:
        """Points per unit of log odds: ``pdo / ln 2``."""
        return self.pdo / math.log(2.0)

    @property
    def offset(self) -> float:
        """Points at odds 1:1: ``base_points - factor * ln(base_odds)``."""
        return self.base_points - self.factor * math.log(self.base_odds)


def points_from_pd(pd_: np.ndarray, scale: ScorecardScale) -> np.ndarray:
    """Scorecard points for probabilities of default.

    Args:
        pd_: ``(n,)`` probabilities of default in [0, 1].
        scale: The scaling (base points, base odds, PDO).

    Returns:
        ``(n,)`` float64 points; NaN where pd is NaN.
    """
    p = np.clip(np.asarray(pd_, dtype=np.float64), PD_CLIP, 1.0 - PD_CLIP)
    return scale.offset + scale.factor * (np.log1p(-p) - np.log(p))


def risk_bands(points: np.ndarray, cutoffs: Sequence[float], labels: Sequence[str]) -> np.ndarray:
    """Risk band of each score: ``labels[i]`` for ``cutoffs[i-1] <= points < cutoffs[i]``.

    Args:
        points: ``(n,)`` scorecard points.
        cutoffs: Ascending cut-offs; a score equal to a cut-off goes to the band above it (the better one).
        labels: Band names from the riskiest (below the first cut-off) up; ``len(cutoffs) + 1`` of them.

    Returns:
        ``(n,)`` object array of labels (None where points are NaN).
    """
    cuts = np.asarray(cutoffs, dtype=np.float64)
    if len(labels) != cuts.size + 1:
        raise ValueError(f"risk bands: {cuts.size} cut-offs need {cuts.size + 1} labels, got {len(labels)}")
    if cuts.size and np.any(np.diff(cuts) <= 0):
        raise ValueError(f"risk bands: cut-offs must be strictly ascending, got {list(cutoffs)}")
    pts = np.asarray(points, dtype=np.float64)
    idx = np.searchsorted(cuts, pts, side="right")
    out = np.array(list(labels), dtype=object)[idx]
    out[np.isnan(pts)] = None
    return out
