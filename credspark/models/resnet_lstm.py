"""ResNet-LSTM, the paper's feature extractor, fused into an embedding.

A 1-D conv ResNet with spatial attention reads the static features; a BiLSTM with temporal attention reads
the monthly sequences.

Parts, each usable alone (the distributed launcher reuses the loop pieces with its own data feed):

- :class:`ResNetLSTMModule` / :func:`build_module`: the ``nn.Module``.
- :func:`focal_loss`, :func:`make_loss`: training losses on logits.
- :func:`iter_batches`: tensor mini-batches; any iterable of ``(static, dynamic, mask, y)`` works instead.
- :func:`train_epoch`, :func:`predict_batches`, :func:`evaluate`: one epoch / scoring / validation AUC.
- :class:`EarlyStopping`: keeps the best weights by validation AUC.
- :class:`ResNetLSTM`: the estimator (preprocessing, fit loop, embed, predict_proba, save/load).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - torch convention
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from credspark.metrics import roc_auc
from credspark.models._nn_blocks import ResidualBlock1d, SpatialAttention1d, TemporalAttention, masked_mean
from credspark.models._preprocess import InputPreprocessor
from credspark.models._torch_utils import load_weights, resolve_device, save_weights, seeded
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

Batch = Sequence[Tensor]
LossFn = Callable[[Tensor, Tensor], Tensor]


# --------------------------------------------------------------------------------------------- module
class ResNetLSTMModule(nn.Module):
    """The network. Inputs are already scaled (see :class:`~credspark.models._preprocess.InputPreprocessor`).

    Args:
        n_static (int): Length of the scaled static vector (the 1-D signal length).
        n_channels (int): Dynamic channels ``C``.
        embedding_dim (int): Fused embedding size. Defaults to 32.
        filters (Sequence[int]): Filters per ResNet stage. Defaults to (16, 32, 64, 128).
        blocks_per_stage (int): Residual blocks per stage. Defaults to 1.
        lstm_hidden (int): Hidden size per LSTM direction. Defaults to 64.
        spatial_attention (bool): Spatial attention on the static map (else plain average pooling).
            Defaults to True.
        temporal_attention (bool): Temporal attention on LSTM outputs (else mean over observed months).
            Defaults to True.
        dropout (float): Dropout between the embedding and the head. Defaults to 0.5.
    """

    def __init__(
        self,
        *,
        n_static: int,
        n_channels: int,
        embedding_dim: int = 32,
        filters: Sequence[int] = (16, 32, 64, 128),
        blocks_per_stage: int = 1,
        lstm_hidden: int = 64,
        spatial_attention: bool = True,
        temporal_attention: bool = True,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        if n_static < 1 or n_channels < 1:
            raise ValueError(f"need n_static >= 1 and n_channels >= 1, got {n_static}, {n_channels}")
        if not filters or blocks_per_stage < 1:
            raise ValueError("need at least one stage and blocks_per_stage >= 1")
        blocks: list[nn.Module] = []
        in_ch = 1
        for width in filters:
            for _ in range(blocks_per_stage):
                blocks.append(ResidualBlock1d(in_ch, int(width)))
                in_ch = int(width)
        self.resnet = nn.Sequential(*blocks)
        # Switched-off attention has no parameters at all (None is not registered as a submodule).
        self.spatial = SpatialAttention1d() if spatial_attention else None
        self.lstm = nn.LSTM(n_channels, lstm_hidden, batch_first=True, bidirectional=True)
        self.temporal = TemporalAttention(2 * lstm_hidden) if temporal_attention else None
        self.fuse = nn.Linear(in_ch + 2 * lstm_hidden, embedding_dim)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(embedding_dim, 1)

    def _static_vector(self, static: Tensor) -> tuple[Tensor, Tensor | None]:
        fmap = self.resnet(static.unsqueeze(1))  # (n, filters[-1], L)
        weights = None
        if self.spatial is not None:
            fmap, weights = self.spatial(fmap)
        return fmap.mean(dim=-1), weights

    def _dynamic_vector(self, dynamic: Tensor, mask: Tensor) -> tuple[Tensor, Tensor | None]:
        n, T, _ = dynamic.shape
        mask = mask.bool()
        order = None
        if bool(mask.all()):  # the common case (full history): no packing needed
            h, _ = self.lstm(dynamic)
            valid = mask
        else:
            # Move each row's observed months to the front (stable, so in time order) and pack, so the
            # LSTM never reads a masked month in either direction. Rows with no observed month are run
            # for one (ignored) step because packing needs length >= 1; their context is zeroed below.
            order = torch.sort((~mask).to(torch.uint8), dim=1, stable=True).indices
            compact = dynamic.gather(1, order.unsqueeze(-1).expand_as(dynamic))
            lengths = mask.sum(dim=1)
            packed = pack_padded_sequence(compact, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False)
            h, _ = pad_packed_sequence(self.lstm(packed)[0], batch_first=True, total_length=T)
            valid = torch.arange(T, device=dynamic.device).unsqueeze(0) < lengths.unsqueeze(1)
        if self.temporal is None:
            return masked_mean(h, valid), None
        context, alpha = self.temporal(h, valid)
        if order is not None:  # weights back to calendar positions; masked months get 0
            alpha = torch.zeros_like(alpha).scatter(1, order, alpha)
        return context, alpha

    def encode(
        self, static: Tensor, dynamic: Tensor, mask: Tensor, return_attention: bool = False
    ) -> Tensor | tuple[Tensor, dict[str, Tensor | None]]:
        """Embedding after the fusion layer's ReLU (before dropout).

        Args:
            static (Tensor): ``(n, n_static)`` scaled static vector.
            dynamic (Tensor): ``(n, T, C)`` scaled sequence.
            mask (Tensor): ``(n, T)`` bool/0-1, True for observed months.
            return_attention (bool): Also return ``{"spatial": (n, L) | None, "temporal": (n, T) | None}``.
                Defaults to False.

        Returns:
            Tensor | tuple[Tensor, dict]: ``(n, embedding_dim)``, plus the attention weights if asked.
        """
        s, s_att = self._static_vector(static)
        d, t_att = self._dynamic_vector(dynamic, mask)
        z = F.relu(self.fuse(torch.cat([s, d], dim=1)))
        if return_attention:
            return z, {"spatial": s_att, "temporal": t_att}
        return z

    def forward(
        self, static: Tensor, dynamic: Tensor, mask: Tensor, return_attention: bool = False
    ) -> Tensor | tuple[Tensor, dict[str, Tensor | None]]:
        """Default logits ``(n,)`` (plus attention weights if asked, as in :meth:`encode`)."""
        out = self.encode(static, dynamic, mask, return_attention)
        z, att = out if return_attention else (out, None)
        logits = self.head(self.dropout(z)).squeeze(-1)
        return (logits, att) if return_attention else logits


def build_module(**kwargs: Any) -> ResNetLSTMModule:
    """Construct a :class:`ResNetLSTMModule` from keyword arguments (as stored in ``module_kwargs_``)."""
    return ResNetLSTMModule(**kwargs)


# ------------------------------------------------------------------------------------- inference (scoring)
#: Rows of the fixed probe batch on which :meth:`ResNetLSTM.inference_embedder` compares folded and eager.
PROBE_ROWS = 64
#: Largest accepted folded-vs-eager gap on the probe batch, relative to max(1, largest embedding value).
#: Float32 rounding gives ~1e-7; a folding or layout mistake gives gaps of order 1e-2 and more.
PROBE_TOLERANCE = 1e-4


def _fold_conv_bn(conv: nn.Module, bn: nn.Module) -> tuple[Tensor, Tensor]:
    """Eval-mode ``bn(conv(x))`` as one convolution: a ``(out, in, 1, k)`` channels-last weight and a bias.

    ``bn(z) = (z - mean) * s + beta`` with ``s = gamma / sqrt(var + eps)`` is affine per output channel, so it
    moves into the convolution: weight ``w * s`` and bias ``(b - mean) * s + beta``. Computed in float64 and
    rounded once to float32.

    Raises:
        ValueError: If the pair is not a plain stride-1 zero-padded Conv1d followed by a BatchNorm1d with
            running statistics (anything else would not compute the same function once folded).
    """
    if type(conv) is not nn.Conv1d or type(bn) is not nn.BatchNorm1d:
        raise ValueError(f"cannot fold {type(conv).__name__} + {type(bn).__name__}")
    if (
        conv.stride != (1,) or conv.dilation != (1,) or conv.groups != 1 or conv.padding_mode != "zeros"
        or isinstance(conv.padding, str)
    ):  # fmt: skip
        raise ValueError(
            f"cannot fold a Conv1d with stride {conv.stride}, dilation {conv.dilation}, groups "
            f"{conv.groups}, padding {conv.padding!r} ({conv.padding_mode})"
        )
    if bn.running_mean is None or bn.running_var is None or not bn.track_running_stats:
        raise ValueError("cannot fold a BatchNorm1d without running statistics")
    with torch.no_grad():
        w = conv.weight.double()
        scale = bn.running_var.double().add(bn.eps).rsqrt()
        shift = -bn.running_mean.double() * scale
        if bn.weight is not None:
            scale, shift = scale * bn.weight.double(), shift * bn.weight.double() + bn.bias.double()
        if conv.bias is not None:
            shift = shift + conv.bias.double() * scale
        weight = (w * scale[:, None, None]).float().unsqueeze(2).contiguous(memory_format=torch.channels_last)
        return weight, shift.float().contiguous()


class FoldedEncoder:
    """:meth:`ResNetLSTMModule.encode` in eval mode, rearranged for CPU scoring: the same function, cheaper.

    What changes (arithmetic only; the model and its weights do not):

    - each convolution + batch norm pair is one convolution with a bias (:func:`_fold_conv_bn`), so batch
      norm costs nothing;
    - the ResNet runs as 2-D convolutions of height 1 on channels-last tensors, the layout for which
      oneDNN's kernels are fastest here; the residual add and the ReLUs work in place;
    - spatial attention reads the final map as ``(n, L, channels)``: the channel max and mean reduce over
      contiguous memory and the weighted mean over positions is one batched matmul;
    - temporal attention takes numpy's float32 ``tanh`` (torch's is about 5x slower on this CPU) and pools
      with a batched matmul; the BiLSTM and its packing of partly observed histories are the module's own.

    Embeddings equal the eager module's up to float32 rounding (~1e-7). Built from the module's weights at
    construction (the LSTM, attention and fusion layers are shared, the folded convolutions are copies):
    rebuild it after changing the weights. CPU only.

    Args:
        module (ResNetLSTMModule): The network; its batch norms are folded with their running statistics, as
            eval mode uses them.

    Raises:
        ValueError: If the network has a part this class does not know how to rearrange exactly, or is not
            on the CPU.
    """

    def __init__(self, module: ResNetLSTMModule) -> None:
        if type(module) is not ResNetLSTMModule:
            raise ValueError(f"FoldedEncoder needs a ResNetLSTMModule, got {type(module).__name__}")
        if any(p.device.type != "cpu" for p in module.parameters()):
            raise ValueError("FoldedEncoder runs on the CPU only")
        if module.spatial is not None and type(module.spatial) is not SpatialAttention1d:
            raise ValueError(f"unknown spatial attention {type(module.spatial).__name__}")
        if module.temporal is not None and type(module.temporal) is not TemporalAttention:
            raise ValueError(f"unknown temporal attention {type(module.temporal).__name__}")
        self._module = module
        self._blocks: list[tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor], tuple[Tensor, Tensor] | None, int]] = []
        for block in module.resnet:
            if type(block) is not ResidualBlock1d:
                raise ValueError(f"unknown residual block {type(block).__name__}")
            conv1, conv2 = _fold_conv_bn(block.conv1, block.bn1), _fold_conv_bn(block.conv2, block.bn2)
            pad = block.conv1.padding[0]
            kernels = {block.conv1.kernel_size[0], block.conv2.kernel_size[0]}
            if block.conv2.padding[0] != pad or kernels != {2 * pad + 1}:
                raise ValueError("residual block convolutions must be length preserving")
            if isinstance(block.shortcut, nn.Identity):
                shortcut = None
            elif type(block.shortcut) is nn.Sequential and len(block.shortcut) == 2:
                shortcut = _fold_conv_bn(block.shortcut[0], block.shortcut[1])
                if block.shortcut[0].kernel_size != (1,) or block.shortcut[0].padding != (0,):
                    raise ValueError("the shortcut convolution must be 1x1")
            else:
                raise ValueError(f"unknown shortcut {block.shortcut!r}")
            self._blocks.append((conv1, conv2, shortcut, int(pad)))

    def _static_vector(self, static: Tensor) -> Tensor:
        x = static[:, None, None, :].contiguous(memory_format=torch.channels_last)  # (n, 1, 1, L)
        for (w1, b1), (w2, b2), shortcut, pad in self._blocks:
            h = F.conv2d(x, w1, b1, padding=(0, pad)).relu_()
            h = F.conv2d(h, w2, b2, padding=(0, pad))
            x = h.add_(x if shortcut is None else F.conv2d(x, *shortcut)).relu_()
        fmap = x.squeeze(2).transpose(1, 2)  # (n, L, channels), contiguous in channels-last memory
        spatial = self._module.spatial
        if spatial is None:
            return fmap.mean(dim=1)
        pooled = torch.stack([fmap.amax(dim=2), fmap.mean(dim=2)], dim=1)  # (n, 2, L), as SpatialAttention1d
        weights = torch.sigmoid(spatial.conv(pooled))  # (n, 1, L)
        return torch.bmm(weights, fmap).squeeze(1) / fmap.shape[1]  # mean over L of the re-weighted map

    def _dynamic_vector(self, dynamic: Tensor, mask: Tensor) -> Tensor:
        # The LSTM part mirrors ResNetLSTMModule._dynamic_vector (the equality tests cover every history
        # length, none included); the attention weights' bookkeeping for inspection is left out.
        module = self._module
        T = dynamic.shape[1]
        if bool(mask.all()):
            h, _ = module.lstm(dynamic)
            valid = mask
        else:
            order = torch.sort((~mask).to(torch.uint8), dim=1, stable=True).indices
            compact = dynamic.gather(1, order.unsqueeze(-1).expand_as(dynamic))
            lengths = mask.sum(dim=1)
            packed = pack_padded_sequence(compact, lengths.clamp(min=1), batch_first=True, enforce_sorted=False)
            h, _ = pad_packed_sequence(module.lstm(packed)[0], batch_first=True, total_length=T)
            valid = torch.arange(T).unsqueeze(0) < lengths.unsqueeze(1)
        temporal = module.temporal
        if temporal is None:
            return masked_mean(h, valid)
        u = temporal.proj(h)
        np.tanh(u.numpy(), out=u.numpy())  # in place on the tensor's memory
        scores = temporal.score(u).squeeze(-1).masked_fill(~valid, float("-inf"))
        scores = torch.where(valid.any(dim=1, keepdim=True), scores, torch.zeros_like(scores))
        alpha = torch.softmax(scores, dim=1) * valid
        return torch.bmm(alpha.unsqueeze(1), h).squeeze(1)

    def __call__(self, static: Tensor, dynamic: Tensor, mask: Tensor) -> Tensor:
        """Embedding ``(n, embedding_dim)`` of scaled inputs, as :meth:`ResNetLSTMModule.encode`."""
        with torch.inference_mode():
            mask = mask.bool()
            s = self._static_vector(static)
            d = self._dynamic_vector(dynamic, mask)
            return F.relu(self._module.fuse(torch.cat([s, d], dim=1)))

    def gap_to(self, module: nn.Module, *, n_static: int, T: int, rows: int = PROBE_ROWS) -> float:
        """Largest absolute difference to ``module.encode`` on a fixed probe batch, over max(1, largest value).

        The probe: seeded standard-normal scaled inputs, every history length from none to full in one half
        (the packed LSTM path) and full histories in the other (the unpacked path).

        Args:
            module (nn.Module): The eager network to compare with (normally the one this was built from).
            n_static (int): Width of the scaled static vector.
            T (int): Months per sequence.
            rows (int): Probe rows (at least 2). Defaults to :data:`PROBE_ROWS`.

        Returns:
            float: The relative gap (0 for identical outputs).
        """
        gen = torch.Generator().manual_seed(0)
        static = torch.randn(rows, n_static, generator=gen)
        dynamic = torch.randn(rows, T, self._module.lstm.input_size, generator=gen)
        lengths = torch.arange(rows) % (T + 1)
        lengths[rows // 2 :] = T
        mask = torch.arange(T).unsqueeze(0) >= (T - lengths).unsqueeze(1)  # observed months are the latest
        gap = 0.0
        with torch.inference_mode():
            for part in (slice(0, rows // 2), slice(rows // 2, rows)):
                ref = module.encode(static[part], dynamic[part], mask[part])
                out = self(static[part], dynamic[part], mask[part])
                gap = max(gap, float((out - ref).abs().max()) / max(1.0, float(ref.abs().max())))
        return gap


# ----------------------------------------------------------------------------------------------- losses
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


def _device_of(module: nn.Module) -> torch.device:
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
    device = _device_of(module)
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
    device = _device_of(module)
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


# -------------------------------------------------------------------------------------------- estimator
class ResNetLSTM:
    """ResNet-LSTM feature extractor and classifier.

    Input layout: ``static`` float ``(n, n_static)`` with categoricals as integer codes, ``dynamic`` float
    ``(n, T, C)``, ``mask`` ``(n, T)`` with 1 for observed months (trailing), ``y`` int ``(n,)`` with
    1 = default. Inputs are scaled by an :class:`InputPreprocessor` fitted in :meth:`fit`; non-finite
    inputs are replaced by 0 after scaling, so they never produce NaN outputs.

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
        embedding_dim: int = 32,
        filters: Sequence[int] = (16, 32, 64, 128),
        blocks_per_stage: int = 1,
        lstm_hidden: int = 64,
        spatial_attention: bool = True,
        temporal_attention: bool = True,
        dropout: float = 0.5,
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
        self.verbose = verbose

    _PARAMS = (
        "embedding_dim", "filters", "blocks_per_stage", "lstm_hidden", "spatial_attention",
        "temporal_attention", "dropout", "loss", "focal_alpha", "focal_gamma", "lr", "weight_decay",
        "epochs", "batch_size", "patience", "device", "random_state", "verbose",
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

    def _module_kwargs(self, n_static_out: int) -> dict[str, Any]:
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
        self.module_kwargs_ = self._module_kwargs(self.preprocessor_.n_static_out_)
        with seeded(self.random_state, device):
            self.module_ = build_module(**self.module_kwargs_).to(device)
            self._train(train_t, valid_t)
        self.module_.eval()
        return self

    def _train(self, train_t: list[Tensor], valid_t: list[Tensor] | None) -> None:
        module = self.module_
        optimizer = torch.optim.Adam(module.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        loss_fn = make_loss(self.loss, alpha=self.focal_alpha, gamma=self.focal_gamma)
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
        device = _device_of(module)
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
        device = _device_of(self.module_)
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
