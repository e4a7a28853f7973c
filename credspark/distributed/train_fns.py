"""Distributed training functions, one per model, written once against :class:`WorkerContext`.

Each runs on every rank under any launcher (:func:`credspark.distributed.launchers.launch`) and reuses the
models' own loop pieces: :func:`credspark.models.resnet_lstm.train_epoch` and
:func:`credspark.models._gan_common.train_epoch` with ACTGAN's :func:`critic_step` / :func:`generator_step`,
passing ``grad_sync=ctx.allreduce_grads`` so gradients are averaged after every backward.

Per run:

1. Input scaling (ResNet-LSTM's :class:`InputPreprocessor`, ACTGAN's :class:`GanDataTransformer`) is fitted
   by the chief on a seeded sample of the feed and broadcast as JSON; on resume it comes from the
   checkpoint instead.
2. Every rank builds the network with the same seed, loads the latest checkpoint if there is one and its
   fingerprint equals ``opts.fingerprint`` (all ranks read the same files; see
   :func:`credspark.distributed._checkpoint.checkpoint_to_resume`), and the chief's parameters are broadcast.
3. Each epoch: this rank's shard; per-rank noise/dropout seeds derived from ``(seed, rank, epoch)``
   (so a resumed epoch draws what the uninterrupted run would have); gradient all-reduce each step;
   BatchNorm statistics averaged at the end; the chief checkpoints and logs one line (loss, validation
   metric, rows/s).
4. The chief saves the final model in the model's own format (safetensors + JSON) under ``output_dir``
   and returns a small JSON-safe summary; every rank's state hash is gathered into it.

Optimizer state is checkpointed exactly (tensors in safetensors, numbers and param groups in JSON).
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from torch import nn

from credspark.distributed._checkpoint import checkpoint_to_resume, save_checkpoint
from credspark.distributed._context import LocalContext, WorkerContext
from credspark.distributed.feeds import Batch, FeedHandle
from credspark.models._gan_common import ConditionalBatchSampler
from credspark.models._gan_common import train_epoch as gan_train_epoch
from credspark.models._gan_transformer import GanDataTransformer
from credspark.models._preprocess import InputPreprocessor
from credspark.models.actgan import ACTGAN
from credspark.models.resnet_lstm import (
    EarlyStopping,
    ResNetLSTM,
    build_module,
    evaluate,
    iter_batches,
    train_epoch,
)

__all__ = [
    "WorkerOptions",
    "train_resnet_lstm_worker",
    "train_actgan_worker",
    "state_hash",
    "RESNET_LSTM_DIR",
    "ACTGAN_DIR",
]

logger = logging.getLogger("credspark.distributed")

RESNET_LSTM_DIR = "resnet_lstm"
ACTGAN_DIR = "actgan"

T = TypeVar("T")

#: Constructor parameters that come from the run (feed, options), not from the model's config section.
_RUN_KEYS = ("spec", "device", "random_state", "epochs", "batch_size", "torch_threads")


@dataclass(frozen=True)
class WorkerOptions:
    """Run settings every rank receives (small and picklable).

    Args:
        epochs: Epochs to reach (a resumed run continues up to this many).
        batch_size: Global batch size (each rank takes its share).
        seed: Seed of initialisation and per-rank noise.
        checkpoint_dir: This model's checkpoint root (shared by all workers).
        output_dir: Where the chief saves the final model (shared with the driver).
        resume: Start from the latest checkpoint when there is one.
        fit_sample_rows: Rows the chief samples to fit input scaling.
        prefetch: Batches prepared ahead.
        torch_threads: ``torch.set_num_threads`` per worker (None: leave it).
        fail_at_epoch: Fault injection for tests: rank ``fail_rank`` raises at the start of this epoch.
        fail_rank: See ``fail_at_epoch``.
        fingerprint: JSON-safe identity of the run (data, model config), recorded in every checkpoint; a
            checkpoint with another fingerprint is not resumed. None: the checkpoint format version alone.
        on_mismatch: ``fail`` (raise :class:`CheckpointMismatchError`) or ``restart`` (start at epoch 0)
            when the latest checkpoint's fingerprint differs.
    """

    epochs: int
    batch_size: int
    seed: int
    checkpoint_dir: str
    output_dir: str
    resume: bool = True
    fit_sample_rows: int = 200_000
    prefetch: int = 2
    torch_threads: int | None = 1
    fail_at_epoch: int | None = None
    fail_rank: int = 1
    fingerprint: dict[str, Any] | None = None
    on_mismatch: str = "fail"


# ------------------------------------------------------------------------------------------ helpers
def state_hash(*modules: nn.Module) -> str:
    """SHA-256 of the modules' parameters and buffers (names, shapes, dtypes, bytes), for replica checks."""
    h = hashlib.sha256()
    for m in modules:
        for name, t in sorted(m.state_dict().items()):
            a = t.detach().to("cpu").contiguous()
            h.update(f"{name}:{tuple(a.shape)}:{a.dtype}".encode())
            h.update(a.numpy().tobytes() if a.dtype != torch.bfloat16 else a.float().numpy().tobytes())
    return h.hexdigest()


def _seed(*parts: int) -> int:
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0])


def _setup(ctx: WorkerContext, opts: WorkerOptions) -> None:
    if opts.torch_threads:
        torch.set_num_threads(int(opts.torch_threads))


def _resume_point(opts: WorkerOptions) -> Any:
    """The checkpoint this run resumes from (None: start at epoch 0)."""
    if not opts.resume:
        return None
    return checkpoint_to_resume(opts.checkpoint_dir, opts.fingerprint, on_mismatch=opts.on_mismatch)  # type: ignore[arg-type]


def _maybe_fail(ctx: WorkerContext, opts: WorkerOptions, epoch: int) -> None:
    if opts.fail_at_epoch is not None and epoch == opts.fail_at_epoch and ctx.rank == opts.fail_rank:
        raise RuntimeError(f"injected failure on rank {ctx.rank} at epoch {epoch}")


def _log_epoch(
    ctx: WorkerContext, model: str, epoch: int, epochs: int, loss: float, metric: str, rows_s: float
) -> None:
    if ctx.is_chief:
        logger.info(
            "%s epoch %d/%d: loss %.5f, %s, %.0f rows/s (%d workers)",
            model, epoch + 1, epochs, loss, metric, rows_s, ctx.world_size,
        )  # fmt: skip


def _json_float(v: float) -> float | None:
    return float(v) if v is not None and math.isfinite(v) else None


def _from_json_float(v: float | None) -> float:
    return math.nan if v is None else float(v)


def _estimator(cls: type[T], spec: Any, params: dict[str, Any], opts: WorkerOptions) -> T:
    """The model's estimator with the config section's parameters (lists as tuples) and the run's settings.

    The estimator owns the defaults of every parameter the section leaves out and builds the networks,
    optimisers and losses the worker trains.
    """
    ctor = {k: (tuple(v) if isinstance(v, list) else v) for k, v in params.items() if k not in _RUN_KEYS}
    # The worker set torch's threads once for the whole run (_setup); the estimator keeps that setting.
    return cls(spec=spec, epochs=opts.epochs, batch_size=opts.batch_size, random_state=opts.seed, device="cpu",
               torch_threads=None, **ctor)


# -------------------------------------------------------------------------------------- ResNet-LSTM
def _resnet_tensors(pre: InputPreprocessor, batch: Batch) -> tuple[torch.Tensor, ...]:
    """Scaled CPU tensors ``(static, dynamic, mask, y)`` of a raw batch (runs in the prefetch thread)."""
    return (
        torch.from_numpy(pre.transform_static(batch.static)),
        torch.from_numpy(pre.transform_dynamic(batch.dynamic, batch.mask)),
        torch.from_numpy(batch.mask.astype(bool)),
        torch.from_numpy(batch.y.astype(np.float32)),
    )


def _fit_preprocessor(ctx: WorkerContext, reader: Any, spec: Any, rows: int) -> InputPreprocessor:
    d = None
    if ctx.is_chief:
        s = reader.sample(rows)
        d = InputPreprocessor().fit(spec, s.static, s.dynamic, s.mask).to_dict()
    return InputPreprocessor.from_dict(ctx.broadcast_json(d))


def train_resnet_lstm_worker(
    ctx: WorkerContext,
    feed: FeedHandle,
    valid_feed: FeedHandle | None,
    params: dict[str, Any],
    opts: WorkerOptions,
) -> dict[str, Any] | None:
    """Train a ResNet-LSTM on this rank's shards; the chief saves it and returns a summary.

    Args:
        ctx: This worker's context.
        feed: Training rows (opened here, one shard per rank).
        valid_feed: Validation rows for the chief's per-epoch AUC and early stopping, or None.
        params: ResNetLSTM constructor parameters (``spec``, ``epochs``, ``batch_size``, ``device``,
            ``random_state`` excluded: they come from ``feed`` and ``opts``).
        opts: Run settings.

    Returns:
        On the chief: ``{model_dir, history, best_epoch, start_epoch, epochs_run, rows_per_s, hashes,
        world_size}``; None elsewhere.
    """
    _setup(ctx, opts)
    spec = feed.spec
    reader = feed.open(ctx)
    ckpt = _resume_point(opts)
    if ckpt is not None:
        pre = InputPreprocessor.from_dict(ckpt.extra["preprocessor"])
    else:
        pre = _fit_preprocessor(ctx, reader, spec, opts.fit_sample_rows)
    estimator = _estimator(ResNetLSTM, spec, params, opts)
    module_kwargs = estimator.module_kwargs(pre.n_static_out_)
    torch.manual_seed(_seed(opts.seed, 0))
    module = build_module(**module_kwargs).to(ctx.device)
    optimizer = estimator.optimizer(module)
    loss_fn = estimator.loss_fn()
    history: dict[str, list[float]] = {"train_loss": [], "valid_auc": [], "rows_per_s": []}
    stopper = EarlyStopping(int(estimator.patience)) if valid_feed is not None else None
    start_epoch = 0
    if ckpt is not None:
        history, start_epoch = _resume_resnet(ckpt, module, optimizer, stopper, module_kwargs, ctx.device)
    ctx.broadcast_params(module)

    valid_t = None
    if valid_feed is not None and ctx.is_chief:
        vb = valid_feed.open(LocalContext(ctx.device)).epoch_shard(0)
        valid_t = [t.to(ctx.device) for t in _resnet_tensors(pre, vb)]
    stop = bool(ckpt.extra.get("stopped", False)) if ckpt is not None else False
    epoch = start_epoch - 1
    for epoch in range(start_epoch, opts.epochs):
        if stop:
            break
        _maybe_fail(ctx, opts, epoch)
        torch.manual_seed(_seed(opts.seed, 1, ctx.rank, epoch))
        started = time.perf_counter()
        batches = reader.epoch(
            epoch, opts.batch_size, transform=lambda b: _resnet_tensors(pre, b), prefetch_depth=opts.prefetch
        )
        loss = train_epoch(module, optimizer, batches, loss_fn, grad_sync=ctx.allreduce_grads)
        ctx.average_buffers(module)
        loss = ctx.allreduce_scalar(loss, "mean")
        elapsed = ctx.allreduce_scalar(time.perf_counter() - started, "max")
        rows_s = reader.num_rows / elapsed if elapsed > 0 else math.nan
        history["train_loss"].append(loss)
        history["rows_per_s"].append(rows_s)
        metric = "valid AUC -"
        if ctx.is_chief and stopper is not None and valid_t is not None:
            auc = evaluate(module, iter_batches(valid_t, max(opts.batch_size, 1024)))
            history["valid_auc"].append(auc)
            stop = stopper.update(auc, module)
            metric = f"valid AUC {auc:.4f}"
        stop = bool(ctx.broadcast_json(stop))
        if ctx.is_chief:
            _log_epoch(ctx, "resnet_lstm", epoch, opts.epochs, loss, metric, rows_s)
            _save_resnet_checkpoint(opts, epoch, module, optimizer, stopper, pre, history, stop)
        ctx.barrier()
    hashes = ctx.allgather_json(state_hash(module))
    if not ctx.is_chief:
        return None
    best_epoch = max(0, len(history["train_loss"]) - 1)
    if stopper is not None and stopper.best_epoch is not None:
        stopper.restore(module)
        best_epoch = stopper.best_epoch
    estimator.set_trained(module=module, module_kwargs=module_kwargs, preprocessor=pre, history=history,
                          best_epoch=best_epoch)
    model_dir = Path(opts.output_dir)
    estimator.save(model_dir)
    return {
        "model_dir": str(model_dir),
        "history": {k: [_json_float(v) for v in vs] for k, vs in history.items()},
        "best_epoch": best_epoch,
        "start_epoch": start_epoch,
        "epochs_run": max(0, epoch - start_epoch + 1),
        "rows_per_s": [_json_float(v) for v in history["rows_per_s"]],
        "hashes": hashes,
        "world_size": ctx.world_size,
    }


def _resume_resnet(
    ckpt: Any,
    module: nn.Module,
    optimizer: torch.optim.Optimizer,
    stopper: EarlyStopping | None,
    module_kwargs: dict[str, Any],
    device: Any,
) -> tuple[dict[str, list[float]], int]:
    """Load a checkpoint's weights, optimiser and early-stopping state; return its history and next epoch."""
    ckpt.load_module("module", module)
    ckpt.load_optimizer("optimizer", optimizer)
    history = {k: [_from_json_float(v) for v in vs] for k, vs in ckpt.extra["history"].items()}
    if stopper is not None and ckpt.extra.get("stopper"):
        st = ckpt.extra["stopper"]
        best_weights = None
        if st["best_epoch"] is not None:
            best = build_module(**module_kwargs)
            ckpt.load_module("best", best)
            best_weights = {k: v.to(device) for k, v in best.state_dict().items()}
        stopper.load_state_dict(st, best_weights)
    return history, ckpt.epoch + 1


def _save_resnet_checkpoint(
    opts: WorkerOptions,
    epoch: int,
    module: nn.Module,
    optimizer: torch.optim.Optimizer,
    stopper: EarlyStopping | None,
    pre: InputPreprocessor,
    history: dict[str, list[float]],
    stopped: bool,
) -> None:
    modules: dict[str, Any] = {"module": module}
    stopper_state = None
    if stopper is not None:
        stopper_state = stopper.state_dict()
        stopper_state["best_score"] = _json_float(stopper_state["best_score"])
        if stopper.best_weights is not None:
            modules["best"] = stopper.best_weights
    save_checkpoint(
        opts.checkpoint_dir,
        epoch,
        modules=modules,
        optimizers={"optimizer": optimizer},
        fingerprint=opts.fingerprint,
        extra={
            "preprocessor": pre.to_dict(),
            "history": {k: [_json_float(v) for v in vs] for k, vs in history.items()},
            "stopper": stopper_state,
            "stopped": stopped,
        },
    )


# ------------------------------------------------------------------------------------------- ACTGAN
def _fit_transformer(ctx: WorkerContext, reader: Any, spec: Any, rows: int, seed: int) -> GanDataTransformer:
    d = None
    if ctx.is_chief:
        s = reader.sample(rows)
        d = GanDataTransformer(spec, random_state=_seed(seed, 3)).fit(s.static, s.dynamic, s.mask).to_dict()
    return GanDataTransformer.from_dict(ctx.broadcast_json(d))


def train_actgan_worker(
    ctx: WorkerContext, feed: FeedHandle, params: dict[str, Any], opts: WorkerOptions
) -> dict[str, Any] | None:
    """Train ACTGAN (WGAN-GP critic with cross layers + auxiliary classifier) on this rank's shards.

    Each rank draws its critic batches (``ceil(batch_size / world_size)`` rows, class drawn first) from its
    epoch shard; an epoch has ``max(1, rows // batch_size)`` iterations of ``n_critic`` critic steps and
    one generator step on every rank, so the ranks stay in step.

    Args:
        ctx: This worker's context.
        feed: Training rows (both labels must occur in every rank's shard).
        params: ACTGAN constructor parameters (``spec``, ``epochs``, ``batch_size``, ``device``,
            ``random_state`` excluded).
        opts: Run settings.

    Returns:
        On the chief: ``{model_dir, history, start_epoch, epochs_run, rows_per_s, hashes, world_size}``
        (history: one record per epoch with mean ``g_loss``, ``d_loss``, ``wasserstein``); None elsewhere.
    """
    _setup(ctx, opts)
    spec = feed.spec
    reader = feed.open(ctx)
    ckpt = _resume_point(opts)
    if ckpt is not None:
        transformer = GanDataTransformer.from_dict(ckpt.extra["transformer"])
    else:
        transformer = _fit_transformer(ctx, reader, spec, opts.fit_sample_rows, opts.seed)
    model = _estimator(ACTGAN, spec, params, opts)
    torch.manual_seed(_seed(opts.seed, 0))
    generator, discriminator, g_opt, d_opt, d_step, g_step = model.prepare_training(transformer, ctx.device)
    history: list[dict[str, Any]] = []
    start_epoch = 0
    if ckpt is not None:
        ckpt.load_module("generator", generator)
        ckpt.load_module("discriminator", discriminator)
        ckpt.load_optimizer("generator", g_opt)
        ckpt.load_optimizer("discriminator", d_opt)
        history = list(ckpt.extra["history"])
        start_epoch = ckpt.epoch + 1
    ctx.broadcast_params(generator)
    ctx.broadcast_params(discriminator)

    n_critic = int(model.n_critic)
    rank_batch = max(2, math.ceil(opts.batch_size / ctx.world_size))
    iterations = max(1, reader.num_rows // opts.batch_size)

    generator.train()
    discriminator.train()
    dtypes: dict[str, str] = {}
    epoch = start_epoch - 1
    for epoch in range(start_epoch, opts.epochs):
        _maybe_fail(ctx, opts, epoch)
        torch.manual_seed(_seed(opts.seed, 1, ctx.rank, epoch))
        started = time.perf_counter()
        shard = reader.epoch_shard(epoch)
        dtypes = {"static": shard.static.dtype.str, "dynamic": shard.dynamic.dtype.str, "mask": shard.mask.dtype.str}
        data = torch.as_tensor(transformer.transform(shard.static, shard.dynamic, shard.mask), device=ctx.device)
        try:
            rng = np.random.default_rng(_seed(opts.seed, 2, ctx.rank, epoch))
            sampler = ConditionalBatchSampler(data, shard.y, rank_batch, model.positive_share, rng)
        except ValueError as e:
            raise ValueError(f"rank {ctx.rank}, epoch {epoch}: {e} (shard of {len(shard)} rows)") from e
        records = gan_train_epoch(
            sampler.batches(iterations * n_critic), d_step, g_step, n_critic=n_critic,
            grad_sync=ctx.allreduce_grads, epoch=epoch,
        )  # fmt: skip
        ctx.average_buffers(generator)
        ctx.average_buffers(discriminator)
        means = {
            k: ctx.allreduce_scalar(float(np.mean([r[k] for r in records])), "mean")
            for k in ("g_loss", "d_loss", "wasserstein")
        }
        elapsed = ctx.allreduce_scalar(time.perf_counter() - started, "max")
        rows_s = iterations * n_critic * rank_batch * ctx.world_size / elapsed if elapsed > 0 else math.nan
        history.append({"epoch": epoch, **means, "rows_per_s": rows_s})
        if ctx.is_chief:
            metric = f"wasserstein {means['wasserstein']:.4f}"
            _log_epoch(ctx, "actgan", epoch, opts.epochs, means["d_loss"], metric, rows_s)
            save_checkpoint(
                opts.checkpoint_dir, epoch,
                modules={"generator": generator, "discriminator": discriminator},
                optimizers={"generator": g_opt, "discriminator": d_opt}, fingerprint=opts.fingerprint,
                extra={"transformer": transformer.to_dict(), "history": history, "input_dtypes": dtypes},
            )  # fmt: skip
        ctx.barrier()
    hashes = ctx.allgather_json(state_hash(generator, discriminator))
    if not ctx.is_chief:
        return None
    if not dtypes:
        dtypes = dict(ckpt.extra.get("input_dtypes", {})) if ckpt is not None else {}
    model.set_trained(history=history, input_dtypes=dtypes or {"static": "<f4", "dynamic": "<f4", "mask": "|u1"})
    model.save(opts.output_dir)
    return {
        "model_dir": str(opts.output_dir),
        "history": history,
        "start_epoch": start_epoch,
        "epochs_run": max(0, epoch - start_epoch + 1),
        "rows_per_s": [h["rows_per_s"] for h in history],
        "hashes": hashes,
        "world_size": ctx.world_size,
    }
