"""ACTGAN: a conditional tabular WGAN-GP whose critic has DCN cross layers and an auxiliary classifier.

The generator (shared with CGAN) maps noise and a one-hot class to a row in the
:class:`~credspark.models._gan_transformer.GanDataTransformer` space. The discriminator reads the row only:
the class is *not* concatenated to its input, because its auxiliary classifier has to predict the class
from the row itself, which is what pushes the generator to make class-typical rows. Its embedding is the
concatenation of a 3-layer cross network (``x_{l+1} = x_0 * (x_l . w_l) + b_l + x_l``) and a deep MLP
tower; a linear Wasserstein critic head and a linear 2-class head read the embedding. There is no
BatchNorm in the critic: it would mix rows and break the per-row gradient penalty.

Losses (lambda = ``gp_lambda``, beta = ``aux_weight``)::

    D: E[critic(fake)] - E[critic(real)] + lambda * GP + beta * CE(aux(real), y)  [+ beta * CE(aux(fake), c)]
    G: -E[critic(fake)] + beta * CE(aux(fake), c)

where ``c`` are the labels the fake rows were conditioned on and GP is
``E[(||grad critic(x_hat)||_2 - 1)^2]`` over random interpolates ``x_hat`` of real and fake rows.
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

__all__ = [
    "ACTGAN",
    "ACTGANDiscriminator",
    "CrossLayer",
    "critic_step",
    "generator_step",
    "gradient_penalty",
    "interpolate",
]


class CrossLayer(nn.Module):
    """One DCN cross layer: ``x_{l+1} = x_0 * (x_l . w) + b + x_l`` with ``w`` a vector.

    ``x_l . w`` is one scalar per row, so the layer adds ``2 * dim`` parameters and models a feature
    interaction of one degree higher than its input.

    Args:
        dim: Width of ``x_0`` and ``x_l``.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        bound = dim**-0.5
        self.weight = nn.Parameter(torch.empty(dim).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x0: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Apply the layer to ``x`` (the previous layer's output) given the input ``x0``."""
        return x0 * (x @ self.weight).unsqueeze(1) + self.bias + x


class ACTGANDiscriminator(nn.Module):
    """Cross network beside a deep tower; Wasserstein critic head and auxiliary classifier head.

    Args:
        data_dim: Width of the transformed rows.
        dims: Widths of the deep tower's layers.
        n_cross: Number of cross layers.
        dropout: Dropout after each tower layer.
    """

    def __init__(self, data_dim: int, dims: Sequence[int] = (256, 256), n_cross: int = 3, dropout: float = 0.5):
        super().__init__()
        self.cross = nn.ModuleList(CrossLayer(data_dim) for _ in range(n_cross))
        layers: list[nn.Module] = []
        width = data_dim
        for d in dims:
            layers += [nn.Linear(width, d), nn.LeakyReLU(0.2), nn.Dropout(dropout)]
            width = d
        self.tower = nn.Sequential(*layers)
        # No bias: the Wasserstein loss and the penalty are blind to a constant offset, so it would never learn.
        self.critic_head = nn.Linear(data_dim + width, 1, bias=False)
        self.class_head = nn.Linear(data_dim + width, N_CLASSES)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The shared embedding ``[cross(x), tower(x)]``."""
        c = x
        for layer in self.cross:
            c = layer(x, c)
        return torch.cat([c, self.tower(x)], dim=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(critic scores (n,), class logits (n, 2))``."""
        e = self.embed(x)
        return self.critic_head(e).squeeze(1), self.class_head(e)


def interpolate(real: torch.Tensor, fake: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random points on the segments between real and fake rows (one uniform weight per row).

    Args:
        real: ``(n, d)`` real rows.
        fake: ``(n, d)`` fake rows (detached).
        generator: Torch generator for the weights (global RNG when None).

    Returns:
        ``(n, d)`` tensor that requires grad, ready for :func:`gradient_penalty`.
    """
    alpha = torch.rand(real.shape[0], 1, device=real.device, generator=generator)
    return (alpha * real + (1.0 - alpha) * fake).detach().requires_grad_(True)


def gradient_penalty(scores: torch.Tensor, points: torch.Tensor, gp_lambda: float = 10.0) -> torch.Tensor:
    """WGAN-GP penalty ``gp_lambda * mean((||d scores / d points||_2 - 1)^2)``.

    Summing the scores before differentiating gives each row's own gradient because the critic treats
    rows independently (hence no BatchNorm in it). ``create_graph=True`` keeps the penalty differentiable
    for the critic's update (the double backward).

    Args:
        scores: ``(n,)`` critic scores computed from ``points``.
        points: ``(n, d)`` interpolates that require grad.
        gp_lambda: Penalty weight.

    Returns:
        Scalar tensor.
    """
    (grad,) = torch.autograd.grad(scores.sum(), points, create_graph=True)
    # The epsilon keeps the norm's gradient finite when a row's gradient is exactly zero.
    norm = torch.sqrt((grad * grad).sum(dim=1) + 1e-12)
    return gp_lambda * ((norm - 1.0) ** 2).mean()


def critic_step(
    generator: nn.Module,
    discriminator: ACTGANDiscriminator,
    optimizer: torch.optim.Optimizer,
    real: torch.Tensor,
    labels: torch.Tensor,
    *,
    noise_dim: int,
    gp_lambda: float = 10.0,
    aux_weight: float = 1.0,
    aux_on_fake: bool = False,
    grad_sync: GradSync | None = None,
) -> dict[str, float]:
    """One critic update on a real batch and a fake batch conditioned on the same labels.

    Args:
        generator: The generator (not updated).
        discriminator: The ACTGAN discriminator (updated).
        optimizer: The discriminator's optimizer.
        real: ``(n, d)`` real rows in the transformer's space.
        labels: ``(n,)`` int64 labels of the real rows; the fake rows are conditioned on them.
        noise_dim: Width of the generator's noise.
        gp_lambda: Gradient-penalty weight.
        aux_weight: Weight of the auxiliary classifier's cross-entropy.
        aux_on_fake: Also train the auxiliary classifier on fake rows with their conditioned labels.
        grad_sync: Hook called with the discriminator after backward, before the optimizer step.

    Returns:
        ``{d_loss, wasserstein, gradient_penalty, aux_loss}`` as floats.
    """
    n = real.shape[0]
    noise = torch.randn(n, noise_dim, device=real.device)
    with torch.no_grad():
        fake = generator(noise, one_hot_labels(labels))
    points = interpolate(real, fake)
    optimizer.zero_grad(set_to_none=True)
    # One pass over [real; fake; interpolates]: larger matrix products are faster than three passes,
    # and rows do not interact in this critic, so the result is the same.
    scores, logits = discriminator(torch.cat([real, fake, points]))
    s_real, s_fake, s_points = scores.split(n)
    wasserstein = s_real.mean() - s_fake.mean()
    gp = gradient_penalty(s_points, points, gp_lambda)
    aux = F.cross_entropy(logits[:n], labels)
    if aux_on_fake:
        aux = aux + F.cross_entropy(logits[n : 2 * n], labels)
    loss = -wasserstein + gp + aux_weight * aux
    loss.backward()
    if grad_sync is not None:
        grad_sync(discriminator)
    optimizer.step()
    return {
        "d_loss": loss.item(),
        "wasserstein": wasserstein.item(),
        "gradient_penalty": gp.item(),
        "aux_loss": aux.item(),
    }


def generator_step(
    generator: nn.Module,
    discriminator: ACTGANDiscriminator,
    optimizer: torch.optim.Optimizer,
    labels: torch.Tensor,
    *,
    noise_dim: int,
    aux_weight: float = 1.0,
    grad_sync: GradSync | None = None,
) -> dict[str, float]:
    """One generator update: fool the critic and make the classifier recognise the conditioned class.

    Args:
        generator: The generator (updated).
        discriminator: The ACTGAN discriminator (frozen during this step).
        optimizer: The generator's optimizer.
        labels: ``(n,)`` int64 labels to condition on.
        noise_dim: Width of the generator's noise.
        aux_weight: Weight of the auxiliary classifier's cross-entropy.
        grad_sync: Hook called with the generator after backward, before the optimizer step.

    Returns:
        ``{g_loss, aux_loss}`` as floats.
    """
    optimizer.zero_grad(set_to_none=True)
    noise = torch.randn(labels.shape[0], noise_dim, device=labels.device)
    fake = generator(noise, one_hot_labels(labels))
    with frozen(discriminator):
        scores, logits = discriminator(fake)
    aux = F.cross_entropy(logits, labels)
    loss = -scores.mean() + aux_weight * aux
    loss.backward()
    if grad_sync is not None:
        grad_sync(generator)
    optimizer.step()
    return {"g_loss": loss.item(), "aux_loss": aux.item()}


class ACTGAN(TabularGAN):
    """Auxiliary-classifier cross-network tabular GAN (WGAN-GP) for minority oversampling.

    Args:
        spec (FeatureSpec): Feature spec of the static and dynamic blocks.
        epochs (int): Training epochs; an epoch has ``max(1, n // batch_size)`` iterations of ``n_critic``
            critic steps and one generator step. Defaults to 300.
        batch_size (int): Rows per batch (>= 2). Defaults to 500.
        noise_dim (int): Width of the generator's Gaussian noise. Defaults to 128.
        generator_dims (Sequence[int]): Widths of the generator's residual blocks. Defaults to (256, 256).
        discriminator_dims (Sequence[int]): Widths of the discriminator's deep tower. Defaults to (256, 256).
        n_cross (int): Number of cross layers in the discriminator. Defaults to 3.
        n_critic (int): Critic steps per generator step. Defaults to 5.
        gp_lambda (float): Gradient-penalty weight. Defaults to 10.0.
        aux_weight (float): Weight of the auxiliary classifier's cross-entropy in both losses. Defaults to 1.0.
        aux_on_fake (bool): Also train the auxiliary classifier on fake rows (off by default: a classifier
            that learns the generator's mistakes rewards them). Defaults to False.
        dropout (float): Dropout in the discriminator's tower. Defaults to 0.5.
        lr (float): Adam learning rate of both networks. Defaults to 2e-4.
        betas (tuple[float, float]): Adam betas of both networks. Defaults to (0.5, 0.9).
        positive_share (float | None): Probability that a training row is conditioned on label 1 (0.5 learns
            the minority as often as the majority); None uses the training frequency. Defaults to 0.5.
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
        n_cross: int = 3,
        n_critic: int = 5,
        gp_lambda: float = 10.0,
        aux_weight: float = 1.0,
        aux_on_fake: bool = False,
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
        self.n_cross = n_cross
        self.n_critic = n_critic
        self.gp_lambda = gp_lambda
        self.aux_weight = aux_weight
        self.aux_on_fake = aux_on_fake
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
        return ACTGANDiscriminator(data_dim, tuple(self.discriminator_dims), self.n_cross, self.dropout)

    def _make_steps(
        self, g_opt: torch.optim.Optimizer, d_opt: torch.optim.Optimizer
    ) -> tuple[CriticStep, GeneratorStep]:
        # Bind to locals so that the step closures do not capture `self` (they may be shipped to workers).
        gen, disc, noise_dim = self.generator_, self.discriminator_, self.noise_dim
        gp_lambda, aux_weight, aux_on_fake = self.gp_lambda, self.aux_weight, self.aux_on_fake

        def d_step(real: torch.Tensor, labels: torch.Tensor, grad_sync: GradSync | None) -> dict[str, float]:
            return critic_step(
                gen,
                disc,
                d_opt,
                real,
                labels,
                noise_dim=noise_dim,
                gp_lambda=gp_lambda,
                aux_weight=aux_weight,
                aux_on_fake=aux_on_fake,
                grad_sync=grad_sync,
            )

        def g_step(labels: torch.Tensor, grad_sync: GradSync | None) -> dict[str, float]:
            return generator_step(
                gen, disc, g_opt, labels, noise_dim=noise_dim, aux_weight=aux_weight, grad_sync=grad_sync
            )

        return d_step, g_step
