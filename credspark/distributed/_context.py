"""The small interface a distributed training function is written against.

A training function (see :mod:`credspark.distributed.train_fns`) receives a :class:`WorkerContext` and
never touches a backend directly. Every backend (TorchDistributor / ``torch.distributed``, Horovod, the
in-process single worker) implements three collective primitives on tensors:

- :meth:`WorkerContext._allreduce_sum_` (in place sum across ranks),
- :meth:`WorkerContext._broadcast_` (in place, from rank 0),
- :meth:`WorkerContext.barrier`,

and the base class builds everything else on them: gradient averaging (the ``grad_sync`` hook the model
loops accept), parameter broadcast, scalar reductions, and JSON broadcast / all-gather (so small metadata
such as a fitted preprocessor travels as JSON, never as a pickle).

Why explicit gradient all-reduce rather than DDP: the WGAN-GP gradient penalty differentiates the critic
twice (``create_graph=True``); DDP's reducer hooks fire during the first (inner) backward and do not
support that double backward reliably, while averaging ``.grad`` after ``backward()`` and before
``optimizer.step()`` is exact and backend-neutral.
"""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from collections.abc import Iterable
from datetime import timedelta
from typing import Any, Literal

import torch
from torch import Tensor, nn

__all__ = ["WorkerContext", "LocalContext", "TorchDistContext", "ReduceOp"]

ReduceOp = Literal["sum", "mean", "max", "min"]


def _grads(module: nn.Module) -> list[Tensor]:
    # Parameters without a gradient (frozen, or unused in this step) are skipped on every rank alike,
    # because every rank runs the same model code: the flat buffers therefore line up across ranks.
    return [p.grad for p in module.parameters() if p.grad is not None]


class WorkerContext(ABC):
    """What a training function may know and do about the group of workers it runs in.

    Attributes:
        rank (int): This worker's rank, 0 .. world_size - 1.
        world_size (int): Number of workers.
        local_rank (int): Rank among the workers of this machine (selects the GPU).
        device (torch.device): Where this worker computes (``cuda:<local_rank>`` or ``cpu``).
        backend (str): Name of the backend, for logs (``local``, ``gloo``, ``nccl``, ``horovod``).
    """

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    backend: str

    # ---------------------------------------------------------------- primitives (one per backend)
    @abstractmethod
    def _allreduce_sum_(self, tensor: Tensor) -> None:
        """Sum ``tensor`` across ranks, in place (the tensor is on :attr:`device`)."""

    @abstractmethod
    def _broadcast_(self, tensor: Tensor) -> None:
        """Overwrite ``tensor`` with rank 0's values, in place (the tensor is on :attr:`device`)."""

    @abstractmethod
    def barrier(self) -> None:
        """Block until every rank has reached this call."""

    def close(self) -> None:  # noqa: B027 - optional hook, most backends need nothing
        """Release backend resources (called once by the launcher after the training function)."""

    # ---------------------------------------------------------------- derived operations
    @property
    def is_chief(self) -> bool:
        """True on rank 0, the worker that logs, checkpoints and returns the result."""
        return self.rank == 0

    def allreduce_grads(self, module: nn.Module) -> None:
        """Average the ``.grad`` of ``module``'s parameters across ranks (the models' ``grad_sync`` hook).

        Gradients are flattened into one buffer so each call is a single collective (one round trip
        instead of one per parameter). A no-op for world size 1.

        Args:
            module (nn.Module): The module whose parameters were just back-propagated.
        """
        if self.world_size == 1:
            return
        grads = _grads(module)
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads]).to(self.device)
        self._allreduce_sum_(flat)
        flat.div_(self.world_size)
        offset = 0
        for g in grads:
            n = g.numel()
            g.copy_(flat[offset : offset + n].view_as(g))
            offset += n

    def average_buffers(self, module: nn.Module) -> None:
        """Average floating-point buffers (BatchNorm running statistics) across ranks, in place.

        Each rank's BatchNorm statistics follow its own shard; averaging them once per epoch keeps the
        replicas identical (integer buffers such as ``num_batches_tracked`` already agree).

        Args:
            module (nn.Module): Built identically on every rank.
        """
        if self.world_size == 1:
            return
        for b in module.buffers():
            if b.is_floating_point():
                buf = b.detach().to(self.device).clone()
                self._allreduce_sum_(buf)
                with torch.no_grad():
                    b.copy_(buf.div_(self.world_size).to(b.device))

    def broadcast_params(self, module: nn.Module) -> None:
        """Copy rank 0's parameters and buffers (e.g. BatchNorm statistics) to every rank, in place.

        Args:
            module (nn.Module): Built identically on every rank.
        """
        if self.world_size == 1:
            return
        self.broadcast_tensors(list(module.parameters()) + list(module.buffers()))

    def broadcast_tensors(self, tensors: Iterable[Tensor]) -> None:
        """Overwrite each tensor with rank 0's values, in place (any device or dtype).

        Args:
            tensors (Iterable[Tensor]): Tensors of the same shapes and dtypes on every rank.
        """
        if self.world_size == 1:
            return
        for t in tensors:
            buf = t.detach().to(self.device).clone()
            self._broadcast_(buf)
            with torch.no_grad():
                t.copy_(buf.to(t.device))

    def allreduce_scalar(self, value: float, op: ReduceOp = "mean") -> float:
        """Reduce one number across ranks.

        Args:
            value (float): This rank's value.
            op (str): ``"sum"``, ``"mean"``, ``"max"`` or ``"min"``. Defaults to ``"mean"``.

        Returns:
            float: The reduced value (the same on every rank).
        """
        if op not in ("sum", "mean", "max", "min"):
            raise ValueError(f"op must be sum, mean, max or min, got {op!r}")
        if self.world_size == 1:
            return float(value)
        if op in ("sum", "mean"):
            t = torch.tensor([float(value)], dtype=torch.float64, device=self.device)
            self._allreduce_sum_(t)
            total = float(t.item())
            return total / self.world_size if op == "mean" else total
        values = self.allgather_json(float(value))
        return float(max(values) if op == "max" else min(values))

    def broadcast_json(self, obj: Any) -> Any:
        """Send a JSON-serialisable object from rank 0 to every rank (other ranks' ``obj`` is ignored).

        Args:
            obj (Any): The object on rank 0 (ignored elsewhere; pass None).

        Returns:
            Any: Rank 0's object, decoded from JSON on every rank.
        """
        if self.world_size == 1:
            return json.loads(json.dumps(obj))
        payload = json.dumps(obj).encode() if self.is_chief else b""
        size = torch.tensor([len(payload)], dtype=torch.int64, device=self.device)
        self._broadcast_(size)
        buf = torch.zeros(int(size.item()), dtype=torch.int32, device=self.device)
        if self.is_chief:
            buf.copy_(torch.frombuffer(bytearray(payload), dtype=torch.uint8).to(torch.int32))
        self._broadcast_(buf)
        return json.loads(bytes(buf.to(torch.uint8).cpu().tolist()).decode())

    def allgather_json(self, obj: Any) -> list[Any]:
        """Gather one JSON-serialisable object from every rank, in rank order, on every rank.

        Built on the sum all-reduce (each rank fills its own row of a zero matrix), so a backend only
        needs the two primitives.

        Args:
            obj (Any): This rank's object.

        Returns:
            list[Any]: ``world_size`` objects, index = rank.
        """
        payload = json.dumps(obj).encode()
        if self.world_size == 1:
            return [json.loads(payload)]
        sizes = torch.zeros(self.world_size, dtype=torch.int64, device=self.device)
        sizes[self.rank] = len(payload)
        self._allreduce_sum_(sizes)
        width = int(sizes.max().item())
        # int32 rather than uint8: byte sums are not supported by every backend, and no sum overflows
        # here because only one rank writes each row.
        mat = torch.zeros((self.world_size, width), dtype=torch.int32, device=self.device)
        if payload:
            mat[self.rank, : len(payload)] = torch.frombuffer(bytearray(payload), dtype=torch.uint8).to(
                device=self.device, dtype=torch.int32
            )
        self._allreduce_sum_(mat)
        rows = mat.to(torch.uint8).cpu()
        return [json.loads(bytes(rows[r, : int(sizes[r])].tolist()).decode()) for r in range(self.world_size)]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(rank={self.rank}, world_size={self.world_size}, device={self.device})"


class LocalContext(WorkerContext):
    """World size 1, in the calling process: every collective is the identity.

    Args:
        device (str | torch.device): Where to compute. Defaults to ``"cpu"``.
    """

    def __init__(self, device: str | torch.device = "cpu") -> None:
        self.rank = 0
        self.world_size = 1
        self.local_rank = 0
        self.device = torch.device(device)
        self.backend = "local"

    def _allreduce_sum_(self, tensor: Tensor) -> None:
        return None

    def _broadcast_(self, tensor: Tensor) -> None:
        return None

    def barrier(self) -> None:
        """Nothing to wait for."""


class TorchDistContext(WorkerContext):
    """``torch.distributed`` process group (as started by torchrun / TorchDistributor): gloo or NCCL.

    Use :meth:`from_env` inside a worker started by torchrun (it sets ``RANK``, ``WORLD_SIZE``,
    ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``).

    Args:
        rank (int): This worker's rank.
        world_size (int): Number of workers.
        local_rank (int): Rank on this machine.
        device (torch.device): This worker's device.
        backend (str): ``"gloo"`` or ``"nccl"``.
    """

    def __init__(self, *, rank: int, world_size: int, local_rank: int, device: torch.device, backend: str) -> None:
        self.rank = rank
        self.world_size = world_size
        self.local_rank = local_rank
        self.device = device
        self.backend = backend

    @classmethod
    def from_env(cls, *, use_gpu: bool, timeout_s: float) -> TorchDistContext:
        """Join the process group described by torchrun's environment variables.

        Args:
            use_gpu (bool): NCCL on ``cuda:<LOCAL_RANK>`` when True, gloo on CPU otherwise.
            timeout_s (float): Collective timeout: a rank waiting longer for its peers (e.g. because one
                died) raises instead of hanging.

        Returns:
            TorchDistContext: The joined context.
        """
        import torch.distributed as dist

        rank = int(os.environ["RANK"])
        world_size = int(os.environ["WORLD_SIZE"])
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if use_gpu:
            if not torch.cuda.is_available():
                raise RuntimeError("use_gpu=True but CUDA is not available on this worker")
            torch.cuda.set_device(local_rank)
            device, backend = torch.device("cuda", local_rank), "nccl"
        else:
            device, backend = torch.device("cpu"), "gloo"
        if not dist.is_initialized():
            dist.init_process_group(backend, timeout=timedelta(seconds=float(timeout_s)))
        return cls(rank=rank, world_size=world_size, local_rank=local_rank, device=device, backend=backend)

    def _allreduce_sum_(self, tensor: Tensor) -> None:
        import torch.distributed as dist

        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)

    def _broadcast_(self, tensor: Tensor) -> None:
        import torch.distributed as dist

        dist.broadcast(tensor, src=0)

    def barrier(self) -> None:
        """``torch.distributed.barrier`` (on the worker's own GPU under NCCL)."""
        import torch.distributed as dist

        if self.backend == "nccl":
            dist.barrier(device_ids=[self.local_rank])
        else:
            dist.barrier()

    def close(self) -> None:
        """Leave the process group."""
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
