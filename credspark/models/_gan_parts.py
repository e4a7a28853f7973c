"""Building blocks of the tabular GANs (ACTGAN, CGAN): seeds, outputs, generator, batches, one training epoch.

* :class:`ConditionalGenerator`: noise + one-hot label -> residual MLP -> per-span output activations.
* :class:`ConditionalBatchSampler`: batches of real rows with a label drawn per row.
* :func:`train_epoch`: one epoch of alternating critic and generator steps, with the batch iterator and
  an optional ``grad_sync(module)`` hook supplied from outside (so the same loop runs under a
  distributed launcher that all-reduces gradients after each backward).

:class:`credspark.models._gan_common.TabularGAN` orchestrates them.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - the usual torch alias
from torch import nn

from credspark.models._gan_transformer import Span

__all__ = [
    "ConditionalBatchSampler",
    "ConditionalGenerator",
    "CriticStep",
    "GeneratorStep",
    "GradSync",
    "LOGGER",
    "N_CLASSES",
    "ResidualBlock",
    "apply_output_activations",
    "derive_seed",
    "frozen",
    "gumbel_softmax",
    "n_new_minority",
    "one_hot_labels",
    "train_epoch",
]

LOGGER = logging.getLogger("credspark.models")

N_CLASSES = 2

#: Called with a module after ``backward()`` and before ``optimizer.step()``; a distributed run
#: all-reduces that module's gradients here.
GradSync = Callable[[nn.Module], None]
#: ``(real, labels, grad_sync) -> {"d_loss": ..., "wasserstein": ..., ...}``
CriticStep = Callable[[torch.Tensor, torch.Tensor, "GradSync | None"], dict[str, float]]
#: ``(labels, grad_sync) -> {"g_loss": ...}``
GeneratorStep = Callable[[torch.Tensor, "GradSync | None"], dict[str, float]]


# ---------------------------------------------------------------------- small helpers
def derive_seed(random_state: int | None, purpose: int) -> int:
    """An independent 32-bit seed for one purpose, derived from a model's ``random_state``.

    Args:
        random_state: The model's seed; None draws fresh entropy.
        purpose: Small integer naming the random stream.

    Returns:
        A seed in ``[0, 2**32)``.
    """
    seq = (
        np.random.SeedSequence() if random_state is None else np.random.SeedSequence(random_state, spawn_key=(purpose,))
    )
    return int(seq.generate_state(1)[0])


def one_hot_labels(labels: torch.Tensor) -> torch.Tensor:
    """The condition vector: float one-hot of integer class labels (two classes)."""
    return F.one_hot(labels.long(), N_CLASSES).float()


def n_new_minority(n_minority: int, n_majority: int, ratio: float) -> int:
    """Number of minority rows to add so that minority / majority reaches ``ratio``.

    The target minority count is ``ceil(ratio * n_majority)`` (after rounding the product to 9 decimals so
    that floating-point noise such as ``0.7 * 100 = 70.00000000000001`` does not add a row). The ratio is
    therefore met exactly whenever ``ratio * n_majority`` is an integer and exceeded by less than one row
    otherwise. Nothing is added when the data already reach the ratio.

    Args:
        n_minority: Current minority (label 1) count.
        n_majority: Majority (label 0) count.
        ratio: Wanted minority / majority ratio.

    Returns:
        A non-negative integer.
    """
    if ratio < 0:
        raise ValueError(f"ratio must be >= 0, got {ratio}")
    target = math.ceil(round(ratio * n_majority, 9))
    return max(0, target - int(n_minority))


def gumbel_softmax(logits: torch.Tensor, tau: float, gumbel: torch.Tensor | None = None) -> torch.Tensor:
    """Softmax of ``(logits + Gumbel noise) / tau`` (the relaxed one-hot sample).

    Args:
        logits: ``(n, k)`` unnormalised log-probabilities.
        tau: Temperature; small values give nearly one-hot outputs.
        gumbel: Gumbel(0, 1) noise of the same shape; drawn from the global RNG when None.

    Returns:
        ``(n, k)`` rows on the simplex.
    """
    if gumbel is None:
        gumbel = _gumbel_noise(logits.shape, logits.device, None)
    return torch.softmax((logits + gumbel) / tau, dim=1)


def _gumbel_noise(shape: torch.Size, device: torch.device, generator: torch.Generator | None) -> torch.Tensor:
    # -log(E) with E ~ Exp(1) is Gumbel(0, 1); the clamp keeps log(0) out.
    e = torch.empty(shape, device=device).exponential_(generator=generator)
    return -torch.log(e.clamp_min(torch.finfo(e.dtype).tiny))


def apply_output_activations(
    logits: torch.Tensor, spans: Sequence[Span], tau: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Apply tanh to scalar spans and Gumbel-softmax to one-hot spans.

    Args:
        logits: ``(n, output_dim)`` raw generator output.
        spans: The transformer's ``output_info_``.
        tau: Gumbel-softmax temperature.
        generator: Torch generator for the Gumbel noise (global RNG when None).

    Returns:
        ``(n, output_dim)`` activated output in the transformer's space.
    """
    # One draw for the whole batch: cheaper than one per span, and reproducible for a given generator.
    gumbel = _gumbel_noise(logits.shape, logits.device, generator)
    parts = []
    for s in spans:
        block = logits[:, s.start : s.start + s.width]
        if s.activation == "tanh":
            parts.append(torch.tanh(block))
        else:
            parts.append(gumbel_softmax(block, tau, gumbel[:, s.start : s.start + s.width]))
    return torch.cat(parts, dim=1)


# ---------------------------------------------------------------------- generator
class ResidualBlock(nn.Module):
    """Linear-BatchNorm-ReLU whose output is concatenated with its input (as in CTGAN).

    Args:
        in_dim: Input width.
        out_dim: Width of the new features; the block outputs ``in_dim + out_dim`` columns.
    """

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.fc = nn.Linear(in_dim, out_dim)
        self.bn = nn.BatchNorm1d(out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``[relu(bn(fc(x))), x]``."""
        return torch.cat([F.relu(self.bn(self.fc(x))), x], dim=1)


class ConditionalGenerator(nn.Module):
    """Noise + one-hot label -> residual MLP -> output activations per span.

    Args:
        noise_dim: Width of the Gaussian noise.
        cond_dim: Width of the condition vector.
        dims: Widths of the residual blocks.
        spans: Output layout (the transformer's ``output_info_``).
        tau: Gumbel-softmax temperature for one-hot spans.
    """

    def __init__(self, noise_dim: int, cond_dim: int, dims: Sequence[int], spans: Sequence[Span], tau: float = 0.2):
        super().__init__()
        self.spans = [Span(*s) for s in spans]
        self.tau = tau
        blocks: list[nn.Module] = []
        width = noise_dim + cond_dim
        for d in dims:
            blocks.append(ResidualBlock(width, d))
            width += d
        self.body = nn.Sequential(*blocks)
        output_dim = sum(s.width for s in self.spans)
        self.head = nn.Linear(width, output_dim)

    def forward(
        self, noise: torch.Tensor, cond: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Generate rows in the transformer's space.

        Args:
            noise: ``(n, noise_dim)`` standard normal noise.
            cond: ``(n, cond_dim)`` condition vectors.
            generator: Torch generator for the Gumbel noise (global RNG when None).

        Returns:
            ``(n, output_dim)`` tensor: tanh scalars and relaxed one-hot blocks.
        """
        logits = self.head(self.body(torch.cat([noise, cond], dim=1)))
        return apply_output_activations(logits, self.spans, self.tau, generator)


# ---------------------------------------------------------------------- data feeding
class ConditionalBatchSampler:
    """Batches of real rows whose labels are drawn per row, then rows drawn within each label.

    Drawing the label first with a fixed probability (0.5 by default) lets the generator see the minority
    class as often as the majority, whatever the imbalance. Rows are drawn with replacement.

    Args:
        data: ``(n, d)`` tensor of transformed rows (already on the training device).
        labels: ``(n,)`` array of 0/1 labels; both classes must occur.
        batch_size: Rows per batch.
        positive_share: Probability that a batch row has label 1; None uses the training frequency.
        rng: Numpy generator for the draws.
    """

    def __init__(
        self,
        data: torch.Tensor,
        labels: np.ndarray,
        batch_size: int,
        positive_share: float | None,
        rng: np.random.Generator,
    ) -> None:
        labels = np.asarray(labels)
        self.data = data
        self.batch_size = batch_size
        self.rng = rng
        self.rows = [np.flatnonzero(labels == c) for c in range(N_CLASSES)]
        if any(r.size == 0 for r in self.rows):
            raise ValueError("both labels 0 and 1 must occur in the training data")
        self.p1 = float(labels.mean()) if positive_share is None else float(positive_share)
        if not 0.0 <= self.p1 <= 1.0:
            raise ValueError(f"positive_share must be in [0, 1], got {positive_share}")

    def batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """One batch: ``(real rows (batch_size, d), labels (batch_size,) int64)`` on the data's device."""
        labels = (self.rng.random(self.batch_size) < self.p1).astype(np.int64)
        idx = np.empty(self.batch_size, dtype=np.int64)
        for c in range(N_CLASSES):
            where = labels == c
            idx[where] = self.rows[c][self.rng.integers(self.rows[c].size, size=int(where.sum()))]
        device = self.data.device
        return self.data[torch.as_tensor(idx, device=device)], torch.as_tensor(labels, device=device)

    def batches(self, n_batches: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Iterate over ``n_batches`` batches."""
        for _ in range(n_batches):
            yield self.batch()


# ---------------------------------------------------------------------- training loop
def train_epoch(
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    critic_step: CriticStep,
    generator_step: GeneratorStep,
    *,
    n_critic: int,
    grad_sync: GradSync | None = None,
    epoch: int = 0,
    start_iteration: int = 0,
) -> list[dict[str, float]]:
    """Run one epoch: for every ``n_critic`` batches, ``n_critic`` critic steps then one generator step.

    The generator step is conditioned on the labels of the iteration's last batch. A trailing group of
    fewer than ``n_critic`` batches still gets its generator step.

    Args:
        batches: Iterator of ``(real, labels)`` batches (supplied from outside; a distributed run passes
            its shard's iterator).
        critic_step: ``(real, labels, grad_sync) -> dict`` with at least ``d_loss`` and ``wasserstein``.
        generator_step: ``(labels, grad_sync) -> dict`` with at least ``g_loss``.
        n_critic: Critic steps per generator step.
        grad_sync: Hook called with the module after each backward, before the optimizer step.
        epoch: Epoch number written into the records.
        start_iteration: Number of the first iteration (iterations count across epochs).

    Returns:
        One record per iteration: ``{iteration, epoch, g_loss, d_loss, wasserstein}`` (critic values
        averaged over the iteration's critic steps).
    """
    records: list[dict[str, float]] = []
    pending: list[dict[str, float]] = []
    labels: torch.Tensor | None = None

    def finish() -> None:
        g = generator_step(labels, grad_sync)
        records.append(
            {
                "iteration": start_iteration + len(records),
                "epoch": epoch,
                "g_loss": g["g_loss"],
                "d_loss": float(np.mean([p["d_loss"] for p in pending])),
                "wasserstein": float(np.mean([p["wasserstein"] for p in pending])),
            }
        )
        pending.clear()

    for real, labels in batches:  # noqa: B007 - `labels` of the last batch conditions the generator step
        pending.append(critic_step(real, labels, grad_sync))
        if len(pending) == n_critic:
            finish()
    if pending:
        finish()
    return records


@contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """Switch off ``requires_grad`` on a module's parameters (the critic during a generator step)."""
    flags = [p.requires_grad for p in module.parameters()]
    for p in module.parameters():
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(module.parameters(), flags):
            p.requires_grad_(flag)
