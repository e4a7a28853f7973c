"""Per-epoch training checkpoints: safetensors for tensors, JSON for everything else (no pickle).

Layout under a checkpoint root (one root per model)::

    <root>/epoch-00003/modules.safetensors     module state dicts, keys "<module>/<name>"
    <root>/epoch-00003/optimizers.safetensors  optimizer tensors, keys "<optimizer>/<param index>/<name>"
    <root>/epoch-00003/state.json              epoch, history, optimizer scalars and param groups, extras
    <root>/LATEST                              name of the newest complete checkpoint

A checkpoint folder is written under a temporary name and renamed, then ``LATEST`` is replaced
atomically, so a crash never leaves a half-written checkpoint as the latest one. The root must be on a
file system every worker can read (all ranks load the same checkpoint when resuming).

Every checkpoint records the *fingerprint* of its run in ``state.json``: what decides whether resuming
from it continues the same training (the data's identity and sizes, the model's config, the format
version :data:`FORMAT_VERSION` of this module). :func:`checkpoint_to_resume` resumes only from a checkpoint
whose fingerprint equals the run's; otherwise it refuses (:class:`CheckpointMismatchError`, naming each
difference) or, when asked, ignores it so the run starts fresh (its first checkpoint then replaces the
stale ones).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from credspark.errors import ConfigError

__all__ = [
    "Checkpoint",
    "CheckpointMismatchError",
    "FORMAT_VERSION",
    "save_checkpoint",
    "latest_checkpoint",
    "checkpoint_to_resume",
    "fingerprint_differences",
    "optimizer_to_flat",
    "optimizer_from_flat",
]

log = logging.getLogger("credspark.distributed")

#: Version of the checkpoint layout and of what its fingerprint holds; a checkpoint of another version is
#: never resumed. 1: no fingerprint. 2: ``state.json`` carries ``fingerprint``.
FORMAT_VERSION = 2

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


class CheckpointMismatchError(ConfigError):
    """The latest checkpoint belongs to another run (its fingerprint differs); exit code 2."""


def _canonical(fingerprint: Mapping[str, Any]) -> dict[str, Any]:
    """The fingerprint as JSON reads it back (tuples become lists), with the format version."""
    return json.loads(json.dumps({"format": FORMAT_VERSION, **fingerprint}, sort_keys=True))


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 80 else text[:77] + "..."


def fingerprint_differences(saved: Mapping[str, Any], current: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Each key whose value differs between two fingerprints, as ``"key: checkpoint X, this run Y"``.

    Args:
        saved: The checkpoint's fingerprint.
        current: The run's fingerprint.
        prefix: Dotted path of the enclosing keys (used by the recursion).

    Returns:
        One line per differing leaf (dotted key paths, ``absent`` for a missing key), sorted by key.
    """
    out: list[str] = []
    for key in sorted(set(saved) | set(current)):
        name = f"{prefix}{key}"
        a, b = saved.get(key, "absent"), current.get(key, "absent")
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            out += fingerprint_differences(a, b, f"{name}.")
        elif a != b:
            out.append(f"{name}: checkpoint {_short(a)}, this run {_short(b)}")
    return out


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
    fingerprint: Mapping[str, Any] | None = None,
) -> Path:
    """Write the checkpoint of a finished epoch and point ``LATEST`` at it (chief only).

    Checkpoints of later epochs than ``epoch`` (left by another run in the same root) are removed, as are
    all but the newest few of this run.

    Args:
        root: Checkpoint root of one model.
        epoch: The finished epoch (0-based).
        modules: Modules (or ready state dicts, e.g. best weights) by name.
        optimizers: Optimizers by name.
        extra: JSON-safe training state (history, early-stopping counters, fitted preprocessing).
        fingerprint: JSON-safe identity of the run (see :func:`checkpoint_to_resume`); the format version
            is added. Defaults to None (the format version alone).

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
    state = {"epoch": int(epoch), "optimizers": opt_meta, "extra": extra, "fingerprint": _canonical(fingerprint or {})}
    (tmp / _STATE).write_text(json.dumps(state, allow_nan=True))
    final = root / name
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    latest_tmp = root / f".{_LATEST}.tmp"
    latest_tmp.write_text(name)
    os.replace(latest_tmp, root / _LATEST)
    # Keep the newest few: older ones only cost disk. Later epochs than this one are another run's.
    done = sorted(p for p in root.glob("epoch-*") if p.is_dir())
    mine = [p for p in done if p.name <= name]
    for old in mine[:-_KEEP] + [p for p in done if p.name > name]:
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


def checkpoint_to_resume(
    root: str | Path,
    fingerprint: Mapping[str, Any] | None,
    *,
    on_mismatch: Literal["fail", "restart"] = "fail",
) -> Checkpoint | None:
    """The latest checkpoint under ``root`` if it was written by the same run, else None or an error.

    Args:
        root: Checkpoint root of one model.
        fingerprint: This run's fingerprint (as given to :func:`save_checkpoint`). None: the format version alone.
        on_mismatch: ``fail`` raises on a checkpoint of another run; ``restart`` ignores it (None), so
            the run starts at epoch 0 and its first checkpoint replaces the stale ones. Defaults to ``fail``.

    Returns:
        The checkpoint to resume from, or None (no checkpoint, or a stale one under ``restart``).

    Raises:
        CheckpointMismatchError: The fingerprints differ and ``on_mismatch`` is ``fail``; the message names
            the checkpoint and every differing key with both values.
    """
    ckpt = latest_checkpoint(root)
    if ckpt is None:
        return None
    saved = ckpt.state.get("fingerprint", {"format": 1})
    diffs = fingerprint_differences(saved, _canonical(fingerprint or {}))
    if not diffs:
        return ckpt
    what = f"checkpoint {ckpt.path} (epoch {ckpt.epoch}) belongs to another run: " + "; ".join(diffs)
    if on_mismatch == "restart":
        log.warning("%s; starting fresh (distributed.on_checkpoint_mismatch=restart)", what)
        return None
    raise CheckpointMismatchError(
        f"{what}. Set distributed.on_checkpoint_mismatch=restart to start this run fresh (its checkpoints "
        "replace the stale ones), distributed.checkpoint_dir to another folder, or distributed.resume=false"
    )
