"""Layers of the ResNet-LSTM: 1-D residual block, spatial attention, temporal attention, masked mean."""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812 - torch convention
from torch import Tensor, nn

__all__ = ["ResidualBlock1d", "SpatialAttention1d", "TemporalAttention", "masked_mean"]


class ResidualBlock1d(nn.Module):
    """conv-BN-ReLU-conv-BN plus shortcut, then ReLU; length preserving (no stride).

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels; a 1x1 conv + BN shortcut is used when they differ.
        kernel_size (int): Odd kernel size, padded to keep the length. Defaults to 3.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3) -> None:
        super().__init__()
        pad = kernel_size // 2
        # No conv bias: the following BatchNorm has its own shift.
        self.conv1 = nn.Conv1d(in_channels, out_channels, kernel_size, padding=pad, bias=False)
        self.bn1 = nn.BatchNorm1d(out_channels)
        self.conv2 = nn.Conv1d(out_channels, out_channels, kernel_size, padding=pad, bias=False)
        self.bn2 = nn.BatchNorm1d(out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv1d(in_channels, out_channels, 1, bias=False), nn.BatchNorm1d(out_channels)
            )

    def forward(self, x: Tensor) -> Tensor:
        """Map ``(n, in_channels, L)`` to ``(n, out_channels, L)``."""
        h = F.relu(self.bn1(self.conv1(x)))
        h = self.bn2(self.conv2(h))
        return F.relu(h + self.shortcut(x))


class SpatialAttention1d(nn.Module):
    """Position weights from channel-wise max and mean pooling (CBAM's spatial attention, in 1-D).

    Args:
        kernel_size (int): Odd kernel of the 2 -> 1 channel conv. Defaults to 7.
    """

    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        self.conv = nn.Conv1d(2, 1, kernel_size, padding=kernel_size // 2)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Return the re-weighted map ``(n, ch, L)`` and the weights ``(n, L)`` in (0, 1)."""
        # max(...).values is about twice as fast as amax over the channel axis on CPU.
        pooled = torch.cat([x.max(dim=1, keepdim=True).values, x.mean(dim=1, keepdim=True)], dim=1)  # (n, 2, L)
        weights = torch.sigmoid(self.conv(pooled))  # (n, 1, L)
        return x * weights, weights.squeeze(1)


class TemporalAttention(nn.Module):
    """Additive attention over time restricted to valid steps.

    ``u_t = tanh(W h_t + b)``, ``alpha = softmax_t(u_t . w)`` over valid steps only, ``context = sum alpha_t h_t``.
    A row with no valid step gets all-zero weights and a zero context.

    Args:
        dim (int): Size of ``h_t``.
        attention_dim (int | None): Size of ``u_t``. Defaults to ``dim``.
    """

    def __init__(self, dim: int, attention_dim: int | None = None) -> None:
        super().__init__()
        attention_dim = attention_dim or dim
        self.proj = nn.Linear(dim, attention_dim)
        self.score = nn.Linear(attention_dim, 1, bias=False)

    def forward(self, h: Tensor, valid: Tensor) -> tuple[Tensor, Tensor]:
        """Pool ``h`` ``(n, T, dim)`` with boolean ``valid`` ``(n, T)``; return context and weights ``(n, T)``."""
        scores = self.score(torch.tanh(self.proj(h))).squeeze(-1)
        scores = scores.masked_fill(~valid, float("-inf"))
        # An all-masked row would softmax to NaN; give it finite scores and zero the weights below.
        scores = torch.where(valid.any(dim=1, keepdim=True), scores, torch.zeros_like(scores))
        alpha = torch.softmax(scores, dim=1) * valid
        return (alpha.unsqueeze(-1) * h).sum(dim=1), alpha


def masked_mean(h: Tensor, valid: Tensor) -> Tensor:
    """Mean of ``h`` ``(n, T, d)`` over valid steps ``(n, T)``; zero for rows without any."""
    w = valid.to(h.dtype).unsqueeze(-1)
    return (h * w).sum(dim=1) / w.sum(dim=1).clamp(min=1.0)
