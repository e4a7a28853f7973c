"""The ResNet-LSTM network.

A 1-D conv ResNet with spatial attention reads the static features, a BiLSTM with temporal attention the
monthly sequences; both are fused into an embedding and a logit. Without sequence channels (a static-only
source, ``n_channels=0``) the network is its static branch alone: no BiLSTM, no temporal attention, and the
fusion layer reads the static vector only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812 - torch convention
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from credspark.models._nn_blocks import ResidualBlock1d, SpatialAttention1d, TemporalAttention, masked_mean

__all__ = ["ResNetLSTMModule", "build_module", "masked_lstm"]


#: The network's default shape; the estimator (:class:`~credspark.models.resnet_lstm.ResNetLSTM`) takes the same.
DEFAULT_EMBEDDING_DIM = 32
DEFAULT_FILTERS: tuple[int, ...] = (16, 32, 64, 128)
DEFAULT_BLOCKS_PER_STAGE = 1
DEFAULT_LSTM_HIDDEN = 64
DEFAULT_DROPOUT = 0.5


def masked_lstm(lstm: nn.LSTM, dynamic: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
    """Run ``lstm`` over each row's observed months only: neither direction ever reads a masked month.

    Each row's observed months are moved to the front (stable, so in time order) and packed. Rows with no
    observed month run for one ignored step (packing needs a length >= 1); ``valid`` is all False for them.

    Args:
        lstm: A batch-first (Bi)LSTM.
        dynamic: ``(n, T, C)`` scaled sequence.
        mask: ``(n, T)`` bool, True for observed months.

    Returns:
        ``(h, valid, order)``: LSTM outputs ``(n, T, H)`` with each row's observed months first; ``valid``
        ``(n, T)`` marks those positions; ``order`` ``(n, T)`` gives each position's calendar month (None when
        every month is observed: nothing was moved).
    """
    if bool(mask.all()):  # the common case (full history): no packing needed
        return lstm(dynamic)[0], mask, None
    T = dynamic.shape[1]
    order = torch.sort((~mask).to(torch.uint8), dim=1, stable=True).indices
    compact = dynamic.gather(1, order.unsqueeze(-1).expand_as(dynamic))
    lengths = mask.sum(dim=1)
    packed = pack_padded_sequence(compact, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False)
    h, _ = pad_packed_sequence(lstm(packed)[0], batch_first=True, total_length=T)
    valid = torch.arange(T, device=dynamic.device).unsqueeze(0) < lengths.unsqueeze(1)
    return h, valid, order


class ResNetLSTMModule(nn.Module):
    """The network. Inputs are already scaled (see :class:`~credspark.models._preprocess.InputPreprocessor`).

    Args:
        n_static (int): Length of the scaled static vector (the 1-D signal length).
        n_channels (int): Dynamic channels ``C``; 0 (a static-only source) builds no BiLSTM and no temporal
            attention, and the embedding is read from the static branch alone.
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
        embedding_dim: int = DEFAULT_EMBEDDING_DIM,
        filters: Sequence[int] = DEFAULT_FILTERS,
        blocks_per_stage: int = DEFAULT_BLOCKS_PER_STAGE,
        lstm_hidden: int = DEFAULT_LSTM_HIDDEN,
        spatial_attention: bool = True,
        temporal_attention: bool = True,
        dropout: float = DEFAULT_DROPOUT,
    ) -> None:
        super().__init__()
        if n_static < 1 or n_channels < 0:
            raise ValueError(f"need n_static >= 1 and n_channels >= 0, got {n_static}, {n_channels}")
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
        # No channels: no sequence branch at all (no parameters, nothing in the state dict).
        self.lstm = nn.LSTM(n_channels, lstm_hidden, batch_first=True, bidirectional=True) if n_channels else None
        self.temporal = TemporalAttention(2 * lstm_hidden) if temporal_attention and n_channels else None
        self.fuse = nn.Linear(in_ch + (2 * lstm_hidden if n_channels else 0), embedding_dim)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(embedding_dim, 1)

    def _static_vector(self, static: Tensor) -> tuple[Tensor, Tensor | None]:
        fmap = self.resnet(static.unsqueeze(1))  # (n, filters[-1], L)
        weights = None
        if self.spatial is not None:
            fmap, weights = self.spatial(fmap)
        return fmap.mean(dim=-1), weights

    def _dynamic_vector(self, dynamic: Tensor, mask: Tensor) -> tuple[Tensor, Tensor | None]:
        h, valid, order = masked_lstm(self.lstm, dynamic, mask.bool())
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
            dynamic (Tensor): ``(n, T, C)`` scaled sequence (``(n, 0, 0)`` without channels: not read).
            mask (Tensor): ``(n, T)`` bool/0-1, True for observed months (``(n, 0)`` without channels).
            return_attention (bool): Also return ``{"spatial": (n, L) | None, "temporal": (n, T) | None}``
                (temporal None without channels). Defaults to False.

        Returns:
            Tensor | tuple[Tensor, dict]: ``(n, embedding_dim)``, plus the attention weights if asked.
        """
        s, s_att = self._static_vector(static)
        if self.lstm is None:
            t_att = None
            z = F.relu(self.fuse(s))
        else:
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
