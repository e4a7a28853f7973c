"""WorkerContext's derived collectives (on an in-process 2-rank group of threads), LocalContext, checkpoints."""

from __future__ import annotations

import threading

import pytest
import torch
from torch import nn

from credspark.distributed._checkpoint import latest_checkpoint, save_checkpoint
from credspark.distributed._context import LocalContext, WorkerContext
from credspark.distributed.train_fns import state_hash

torch.set_num_threads(1)


class _Group:
    """Shared state of an in-process group: a barrier and one slot per rank."""

    def __init__(self, world_size: int) -> None:
        self.world_size = world_size
        self.barrier = threading.Barrier(world_size, timeout=20)
        self.slots: list[torch.Tensor | None] = [None] * world_size
        self.calls = 0


class ThreadContext(WorkerContext):
    """A WorkerContext whose primitives exchange tensors between threads (tests the base class alone)."""

    def __init__(self, group: _Group, rank: int) -> None:
        self.group, self.rank, self.world_size = group, rank, group.world_size
        self.local_rank, self.device, self.backend = rank, torch.device("cpu"), "threads"

    def _allreduce_sum_(self, tensor):
        g = self.group
        g.slots[self.rank] = tensor.clone()
        g.barrier.wait()
        total = sum(g.slots)  # type: ignore[arg-type]
        g.barrier.wait()
        tensor.copy_(total)
        if self.rank == 0:
            g.calls += 1

    def _broadcast_(self, tensor):
        g = self.group
        if self.rank == 0:
            g.slots[0] = tensor.clone()
        g.barrier.wait()
        src = g.slots[0]
        g.barrier.wait()
        tensor.copy_(src)

    def barrier(self):
        self.group.barrier.wait()


def run_ranks(fn, world_size=2):
    group = _Group(world_size)
    results: list = [None] * world_size
    errors: list = []

    def target(r):
        try:
            results[r] = fn(ThreadContext(group, r))
        except BaseException as e:  # noqa: BLE001
            errors.append(e)
            group.barrier.abort()

    threads = [threading.Thread(target=target, args=(r,)) for r in range(world_size)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    if errors:
        raise errors[0]
    return results, group


_INIT_LOCK = threading.Lock()


def _net(seed):
    # The ranks are threads sharing torch's global generator: seed and draw under a lock so both get the same
    # initial weights whatever the interleaving.
    with _INIT_LOCK:
        torch.manual_seed(seed)
        return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 1))


def test_allreduce_grads_averages_in_one_call():
    def fn(ctx):
        net = _net(0)
        # Rows that differ within the batch and a loss that is not a plain sum: batch norm's outputs sum to a
        # constant, so `net(x).sum()` on identical rows gave the first layer a zero gradient up to rounding
        # noise, and the check below that the ranks' gradients differ was left to that noise.
        x = torch.arange(15, dtype=torch.float32).reshape(5, 3) ** (1 + ctx.rank) / 10.0
        net(x).pow(2).sum().backward()
        before = [p.grad.clone() for p in net.parameters()]
        ctx.allreduce_grads(net)
        return before, [p.grad.clone() for p in net.parameters()]

    (r0, r1), group = run_ranks(fn)
    for g0, g1, a0, a1 in zip(r0[0], r1[0], r0[1], r1[1]):
        torch.testing.assert_close(a0, (g0 + g1) / 2)
        torch.testing.assert_close(a0, a1)
    assert not torch.equal(r0[0][0], r1[0][0])  # the ranks really had different gradients
    assert group.calls == 1  # flattened: one collective for all parameters


def test_allreduce_grads_skips_parameters_without_grad():
    def fn(ctx):
        net = _net(0)
        for p in net[2].parameters():
            p.requires_grad_(False)
        net(torch.full((4, 3), float(ctx.rank))).sum().backward()
        ctx.allreduce_grads(net)
        return [p.grad for p in net.parameters()]

    (g0, g1), _ = run_ranks(fn)
    assert g0[-1] is None and g1[-1] is None
    torch.testing.assert_close(g0[0], g1[0])


def test_broadcast_params_and_average_buffers_make_replicas_identical():
    def fn(ctx):
        net = _net(ctx.rank)  # different initial weights per rank
        net.train()
        net(torch.randn(6, 3) + ctx.rank)  # different BatchNorm statistics per rank
        running_before = net[1].running_mean.clone()
        ctx.broadcast_params(net)
        h_params = state_hash(net)
        net(torch.randn(6, 3) + 3 * ctx.rank)
        ctx.average_buffers(net)
        return h_params, running_before, state_hash(net), [p.detach().clone() for p in net.parameters()]

    (a, b), _ = run_ranks(fn)
    assert a[0] == b[0]  # broadcast copied parameters *and* buffers
    assert not torch.equal(a[1], b[1])
    assert a[2] == b[2]
    ref = _net(0)
    torch.testing.assert_close(b[3][0], ref[0].weight)  # rank 0's weights won


def test_json_collectives_and_scalars():
    def fn(ctx):
        got = ctx.broadcast_json({"rank": ctx.rank, "text": "é" * ctx.rank} if ctx.is_chief else None)
        gathered = ctx.allgather_json({"r": ctx.rank, "pad": "x" * (10 * ctx.rank)})
        return (
            got,
            gathered,
            ctx.allreduce_scalar(ctx.rank + 1.0, "mean"),
            ctx.allreduce_scalar(ctx.rank + 1.0, "sum"),
            ctx.allreduce_scalar(ctx.rank + 1.0, "max"),
            ctx.allreduce_scalar(ctx.rank + 1.0, "min"),
        )

    results, _ = run_ranks(fn, world_size=3)
    r0, r1 = results[0], results[2]
    assert r0[0] == r1[0] == {"rank": 0, "text": ""}
    assert r0[1] == r1[1] == [{"r": 0, "pad": ""}, {"r": 1, "pad": "x" * 10}, {"r": 2, "pad": "x" * 20}]
    assert r0[2:] == r1[2:] == (2.0, 6.0, 3.0, 1.0)
    with pytest.raises(ValueError, match="op must be"):
        LocalContext().allreduce_scalar(1.0, "prod")  # type: ignore[arg-type]


def test_local_context_is_identity():
    ctx = LocalContext()
    assert (ctx.rank, ctx.world_size, ctx.is_chief) == (0, 1, True)
    net = _net(0)
    net(torch.ones(4, 3)).sum().backward()
    g = net[0].weight.grad.clone()
    ctx.allreduce_grads(net)
    ctx.broadcast_params(net)
    ctx.barrier()
    torch.testing.assert_close(net[0].weight.grad, g)
    assert ctx.broadcast_json({"a": [1, 2]}) == {"a": [1, 2]}
    assert ctx.allgather_json(3) == [3]
    assert ctx.allreduce_scalar(2.5, "max") == 2.5


def test_checkpoint_round_trip_restores_optimizer_exactly(tmp_path):
    torch.manual_seed(0)
    net = nn.Linear(3, 2)
    opt = torch.optim.Adam(net.parameters(), lr=0.01, betas=(0.5, 0.9))
    x = torch.randn(8, 3)
    for _ in range(3):
        opt.zero_grad()
        net(x).pow(2).sum().backward()
        opt.step()
    for epoch in range(3):
        save_checkpoint(tmp_path, epoch, modules={"net": net}, optimizers={"opt": opt}, extra={"e": epoch})
    assert sorted(p.name for p in tmp_path.glob("epoch-*")) == ["epoch-00001", "epoch-00002"]  # newest two kept
    ckpt = latest_checkpoint(tmp_path)
    assert ckpt.epoch == 2 and ckpt.extra == {"e": 2}
    assert not any(p.suffix == ".pkl" or p.name.endswith(".pt") for p in ckpt.path.iterdir())

    net2 = nn.Linear(3, 2)
    opt2 = torch.optim.Adam(net2.parameters(), lr=0.5)
    ckpt.load_module("net", net2)
    ckpt.load_optimizer("opt", opt2)
    assert opt2.param_groups[0]["lr"] == 0.01 and opt2.param_groups[0]["betas"] == (0.5, 0.9)
    for o, m in ((opt, net), (opt2, net2)):  # one more identical step on both
        o.zero_grad()
        m(x).pow(2).sum().backward()
        o.step()
    torch.testing.assert_close(net2.weight, net.weight)
    assert latest_checkpoint(tmp_path / "missing") is None
