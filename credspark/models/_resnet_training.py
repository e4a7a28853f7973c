"""The ResNet-LSTM's training loop.

Losses, mini-batches, one epoch, prediction, validation AUC and early stopping; the estimator and the
distributed workers (with their own data feeds) share them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - torch convention
from torch import Tensor, nn

from credspark.metrics import roc_auc

__all__ = ["Batch", "LossFn", "device_of", "focal_loss", "make_loss", "iter_batches", "train_epoch", "predict_batches",
           "evaluate", "EarlyStopping"]

Batch = Sequence[Tensor]
LossFn = Callable[[Tensor, Tensor], Tensor]


def focal_loss(logits: Tensor, y: Tensor, alpha: float = 0.25, gamma: float = 2.0) -> Tensor:
    """Mean binary focal loss ``-alpha_t (1 - p_t)^gamma log p_t`` on logits (Lin et al., 2017).

    Args:
        logits (Tensor): ``(n,)`` raw scores.
        y (Tensor): ``(n,)`` 0/1 targets (float).
        alpha (float): Weight of the positive class (negatives get ``1 - alpha``). Defaults to 0.25.
        gamma (float): Focusing exponent; 0 gives alpha-weighted BCE. Defaults to 2.0.

    Returns:
        Tensor: Scalar loss.
    """
    bce = F.binary_cross_entropy_with_logits(logits, y, reduction="none")  # = -log p_t, stable
    p_t = torch.exp(-bce)
    alpha_t = alpha * y + (1.0 - alpha) * (1.0 - y)
    return (alpha_t * (1.0 - p_t) ** gamma * bce).mean()


def make_loss(loss: str = "bce", *, alpha: float = 0.25, gamma: float = 2.0) -> LossFn:
    """Return ``loss_fn(logits, y) -> scalar`` for ``"bce"`` or ``"focal"``."""
    if loss == "bce":
        return lambda logits, y: F.binary_cross_entropy_with_logits(logits, y)
    if loss == "focal":
        return lambda logits, y: focal_loss(logits, y, alpha=alpha, gamma=gamma)
    raise ValueError(f"loss must be 'bce' or 'focal', got {loss!r}")


# ------------------------------------------------------------------------------------------ training loop
def iter_batches(
    tensors: Sequence[Tensor],
    batch_size: int,
    *,
    shuffle: bool = False,
    rng: np.random.Generator | None = None,
    drop_last_single: bool = False,
) -> Iterator[tuple[Tensor, ...]]:
    """Yield aligned mini-batches of equally long tensors.

    Args:
        tensors (Sequence[Tensor]): Tensors with the same first dimension (e.g. static, dynamic, mask, y).
        batch_size (int): Rows per batch.
        shuffle (bool): Permute rows first (needs ``rng``). Defaults to False.
        rng (np.random.Generator | None): Source of the permutation. Defaults to None.
        drop_last_single (bool): Skip a final batch of one row (BatchNorm cannot train on it).
            Defaults to False.

    Yields:
        tuple[Tensor, ...]: One slice of every tensor.
    """
    n = tensors[0].shape[0]
    if shuffle:
        if rng is None:
            raise ValueError("shuffle=True needs rng")
        perm = torch.from_numpy(rng.permutation(n)).to(tensors[0].device)
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        if drop_last_single and stop - start == 1 and n > 1:
            return
        if shuffle:
            idx = perm[start:stop]
            yield tuple(t[idx] for t in tensors)
        else:
            yield tuple(t[start:stop] for t in tensors)


def device_of(module: nn.Module) -> torch.device:
    """The device of a module's parameters."""
    return next(module.parameters()).device


def train_epoch(
    module: nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Iterable[Batch],
    loss_fn: LossFn,
    grad_sync: Callable[[nn.Module], None] | None = None,
) -> float:
    """Run one pass over ``batches`` and return the row-weighted mean training loss.

    Args:
        module (nn.Module): Network taking ``(static, dynamic, mask)`` and returning logits ``(n,)``.
        optimizer (torch.optim.Optimizer): Optimizer over ``module``'s parameters.
        batches (Iterable[Batch]): ``(static, dynamic, mask, y)`` tensors, already scaled; moved to the
            module's device here. Supplied from outside under a distributed launcher (one shard per rank).
        loss_fn (LossFn): ``loss_fn(logits, y_float) -> scalar``.
        grad_sync (Callable[[nn.Module], None] | None): Called after ``backward()`` and before
            ``optimizer.step()``, e.g. to all-reduce gradients across ranks. Defaults to None.

    Returns:
        float: Mean loss over the rows seen (nan if no batch came).
    """
    device = device_of(module)
    module.train()
    total, rows = 0.0, 0
    for static, dynamic, mask, y in batches:
        static, dynamic, mask = static.to(device), dynamic.to(device), mask.to(device)
        y = y.to(device=device, dtype=torch.float32)
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(module(static, dynamic, mask), y)
        loss.backward()
        if grad_sync is not None:
            grad_sync(module)
        optimizer.step()
        total += float(loss.detach()) * y.shape[0]
        rows += y.shape[0]
    return total / rows if rows else math.nan


def predict_batches(module: nn.Module, batches: Iterable[Batch]) -> tuple[np.ndarray, np.ndarray | None]:
    """Score batches in eval mode.

    Args:
        module (nn.Module): The network.
        batches (Iterable[Batch]): ``(static, dynamic, mask)`` or ``(static, dynamic, mask, y)`` tensors.

    Returns:
        tuple[np.ndarray, np.ndarray | None]: Probabilities ``(n,)`` float32, and the labels when the
        batches carried them (else None).
    """
    device = device_of(module)
    module.eval()
    probs: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    with torch.inference_mode():
        for batch in batches:
            static, dynamic, mask = (t.to(device) for t in batch[:3])
            probs.append(torch.sigmoid(module(static, dynamic, mask)).float().cpu().numpy())
            if len(batch) > 3:
                labels.append(batch[3].cpu().numpy())
    p = np.concatenate(probs) if probs else np.empty(0, dtype=np.float32)
    return p, (np.concatenate(labels) if labels else None)


def _valid_auc(y: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC for early stopping; nan (never an improvement) where it is undefined instead of raising.

    Undefined: a single-class validation set, or non-finite scores from a diverged network.
    """
    if np.unique(y).size < 2 or not np.isfinite(score).all():
        return math.nan
    return roc_auc(y, score)


def evaluate(module: nn.Module, batches: Iterable[Batch]) -> float:
    """Validation AUC of ``module`` on labelled ``(static, dynamic, mask, y)`` batches.

    Args:
        module (nn.Module): The network.
        batches (Iterable[Batch]): Labelled batches.

    Returns:
        float: ROC AUC (nan for a single-class set or non-finite scores).
    """
    p, y = predict_batches(module, batches)
    if y is None:
        raise ValueError("evaluate needs labelled batches (static, dynamic, mask, y)")
    return _valid_auc(y, p)


class EarlyStopping:
    """Tracks the best validation score, snapshots the weights, and says when to stop.

    Args:
        patience (int): Stop after this many consecutive epochs without improvement (Keras convention;
            0 stops at the first epoch that does not improve).
    """

    def __init__(self, patience: int) -> None:
        self.patience = patience
        self.best_score = -math.inf
        self.best_epoch: int | None = None
        self._best_state: dict[str, Tensor] | None = None
        self._epoch = -1
        self._wait = 0

    def update(self, score: float, module: nn.Module) -> bool:
        """Record this epoch's score (nan never improves); return True when training should stop."""
        self._epoch += 1
        if score > self.best_score:
            self.best_score, self.best_epoch, self._wait = score, self._epoch, 0
            self._best_state = {k: v.detach().clone() for k, v in module.state_dict().items()}
            return False
        self._wait += 1
        return self._wait >= self.patience

    def restore(self, module: nn.Module) -> None:
        """Load the best weights seen into ``module`` (no-op if no epoch improved on -inf)."""
        if self._best_state is not None:
            module.load_state_dict(self._best_state)

    @property
    def best_weights(self) -> dict[str, Tensor] | None:
        """The snapshot of the best epoch's weights (None before any improvement)."""
        return self._best_state

    def state_dict(self) -> dict[str, Any]:
        """The counters a checkpoint needs to resume stopping where it left off (weights apart)."""
        return {"best_score": self.best_score, "best_epoch": self.best_epoch, "wait": self._wait,
                "epoch": self._epoch}

    def load_state_dict(self, state: Mapping[str, Any], best_weights: Mapping[str, Tensor] | None = None) -> None:
        """Resume from :meth:`state_dict` and the best weights saved beside it.

        Args:
            state: What :meth:`state_dict` returned (``best_score`` None means -inf).
            best_weights: The best epoch's weights, or None when no epoch improved yet.
        """
        self.best_score = -math.inf if state["best_score"] is None else float(state["best_score"])
        self.best_epoch, self._wait, self._epoch = state["best_epoch"], int(state["wait"]), int(state["epoch"])
        self._best_state = dict(best_weights) if best_weights is not None else None
