"""Fill values for missing static inputs, for ACTGAN (which refuses NaN); plain numpy, no Spark.

One rule, :func:`imputation_values`, read from per-column statistics: the training job computes them with
Spark aggregates (:func:`credspark.pipelines._train_data.imputation_aggregates`), library use with
:func:`static_statistics` on a numpy array; both give the same keys, so both give the same fill values.

Library use::

    filled, values = fill_missing_static(static, spec)   # values: {column: {"value", "missing_share"}}
    ACTGAN(spec=spec).fit(filled, dynamic, y, mask)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from credspark.models._preprocess import HEAVY_TAIL_SKEW
from credspark.models.spec import FeatureSpec

__all__ = ["imputation_values", "static_statistics", "fill_missing_static"]


def static_statistics(static: np.ndarray, spec: FeatureSpec) -> dict[str, Any]:
    """The statistics :func:`imputation_values` reads, from a ``(n, n_static)`` array (NaN = missing).

    Keys as the training job's Spark aggregates: ``__n`` rows; per column ``i`` the non-missing count ``n{i}``,
    mean ``m{i}``, population skewness ``s{i}`` (None without spread), mean of ``sign(x) log1p(|x|)``
    ``l{i}`` and, for a categorical, the most frequent code ``c{i}`` (the smallest of equally frequent ones).
    """
    x = np.asarray(static, dtype=np.float64)
    spec.validate_arrays(x)
    out: dict[str, Any] = {"__n": x.shape[0]}
    for i, f in enumerate(spec.static):
        v = x[:, i][~np.isnan(x[:, i])]
        out[f"n{i}"] = v.size
        out[f"m{i}"] = float(v.mean()) if v.size else None
        m2 = float(((v - v.mean()) ** 2).mean()) if v.size else 0.0
        out[f"s{i}"] = float(((v - v.mean()) ** 3).mean() / m2**1.5) if m2 > 0 else None
        out[f"l{i}"] = float((np.sign(v) * np.log1p(np.abs(v))).mean()) if v.size else None
        if f.kind == "categorical":
            codes, counts = np.unique(v, return_counts=True)
            out[f"c{i}"] = float(codes[np.argmax(counts)]) if v.size else None
    return out


def imputation_values(
    row: Mapping[str, Any], spec: FeatureSpec, heavy_tail_skew: float = HEAVY_TAIL_SKEW
) -> dict[str, dict[str, float]]:
    """Fill values for the static columns that have missing values.

    The value is the one the ResNet-LSTM's input scaling maps a missing input to, so that rows imputed for
    training and rows left missing at scoring look alike to the network: the mean of the column (of
    ``sign(x) log1p(|x|)`` mapped back, for columns skewed beyond ``heavy_tail_skew``, which that scaling
    log-transforms); 0 for a binary column or a numeric column without any value; the most frequent code for a
    categorical one (the scaling gives a missing categorical an all-zero one-hot block, which no code can
    reproduce: the nearest is the commonest code), its first code when it has no value at all (a code ACTGAN
    accepts, which 0 may not be).

    Args:
        row: The statistics (:func:`static_statistics`, or the training job's aggregate row as a dict).
        spec: The FeatureSpec.
        heavy_tail_skew: Skewness above which the scaling log-transforms a column. Defaults to the scaling's.

    Returns:
        ``{column: {"value": fill, "missing_share": share}}`` for columns with missing values only.
    """
    total = int(row["__n"] or 0)
    out: dict[str, dict[str, float]] = {}
    for i, f in enumerate(spec.static):
        seen = int(row[f"n{i}"] or 0)
        if seen == total:
            continue
        if f.kind == "categorical":
            value = float(row[f"c{i}"]) if seen else float(f.categories[0])
        elif seen == 0 or f.kind == "binary":
            value = 0.0
        else:
            skew = row[f"s{i}"]
            if skew is not None and math.isfinite(skew) and abs(skew) > heavy_tail_skew:
                m = float(row[f"l{i}"])
                value = math.copysign(math.expm1(abs(m)), m)
            else:
                value = float(row[f"m{i}"])
        out[f.name] = {"value": value, "missing_share": (total - seen) / total if total else 0.0}
    return out


def fill_missing_static(
    static: np.ndarray, spec: FeatureSpec, values: Mapping[str, Mapping[str, float]] | None = None
) -> tuple[np.ndarray, dict[str, dict[str, float]]]:
    """A copy of ``static`` with NaN replaced by the fill values (integer and categorical fills rounded).

    Args:
        static: ``(n, n_static)`` array.
        spec: The FeatureSpec.
        values: Fill values to apply (e.g. the training rows' at sampling time); None = fitted on ``static``.

    Returns:
        ``(filled, values)``.
    """
    x = np.array(static, dtype=np.float64)
    if values is None:
        values = imputation_values(static_statistics(x, spec), spec)
    index = {f.name: i for i, f in enumerate(spec.static)}
    for name, entry in values.items():
        f = spec.static[index[name]]
        fill = float(entry["value"])
        if f.kind in ("integer", "categorical", "binary"):
            fill = math.copysign(math.floor(abs(fill) + 0.5), fill)  # half away from zero, as Spark's round
        col = x[:, index[name]]
        col[np.isnan(col)] = fill
    return x, {k: dict(v) for k, v in values.items()}
