"""Distributed training on Spark: launchers, feeds, the worker interface, the XGBoost barrier stage.

Launchers: TorchDistributor, Horovod, local; feeds: arrow, petastorm; the training functions are written
against the worker interface.

Names are imported lazily so that, e.g., ``credspark.distributed.xgb`` does not pull in torch.

Interface (stable; the Horovod lane builds on it):

- :class:`WorkerContext` (``rank``, ``world_size``, ``local_rank``, ``device``, ``is_chief``,
  ``allreduce_grads(module)``, ``broadcast_params(module)``, ``average_buffers(module)``, ``barrier()``,
  ``allreduce_scalar(value, op)``, ``broadcast_json(obj)``, ``allgather_json(obj)``); a backend
  implements ``_allreduce_sum_``, ``_broadcast_`` and ``barrier``. :class:`LocalContext` is world size 1.
- :func:`launch` ``(train_fn, *, backend, num_workers, use_gpu, local_mode, timeout_s, args)`` -> the
  chief's return value; :func:`run_worker` wraps a training function on one worker (error recording).
- Feeds: :func:`get_feed` / :func:`register_feed`; ``prepare(df, *, spec, work_dir, name, num_workers,
  seed, batch_size, options) -> FeedHandle``; ``handle.open(ctx) -> ShardReader``.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "WorkerContext",
    "LocalContext",
    "TorchDistContext",
    "launch",
    "run_worker",
    "WorkerError",
    "TrainingTimeoutError",
    "BACKENDS",
    "Batch",
    "FeedHandle",
    "ShardReader",
    "register_feed",
    "get_feed",
    "feed_names",
    "plan_workers",
    "task_slots",
]

_WHERE = {
    "WorkerContext": "_context",
    "LocalContext": "_context",
    "TorchDistContext": "_context",
    "launch": "launchers",
    "run_worker": "launchers",
    "WorkerError": "launchers",
    "TrainingTimeoutError": "launchers",
    "BACKENDS": "launchers",
    "Batch": "feeds",
    "FeedHandle": "feeds",
    "ShardReader": "feeds",
    "register_feed": "feeds",
    "get_feed": "feeds",
    "feed_names": "feeds",
    "plan_workers": "slots",
    "task_slots": "slots",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
