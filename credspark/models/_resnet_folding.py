"""Inference folding of the ResNet-LSTM for scoring.

Batch norms are folded into the convolutions; the folded encoder is checked against the eager network on a
probe batch before it is used.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - torch convention
from torch import Tensor, nn

from credspark.models._nn_blocks import ResidualBlock1d, SpatialAttention1d, TemporalAttention, masked_mean
from credspark.models._resnet_network import ResNetLSTMModule, masked_lstm

__all__ = ["FoldedEncoder", "PROBE_ROWS", "PROBE_TOLERANCE"]


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
      with a batched matmul; the BiLSTM and its packing of partly observed histories are the module's own;
    - a network without channels (static-only) has no sequence branch, here as in the module.

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
        # The LSTM is the network's own masked_lstm; the attention weights' bookkeeping for inspection is left
        # out (the equality tests cover every history length, none included).
        module = self._module
        h, valid, _ = masked_lstm(module.lstm, dynamic, mask)
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
            if self._module.lstm is None:  # static-only: the fusion layer reads the static vector alone
                return F.relu(self._module.fuse(s))
            d = self._dynamic_vector(dynamic, mask)
            return F.relu(self._module.fuse(torch.cat([s, d], dim=1)))

    def gap_to(self, module: nn.Module, *, n_static: int, T: int, rows: int = PROBE_ROWS) -> float:
        """Largest absolute difference to ``module.encode`` on a fixed probe batch, over max(1, largest value).

        The probe: seeded standard-normal scaled inputs, every history length from none to full in one half
        (the packed LSTM path) and full histories in the other (the unpacked path).

        Args:
            module (nn.Module): The eager network to compare with (normally the one this was built from).
            n_static (int): Width of the scaled static vector.
            T (int): Months per sequence (0 for a network without channels).
            rows (int): Probe rows (at least 2). Defaults to :data:`PROBE_ROWS`.

        Returns:
            float: The relative gap (0 for identical outputs).
        """
        gen = torch.Generator().manual_seed(0)
        static = torch.randn(rows, n_static, generator=gen)
        lstm = self._module.lstm
        dynamic = torch.randn(rows, T, 0 if lstm is None else lstm.input_size, generator=gen)
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
