"""Per-epoch training checkpoints: safetensors for tensors, JSON for everything else (no pickle).

Layout under a checkpoint root (one root per model)::

    <root>/epoch-00003/modules.safetensors     module state dicts, keys "<module>/<name>"
    <root>/epoch-00003/optimizers.safetensors  optimizer tensors, keys "<optimizer>/<param index>/<name>"
    <root>/epoch-00003/state.json              epoch, history, optimizer scalars and param groups, extras
    <root>/LATEST                              name of the newest complete checkpoint

A checkpoint folder is written under a temporary name and renamed, then ``LATEST`` is replaced
atomically, so a crash never leaves a half-written checkpoint as the latest one. The root must be on a
file system every worker can read (all ranks load the same checkpoint when resuming).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

__all__ = ["Checkpoint", "save_checkpoint", "latest_checkpoint", "optimizer_to_flat", "optimizer_from_flat"]

_LATEST = "LATEST"
_MODULES = "modules.safetensors"
_OPTIMIZERS = "optimizers.safetensors"
_STATE = "state.json"
_KEEP = 2


def optimizer_to_flat(optimizer: torch.optim.Optimizer) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Split an optimizer's ``state_dict`` into tensors (for safetensors) and JSON-safe values.

    Args:
        optimizer: Any torch optimizer whose per-parameter state holds tensors and numbers.

    Returns:
        ``(tensors, meta)``: tensors keyed ``"<param index>/<name>"``; meta with ``scalars`` (non-tensor
        state values) and ``param_groups`` (hyper-parameters; tuples become lists).
    """
    sd = optimizer.state_dict()
    tensors: dict[str, Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, state in sd["state"].items():
        for name, value in state.items():
            if isinstance(value, Tensor):
                tensors[f"{pid}/{name}"] = value.detach().to("cpu").contiguous()
            else:
                scalars.setdefault(str(pid), {})[name] = value
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in sd["param_groups"]]
    return tensors, {"scalars": scalars, "param_groups": groups}


def optimizer_from_flat(optimizer: torch.optim.Optimizer, tensors: dict[str, Tensor], meta: dict[str, Any]) -> None:
    """Load state written by :func:`optimizer_to_flat` into an optimizer over the same parameters.

    Args:
        optimizer: Optimizer built like the saved one.
        tensors: The tensors (``"<param index>/<name>"``).
        meta: The JSON part.
    """
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        pid, name = key.split("/", 1)
        state.setdefault(int(pid), {})[name] = value
    for pid, values in meta.get("scalars", {}).items():
        state.setdefault(int(pid), {}).update(values)
    groups = []
    for g in meta["param_groups"]:
        g = dict(g)
        if isinstance(g.get("betas"), list):
            g["betas"] = tuple(g["betas"])
        groups.append(g)
    optimizer.load_state_dict({"state": state, "param_groups": groups})


@dataclass(frozen=True)
class Checkpoint:
    """One complete checkpoint on disk.

    Attributes:
        path: Its folder.
        epoch: The last finished epoch (0-based).
        state: The JSON part (``epoch``, ``extra`` and the optimizers' JSON).
    """

    path: Path
    epoch: int
    state: dict[str, Any]

    @property
    def extra(self) -> dict[str, Any]:
        """What the training function stored besides modules and optimizers."""
        return self.state.get("extra", {})

    def load_module(self, name: str, module: nn.Module) -> None:
        """Load the saved state dict ``name`` into ``module`` (strict), keeping its device."""
        prefix = f"{name}/"
        flat = load_file(str(self.path / _MODULES), device="cpu")
        sd = {k[len(prefix) :]: v for k, v in flat.items() if k.startswith(prefix)}
        module.load_state_dict(sd, strict=True)

    def load_optimizer(self, name: str, optimizer: torch.optim.Optimizer) -> None:
        """Load the saved optimizer ``name`` (its tensors move to the parameters' devices)."""
        prefix = f"{name}/"
        opt_file = self.path / _OPTIMIZERS
        flat = load_file(str(opt_file), device="cpu") if opt_file.exists() else {}
        tensors = {k[len(prefix) :]: v for k, v in flat.items() if k.startswith(prefix)}
        optimizer_from_flat(optimizer, tensors, self.state["optimizers"][name])


def save_checkpoint(
    root: str | Path,
    epoch: int,
    *,
    modules: dict[str, nn.Module | dict[str, Tensor]],
    optimizers: dict[str, torch.optim.Optimizer],
    extra: dict[str, Any],
) -> Path:
    """Write the checkpoint of a finished epoch and point ``LATEST`` at it (chief only).

    Args:
        root: Checkpoint root of one model.
        epoch: The finished epoch (0-based).
        modules: Modules (or ready state dicts, e.g. best weights) by name.
        optimizers: Optimizers by name.
        extra: JSON-safe training state (history, early-stopping counters, fitted preprocessing).

    Returns:
        The checkpoint folder.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    name = f"epoch-{epoch:05d}"
    tmp = root / f".{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    flat: dict[str, Tensor] = {}
    for mname, m in modules.items():
        sd = m.state_dict() if isinstance(m, nn.Module) else m
        for k, v in sd.items():
            flat[f"{mname}/{k}"] = v.detach().to("cpu").contiguous().clone()
    save_file(flat, str(tmp / _MODULES))
    opt_flat: dict[str, Tensor] = {}
    opt_meta: dict[str, Any] = {}
    for oname, opt in optimizers.items():
        tensors, meta = optimizer_to_flat(opt)
        opt_flat.update({f"{oname}/{k}": v for k, v in tensors.items()})
        opt_meta[oname] = meta
    if opt_flat:
        save_file(opt_flat, str(tmp / _OPTIMIZERS))
    (tmp / _STATE).write_text(json.dumps({"epoch": int(epoch), "optimizers": opt_meta, "extra": extra}, allow_nan=True))
    final = root / name
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    latest_tmp = root / f".{_LATEST}.tmp"
    latest_tmp.write_text(name)
    os.replace(latest_tmp, root / _LATEST)
    # Keep the newest few: older ones only cost disk.
    done = sorted(p for p in root.glob("epoch-*") if p.is_dir())
    for old in done[:-_KEEP]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(root: str | Path) -> Checkpoint | None:
    """The checkpoint ``LATEST`` points at, or None when there is none.

    Args:
        root: Checkpoint root of one model.

    Returns:
        The checkpoint, or None.
    """
    root = Path(root)
    pointer = root / _LATEST
    if not pointer.exists():
        return None
    path = root / pointer.read_text().strip()
    state = json.loads((path / _STATE).read_text())
    return Checkpoint(path=path, epoch=int(state["epoch"]), state=state)
