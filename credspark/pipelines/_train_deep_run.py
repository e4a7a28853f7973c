"""The launch side of :func:`credspark.pipelines.train_deep.train_deep`: feeds, worker options, launches.

:class:`DeepRun` prepares each feed and trains each model with the configured launcher, timing both, so the
pipeline function reads as the order of its steps.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import DataFrame

from credspark.config import Config
from credspark.distributed.feeds import FeedHandle, get_feed
from credspark.distributed.launchers import launch
from credspark.distributed.train_fns import WorkerOptions
from credspark.faults import DEEP_FAIL_AT_EPOCH, DEEP_FAIL_RANK, injected
from credspark.models.spec import FeatureSpec

__all__ = ["DeepRun"]


def _options(cfg: Config) -> dict[str, Any]:
    """The feed's options from the config (the arrow feed's files per worker)."""
    return {"files_per_worker": cfg.distributed.files_per_worker} if cfg.distributed.feed == "arrow" else {}


def _worker_options(
    cfg: Config, section: Any, checkpoint_root: str, output_dir: str, fp: dict[str, Any]
) -> WorkerOptions:
    """The options a worker function trains one model with (epochs, checkpoints, fault hooks, fingerprint)."""
    dc = cfg.distributed
    return WorkerOptions(
        epochs=section.epochs,
        batch_size=section.batch_size,
        seed=dc.seed,
        checkpoint_dir=checkpoint_root,
        output_dir=output_dir,
        resume=dc.resume,
        fit_sample_rows=dc.fit_sample_rows,
        prefetch=dc.prefetch,
        torch_threads=dc.torch_threads,
        fail_at_epoch=injected(DEEP_FAIL_AT_EPOCH),
        fail_rank=_or(injected(DEEP_FAIL_RANK), 1),
        fingerprint=fp,
        on_mismatch=dc.on_checkpoint_mismatch,
    )


def _or(value: int | None, default: int) -> int:
    """``value``, or ``default`` when it is None (0 is kept)."""
    return default if value is None else value


def _params(section: Any) -> dict[str, Any]:
    """A model's constructor parameters: its config section less the loop's ``epochs`` and ``batch_size``."""
    return {k: v for k, v in dataclasses.asdict(section).items() if k not in ("epochs", "batch_size")}


def _launch(train_fn: Any, cfg: Config, args: tuple[Any, ...], work: str) -> dict[str, Any]:
    """Run ``train_fn(*args)`` on the workers with the configured launcher; return the chief's summary."""
    dc = cfg.distributed
    return launch(
        train_fn,
        backend=dc.backend,
        num_workers=dc.num_workers,
        use_gpu=dc.use_gpu,
        local_mode=dc.local_mode,
        timeout_s=dc.timeout_s,
        args=args,
        run_dir=f"{work}/_launch",
    )


@dataclass
class DeepRun:
    """What the steps of one ``train_deep`` call share: config, spec, folders, feed, and what they record.

    Attributes:
        cfg: The job config.
        spec: The FeatureSpec of the rows.
        work: The work folder (no trailing slash).
        ckpt_root: The checkpoint folder (no trailing slash); each model checkpoints in a subfolder.
        timings: Seconds per stage, filled in by :meth:`feed` and :meth:`train`.
        feeds: The feed handles prepared by :meth:`feed`, by name.
        prepare: The configured feed's preparation function (``distributed.feed``).
    """

    cfg: Config
    spec: FeatureSpec
    work: str
    ckpt_root: str
    timings: dict[str, float] = field(default_factory=dict)
    feeds: dict[str, FeedHandle] = field(default_factory=dict)
    prepare: Callable[..., FeedHandle] = field(init=False)

    def __post_init__(self) -> None:
        self.prepare = get_feed(self.cfg.distributed.feed)

    def feed(self, df: DataFrame, name: str, batch_size: int) -> FeedHandle:
        """Prepare the configured feed ``name`` of ``df`` for the workers (timed as ``feed_<name>``)."""
        dc = self.cfg.distributed
        t0 = time.perf_counter()
        handle = self.prepare(
            df, spec=self.spec, work_dir=self.work, name=name, num_workers=dc.num_workers, seed=dc.seed,
            batch_size=batch_size, options=_options(self.cfg),
        )  # fmt: skip
        self.timings[f"feed_{name}"] = time.perf_counter() - t0
        self.feeds[name] = handle
        return handle

    def train(self, model: str, train_fn: Any, section: Any, fp: dict[str, Any], feeds: tuple[Any, ...]
              ) -> dict[str, Any]:
        """Train ``model`` (its checkpoint and output folder name) with the configured launcher (timed as ``model``).

        Args:
            model: ``ACTGAN_DIR`` or ``RESNET_LSTM_DIR``.
            train_fn: The worker function.
            section: The model's config section.
            fp: The model's checkpoint fingerprint.
            feeds: The worker function's feed arguments, before its parameters and options.

        Returns:
            The chief's run summary (``model_dir``, ``history``, ...).
        """
        t0 = time.perf_counter()
        opts = _worker_options(self.cfg, section, f"{self.ckpt_root}/{model}", f"{self.work}/models/{model}", fp)
        run = _launch(train_fn, self.cfg, (*feeds, _params(section), opts), self.work)
        self.timings[model] = time.perf_counter() - t0
        return run
