"""Baseline models of the paper's Table 6 that no library provides, for ``benchmarks/paper.py``.

- :class:`SampledBoostClassifier`: two-class AdaBoost.M2 whose weak learner in every round is fitted on a
  resampled copy of the training set. ``sampler="smote"`` is SMOTEBoost (Chawla et al., 2003: new SMOTE
  rows each round), ``sampler="rus"`` is RUSBoost (Seiffert et al., 2010: random undersampling of the
  majority each round), ``sampler="cluster"`` is CUSBoost (Rayhan et al., 2017: the majority class is
  split into k-means clusters once, and each round keeps a random share of every cluster). Boosting
  weights are always updated on the original rows.
- Small torch networks with the ``(static, dynamic, mask) -> logits`` signature of the ResNet-LSTM, so
  they train with its own loop pieces (:func:`credspark.models.resnet_lstm.train_epoch`, early stopping on
  validation AUC): :class:`CNNNet` (two conv layers, 32 and 64 filters of length 8 and 4, hidden 32),
  :class:`LSTMNet` (one LSTM layer, hidden 128) and :class:`RNNFusionNet` (a plain RNN on the monthly
  block beside an MLP on the static block, fused; a random forest on the fused vector gives RNN-RF).
- :func:`fit_network`: scaling (the project's :class:`InputPreprocessor`), training and scoring.

Plain AdaBoost is scikit-learn's (see ``benchmarks/paper.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from _uci_arrays import UciArrays
from torch import Tensor, nn

from credspark.models._preprocess import InputPreprocessor
from credspark.models._torch_utils import seeded
from credspark.models.resnet_lstm import EarlyStopping, evaluate, iter_batches, make_loss, train_epoch

__all__ = ["SampledBoostClassifier", "CNNNet", "LSTMNet", "RNNFusionNet", "FittedNetwork", "fit_network"]


# ------------------------------------------------------------------------------------------ boosting
class SampledBoostClassifier:
    """Two-class AdaBoost.M2 with a per-round resampling of the weak learner's training set.

    AdaBoost.M2 (Freund and Schapire, 1997) is the booster that SMOTEBoost, RUSBoost and CUSBoost were
    defined on. It uses the weak tree's class probabilities: with ``p_i`` the probability the tree gives
    row ``i``'s true class, the round's pseudo-loss is ``eps = sum_i w_i (1 - p_i)``, its weight
    ``alpha = learning_rate * log((1 - eps) / eps)``, and the row weights become ``w_i * exp(-alpha * p_i)``.
    The discrete SAMME rule (error of hard predictions on the original rows) stops such boosters after a
    few rounds here, because a tree fitted on a rebalanced sample misclassifies many majority rows
    (imbalanced-learn's SAMME RUSBoost kept 2 trees of 200 on the UCI training part).

    Args:
        sampler (str): ``"smote"`` (SMOTEBoost), ``"rus"`` (RUSBoost: random undersampling of the majority),
            ``"cluster"`` (CUSBoost) or ``"none"`` (AdaBoost.M2). Defaults to "smote".
        n_estimators (int): Boosting rounds. Defaults to 200.
        learning_rate (float): Shrinkage of each round's weight. Defaults to 0.5.
        max_depth (int): Depth of the weak decision trees. Defaults to 2.
        smote_ratio (float): SMOTEBoost: minority / majority after each round's SMOTE. Defaults to 1.0.
        k_neighbors (int): SMOTEBoost: neighbours for interpolation. Defaults to 5.
        rus_ratio (float): RUSBoost: minority / majority after each round's undersampling. Defaults to 1.0.
        n_clusters (int): CUSBoost: k-means clusters of the majority class. Defaults to 6.
        keep_share (float): CUSBoost: share of every majority cluster kept each round. Defaults to 0.5.
        random_state (int | None): Seed of the sampling, the clustering and the trees. Defaults to None.

    Attributes:
        estimators_ (list): The weak trees. ``alphas_`` (list[float]): Their weights.
    """

    def __init__(
        self,
        *,
        sampler: str = "smote",
        n_estimators: int = 200,
        learning_rate: float = 0.5,
        max_depth: int = 2,
        smote_ratio: float = 1.0,
        k_neighbors: int = 5,
        rus_ratio: float = 1.0,
        n_clusters: int = 6,
        keep_share: float = 0.5,
        random_state: int | None = None,
    ) -> None:
        self.sampler = sampler
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.max_depth = max_depth
        self.smote_ratio = smote_ratio
        self.k_neighbors = k_neighbors
        self.rus_ratio = rus_ratio
        self.n_clusters = n_clusters
        self.keep_share = keep_share
        self.random_state = random_state

    def fit(self, X: np.ndarray, y: np.ndarray) -> SampledBoostClassifier:
        """Run the boosting rounds on ``X`` (n, d) and 0/1 labels ``y`` (n,)."""
        from sklearn.tree import DecisionTreeClassifier

        if self.sampler not in ("smote", "rus", "cluster", "none"):
            raise ValueError(f"sampler must be 'smote', 'rus', 'cluster' or 'none', got {self.sampler!r}")
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y).astype(np.int64)
        rng = np.random.default_rng(self.random_state)
        draw = self._prepare_sampler(X, y, rng)
        w = np.full(len(y), 1.0 / len(y))
        self.estimators_: list[Any] = []
        self.alphas_: list[float] = []
        for _ in range(self.n_estimators):
            Xs, ys, ws = draw(w)
            tree = DecisionTreeClassifier(max_depth=self.max_depth, random_state=int(rng.integers(2**31)))
            tree.fit(Xs, ys, sample_weight=ws / ws.sum())
            p_true = self._proba1(tree, X)
            p_true = np.where(y == 1, p_true, 1.0 - p_true)
            eps = float(np.sum(w * (1.0 - p_true)) / np.sum(w))
            if eps >= 0.5:  # no better than chance on the real rows
                break
            alpha = self.learning_rate * np.log((1.0 - max(eps, 1e-10)) / max(eps, 1e-10))
            self.estimators_.append(tree)
            self.alphas_.append(float(alpha))
            w = w * np.exp(-alpha * p_true)
            w /= w.sum()
        if not self.estimators_:
            raise RuntimeError("the first weak learner was no better than chance")
        return self

    @staticmethod
    def _proba1(tree: Any, X: np.ndarray) -> np.ndarray:
        p = tree.predict_proba(X)
        return p[:, list(tree.classes_).index(1)] if 1 in tree.classes_ else np.zeros(len(X))

    def _prepare_sampler(
        self, X: np.ndarray, y: np.ndarray, rng: np.random.Generator
    ) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Return ``draw(weights) -> (X, y, weights)``, the training set of one round."""
        if self.sampler == "none":
            return lambda w: (X, y, w)
        minority, majority = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
        if self.sampler == "rus":
            n_keep = min(len(majority), int(np.ceil(len(minority) / self.rus_ratio)))

            def draw_rus(w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
                idx = np.concatenate([minority, rng.choice(majority, size=n_keep, replace=False)])
                return X[idx], y[idx], w[idx]

            return draw_rus
        if self.sampler == "smote":
            from sklearn.neighbors import NearestNeighbors

            X_min = X[minority]
            k = min(self.k_neighbors, len(minority) - 1)
            # Neighbours are found once (on standardised columns, as distances need a common scale);
            # each round only draws new interpolation points.
            scale = X.std(axis=0) + 1e-12
            nbrs = NearestNeighbors(n_neighbors=k + 1).fit(X_min / scale).kneighbors(X_min / scale)[1][:, 1:]
            n_new = max(0, int(np.ceil(self.smote_ratio * len(majority))) - len(minority))

            def draw_smote(w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
                base = rng.integers(len(minority), size=n_new)
                other = nbrs[base, rng.integers(k, size=n_new)]
                X_new = X_min[base] + rng.random((n_new, 1)) * (X_min[other] - X_min[base])
                w_new = np.full(n_new, w[minority].mean())  # a synthetic row weighs as much as an average real one
                return np.vstack([X, X_new]), np.r_[y, np.ones(n_new, dtype=y.dtype)], np.r_[w, w_new]

            return draw_smote
        from sklearn.cluster import KMeans

        X_maj = X[majority]
        z = (X_maj - X_maj.mean(axis=0)) / (X_maj.std(axis=0) + 1e-12)
        labels = KMeans(n_clusters=self.n_clusters, n_init=3, random_state=int(rng.integers(2**31))).fit_predict(z)
        clusters = [majority[labels == c] for c in range(self.n_clusters)]

        def draw_cluster(w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            kept = [rng.choice(c, size=max(1, int(round(self.keep_share * len(c)))), replace=False) for c in clusters]
            idx = np.concatenate([minority, *kept])
            return X[idx], y[idx], w[idx]

        return draw_cluster

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """Weighted vote ``sum_m alpha_m * (2 p_m(x) - 1)`` divided by ``sum_m alpha_m`` (in [-1, 1])."""
        X = np.asarray(X, dtype=np.float64)
        votes = sum(a * (2.0 * self._proba1(t, X) - 1.0) for a, t in zip(self.alphas_, self.estimators_))
        return votes / sum(self.alphas_)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """P(default) as ``(1 + vote) / 2`` (a monotone score in [0, 1]; not calibrated)."""
        return (1.0 + self.decision_function(X)) / 2.0


# ------------------------------------------------------------------------------------------ networks
class CNNNet(nn.Module):
    """1-D CNN over the scaled row (static then month-major dynamic values as one signal).

    Args:
        n_static (int): Width of the scaled static vector.
        n_dynamic (int): ``T * C``.
        filters (tuple[int, int]): Filters of the two conv layers. Defaults to (32, 64).
        kernels (tuple[int, int]): Their lengths. Defaults to (8, 4).
        hidden (int): Dense layer width. Defaults to 32.
        dropout (float): Dropout before the head. Defaults to 0.2.
    """

    def __init__(
        self,
        *,
        n_static: int,
        n_dynamic: int,
        filters: tuple[int, int] = (32, 64),
        kernels: tuple[int, int] = (8, 4),
        hidden: int = 32,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        length = n_static + n_dynamic - kernels[0] - kernels[1] + 2
        if length < 1:
            raise ValueError(f"the row ({n_static + n_dynamic} values) is shorter than the two kernels")
        self.conv = nn.Sequential(
            nn.Conv1d(1, filters[0], kernels[0]), nn.ReLU(), nn.Conv1d(filters[0], filters[1], kernels[1]), nn.ReLU()
        )
        self.dense = nn.Sequential(nn.Flatten(), nn.Linear(filters[1] * length, hidden), nn.ReLU(), nn.Dropout(dropout))
        self.head = nn.Linear(hidden, 1)

    def forward(self, static: Tensor, dynamic: Tensor, mask: Tensor) -> Tensor:
        """Default logits ``(n,)``."""
        x = torch.cat([static, dynamic.flatten(1)], dim=1).unsqueeze(1)
        return self.head(self.dense(self.conv(x))).squeeze(-1)


class LSTMNet(nn.Module):
    """One LSTM layer over the months; its last hidden state beside the static vector feeds a linear head.

    Args:
        n_static (int): Width of the scaled static vector.
        n_channels (int): Dynamic channels.
        hidden (int): LSTM hidden size. Defaults to 128.
        dropout (float): Dropout before the head. Defaults to 0.2.
    """

    def __init__(self, *, n_static: int, n_channels: int, hidden: int = 128, dropout: float = 0.2) -> None:
        super().__init__()
        self.lstm = nn.LSTM(n_channels, hidden, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden + n_static, 1)

    def forward(self, static: Tensor, dynamic: Tensor, mask: Tensor) -> Tensor:
        """Default logits ``(n,)`` (the UCI months are all observed, so the mask is not needed)."""
        _, (h, _) = self.lstm(dynamic)
        return self.head(self.dropout(torch.cat([h[-1], static], dim=1))).squeeze(-1)


class RNNFusionNet(nn.Module):
    """RNN-RF's network: a plain (tanh) RNN on the months and an MLP on the static block, fused.

    Args:
        n_static (int): Width of the scaled static vector.
        n_channels (int): Dynamic channels.
        hidden (int): RNN hidden size and MLP width. Defaults to 32.
        fused (int): Width of the fused vector that the random forest reads. Defaults to 32.
        dropout (float): Dropout before the head. Defaults to 0.2.
    """

    def __init__(self, *, n_static: int, n_channels: int, hidden: int = 32, fused: int = 32, dropout: float = 0.2):
        super().__init__()
        self.rnn = nn.RNN(n_channels, hidden, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(n_static, hidden), nn.ReLU())
        self.fuse = nn.Sequential(nn.Linear(2 * hidden, fused), nn.ReLU())
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(fused, 1)

    def encode(self, static: Tensor, dynamic: Tensor, mask: Tensor) -> Tensor:
        """The fused vector ``(n, fused)``."""
        _, h = self.rnn(dynamic)
        return self.fuse(torch.cat([h[-1], self.mlp(static)], dim=1))

    def forward(self, static: Tensor, dynamic: Tensor, mask: Tensor) -> Tensor:
        """Default logits ``(n,)``."""
        return self.head(self.dropout(self.encode(static, dynamic, mask))).squeeze(-1)


class FittedNetwork:
    """A trained network with its input scaling: ``predict_proba(part)`` and, if it has one, ``encode(part)``."""

    def __init__(self, module: nn.Module, pre: InputPreprocessor, history: dict[str, list[float]], best: int):
        self.module, self.pre, self.history, self.best_epoch = module.eval(), pre, history, best

    def _tensors(self, part: UciArrays) -> list[Tensor]:
        return [
            torch.from_numpy(self.pre.transform_static(part.static)),
            torch.from_numpy(self.pre.transform_dynamic(part.dynamic, part.mask)),
            torch.from_numpy(part.mask.astype(bool)),
        ]

    def _apply(self, part: UciArrays, fn: Callable[..., Tensor]) -> np.ndarray:
        s, d, m = self._tensors(part)
        with torch.inference_mode():
            return np.concatenate([fn(*b).float().numpy() for b in iter_batches([s, d, m], 2048)])

    def predict_proba(self, part: UciArrays) -> np.ndarray:
        """P(default) ``(n,)`` from the network's head."""
        return self._apply(part, lambda *b: torch.sigmoid(self.module(*b)))

    def encode(self, part: UciArrays) -> np.ndarray:
        """The network's ``encode`` output (RNNFusionNet's fused vector)."""
        return self._apply(part, self.module.encode)


def fit_network(
    build: Callable[[int, int, int], nn.Module], train: UciArrays, valid: UciArrays, cfg: dict[str, Any], seed: int
) -> FittedNetwork:
    """Scale, then train with Adam + BCE and early stopping on validation AUC (best weights kept).

    Args:
        build: ``(n_static_scaled, T, C) -> module``; called inside the seeded block.
        train: Training rows.
        valid: Validation rows (early stopping only).
        cfg: ``lr``, ``epochs``, ``patience``, ``batch_size``.
        seed: Seed of the initialisation, dropout and shuffling.

    Returns:
        The fitted network.
    """
    pre = InputPreprocessor().fit(train.spec, train.static, train.dynamic, train.mask)

    def tensors(part: UciArrays) -> list[Tensor]:
        return [
            torch.from_numpy(pre.transform_static(part.static)),
            torch.from_numpy(pre.transform_dynamic(part.dynamic, part.mask)),
            torch.from_numpy(part.mask.astype(bool)),
            torch.from_numpy(part.y.astype(np.float32)),
        ]

    train_t, valid_t = tensors(train), tensors(valid)
    rng = np.random.default_rng(seed)
    history: dict[str, list[float]] = {"train_loss": [], "valid_auc": []}
    with seeded(seed):
        module = build(pre.n_static_out_, train.spec.T, train.spec.C)
        optimizer = torch.optim.Adam(module.parameters(), lr=float(cfg["lr"]))
        stopper = EarlyStopping(int(cfg["patience"]))
        loss_fn = make_loss("bce")
        for _ in range(int(cfg["epochs"])):
            batches = iter_batches(train_t, int(cfg["batch_size"]), shuffle=True, rng=rng, drop_last_single=True)
            history["train_loss"].append(train_epoch(module, optimizer, batches, loss_fn))
            history["valid_auc"].append(evaluate(module, iter_batches(valid_t, 2048)))
            if stopper.update(history["valid_auc"][-1], module):
                break
        stopper.restore(module)
    best = stopper.best_epoch if stopper.best_epoch is not None else len(history["train_loss"]) - 1
    return FittedNetwork(module, pre, history, int(best))
