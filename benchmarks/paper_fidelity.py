"""Synthetic-data fidelity and GAN training probes for ``benchmarks/paper.py`` (paper parts 2 and 3).

Everything works on the 23 raw UCI columns in :attr:`UciArrays.raw` order (static block, then the months
oldest first, three channels each). The categorical columns are SEX, EDUCATION, MARRIAGE and the six
PAY_* repayment statuses (codes -2..8); the rest are continuous.

- :func:`column_shapes`: per column, 1 - Kolmogorov-Smirnov statistic (continuous) or 1 - total variation
  distance (categorical); 1 = same marginal distribution.
- :func:`correlation_similarity`: mean over column pairs of ``1 - |r_real - r_synth| / 2`` (Pearson).
- :func:`detection`: cross-validated AUC of a gradient-boosted classifier telling real rows from generated
  ones (0.5 = indistinguishable), and the score ``1 - (2 * max(AUC, 0.5) - 1)``.
- :func:`scaled_w1`: mean over columns of the 1-D Wasserstein distance divided by the real column's std.
- :func:`track_epochs`: make an ACTGAN / CGAN measure :func:`scaled_w1` of its own samples after every
  epoch, without changing its training (sampling uses the model's own seeded generator and eval mode).
- :func:`CtganOversampler`: the ``ctgan`` package's CTGAN behind the same ``fit`` / ``sample`` shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

# The column order of UciArrays.raw is defined by these (private) tuples of the loader; importing them
# keeps the names in one place.
from _uci_arrays import _BILL, _PAID, _PAY, _STATIC, UciArrays

__all__ = [
    "RAW_COLUMNS",
    "CATEGORICAL",
    "HIST_COLUMNS",
    "column_shapes",
    "correlation_similarity",
    "detection",
    "scaled_w1",
    "histograms",
    "track_epochs",
    "CtganOversampler",
]

RAW_COLUMNS: tuple[str, ...] = _STATIC + tuple(c for t in range(6) for c in (_PAY[t], _BILL[t], _PAID[t]))
CATEGORICAL: frozenset[str] = frozenset({"SEX", "EDUCATION", "MARRIAGE", *_PAY})
#: The columns of the paper's Figure 6 (real vs generated histograms).
HIST_COLUMNS: tuple[str, ...] = ("AGE", "LIMIT_BAL", "BILL_AMT1", "BILL_AMT2", "BILL_AMT3", "BILL_AMT4")


def column_shapes(real: np.ndarray, synth: np.ndarray) -> dict[str, float]:
    """Per raw column: 1 - KS statistic (continuous) or 1 - total variation distance (categorical).

    Args:
        real: ``(n, 23)`` real rows.
        synth: ``(m, 23)`` generated rows.

    Returns:
        Column name -> score in [0, 1].
    """
    from scipy.stats import ks_2samp

    out = {}
    for j, name in enumerate(RAW_COLUMNS):
        r, s = real[:, j], synth[:, j]
        if name in CATEGORICAL:
            values = np.union1d(np.unique(r), np.unique(s))
            p = np.array([np.mean(r == v) for v in values])
            q = np.array([np.mean(s == v) for v in values])
            out[name] = float(1.0 - 0.5 * np.abs(p - q).sum())
        else:
            out[name] = float(1.0 - ks_2samp(r, s).statistic)
    return out


def _corr(x: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        c = np.corrcoef(x, rowvar=False)
    return np.nan_to_num(c, nan=0.0)  # a constant generated column has no correlation: count it as 0


def correlation_similarity(real: np.ndarray, synth: np.ndarray) -> float:
    """Mean over column pairs ``i < j`` of ``1 - |corr_real - corr_synth| / 2`` (Pearson, on the raw codes)."""
    iu = np.triu_indices(real.shape[1], k=1)
    return float(np.mean(1.0 - np.abs(_corr(real)[iu] - _corr(synth)[iu]) / 2.0))


def detection(real: np.ndarray, synth: np.ndarray, seed: int, folds: int = 3) -> dict[str, float]:
    """How well gradient-boosted trees tell real from generated rows (equal numbers of each, k-fold CV).

    Args:
        real: ``(n, 23)`` real rows.
        synth: ``(m, 23)`` generated rows.
        seed: Seed of the subsample, the folds and the trees.
        folds: Cross-validation folds. Defaults to 3.

    Returns:
        ``auc`` (0.5 = indistinguishable, 1 = always told apart) and ``score`` = ``2 - 2 * max(auc, 0.5)``.
    """
    from sklearn.model_selection import StratifiedKFold
    from xgboost import XGBClassifier

    from credspark.metrics import roc_auc

    rng = np.random.default_rng(seed)
    n = min(len(real), len(synth))
    X = np.vstack([real[rng.choice(len(real), n, replace=False)], synth[rng.choice(len(synth), n, replace=False)]])
    y = np.r_[np.zeros(n), np.ones(n)]
    scores = np.empty(len(y))
    for tr, te in StratifiedKFold(folds, shuffle=True, random_state=seed).split(X, y):
        model = XGBClassifier(n_estimators=200, max_depth=3, learning_rate=0.1, n_jobs=1, random_state=seed)
        scores[te] = model.fit(X[tr], y[tr]).predict_proba(X[te])[:, 1]
    auc = roc_auc(y, scores)
    return {"auc": auc, "score": 2.0 - 2.0 * max(auc, 0.5)}


def scaled_w1(real: np.ndarray, synth: np.ndarray) -> float:
    """Mean over columns of the 1-D Wasserstein-1 distance divided by the real column's std."""
    from scipy.stats import wasserstein_distance

    return float(
        np.mean(
            [wasserstein_distance(real[:, j], synth[:, j]) / (real[:, j].std() + 1e-12) for j in range(real.shape[1])]
        )
    )


def histograms(real: np.ndarray, synth: np.ndarray, bins: int = 30) -> dict[str, dict[str, list[float]]]:
    """Density histograms of :data:`HIST_COLUMNS` on common edges (the real 0.5-99.5% range, plus the tails).

    Returns:
        Column -> ``{"edges", "real", "synth"}`` (densities per bin; values outside the range are clipped
        into the outer bins so nothing generated is hidden).
    """
    out = {}
    for name in HIST_COLUMNS:
        j = RAW_COLUMNS.index(name)
        lo, hi = np.quantile(real[:, j], [0.005, 0.995])
        edges = np.linspace(lo, hi, bins + 1)

        def density(x: np.ndarray, edges: np.ndarray = edges) -> list[float]:
            counts, _ = np.histogram(np.clip(x, edges[0], edges[-1]), bins=edges)
            return [round(float(c), 8) for c in counts / max(1, len(x)) / np.diff(edges)]

        out[name] = {"edges": [float(e) for e in edges], "real": density(real[:, j]), "synth": density(synth[:, j])}
    return out


def track_epochs(gan: Any, real_minority_raw: np.ndarray, n_probe: int = 2000, seed: int = 12345) -> Any:
    """Make a credspark ACTGAN / CGAN record :func:`scaled_w1` of its minority samples after every epoch.

    The model's ``_log_epoch`` hook (called once per epoch by ``TabularGAN.fit``) is wrapped on the
    instance. Sampling runs the generator in eval mode with its own seeded ``torch.Generator``, so the
    global random stream, and hence the training, is the same as without the probe. The values end up in
    ``gan.probe_w1_`` (one per epoch).

    Args:
        gan: An unfitted ``ACTGAN`` or ``CGAN``.
        real_minority_raw: ``(n, 23)`` real minority rows of the training part.
        n_probe: Rows generated per probe.
        seed: Seed of every probe draw (the same noise each epoch, so the curve shows the generator move).

    Returns:
        ``gan`` itself.
    """
    original = gan._log_epoch
    gan.probe_w1_ = []

    def log_epoch(epoch: int, records: list[dict[str, float]]) -> None:
        original(epoch, records)
        s, d, _ = gan.sample(n_probe, label=1, random_state=seed)
        gan.probe_w1_.append(scaled_w1(real_minority_raw, np.hstack([s, d.reshape(len(s), -1)])))

    gan._log_epoch = log_epoch
    return gan


class CtganOversampler:
    """The ``ctgan`` package's CTGAN on the 23 raw columns plus the label, sampled per class.

    CTGAN has no class input: the label is one more discrete column, and :meth:`sample` asks for label
    ``c`` through CTGAN's conditional sampling, which raises that value's probability but does not fix it;
    rows that come out with the other label are dropped and more are drawn.

    Args:
        epochs (int): Training epochs.
        dims (Sequence[int]): Generator and discriminator widths.
        batch_size (int): Batch size (a multiple of ``pac`` = 10).
        seed (int): Seed (``CTGAN.set_random_state``).
    """

    LABEL = "default"

    def __init__(self, *, epochs: int, dims: Sequence[int], batch_size: int, seed: int) -> None:
        self.epochs, self.dims, self.batch_size, self.seed = epochs, tuple(dims), batch_size, seed

    def fit(self, train: UciArrays) -> CtganOversampler:
        """Fit on the training part (categoricals and PAY statuses as discrete columns)."""
        import pandas as pd
        from ctgan import CTGAN

        frame = pd.DataFrame(train.raw.astype(np.float64), columns=list(RAW_COLUMNS))
        discrete = [c for c in RAW_COLUMNS if c in CATEGORICAL] + [self.LABEL]
        for c in discrete[:-1]:
            frame[c] = frame[c].astype(np.int64)
        frame[self.LABEL] = train.y.astype(np.int64)
        self.model_ = CTGAN(
            epochs=self.epochs,
            generator_dim=self.dims,
            discriminator_dim=self.dims,
            batch_size=self.batch_size,
            enable_gpu=False,
        )
        self.model_.set_random_state(self.seed)
        self.model_.fit(frame, discrete)
        losses = self.model_.loss_values
        self.history_ = {
            "g_loss": [float(v) for v in losses["Generator Loss"]],
            "d_loss": [float(v) for v in losses.iloc[:, 2]],  # the package spells it "Distriminator Loss"
        }
        return self

    def sample(self, n: int, label: int, max_rounds: int = 50) -> np.ndarray:
        """``n`` generated raw rows ``(n, 23)`` whose generated label is ``label``."""
        got: list[np.ndarray] = []
        total = 0
        for _ in range(max_rounds):
            if total >= n:
                break
            frame = self.model_.sample(max(2 * (n - total), 100), condition_column=self.LABEL, condition_value=label)
            keep = frame[frame[self.LABEL] == label][list(RAW_COLUMNS)].to_numpy(dtype=np.float64)
            got.append(keep)
            total += len(keep)
        rows = np.vstack(got)
        if len(rows) < n:
            raise RuntimeError(f"CTGAN produced only {len(rows)} rows with label {label} in {max_rounds} rounds")
        return rows[:n]


def raw_to_arrays(raw: np.ndarray, y: np.ndarray, like: UciArrays) -> UciArrays:
    """Generated raw rows back to the arrays layout (all months observed; ids -1, -2, ... mark them)."""
    n_static = like.static.shape[1]
    T, C = like.dynamic.shape[1:]
    return UciArrays(
        raw[:, :n_static].astype(np.float32),
        raw[:, n_static:].reshape(len(raw), T, C).astype(np.float32),
        np.ones((len(raw), T), dtype=np.uint8),
        np.asarray(y, dtype=np.int64),
        -1 - np.arange(len(raw)),
        like.spec,
    )


def concat(a: UciArrays, b: UciArrays) -> UciArrays:
    """Rows of ``a`` then rows of ``b``."""
    return UciArrays(
        *(np.concatenate([getattr(a, f), getattr(b, f)]) for f in ("static", "dynamic", "mask", "y", "ids")), a.spec
    )
