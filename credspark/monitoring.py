"""Drift monitoring: the one binning rule, PSI from binned shares, and warn/fail levels.

The binning rule, used by training (the reference distributions stored in the bundle) and by scoring (the
PSI of each run): *inner* edges split the line into ``len(edges) + 1`` bins ``[lower, upper)``, the outer
bins open-ended, so a value equal to an edge goes to the bin above it (as :func:`credspark.metrics.psi`);
null and NaN are *missing*: in no bin, counted apart. :func:`bin_index` is the numpy form and
:func:`bin_count_columns` its Spark Column twin (one test feeds both the same values). An empty bin's share is
replaced by ``eps`` before ``sum((a - e) * ln(a / e))``.

Importable without pyspark: the Column functions import it when called.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from credspark.metrics import PSI_EPS

if TYPE_CHECKING:
    from pyspark.sql import Column

__all__ = [
    "LEVELS",
    "MISSING",
    "inner_edges",
    "bin_index",
    "bin_counts",
    "bin_count_columns",
    "counts_from_row",
    "psi_from_shares",
    "reference_distribution",
    "drift_level",
    "worst_level",
]

#: Drift levels, mildest first; ``not_available`` never fails a run.
LEVELS = ("not_available", "ok", "warn", "fail")

#: :func:`bin_index` of a missing value (null or NaN).
MISSING = -1


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


def bin_index(values: Any, edges: Sequence[float]) -> np.ndarray:
    """Bin of each value: the number of edges ``<= value``; :data:`MISSING` for null (None) and NaN.

    Args:
        values: Numbers (None allowed).
        edges: Strictly ascending inner edges.

    Returns:
        Integer bins in ``[0, len(edges)]``, or :data:`MISSING`.
    """
    v = np.asarray(values, dtype=np.float64).ravel()  # None becomes NaN
    idx = np.searchsorted(np.asarray(edges, dtype=np.float64), v, side="right")
    return np.where(np.isnan(v), MISSING, idx)


def bin_counts(values: Any, edges: Sequence[float]) -> tuple[list[int], int]:
    """Rows per bin of :func:`bin_index` and the number of missing values.

    Returns:
        ``(counts of the len(edges) + 1 bins, missing)``.
    """
    idx = bin_index(values, edges)
    counts = np.bincount(idx[idx != MISSING], minlength=len(edges) + 1)
    return [int(c) for c in counts], int((idx == MISSING).sum())


def bin_count_columns(prefix: str, col: Column, edges: Sequence[float]) -> list[Column]:
    """Spark aggregates counting the rows of each bin of :func:`bin_index`, plus the missing ones.

    Args:
        prefix: Alias prefix: ``<prefix>__<bin>`` and ``<prefix>__missing``.
        col: A numeric column.
        edges: Strictly ascending inner edges.

    Returns:
        ``len(edges) + 2`` aggregate columns (read them back with :func:`counts_from_row`).
    """
    from pyspark.sql import functions as F

    col = col.cast("double")
    missing = col.isNull() | F.isnan(col)
    idx = sum((F.when(col >= F.lit(float(e)), 1).otherwise(0) for e in edges), F.lit(0))
    out = [F.sum(F.when(~missing & (idx == F.lit(b)), 1).otherwise(0)).alias(f"{prefix}__{b}")
           for b in range(len(edges) + 1)]
    out.append(F.sum(F.when(missing, 1).otherwise(0)).alias(f"{prefix}__missing"))
    return out


def counts_from_row(row: Any, prefix: str, n_bins: int) -> list[int]:
    """The bin counts of :func:`bin_count_columns` from an aggregated row (missing ones not included)."""
    return [int(row[f"{prefix}__{b}"] or 0) for b in range(n_bins)]


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
