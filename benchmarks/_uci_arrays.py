"""The UCI credit-card data as model arrays (Spark-free), and the paper's evaluation protocol.

Used by the benchmarks that work on arrays directly (kept beside them: the library does not need it). The
Spark ingest job (``jobs/ingest_uci.py``) maps the same file into the input contract instead.

Layout: the static block is the profile (LIMIT_BAL, SEX, EDUCATION, MARRIAGE, AGE) with EDUCATION 0/5/6 mapped
to 4 ("other") and MARRIAGE 0 to 3, as the data's documentation advises; the dynamic block is 6 months (April ..
September 2005, oldest first) x 3 channels (PAY status, BILL_AMT, PAY_AMT); every month is observed.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from credspark.models.spec import FeatureSpec, StaticFeature

__all__ = ["UciArrays", "DEFAULT_UCI_CSV", "load_uci_arrays", "paper_split", "UCI_SPEC"]

DEFAULT_UCI_CSV = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "uci_taiwan" / "UCI_Credit_Card.csv"

_STATIC = ("LIMIT_BAL", "SEX", "EDUCATION", "MARRIAGE", "AGE")
_PAY = ("PAY_6", "PAY_5", "PAY_4", "PAY_3", "PAY_2", "PAY_0")  # April .. September
_BILL = tuple(f"BILL_AMT{i}" for i in range(6, 0, -1))
_PAID = tuple(f"PAY_AMT{i}" for i in range(6, 0, -1))
_TARGETS = ("default.payment.next.month", "default payment next month", "Y")

UCI_SPEC = FeatureSpec(
    static=(
        StaticFeature("LIMIT_BAL", "continuous", lower=0.0),
        StaticFeature("SEX", "categorical", categories=(1, 2)),
        StaticFeature("EDUCATION", "categorical", categories=(1, 2, 3, 4)),
        StaticFeature("MARRIAGE", "categorical", categories=(1, 2, 3)),
        StaticFeature("AGE", "integer", lower=18.0, upper=100.0),
    ),
    channels=("delinquency", "bill_amount", "paid_amount"),
    T=6,
    version="uci-1",
)


@dataclass(frozen=True)
class UciArrays:
    """The UCI data as arrays: ``static (n, 5)``, ``dynamic (n, 6, 3)``, ``mask (n, 6)``, ``y (n,)``."""

    static: np.ndarray
    dynamic: np.ndarray
    mask: np.ndarray
    y: np.ndarray
    ids: np.ndarray
    spec: FeatureSpec

    @property
    def raw(self) -> np.ndarray:
        """The 23 raw columns side by side (static then flattened dynamic), for plain baselines."""
        return np.hstack([self.static, self.dynamic.reshape(len(self.y), -1)])

    def take(self, idx: np.ndarray) -> UciArrays:
        """Rows ``idx`` only."""
        return UciArrays(self.static[idx], self.dynamic[idx], self.mask[idx], self.y[idx], self.ids[idx], self.spec)


def load_uci_arrays(path: str | Path = DEFAULT_UCI_CSV) -> UciArrays:
    """Read the CSV (Kaggle layout, or the original with its X1..X23 second header row) into arrays.

    Args:
        path: The CSV file.

    Returns:
        UciArrays with 30,000 rows for the published file.
    """
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    header = [h.strip() for h in rows[0]]
    body = rows[1:]
    if body and body[0] and body[0][1].strip() == "X1":  # the original .xls export's second header row
        body = body[1:]
    if "PAY_0" not in header and "PAY_1" in header:
        header = ["PAY_0" if h == "PAY_1" else h for h in header]
    target = next((t for t in _TARGETS if t in header), None)
    if target is None:
        raise ValueError(f"{path}: no target column (one of {_TARGETS})")
    idx = {h: i for i, h in enumerate(header)}
    data = np.array([[float(r[idx[c]]) for c in header] for r in body if r], dtype=np.float64)
    col = {h: data[:, i] for h, i in idx.items()}
    static = np.stack([col[c] for c in _STATIC], axis=1)
    static[:, 2] = np.where(np.isin(static[:, 2], (1, 2, 3, 4)), static[:, 2], 4)
    static[:, 3] = np.where(np.isin(static[:, 3], (1, 2, 3)), static[:, 3], 3)
    dynamic = np.stack([np.stack([col[c] for c in ch], axis=1) for ch in (_PAY, _BILL, _PAID)], axis=2)
    n = len(data)
    return UciArrays(
        static=static.astype(np.float32),
        dynamic=dynamic.astype(np.float32),
        mask=np.ones((n, 6), dtype=np.uint8),
        y=col[target].astype(np.int64),
        ids=col[header[0]].astype(np.int64),
        spec=UCI_SPEC,
    )


def paper_split(y: np.ndarray, seed: int, test_size: float = 0.3, valid_share: float = 0.2):
    """The paper's protocol: 70/30 stratified train/test, then 20% of train (stratified) for validation.

    Args:
        y: Labels.
        seed: Random seed of both splits.
        test_size: Share of all rows for test.
        valid_share: Share of the training part for validation.

    Returns:
        ``(train_idx, valid_idx, test_idx)`` index arrays, disjoint and covering all rows.
    """
    from sklearn.model_selection import train_test_split

    all_idx = np.arange(len(y))
    train_full, test = train_test_split(all_idx, test_size=test_size, stratify=y, random_state=seed)
    train, valid = train_test_split(train_full, test_size=valid_share, stratify=y[train_full], random_state=seed)
    return np.sort(train), np.sort(valid), np.sort(test)
