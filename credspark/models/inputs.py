"""Turn feature-table rows (pandas, as Arrow hands them to a UDF) into a model's input arrays.

The feature table stores the dynamic block as ``seq`` (array<float>, length T*C, month-major: index
t*C + c, oldest month first) and ``seq_mask`` (array<tinyint>, length T). This module is Spark-free so the
same code runs in tests, in training and inside pandas UDFs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from credspark.models.spec import FeatureSpec, SpecMismatchError, encoding_columns

__all__ = ["SEQ_COLUMN", "MASK_COLUMN", "LABEL_COLUMN", "stack_array_column", "arrays_from_frame", "encode_categories"]

SEQ_COLUMN = "seq"
MASK_COLUMN = "seq_mask"
LABEL_COLUMN = "label"


def stack_array_column(values: pd.Series, width: int, dtype: type = np.float32, name: str = "array") -> np.ndarray:
    """Stack a column of equal-length arrays into an ``(n, width)`` matrix without a per-row Python loop.

    Arrow hands array columns to pandas as an object Series of numpy arrays; concatenating them once is a
    single C-level copy (``np.stack`` would re-check every element's shape in Python).

    Args:
        values: Series whose items are 1-D arrays (or lists) of length ``width``.
        width: Expected length of every item.
        dtype: Output dtype.
        name: Column name for error messages.

    Returns:
        ``(len(values), width)`` array.
    """
    n = len(values)
    if n == 0:
        return np.zeros((0, width), dtype=dtype)
    items = values.to_numpy()
    if values.isna().any():
        raise SpecMismatchError(f"column {name!r}: null arrays are not allowed")
    flat = np.concatenate(items).astype(dtype, copy=False)
    if flat.size != n * width:
        raise SpecMismatchError(
            f"column {name!r}: expected arrays of length {width}, got {flat.size / n:.2f} on average"
        )
    return flat.reshape(n, width)


def arrays_from_frame(
    pdf: pd.DataFrame, spec: FeatureSpec, *, with_label: bool = False
) -> tuple[np.ndarray, ...]:
    """Static, dynamic and mask arrays (and optionally labels) from feature-table rows.

    Args:
        pdf: Rows with the spec's static columns, ``seq`` and ``seq_mask``.
        spec: The FeatureSpec the model was trained with.
        with_label: Also return ``label`` as int (rows with a null label raise).

    Returns:
        ``(static (n, S) float32, dynamic (n, T, C) float32, mask (n, T) uint8)`` (+ ``y`` int64).
    """
    missing = [c for c in [*spec.static_names, SEQ_COLUMN, MASK_COLUMN] if c not in pdf.columns]
    if missing:
        raise SpecMismatchError(f"feature rows lack columns {missing}")
    static = pdf[spec.static_names].to_numpy(dtype=np.float32, na_value=np.nan)
    n = len(pdf)
    dynamic = stack_array_column(pdf[SEQ_COLUMN], spec.T * spec.C, np.float32, SEQ_COLUMN).reshape(n, spec.T, spec.C)
    mask = stack_array_column(pdf[MASK_COLUMN], spec.T, np.uint8, MASK_COLUMN)
    if not with_label:
        return static, dynamic, mask
    if pdf[LABEL_COLUMN].isna().any():
        raise SpecMismatchError("label: null labels cannot be used for training")
    return static, dynamic, mask, pdf[LABEL_COLUMN].to_numpy(dtype=np.int64)


def encode_categories(pdf: pd.DataFrame, encoding: dict[str, list[str]]) -> pd.DataFrame:
    """The pandas twin of :func:`credspark.features.encoding.with_category_encoding` (same columns, same values).

    For rows that hold the categorical attributes as text (as the ``features`` table does): adds each
    attribute's 0/1 features ``<name>__<category>`` and ``<name>__other`` after the existing columns; a null
    value sets none of them (NaN). Columns already present are left as they are.

    Args:
        pdf: Feature rows.
        encoding: ``{attribute: categories}`` (a FeatureSpec's ``category_encoding``).

    Returns:
        A new frame (``pdf`` is not modified).
    """
    added: dict[str, np.ndarray] = {}
    for name, cats in encoding.items():
        columns = encoding_columns(name, cats)
        if all(c in pdf.columns for c in columns):
            continue
        if name not in pdf.columns:
            raise SpecMismatchError(f"feature rows lack the categorical attribute column {name!r}")
        raw = pdf[name]
        isnull = raw.isna().to_numpy()
        text = raw.astype(object).where(~isnull, None).map(lambda v: None if v is None else str(v)).to_numpy()
        for cat, col in zip(cats, columns):
            added[col] = np.where(isnull, np.nan, (text == cat).astype(np.float64))
        added[columns[-1]] = np.where(isnull, np.nan, (~np.isin(text, list(cats))).astype(np.float64))
    return pdf.assign(**added) if added else pdf
