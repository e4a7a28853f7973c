"""Parts shared by the tabular GANs (ACTGAN, CGAN).

* :class:`ConditionalGenerator`: noise + one-hot label -> residual MLP -> per-span output activations.
* :class:`ConditionalBatchSampler`: batches of real rows with a label drawn per row.
* :func:`train_epoch`: one epoch of alternating critic and generator steps, with the batch iterator and
  an optional ``grad_sync(module)`` hook supplied from outside (so the same loop runs under a
  distributed launcher that all-reduces gradients after each backward).
* :class:`TabularGAN`: the fit / sample / oversample / save / load orchestration; a subclass supplies the
  discriminator and the two training steps.

Devices, seeding and weight files go through :mod:`credspark.models._torch_utils`, called from
:class:`TabularGAN` only.
"""

from __future__ import annotations

import inspect
import json
import logging
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - the usual torch alias
from torch import nn

from credspark.models._gan_transformer import GanDataTransformer, Span
from credspark.models._torch_utils import load_weights, resolve_device, save_weights, seeded
from credspark.models.spec import FeatureSpec

__all__ = [
    "ConditionalBatchSampler",
    "ConditionalGenerator",
    "GradSync",
    "ResidualBlock",
    "TabularGAN",
    "apply_output_activations",
    "derive_seed",
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


class TrainingParts(NamedTuple):
    """What :meth:`TabularGAN.prepare_training` builds: networks, optimisers and the bound steps."""

    generator: nn.Module
    discriminator: nn.Module
    g_opt: torch.optim.Optimizer
    d_opt: torch.optim.Optimizer
    critic_step: CriticStep
    generator_step: GeneratorStep

# Purposes for derive_seed, so each random stream of a fit is independent of the others.
_SEED_TRANSFORMER, _SEED_TORCH, _SEED_BATCHES, _SEED_SAMPLE = range(4)

_FORMAT = "credspark.tabular_gan"
_FORMAT_VERSION = 1


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


# ---------------------------------------------------------------------- the estimator
class TabularGAN:
    """Fit / sample / oversample / save / load for conditional tabular GANs.

    A subclass defines a keyword-only ``__init__`` that stores its parameters verbatim (at least ``spec``,
    ``epochs``, ``batch_size``, ``noise_dim``, ``generator_dims``, ``n_critic``, ``lr``, ``betas``,
    ``positive_share``, ``tau``, ``device``, ``random_state``, ``verbose``, ``log_every``) and implements
    :meth:`_build_discriminator` and :meth:`_make_steps`.

    Fitted attributes: ``transformer_``, ``generator_``, ``discriminator_``, ``history_`` (one record per
    iteration), ``input_dtypes_``.
    """

    #: Parameters whose JSON lists become tuples again on load.
    _tuple_params: ClassVar[tuple[str, ...]] = ("generator_dims", "discriminator_dims", "betas")

    spec: FeatureSpec
    epochs: int
    batch_size: int
    noise_dim: int
    generator_dims: Sequence[int]
    n_critic: int
    lr: float
    betas: tuple[float, float]
    positive_share: float | None
    tau: float
    device: str
    random_state: int | None
    verbose: bool
    log_every: int

    # ---- subclass hooks
    def _build_discriminator(self, data_dim: int) -> nn.Module:
        raise NotImplementedError

    def _make_steps(
        self, g_opt: torch.optim.Optimizer, d_opt: torch.optim.Optimizer
    ) -> tuple[CriticStep, GeneratorStep]:
        raise NotImplementedError

    # ---- parameters
    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p.name for p in sig.parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY]

    def get_params(self) -> dict[str, Any]:
        """Constructor parameters, as given."""
        return {name: getattr(self, name) for name in self._param_names()}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items() if k != "spec")
        return f"{type(self).__name__}({args})"

    # ---- fitting
    def fit(self, static: np.ndarray, dynamic: np.ndarray, y: np.ndarray, mask: np.ndarray | None = None) -> TabularGAN:
        """Fit the transformer and train generator and discriminator.

        One epoch has ``max(1, n // batch_size)`` iterations; an iteration is ``n_critic`` critic steps
        (each on a fresh batch) and one generator step.

        Args:
            static (np.ndarray): ``(n, n_static)`` array, categoricals as integer codes.
            dynamic (np.ndarray): ``(n, T, C)`` array.
            y (np.ndarray): ``(n,)`` labels in {0, 1}; both must occur.
            mask (np.ndarray | None): ``(n, T)`` month mask with trailing observed months; None means all
                observed. Defaults to None.

        Returns:
            TabularGAN: self.
        """
        static, dynamic, y, mask = self._check_inputs(static, dynamic, y, mask)
        if not (np.any(y == 0) and np.any(y == 1)):
            raise ValueError("both labels 0 and 1 must occur in the training data")
        self._check_params()
        self.input_dtypes_ = {
            "static": static.dtype.str,
            "dynamic": dynamic.dtype.str,
            "mask": (mask.dtype if mask is not None else np.dtype(np.uint8)).str,
        }
        self.transformer_ = GanDataTransformer(
            self.spec, random_state=derive_seed(self.random_state, _SEED_TRANSFORMER)
        ).fit(static, dynamic, mask)
        data = self.transformer_.transform(static, dynamic, mask)
        device = resolve_device(self.device)
        with seeded(derive_seed(self.random_state, _SEED_TORCH), device):
            critic_step, generator_step = self._init_training(device)
            sampler = ConditionalBatchSampler(
                torch.as_tensor(data, device=device),
                y,
                self.batch_size,
                self.positive_share,
                np.random.default_rng(derive_seed(self.random_state, _SEED_BATCHES)),
            )
            iterations = max(1, len(data) // self.batch_size)
            self.history_: list[dict[str, float]] = []
            for epoch in range(self.epochs):
                records = train_epoch(
                    sampler.batches(iterations * self.n_critic),
                    critic_step,
                    generator_step,
                    n_critic=self.n_critic,
                    epoch=epoch,
                    start_iteration=len(self.history_),
                )
                self.history_.extend(records)
                self._log_epoch(epoch, records)
        return self

    def _init_training(self, device: torch.device) -> tuple[CriticStep, GeneratorStep]:
        """Build fresh networks and optimisers on ``device``; return the bound critic and generator steps."""
        parts = self.prepare_training(self.transformer_, device)
        return parts.critic_step, parts.generator_step

    def prepare_training(self, transformer: GanDataTransformer, device: torch.device | str) -> TrainingParts:
        """Fresh networks (in training mode), optimisers and bound steps for a fitted data transformer.

        :meth:`fit` uses it; a distributed worker calls it on each rank (after seeding torch the same way on
        every rank), then :func:`train_epoch` with its own batch iterator and ``grad_sync``, and finally
        :meth:`set_trained`.

        Args:
            transformer: The fitted data transformer (kept as ``transformer_``).
            device: Where the networks live.

        Returns:
            The networks, their optimisers and the critic and generator steps bound to them.
        """
        self.transformer_ = transformer
        self._build_networks(torch.device(device) if isinstance(device, str) else device)
        self.generator_.train()
        self.discriminator_.train()
        g_opt = torch.optim.Adam(self.generator_.parameters(), lr=self.lr, betas=tuple(self.betas))
        d_opt = torch.optim.Adam(self.discriminator_.parameters(), lr=self.lr, betas=tuple(self.betas))
        critic, gen = self._make_steps(g_opt, d_opt)
        return TrainingParts(self.generator_, self.discriminator_, g_opt, d_opt, critic, gen)

    def set_trained(self, *, history: list[dict[str, Any]], input_dtypes: dict[str, str]) -> TabularGAN:
        """Make this estimator fitted after :meth:`prepare_training` and training elsewhere (a worker).

        Args:
            history: One record per epoch (or iteration) of the training losses.
            input_dtypes: NumPy dtype strings of the ``static``, ``dynamic`` and ``mask`` inputs it was
                trained on (:meth:`sample` returns the same).

        Returns:
            TabularGAN: self, its networks on CPU.
        """
        self.generator_ = self.generator_.to("cpu")
        self.discriminator_ = self.discriminator_.to("cpu")
        self.history_ = list(history)
        self.input_dtypes_ = dict(input_dtypes)
        return self

    def _build_networks(self, device: torch.device) -> None:
        spans = self.transformer_.output_info_
        self.generator_ = ConditionalGenerator(
            self.noise_dim, N_CLASSES, tuple(self.generator_dims), spans, tau=self.tau
        ).to(device)
        self.discriminator_ = self._build_discriminator(self.transformer_.output_dim_).to(device)

    def _log_epoch(self, epoch: int, records: list[dict[str, float]]) -> None:
        if not self.verbose or not records:
            return
        if (epoch + 1) % max(1, self.log_every) and epoch + 1 != self.epochs:
            return
        LOGGER.info(
            "%s epoch %d/%d: g_loss %.4f, d_loss %.4f, wasserstein %.4f",
            type(self).__name__,
            epoch + 1,
            self.epochs,
            np.mean([r["g_loss"] for r in records]),
            np.mean([r["d_loss"] for r in records]),
            np.mean([r["wasserstein"] for r in records]),
        )

    def _check_params(self) -> None:
        if self.batch_size < 2:
            raise ValueError(f"batch_size must be >= 2 (BatchNorm needs two rows), got {self.batch_size}")
        if self.n_critic < 1 or self.epochs < 0:
            raise ValueError("n_critic must be >= 1 and epochs >= 0")
        if self.random_state is not None and not isinstance(self.random_state, (int, np.integer)):
            raise TypeError(f"random_state must be an int or None, got {type(self.random_state).__name__}")

    def _check_inputs(
        self, static: np.ndarray, dynamic: np.ndarray, y: np.ndarray, mask: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
        static, dynamic, y = np.asarray(static), np.asarray(dynamic), np.asarray(y)
        mask = None if mask is None else np.asarray(mask)
        self.spec.validate_arrays(static, dynamic, mask)
        if y.shape != (len(static),):
            raise ValueError(f"y: expected shape ({len(static)},), got {y.shape}")
        if not np.isin(y, (0, 1)).all():
            raise ValueError("y must contain only 0 and 1")
        return static, dynamic, y, mask

    def _check_fitted(self) -> None:
        if not hasattr(self, "generator_"):
            raise RuntimeError(f"this {type(self).__name__} is not fitted yet; call fit() first")

    # ---- sampling
    def sample(
        self, n: int, label: int = 1, *, random_state: int | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Generate ``n`` decoded rows conditioned on ``label``.

        The generator runs in eval mode (BatchNorm uses its running statistics, so a row does not depend
        on the other rows of its batch). Without ``random_state`` the draw is seeded from the model's own
        ``random_state``, so repeated calls return the same rows; pass different seeds for new draws.

        Args:
            n (int): Number of rows.
            label (int): Class to condition on (0 or 1). Defaults to 1.
            random_state (int | None): Seed for this draw; None uses one derived from the model's
                ``random_state``. Defaults to None.

        Returns:
            tuple[np.ndarray, np.ndarray, np.ndarray]: ``(static (n, n_static), dynamic (n, T, C),
            mask (n, T))`` with the dtypes seen in ``fit``.
        """
        self._check_fitted()
        if label not in (0, 1):
            raise ValueError(f"label must be 0 or 1, got {label}")
        seed = derive_seed(self.random_state, _SEED_SAMPLE) if random_state is None else int(random_state)
        data = self._generate(int(n), int(label), seed)
        static, dynamic, mask = self.transformer_.inverse_transform(data)
        dt = self.input_dtypes_
        return static.astype(dt["static"]), dynamic.astype(dt["dynamic"]), mask.astype(dt["mask"])

    def _generate(self, n: int, label: int, seed: int) -> np.ndarray:
        """Raw generator output in the transformer's space, generated in batches."""
        device = next(self.generator_.parameters()).device
        gen = torch.Generator(device=device).manual_seed(seed)
        was_training = self.generator_.training
        self.generator_.eval()
        chunks = []
        try:
            with torch.no_grad():
                for start in range(0, n, self.batch_size):
                    m = min(self.batch_size, n - start)
                    noise = torch.randn(m, self.noise_dim, device=device, generator=gen)
                    cond = one_hot_labels(torch.full((m,), label, device=device))
                    chunks.append(self.generator_(noise, cond, generator=gen).cpu().numpy())
        finally:
            self.generator_.train(was_training)
        if not chunks:
            return np.zeros((0, self.transformer_.output_dim_), dtype=np.float32)
        return np.concatenate(chunks)

    def oversample(
        self,
        static: np.ndarray,
        dynamic: np.ndarray,
        y: np.ndarray,
        mask: np.ndarray | None = None,
        ratio: float = 0.4,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Fit on the data, then append generated label-1 rows until minority / majority reaches ``ratio``.

        The number of new rows is :func:`n_new_minority` (target ``ceil(ratio * n_majority)``). When the
        data already reach the ratio nothing is generated and the model is not fitted.

        Args:
            static (np.ndarray): ``(n, n_static)`` array.
            dynamic (np.ndarray): ``(n, T, C)`` array.
            y (np.ndarray): ``(n,)`` labels in {0, 1} (1 = minority).
            mask (np.ndarray | None): ``(n, T)`` month mask, or None for all observed. Defaults to None.
            ratio (float): Wanted minority / majority ratio. Defaults to 0.4.

        Returns:
            tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]: ``(static, dynamic, mask, y)``: the original
            rows first, then the generated ones (the mask is all ones for inputs without a mask).
        """
        static, dynamic, y, mask = self._check_inputs(static, dynamic, y, mask)
        mask_out = np.ones((len(static), self.spec.T), dtype=np.uint8) if mask is None else mask
        n_new = n_new_minority(int((y == 1).sum()), int((y == 0).sum()), ratio)
        if n_new == 0:
            return static.copy(), dynamic.copy(), mask_out.copy(), y.copy()
        self.fit(static, dynamic, y, mask)
        s, d, m = self.sample(n_new, label=1)
        return (
            np.concatenate([static, s]),
            np.concatenate([dynamic, d]),
            np.concatenate([mask_out, m.astype(mask_out.dtype)]),
            np.concatenate([y, np.ones(n_new, dtype=y.dtype)]),
        )

    # ---- persistence
    def save(self, directory: str | Path) -> Path:
        """Write ``generator.safetensors``, ``discriminator.safetensors`` and ``model.json``.

        The JSON holds the parameters, the spec, the transformer's numbers, the input dtypes and the
        training history; nothing is pickled.

        Args:
            directory (str | Path): Target directory (created if missing).

        Returns:
            Path: The directory.
        """
        self._check_fitted()
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        save_weights(self.generator_, path / "generator.safetensors")
        save_weights(self.discriminator_, path / "discriminator.safetensors")
        params = {k: _jsonable(v) for k, v in self.get_params().items() if k != "spec"}
        meta = {
            "format": _FORMAT,
            "format_version": _FORMAT_VERSION,
            "class": type(self).__name__,
            "spec": self.spec.to_dict(),
            "params": params,
            "transformer": self.transformer_.to_dict(),
            "input_dtypes": self.input_dtypes_,
            "history": self.history_,
        }
        (path / "model.json").write_text(json.dumps(meta, indent=1))
        return path

    @classmethod
    def load(cls, directory: str | Path, *, device: str | None = None) -> TabularGAN:
        """Restore a model written by :meth:`save`.

        Args:
            directory (str | Path): Directory holding the model files.
            device (str | None): Device to load onto; None keeps the saved ``device`` parameter.
                Defaults to None.

        Returns:
            TabularGAN: The fitted model; it samples exactly like the saved one for the same seed.
        """
        path = Path(directory)
        meta = json.loads((path / "model.json").read_text())
        if meta.get("format") != _FORMAT or meta.get("class") != cls.__name__:
            raise ValueError(f"{path}: not a saved {cls.__name__} (found {meta.get('format')}/{meta.get('class')})")
        params = dict(meta["params"])
        params["spec"] = FeatureSpec.from_dict(meta["spec"])
        for name in cls._tuple_params:
            if name in params and params[name] is not None:
                params[name] = tuple(params[name])
        if device is not None:
            params["device"] = device
        model = cls(**params)
        model.transformer_ = GanDataTransformer.from_dict(meta["transformer"])
        model.input_dtypes_ = dict(meta["input_dtypes"])
        model.history_ = list(meta["history"])
        target = resolve_device(model.device)
        model._build_networks(torch.device("cpu"))
        load_weights(model.generator_, path / "generator.safetensors", target)
        load_weights(model.discriminator_, path / "discriminator.safetensors", target)
        return model


def _jsonable(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value
