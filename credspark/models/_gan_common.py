"""The tabular GANs' estimator (ACTGAN, CGAN): :class:`TabularGAN`, fit / sample / oversample / save / load.

A subclass supplies the discriminator and the two training steps; the building blocks (generator, batch
sampler, training epoch) are in :mod:`credspark.models._gan_parts` and exported here as well. Devices, seeding
and weight files go through :mod:`credspark.models._torch_utils`, called from :class:`TabularGAN` only.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import numpy as np
import torch
from torch import nn

from credspark.models._gan_parts import (
    LOGGER,
    N_CLASSES,
    ConditionalBatchSampler,
    ConditionalGenerator,
    CriticStep,
    GeneratorStep,
    GradSync,
    ResidualBlock,
    apply_output_activations,
    derive_seed,
    gumbel_softmax,
    n_new_minority,
    one_hot_labels,
    train_epoch,
)
from credspark.models._gan_transformer import GanDataTransformer
from credspark.models._torch_utils import load_weights, resolve_device, save_weights, seeded, torch_threads
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
    torch_threads: int | None
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
        with seeded(derive_seed(self.random_state, _SEED_TORCH), device), torch_threads(self.torch_threads):
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
        data already reach the ratio nothing is generated, the model is not fitted, and a warning on the
        ``credspark.models`` logger says so with both ratios.

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
        n_min, n_maj = int((y == 1).sum()), int((y == 0).sum())
        n_new = n_new_minority(n_min, n_maj, ratio)
        if n_new == 0:
            # Said out loud: a caller asking for oversampling should know that none happened, and why.
            LOGGER.warning("%s.oversample: minority / majority is already %d / %d = %.4f, at or above the ratio "
                           "%.4f; nothing generated, the model is not fitted", type(self).__name__, n_min, n_maj,
                           n_min / n_maj if n_maj else float("inf"), ratio)
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
