"""Small torch helpers shared by the neural models: device choice, seeding, safetensors weight files.

Kept generic on purpose (no model knowledge) so that every torch model resolves devices, seeds and
saves weights the same way. Weight files are safetensors, never pickles.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

__all__ = ["resolve_device", "seeded", "torch_threads", "save_weights", "load_weights"]


def resolve_device(device: str | torch.device = "cpu") -> torch.device:
    """Turn a device name into a ``torch.device``.

    Args:
        device (str | torch.device): ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ... or ``"auto"`` (CUDA when
            available, else CPU). Defaults to ``"cpu"``.

    Returns:
        torch.device: The resolved device.

    Raises:
        RuntimeError: If a CUDA device is asked for explicitly but CUDA is not available.
    """
    if isinstance(device, torch.device):
        dev = device
    elif device == "auto":
        dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {str(device)!r} asked for, but CUDA is not available (use 'auto' or 'cpu')")
    return dev


@contextlib.contextmanager
def seeded(seed: int | None, device: torch.device | None = None) -> Iterator[None]:
    """Run a block with torch's global RNG seeded, restoring the caller's RNG state afterwards.

    Layers draw their initial weights and dropout masks from the global generator; forking it keeps a
    seeded fit reproducible without changing the random stream of the code around it.

    Args:
        seed (int | None): Seed; None runs the block on the current global RNG state (not reproducible).
        device (torch.device | None): The device the block uses; its CUDA generator is forked too.
            Defaults to None (CPU only).

    Yields:
        None.
    """
    if seed is None:
        yield
        return
    devices: list[int] = []
    if device is not None and device.type == "cuda":
        devices = [device.index if device.index is not None else torch.cuda.current_device()]
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run a block with torch on ``n`` intra-op threads, restoring the caller's count afterwards.

    Args:
        n (int | None): Threads; None runs the block on the current setting.

    Yields:
        None.
    """
    if n is None:
        yield
        return
    if int(n) < 1:
        raise ValueError(f"torch_threads must be >= 1 or None, got {n}")
    before = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def save_weights(module: nn.Module, path: str | Path) -> str:
    """Write a module's ``state_dict`` to a safetensors file, moved to CPU first.

    Args:
        module (nn.Module): The module.
        path (str | Path): Target file.

    Returns:
        str: The path written.
    """
    state = {k: v.detach().to("cpu").contiguous() for k, v in module.state_dict().items()}
    save_file(state, str(path))
    return str(path)


def load_weights(module: nn.Module, path: str | Path, device: torch.device | str = "cpu") -> nn.Module:
    """Load a safetensors ``state_dict`` into a module (strict: every key must match) and move it.

    Args:
        module (nn.Module): A module built with the same architecture as the saved one.
        path (str | Path): A file written by :func:`save_weights`.
        device (torch.device | str): Where the module should live. Defaults to ``"cpu"``.

    Returns:
        nn.Module: The same module, on ``device``.
    """
    state = load_file(str(path), device="cpu")
    module.load_state_dict(state, strict=True)
    return module.to(resolve_device(device))
