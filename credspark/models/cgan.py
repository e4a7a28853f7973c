"""CGAN: the plain conditional GAN the paper compares ACTGAN with.

Same data transformer and generator as :mod:`credspark.models.actgan`; the discriminator is an MLP on
``[row, one-hot class]`` (the condition is concatenated to both networks' inputs) with one logit output,
trained with the original GAN loss (binary cross-entropy with logits; the generator uses the
non-saturating form). No cross layers, no auxiliary classifier, no gradient penalty.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F  # noqa: N812 - the usual torch alias
from torch import nn

from credspark.models._gan_common import TabularGAN
from credspark.models._gan_parts import (
    N_CLASSES,
    CriticStep,
    GeneratorStep,
    GradSync,
    frozen,
    one_hot_labels,
)
from credspark.models.spec import FeatureSpec

__all__ = ["CGAN", "CGANDiscriminator", "discriminator_step", "generator_step"]


class CGANDiscriminator(nn.Module):
    """MLP on ``[row, condition]`` -> one real/fake logit.

    Args:
        data_dim: Width of the transformed rows.
        cond_dim: Width of the condition vector.
        dims: Hidden widths (LeakyReLU 0.2 and dropout after each).
        dropout: Dropout rate.
    """

    def __init__(
        self, data_dim: int, cond_dim: int = N_CLASSES, dims: Sequence[int] = (256, 256), dropout: float = 0.5
    ):
        super().__init__()
        layers: list[nn.Module] = []
        width = data_dim + cond_dim
        for d in dims:
            layers += [nn.Linear(width, d), nn.LeakyReLU(0.2), nn.Dropout(dropout)]
            width = d
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """Return ``(n,)`` logits that the rows are real."""
        return self.net(torch.cat([x, cond], dim=1)).squeeze(1)


def discriminator_step(
    generator: nn.Module,
    discriminator: CGANDiscriminator,
    optimizer: torch.optim.Optimizer,
    real: torch.Tensor,
    labels: torch.Tensor,
    *,
    noise_dim: int,
    grad_sync: GradSync | None = None,
) -> dict[str, float]:
    """One discriminator update: BCE(real -> 1) + BCE(fake -> 0), both with the batch's conditions.

    Args:
        generator: The generator (not updated).
        discriminator: The CGAN discriminator (updated).
        optimizer: The discriminator's optimizer.
        real: ``(n, d)`` real rows.
        labels: ``(n,)`` int64 labels of the real rows; the fake rows are conditioned on them.
        noise_dim: Width of the generator's noise.
        grad_sync: Hook called with the discriminator after backward, before the optimizer step.

    Returns:
        ``{d_loss, wasserstein}``; ``wasserstein`` here is the mean logit gap real - fake, kept under the
        same key as ACTGAN's so histories compare.
    """
    n = real.shape[0]
    cond = one_hot_labels(labels)
    with torch.no_grad():
        fake = generator(torch.randn(n, noise_dim, device=real.device), cond)
    optimizer.zero_grad(set_to_none=True)
    logits = discriminator(torch.cat([real, fake]), torch.cat([cond, cond]))
    target = torch.cat([torch.ones(n, device=real.device), torch.zeros(n, device=real.device)])
    loss = F.binary_cross_entropy_with_logits(logits, target)
    loss.backward()
    if grad_sync is not None:
        grad_sync(discriminator)
    optimizer.step()
    return {"d_loss": loss.item(), "wasserstein": (logits[:n].mean() - logits[n:].mean()).item()}


def generator_step(
    generator: nn.Module,
    discriminator: CGANDiscriminator,
    optimizer: torch.optim.Optimizer,
    labels: torch.Tensor,
    *,
    noise_dim: int,
    grad_sync: GradSync | None = None,
) -> dict[str, float]:
    """One generator update with the non-saturating loss BCE(D(fake, c) -> 1).

    Args:
        generator: The generator (updated).
        discriminator: The CGAN discriminator (frozen during this step).
        optimizer: The generator's optimizer.
        labels: ``(n,)`` int64 labels to condition on.
        noise_dim: Width of the generator's noise.
        grad_sync: Hook called with the generator after backward, before the optimizer step.

    Returns:
        ``{g_loss}``.
    """
    optimizer.zero_grad(set_to_none=True)
    cond = one_hot_labels(labels)
    fake = generator(torch.randn(labels.shape[0], noise_dim, device=labels.device), cond)
    with frozen(discriminator):
        logits = discriminator(fake, cond)
    loss = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
    loss.backward()
    if grad_sync is not None:
        grad_sync(generator)
    optimizer.step()
    return {"g_loss": loss.item()}


class CGAN(TabularGAN):
    """Conditional tabular GAN with the original (BCE) loss, the paper's baseline.

    Args:
        spec (FeatureSpec): Feature spec of the static and dynamic blocks.
        epochs (int): Training epochs; an epoch has ``max(1, n // batch_size)`` iterations of ``n_critic``
            discriminator steps and one generator step. Defaults to 300.
        batch_size (int): Rows per batch (>= 2). Defaults to 500.
        noise_dim (int): Width of the generator's Gaussian noise. Defaults to 128.
        generator_dims (Sequence[int]): Widths of the generator's residual blocks. Defaults to (256, 256).
        discriminator_dims (Sequence[int]): Widths of the discriminator's hidden layers. Defaults to (256, 256).
        n_critic (int): Discriminator steps per generator step; 1 is the classic alternation. Defaults to 1.
        dropout (float): Dropout in the discriminator. Defaults to 0.5.
        lr (float): Adam learning rate of both networks. Defaults to 2e-4.
        betas (tuple[float, float]): Adam betas of both networks. Defaults to (0.5, 0.9).
        positive_share (float | None): Probability that a training row is conditioned on label 1; None uses
            the training frequency. Defaults to 0.5.
        tau (float): Gumbel-softmax temperature of the generator's one-hot outputs. Defaults to 0.2.
        device (str): ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"``. Defaults to ``"cpu"``.
        random_state (int | None): Seed for everything (transformer, batches, initialisation, dropout,
            sampling); None is not reproducible. Defaults to None.
        torch_threads (int | None): Torch intra-op threads while fitting (the caller's setting is restored
            afterwards); None leaves torch's setting, one thread per core, which under load cost 8x the CPU
            per epoch. Defaults to 1.
        verbose (bool): Log progress to the ``credspark.models`` logger. Defaults to False.
        log_every (int): Log every this many epochs (and after the last) when verbose. Defaults to 10.
    """

    def __init__(
        self,
        *,
        spec: FeatureSpec,
        epochs: int = 300,
        batch_size: int = 500,
        noise_dim: int = 128,
        generator_dims: Sequence[int] = (256, 256),
        discriminator_dims: Sequence[int] = (256, 256),
        n_critic: int = 1,
        dropout: float = 0.5,
        lr: float = 2e-4,
        betas: tuple[float, float] = (0.5, 0.9),
        positive_share: float | None = 0.5,
        tau: float = 0.2,
        device: str = "cpu",
        random_state: int | None = None,
        torch_threads: int | None = 1,
        verbose: bool = False,
        log_every: int = 10,
    ) -> None:
        self.spec = spec
        self.epochs = epochs
        self.batch_size = batch_size
        self.noise_dim = noise_dim
        self.generator_dims = generator_dims
        self.discriminator_dims = discriminator_dims
        self.n_critic = n_critic
        self.dropout = dropout
        self.lr = lr
        self.betas = betas
        self.positive_share = positive_share
        self.tau = tau
        self.device = device
        self.random_state = random_state
        self.torch_threads = torch_threads
        self.verbose = verbose
        self.log_every = log_every

    def _build_discriminator(self, data_dim: int) -> nn.Module:
        return CGANDiscriminator(data_dim, N_CLASSES, tuple(self.discriminator_dims), self.dropout)

    def _make_steps(
        self, g_opt: torch.optim.Optimizer, d_opt: torch.optim.Optimizer
    ) -> tuple[CriticStep, GeneratorStep]:
        # Bind to locals so that the step closures do not capture `self` (they may be shipped to workers).
        gen, disc, noise_dim = self.generator_, self.discriminator_, self.noise_dim

        def d_step(real: torch.Tensor, labels: torch.Tensor, grad_sync: GradSync | None) -> dict[str, float]:
            return discriminator_step(gen, disc, d_opt, real, labels, noise_dim=noise_dim, grad_sync=grad_sync)

        def g_step(labels: torch.Tensor, grad_sync: GradSync | None) -> dict[str, float]:
            return generator_step(gen, disc, g_opt, labels, noise_dim=noise_dim, grad_sync=grad_sync)

        return d_step, g_step
