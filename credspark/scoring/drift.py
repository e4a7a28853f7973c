"""Population stability (PSI) from binned shares, and warn/fail levels (plain numpy, no Spark).

The Spark side only counts rows per bin (one aggregation); everything else is here, so the arithmetic is
tested with plain numbers. Binning follows :func:`credspark.metrics.psi`: *inner* edges split the line into
``len(edges) + 1`` bins ``[lower, upper)``, the outer bins open-ended; a value equal to an edge goes to the
bin above it; an empty bin's share is replaced by ``eps`` before ``sum((a - e) * ln(a / e))``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from credspark.metrics import PSI_EPS

__all__ = [
    "LEVELS",
    "inner_edges",
    "bin_index",
    "psi_from_shares",
    "reference_distribution",
    "drift_level",
    "worst_level",
]

#: Drift levels, mildest first; ``not_available`` never fails a run.
LEVELS = ("not_available", "ok", "warn", "fail")


def inner_edges(quantiles: Sequence[float], minimum: float) -> list[float]:
    """Inner bin edges from a reference sample's quantiles (duplicates from ties merged).

    Args:
        quantiles: The reference's quantiles at ``1/b, ..., (b-1)/b``.
        minimum: The reference's minimum; an edge equal to it would make an always-empty lowest bin.

    Returns:
        Strictly ascending edges above ``minimum``.
    """
    q = np.unique(np.asarray([v for v in quantiles if v is not None and np.isfinite(v)], dtype=np.float64))
    return [float(v) for v in q if v > minimum]


def bin_index(values: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """Bin of each value: the number of edges ``<= value`` (the same rule the Spark side uses)."""
    return np.searchsorted(np.asarray(edges, dtype=np.float64), np.asarray(values, dtype=np.float64), side="right")


def psi_from_shares(expected: Sequence[float], actual: Sequence[float], eps: float = PSI_EPS) -> float:
    """PSI of two binned distributions over the same bins.

    Args:
        expected: Reference shares (or counts; normalised here).
        actual: New shares (or counts).
        eps: Share used for an empty bin. Defaults to ``credspark.metrics.PSI_EPS``.

    Returns:
        PSI >= 0.
    """
    e = np.asarray(expected, dtype=np.float64)
    a = np.asarray(actual, dtype=np.float64)
    if e.shape != a.shape or e.ndim != 1 or e.size == 0:
        raise ValueError(f"psi: expected and actual need the same number of bins, got {e.shape} and {a.shape}")
    if e.sum() <= 0 or a.sum() <= 0 or (e < 0).any() or (a < 0).any():
        raise ValueError("psi: shares must be non-negative with a positive total")
    e = e / e.sum()
    a = a / a.sum()
    e = np.where(e == 0, eps, e)
    a = np.where(a == 0, eps, a)
    return float(np.sum((a - e) * np.log(a / e)))


def reference_distribution(entry: Mapping[str, Any]) -> tuple[list[float], list[float]]:
    """Inner edges and shares of a stored training distribution ``{"edges": [...], "shares": [...]}``.

    ``edges`` may hold the inner edges (``len(shares) - 1`` values) or the full edges including the lowest
    and highest training values (``len(shares) + 1``); the outer bins are open-ended either way.

    Args:
        entry: One distribution from the bundle manifest.

    Returns:
        ``(inner_edges, shares)``.

    Raises:
        ValueError: Malformed entry (wrong lengths, unsorted edges, negative shares).
    """
    try:
        edges = [float(v) for v in entry["edges"]]
        shares = [float(v) for v in entry["shares"]]
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"distribution needs numeric 'edges' and 'shares' ({e})") from e
    if len(edges) == len(shares) + 1:
        edges = edges[1:-1]
    elif len(edges) != len(shares) - 1:
        raise ValueError(f"distribution: {len(edges)} edges do not fit {len(shares)} shares")
    if any(b <= a for a, b in zip(edges, edges[1:])) or not np.all(np.isfinite(edges)):
        raise ValueError("distribution: edges must be finite and strictly ascending")
    if any(s < 0 for s in shares) or sum(shares) <= 0:
        raise ValueError("distribution: shares must be non-negative with a positive total")
    return edges, shares


def drift_level(value: float | None, warn: float, fail: float) -> str:
    """``fail`` if ``value >= fail``, ``warn`` if ``>= warn``, ``ok`` below, ``not_available`` for None/NaN."""
    if value is None or not np.isfinite(value):
        return "not_available"
    if value >= fail:
        return "fail"
    return "warn" if value >= warn else "ok"


def worst_level(levels: Sequence[str]) -> str:
    """The most severe of some levels (``not_available`` when there are none)."""
    return max(levels, key=LEVELS.index, default="not_available")
