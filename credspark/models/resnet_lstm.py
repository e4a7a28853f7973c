"""ResNet-LSTM, the paper's feature extractor, fused into an embedding.

A 1-D conv ResNet with spatial attention reads the static features; a BiLSTM with temporal attention reads
the monthly sequences (a static-only source has none: then only the static branch is built).

Parts, each usable alone (the distributed launcher reuses the loop pieces with its own data feed), all
importable from here:

- :class:`ResNetLSTMModule` / :func:`build_module`: the ``nn.Module`` (``_resnet_network``).
- :class:`FoldedEncoder`: the inference folding used for scoring (``_resnet_folding``).
- :func:`focal_loss`, :func:`make_loss`, :func:`iter_batches`, :func:`train_epoch`, :func:`predict_batches`,
  :func:`evaluate`, :class:`EarlyStopping`: the training loop (``_resnet_training``).
- :class:`ResNetLSTM`: the estimator (preprocessing, fit loop, embed, predict_proba, save/load), here.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from credspark.models._preprocess import InputPreprocessor
from credspark.models._resnet_folding import PROBE_TOLERANCE, FoldedEncoder
from credspark.models._resnet_network import (
    DEFAULT_BLOCKS_PER_STAGE,
    DEFAULT_DROPOUT,
    DEFAULT_EMBEDDING_DIM,
    DEFAULT_FILTERS,
    DEFAULT_LSTM_HIDDEN,
    ResNetLSTMModule,
    build_module,
)
from credspark.models._resnet_training import (
    EarlyStopping,
    LossFn,
    device_of,
    evaluate,
    focal_loss,
    iter_batches,
    make_loss,
    predict_batches,
    train_epoch,
)
from credspark.models._torch_utils import load_weights, resolve_device, save_weights, seeded, torch_threads
from credspark.models.spec import FeatureSpec

__all__ = [
    "ResNetLSTM",
    "ResNetLSTMModule",
    "build_module",
    "focal_loss",
    "make_loss",
    "iter_batches",
    "train_epoch",
    "predict_batches",
    "evaluate",
    "EarlyStopping",
    "FoldedEncoder",
    "WEIGHTS_FILE",
    "META_FILE",
]

logger = logging.getLogger(__name__)

WEIGHTS_FILE = "resnet_lstm.safetensors"
META_FILE = "resnet_lstm.json"
_FORMAT = "credspark.resnet_lstm"
_FORMAT_VERSION = 1

# -------------------------------------------------------------------------------------------- estimator
class ResNetLSTM:
    """ResNet-LSTM feature extractor and classifier.

    Input layout: ``static`` float ``(n, n_static)`` with categoricals as integer codes, ``dynamic`` float
    ``(n, T, C)``, ``mask`` ``(n, T)`` with 1 for observed months (trailing), ``y`` int ``(n,)`` with
    1 = default. Inputs are scaled by an :class:`InputPreprocessor` fitted in :meth:`fit`; non-finite
    inputs are replaced by 0 after scaling, so they never produce NaN outputs. A static-only spec (no
    channels, ``T = 0``) takes ``dynamic`` ``(n, 0, 0)`` and ``mask`` ``(n, 0)``; its network is the static
    branch alone (no BiLSTM, no temporal attention: ``attention`` gives ``temporal`` None).

    Args:
        spec (FeatureSpec): Describes the static columns and the dynamic block.
        embedding_dim (int): Embedding size. Defaults to 32.
        filters (Sequence[int]): Filters per ResNet stage. Defaults to (16, 32, 64, 128).
        blocks_per_stage (int): Residual blocks per stage. Defaults to 1.
        lstm_hidden (int): LSTM hidden size per direction. Defaults to 64.
        spatial_attention (bool): Use spatial attention on the static branch. Defaults to True.
        temporal_attention (bool): Use temporal attention on the dynamic branch. Defaults to True.
        dropout (float): Dropout before the classification head. Defaults to 0.5.
        loss (str): ``"bce"`` or ``"focal"``. Defaults to ``"bce"``.
        focal_alpha (float): Focal loss alpha. Defaults to 0.25.
        focal_gamma (float): Focal loss gamma. Defaults to 2.0.
        lr (float): Adam learning rate. Defaults to 1e-4.
        weight_decay (float): Adam weight decay. Defaults to 0.0.
        epochs (int): Maximum epochs. Defaults to 30.
        batch_size (int): Training batch size. Defaults to 256.
        patience (int): Early-stopping patience in epochs (only with validation data). Defaults to 5.
        device (str): ``"cpu"``, ``"cuda[:i]"`` or ``"auto"``. Defaults to ``"cpu"``.
        random_state (int | None): Seed for weights, dropout and shuffling. Defaults to None.
        torch_threads (int | None): Torch intra-op threads while fitting (the caller's setting is restored
            afterwards); None leaves torch's setting, one thread per core, which under load cost 8x the CPU
            per epoch. Defaults to 1.
        verbose (bool): Log each epoch at INFO level. Defaults to False.

    Attributes:
        module_ (ResNetLSTMModule): The trained network (eval mode).
        module_kwargs_ (dict): Arguments that rebuild ``module_`` with :func:`build_module`.
        preprocessor_ (InputPreprocessor): The fitted input scaling.
        history_ (dict[str, list[float]]): ``train_loss`` and ``valid_auc`` per epoch (``valid_auc`` is
            empty without validation data; an undefined AUC is nan, written as null in the JSON).
        best_epoch_ (int): 0-based epoch whose weights were kept (the last one without validation data).
    """

    def __init__(
        self,
        *,
        spec: FeatureSpec,
        embedding_dim: int = DEFAULT_EMBEDDING_DIM,
        filters: Sequence[int] = DEFAULT_FILTERS,
        blocks_per_stage: int = DEFAULT_BLOCKS_PER_STAGE,
        lstm_hidden: int = DEFAULT_LSTM_HIDDEN,
        spatial_attention: bool = True,
        temporal_attention: bool = True,
        dropout: float = DEFAULT_DROPOUT,
        loss: str = "bce",
        focal_alpha: float = 0.25,
        focal_gamma: float = 2.0,
        lr: float = 1e-4,
        weight_decay: float = 0.0,
        epochs: int = 30,
        batch_size: int = 256,
        patience: int = 5,
        device: str = "cpu",
        random_state: int | None = None,
        torch_threads: int | None = 1,
        verbose: bool = False,
    ) -> None:
        self.spec = spec
        self.embedding_dim = embedding_dim
        self.filters = filters
        self.blocks_per_stage = blocks_per_stage
        self.lstm_hidden = lstm_hidden
        self.spatial_attention = spatial_attention
        self.temporal_attention = temporal_attention
        self.dropout = dropout
        self.loss = loss
        self.focal_alpha = focal_alpha
        self.focal_gamma = focal_gamma
        self.lr = lr
        self.weight_decay = weight_decay
        self.epochs = epochs
        self.batch_size = batch_size
        self.patience = patience
        self.device = device
        self.random_state = random_state
        self.torch_threads = torch_threads
        self.verbose = verbose

    _PARAMS = (
        "embedding_dim", "filters", "blocks_per_stage", "lstm_hidden", "spatial_attention",
        "temporal_attention", "dropout", "loss", "focal_alpha", "focal_gamma", "lr", "weight_decay",
        "epochs", "batch_size", "patience", "device", "random_state", "torch_threads", "verbose",
    )  # fmt: skip

    def get_params(self) -> dict[str, Any]:
        """Constructor parameters except ``spec``, JSON-safe (``filters`` as a list)."""
        params = {name: getattr(self, name) for name in self._PARAMS}
        params["filters"] = [int(f) for f in self.filters]
        return params

    # ------------------------------------------------------------------ validation and tensors
    def _check_params(self) -> None:
        if self.loss not in ("bce", "focal"):
            raise ValueError(f"loss must be 'bce' or 'focal', got {self.loss!r}")
        if self.epochs < 1 or self.batch_size < 2 or self.patience < 0:
            raise ValueError("need epochs >= 1, batch_size >= 2 and patience >= 0")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    def _check_xy(
        self, static: np.ndarray, dynamic: np.ndarray, mask: np.ndarray, y: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
        static, dynamic, mask = np.asarray(static), np.asarray(dynamic), np.asarray(mask)
        self.spec.validate_arrays(static, dynamic, mask)
        if y is not None:
            y = np.asarray(y)
            if y.shape != (static.shape[0],) or not np.isin(y, (0, 1)).all():
                raise ValueError(f"y must be a 0/1 array of shape ({static.shape[0]},), got shape {y.shape}")
        return static, dynamic, mask, y

    def _tensors(
        self, static: np.ndarray, dynamic: np.ndarray, mask: np.ndarray, y: np.ndarray | None = None
    ) -> list[Tensor]:
        """Scale with the fitted preprocessor and wrap as CPU tensors (no per-row Python work)."""
        pre = self.preprocessor_
        out = [
            torch.from_numpy(pre.transform_static(static)),
            torch.from_numpy(pre.transform_dynamic(dynamic, mask)),
            torch.from_numpy(np.asarray(mask).astype(bool)),
        ]
        if y is not None:
            out.append(torch.from_numpy(np.asarray(y, dtype=np.float32)))
        return out

    def module_kwargs(self, n_static_out: int) -> dict[str, Any]:
        """Arguments of :func:`build_module` for these parameters and ``n_static_out`` scaled static inputs."""
        return {
            "n_static": int(n_static_out),
            "n_channels": self.spec.C,
            "embedding_dim": int(self.embedding_dim),
            "filters": [int(f) for f in self.filters],
            "blocks_per_stage": int(self.blocks_per_stage),
            "lstm_hidden": int(self.lstm_hidden),
            "spatial_attention": bool(self.spatial_attention),
            "temporal_attention": bool(self.temporal_attention),
            "dropout": float(self.dropout),
        }

    # ------------------------------------------------------------------------------------ fit
    def fit(
        self,
        static: np.ndarray,
        dynamic: np.ndarray,
        mask: np.ndarray,
        y: np.ndarray,
        *,
        valid: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None,
    ) -> ResNetLSTM:
        """Fit the preprocessor and the network.

        Args:
            static (np.ndarray): ``(n, n_static)`` training static block.
            dynamic (np.ndarray): ``(n, T, C)`` training sequences.
            mask (np.ndarray): ``(n, T)`` month mask.
            y (np.ndarray): ``(n,)`` 0/1 labels.
            valid (tuple | None): ``(static, dynamic, mask, y)`` for early stopping on validation AUC
                (best weights restored). None trains all ``epochs``. Defaults to None.

        Returns:
            ResNetLSTM: self.
        """
        self._check_params()
        static, dynamic, mask, y = self._check_xy(static, dynamic, mask, y)
        if valid is not None:
            valid = self._check_xy(*valid)
        device = resolve_device(self.device)
        self.preprocessor_ = InputPreprocessor().fit(self.spec, static, dynamic, mask)
        # Data sets here are small (tens of MB at most), so they are moved to the device once.
        train_t = [t.to(device) for t in self._tensors(static, dynamic, mask, y)]
        valid_t = [t.to(device) for t in self._tensors(*valid)] if valid is not None else None
        self.module_kwargs_ = self.module_kwargs(self.preprocessor_.n_static_out_)
        with seeded(self.random_state, device), torch_threads(self.torch_threads):
            self.module_ = build_module(**self.module_kwargs_).to(device)
            self._train(train_t, valid_t)
        self.module_.eval()
        return self

    def optimizer(self, module: nn.Module) -> torch.optim.Optimizer:
        """The Adam optimiser of ``module`` with this estimator's learning rate and weight decay."""
        return torch.optim.Adam(module.parameters(), lr=float(self.lr), weight_decay=float(self.weight_decay))

    def loss_fn(self) -> LossFn:
        """The training loss of this estimator (``loss``, ``focal_alpha``, ``focal_gamma``)."""
        return make_loss(self.loss, alpha=float(self.focal_alpha), gamma=float(self.focal_gamma))

    def set_trained(
        self,
        *,
        module: nn.Module,
        module_kwargs: Mapping[str, Any],
        preprocessor: InputPreprocessor,
        history: Mapping[str, Sequence[float]],
        best_epoch: int,
    ) -> ResNetLSTM:
        """Make this estimator fitted with a network trained elsewhere (a distributed worker).

        Args:
            module: The trained network (moved to CPU, eval mode).
            module_kwargs: The :func:`build_module` arguments that rebuild it.
            preprocessor: The fitted input scaling it was trained with.
            history: ``train_loss`` and ``valid_auc`` per epoch.
            best_epoch: 0-based epoch whose weights ``module`` holds.

        Returns:
            ResNetLSTM: self.
        """
        self.module_ = module.to("cpu").eval()
        self.module_kwargs_ = dict(module_kwargs)
        self.preprocessor_ = preprocessor
        self.history_ = {"train_loss": list(history["train_loss"]), "valid_auc": list(history["valid_auc"])}
        self.best_epoch_ = int(best_epoch)
        return self

    def _train(self, train_t: list[Tensor], valid_t: list[Tensor] | None) -> None:
        module = self.module_
        optimizer = self.optimizer(module)
        loss_fn = self.loss_fn()
        rng = np.random.default_rng(self.random_state)
        stopper = EarlyStopping(self.patience) if valid_t is not None else None
        history: dict[str, list[float]] = {"train_loss": [], "valid_auc": []}
        for epoch in range(self.epochs):
            batches = iter_batches(train_t, self.batch_size, shuffle=True, rng=rng, drop_last_single=True)
            history["train_loss"].append(train_epoch(module, optimizer, batches, loss_fn))
            stop = False
            if valid_t is not None and stopper is not None:
                auc = evaluate(module, iter_batches(valid_t, max(self.batch_size, 1024)))
                history["valid_auc"].append(auc)
                stop = stopper.update(auc, module)
            logger.log(
                logging.INFO if self.verbose else logging.DEBUG,
                "epoch %d: train loss %.5f, valid AUC %s",
                epoch, history["train_loss"][-1], history["valid_auc"][-1] if valid_t is not None else "-",
            )  # fmt: skip
            if stop:
                break
        self.history_ = history
        self.best_epoch_ = len(history["train_loss"]) - 1
        if stopper is not None and stopper.best_epoch is not None:
            stopper.restore(module)
            self.best_epoch_ = stopper.best_epoch

    # -------------------------------------------------------------------------------- inference
    def _check_fitted(self) -> None:
        if not hasattr(self, "module_"):
            raise RuntimeError("ResNetLSTM is not fitted; call fit() or load() first")

    def _run(
        self,
        static: np.ndarray,
        dynamic: np.ndarray,
        mask: np.ndarray,
        batch_size: int,
        what: str,
        encoder: Callable[[Tensor, Tensor, Tensor], Tensor] | None = None,
    ) -> np.ndarray:
        """Scale once, then push contiguous slices through the network into a preallocated array.

        ``encoder`` replaces ``module_.encode`` for embeddings (a :class:`FoldedEncoder`, for scoring).
        """
        self._check_fitted()
        static, dynamic, mask, _ = self._check_xy(static, dynamic, mask)
        s, d, m = self._tensors(static, dynamic, mask)
        n = s.shape[0]
        module = self.module_
        device = device_of(module)
        out = np.empty((n, self.module_kwargs_["embedding_dim"]) if what == "embed" else (n,), dtype=np.float32)
        module.eval()
        with torch.inference_mode():
            for start in range(0, n, batch_size):
                stop = min(start + batch_size, n)
                args = (s[start:stop].to(device), d[start:stop].to(device), m[start:stop].to(device))
                if what == "embed":
                    res = module.encode(*args) if encoder is None else encoder(*args)
                else:
                    res = torch.sigmoid(module(*args))
                out[start:stop] = res.float().cpu().numpy()
        return out

    def embed(self, static: np.ndarray, dynamic: np.ndarray, mask: np.ndarray, batch_size: int = 1024) -> np.ndarray:
        """Embeddings (post-ReLU fusion layer, eval mode, no dropout).

        Args:
            static (np.ndarray): ``(n, n_static)`` raw static block.
            dynamic (np.ndarray): ``(n, T, C)`` raw sequences.
            mask (np.ndarray): ``(n, T)`` month mask.
            batch_size (int): Rows per forward pass. Defaults to 1024.

        Returns:
            np.ndarray: ``(n, embedding_dim)`` float32.
        """
        return self._run(static, dynamic, mask, batch_size, "embed")

    def inference_embedder(self) -> Callable[..., np.ndarray]:
        """An :meth:`embed` for scoring that runs a :class:`FoldedEncoder`: the same embeddings for less CPU.

        Built from the current weights and checked once against the eager network on a fixed probe batch
        (:meth:`FoldedEncoder.gap_to` at most :data:`PROBE_TOLERANCE`). Where the network cannot be folded
        (not on the CPU, a part the encoder does not know) or the check fails, :meth:`embed` itself is
        returned and a warning says why: scoring is then slower, never different. :meth:`embed` (training,
        evaluation) is unchanged.

        Returns:
            Callable[..., np.ndarray]: ``embed(static, dynamic, mask, batch_size=1024)``, as :meth:`embed`.
        """
        self._check_fitted()
        self.module_.eval()
        try:
            encoder = FoldedEncoder(self.module_)
            gap = encoder.gap_to(self.module_, n_static=int(self.module_kwargs_["n_static"]), T=self.spec.T)
        except ValueError as e:
            logger.warning("ResNetLSTM scores with the eager network: %s", e)
            return self.embed
        if not gap <= PROBE_TOLERANCE:  # a NaN gap fails too
            logger.warning(
                "ResNetLSTM scores with the eager network: the folded one differs by %.3g on the probe "
                "batch (tolerance %g)",
                gap,
                PROBE_TOLERANCE,
            )
            return self.embed

        def embed(static: np.ndarray, dynamic: np.ndarray, mask: np.ndarray, batch_size: int = 1024) -> np.ndarray:
            """:meth:`ResNetLSTM.embed` through the folded network (same arguments, same result up to rounding)."""
            return self._run(static, dynamic, mask, batch_size, "embed", encoder=encoder)

        return embed

    def predict_proba(
        self, static: np.ndarray, dynamic: np.ndarray, mask: np.ndarray, batch_size: int = 1024
    ) -> np.ndarray:
        """Probability of default from the network's own head.

        Args:
            static (np.ndarray): ``(n, n_static)`` raw static block.
            dynamic (np.ndarray): ``(n, T, C)`` raw sequences.
            mask (np.ndarray): ``(n, T)`` month mask.
            batch_size (int): Rows per forward pass. Defaults to 1024.

        Returns:
            np.ndarray: ``(n,)`` float32, P(y = 1) (1-D, unlike scikit-learn's two-column layout).
        """
        return self._run(static, dynamic, mask, batch_size, "proba")

    def attention(self, static: np.ndarray, dynamic: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray | None]:
        """Attention weights for inspection: ``spatial`` ``(n, L)`` and ``temporal`` ``(n, T)``.

        A switched-off attention gives None. Masked months have temporal weight 0.

        Args:
            static (np.ndarray): ``(n, n_static)`` raw static block.
            dynamic (np.ndarray): ``(n, T, C)`` raw sequences.
            mask (np.ndarray): ``(n, T)`` month mask.

        Returns:
            dict[str, np.ndarray | None]: The weights, float32.
        """
        self._check_fitted()
        static, dynamic, mask, _ = self._check_xy(static, dynamic, mask)
        device = device_of(self.module_)
        self.module_.eval()
        with torch.inference_mode():
            _, att = self.module_.encode(
                *(t.to(device) for t in self._tensors(static, dynamic, mask)), return_attention=True
            )
        return {k: (None if v is None else v.float().cpu().numpy()) for k, v in att.items()}

    # ---------------------------------------------------------------------------------- persistence
    def save(self, directory: str | Path) -> list[str]:
        """Write ``resnet_lstm.safetensors`` (weights, on CPU) and ``resnet_lstm.json`` (everything else).

        Args:
            directory (str | Path): Target directory (created if missing).

        Returns:
            list[str]: The file names written, relative to ``directory`` (the bundle contract).
        """
        self._check_fitted()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_weights(self.module_, directory / WEIGHTS_FILE)
        meta = {
            "format": _FORMAT,
            "format_version": _FORMAT_VERSION,
            "params": self.get_params(),
            "spec": self.spec.to_dict(),
            "module_kwargs": self.module_kwargs_,
            "preprocessor": self.preprocessor_.to_dict(),
            "history": {k: [_json_float(v) for v in vs] for k, vs in self.history_.items()},
            "best_epoch": int(self.best_epoch_),
        }
        (directory / META_FILE).write_text(json.dumps(meta, indent=2, allow_nan=False))
        return [WEIGHTS_FILE, META_FILE]

    @classmethod
    def load(cls, directory: str | Path, *, device: str = "cpu") -> ResNetLSTM:
        """Load a model written by :meth:`save` (safetensors + JSON; nothing is unpickled).

        Args:
            directory (str | Path): Directory given to :meth:`save`.
            device (str): Where to put the network (``"auto"`` allowed). Defaults to ``"cpu"``.

        Returns:
            ResNetLSTM: A fitted estimator.
        """
        directory = Path(directory)
        meta = json.loads((directory / META_FILE).read_text())
        if meta.get("format") != _FORMAT or meta.get("format_version") != _FORMAT_VERSION:
            raise ValueError(f"{directory}: not a {_FORMAT} v{_FORMAT_VERSION} model")
        params = dict(meta["params"], filters=tuple(meta["params"]["filters"]), device=device)
        model = cls(spec=FeatureSpec.from_dict(meta["spec"]), **params)
        model.preprocessor_ = InputPreprocessor.from_dict(meta["preprocessor"])
        model.module_kwargs_ = dict(meta["module_kwargs"])
        module = build_module(**model.module_kwargs_)
        model.module_ = load_weights(module, directory / WEIGHTS_FILE, resolve_device(device)).eval()
        model.history_ = {k: [math.nan if v is None else v for v in vs] for k, vs in meta["history"].items()}
        model.best_epoch_ = int(meta["best_epoch"])
        return model


def _json_float(v: float) -> float | None:
    return None if v is None or not math.isfinite(v) else float(v)
