"""Distributed training of the deep models: ACTGAN oversampling, then the ResNet-LSTM.

``train_deep(spark, features_df, cfg, *, work_dir, spec)``:

1. materialises the training rows for the configured feed (``cfg.distributed.feed``);
2. when oversampling is on and the minority is below ``oversample_ratio``, trains ACTGAN with the
   configured launcher, then generates the missing minority rows *on the executors* (``mapInArrow``
   over ``spark.range``) and writes them as Parquet beside the real training rows;
3. trains the ResNet-LSTM on real + generated rows (never on validation rows), with per-epoch validation
   AUC and early stopping on ``valid_df`` when given;
4. loads both models on the driver from the files the chief saved (safetensors + JSON; nothing is
   unpickled) and returns them with their histories.

``work_dir`` (and the checkpoint folder) must be readable and writable by the driver and every worker:
a shared file system on a cluster. Nothing is collected to the driver except the label counts.

Each model's checkpoints carry the run's fingerprint (:func:`fingerprint`): the rows' lineage given by the
caller (features table version, split plan), the label counts of the training and validation rows, the
FeatureSpec, the model's config section (all but ``epochs``, which a resumed run may raise) and the seed.
Before each launch the driver checks the latest checkpoint against it, so a checkpoint of another run is
refused with :class:`~credspark.distributed._checkpoint.CheckpointMismatchError` (exit code 2) naming every
difference, or ignored under ``distributed.on_checkpoint_mismatch=restart``.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import DataFrame, SparkSession

from credspark.config import Config
from credspark.distributed._checkpoint import checkpoint_to_resume
from credspark.distributed.feeds import FeedHandle, feed_columns
from credspark.distributed.train_fns import ACTGAN_DIR, RESNET_LSTM_DIR, train_actgan_worker, train_resnet_lstm_worker
from credspark.io.scratch import read_scratch_parquet, write_scratch_parquet
from credspark.models._gan_common import n_new_minority
from credspark.models.actgan import ACTGAN
from credspark.models.resnet_lstm import ResNetLSTM
from credspark.models.spec import FeatureSpec
from credspark.pipelines._train_deep_run import DeepRun
from credspark.pipelines._train_oversample import cast_like, generate_rows, label_counts

__all__ = ["DeepResult", "train_deep", "fingerprint"]

log = logging.getLogger("credspark.pipelines.train_deep")


@dataclass
class DeepResult:
    """What :func:`train_deep` returns.

    Attributes:
        resnet_lstm: The trained ResNet-LSTM (best validation epoch when validation rows were given).
        actgan: The trained ACTGAN, or None when oversampling was off or not needed.
        histories: ``{"resnet_lstm": {train_loss, valid_auc, rows_per_s}, "actgan": [per-epoch records]}``.
        runs: The chiefs' run summaries (start epoch, epochs run, rows/s, replica hashes, world size).
        n_generated: Generated minority rows added to the ResNet-LSTM training feed.
        generated_path: Parquet folder of those rows, or None.
        model_dirs: Where the chiefs saved the models (``resnet_lstm``, ``actgan``).
        timings: Seconds per stage.
        spec: The FeatureSpec the models were trained with.
        feeds: The feed handles used (``train``, ``train_oversampled``, ``valid``), e.g. to resume by hand.
        fingerprints: Each model's checkpoint fingerprint (``resnet_lstm``, ``actgan``), e.g. to resume by hand.
    """

    resnet_lstm: ResNetLSTM
    actgan: ACTGAN | None
    histories: dict[str, Any]
    runs: dict[str, Any]
    n_generated: int
    generated_path: str | None
    model_dirs: dict[str, str]
    timings: dict[str, float] = field(default_factory=dict)
    spec: FeatureSpec | None = None
    feeds: dict[str, FeedHandle] = field(default_factory=dict)
    fingerprints: dict[str, dict[str, Any]] = field(default_factory=dict)

    def generate(self, spark: SparkSession, n: int, *, seed: int, partitions: int = 4) -> DataFrame:
        """Generate ``n`` more minority rows with the trained ACTGAN, as feature rows (lazy DataFrame).

        Args:
            spark: The session.
            n: Rows.
            seed: Sampling seed.
            partitions: Spark partitions doing the work.

        Returns:
            Static columns (float), ``seq``, ``seq_mask``, ``label`` = 1.
        """
        if self.actgan is None or "actgan" not in self.model_dirs:
            raise RuntimeError("no ACTGAN was trained in this run (oversampling off or not needed)")
        return generate_rows(spark, self.model_dirs["actgan"], self.actgan.spec, n, seed=seed, partitions=partitions)


def fingerprint(model: str, section: Any, cfg: Config, spec: FeatureSpec, data: dict[str, Any]) -> dict[str, Any]:
    """What identifies one model's training run in its checkpoints (JSON-safe).

    Args:
        model: The model's checkpoint folder name (``resnet_lstm``, ``actgan``).
        section: Its config section (every key but ``epochs`` is recorded).
        cfg: The job config (``distributed.seed``).
        spec: The FeatureSpec of the rows.
        data: The rows' identity: lineage and label counts.

    Returns:
        ``{"model", "config", "spec", "data"}``.
    """
    config = {k: v for k, v in dataclasses.asdict(section).items() if k != "epochs"}
    return {"model": model, "config": {**config, "seed": cfg.distributed.seed}, "spec": spec.to_dict(), "data": data}


def _fingerprints(cfg: Config, spec: FeatureSpec, counts: dict[int, int], valid_df: DataFrame | None,
                  lineage: dict[str, Any] | None, n_new: int) -> dict[str, dict[str, Any]]:
    """Each model's checkpoint fingerprint; ACTGAN's only when it is trained (``n_new`` rows to generate)."""
    data = {**(lineage or {}), "train_rows": {str(k): v for k, v in sorted(counts.items())},
            "valid_rows": None if valid_df is None else {str(k): v for k, v in sorted(label_counts(valid_df).items())}}
    fingerprints = {RESNET_LSTM_DIR: fingerprint(RESNET_LSTM_DIR, cfg.resnet_lstm, cfg, spec,
                                                 {**data, "generated_rows": n_new})}
    if n_new > 0:
        fingerprints[ACTGAN_DIR] = fingerprint(ACTGAN_DIR, cfg.actgan, cfg, spec, data)
    return fingerprints


def _generate(spark: SparkSession, run: DeepRun, model_dir: str, n_new: int, train: DataFrame) -> str:
    """Generate ``n_new`` minority rows on the executors with the ACTGAN saved in ``model_dir``.

    Returns:
        The Parquet folder of the rows, typed like ``train``.
    """
    dc = run.cfg.distributed
    t0 = time.perf_counter()
    path = f"{run.work}/generated"
    rows = cast_like(
        generate_rows(spark, model_dir, run.spec, n_new, seed=dc.seed, partitions=dc.generate_partitions), train
    )
    write_scratch_parquet(rows, path, files=max(1, dc.generate_partitions), seed=dc.seed)
    run.timings["generate"] = time.perf_counter() - t0
    return path


def _result(run: DeepRun, rl_run: dict[str, Any], actgan: ACTGAN | None, actgan_run: dict[str, Any] | None,
            n_new: int, generated_path: str | None, fingerprints: dict[str, dict[str, Any]]) -> DeepResult:
    """The :class:`DeepResult` of a run, with the ResNet-LSTM loaded on the driver from the file the chief saved."""
    resnet = ResNetLSTM.load(rl_run["model_dir"], device="cpu")
    return DeepResult(
        resnet_lstm=resnet,
        actgan=actgan,
        histories={"resnet_lstm": rl_run["history"], "actgan": actgan_run["history"] if actgan_run else []},
        runs={"resnet_lstm": rl_run, **({"actgan": actgan_run} if actgan_run else {})},
        n_generated=n_new,
        generated_path=generated_path,
        model_dirs={**({"actgan": actgan_run["model_dir"]} if actgan_run else {}), "resnet_lstm": rl_run["model_dir"]},
        timings=run.timings,
        spec=run.spec,
        feeds=run.feeds,
        fingerprints=fingerprints,
    )


def train_deep(
    spark: SparkSession,
    features_df: DataFrame,
    cfg: Config,
    *,
    work_dir: str,
    spec: FeatureSpec,
    valid_df: DataFrame | None = None,
    lineage: dict[str, Any] | None = None,
) -> DeepResult:
    """Train ACTGAN (oversampling) and the ResNet-LSTM with the configured launcher and feed.

    Args:
        spark: The session.
        features_df: Labelled training rows of the features table (the spec's static columns, ``seq``,
            ``seq_mask``, ``label``; other columns are ignored).
        cfg: Job config: sections ``distributed``, ``actgan``, ``resnet_lstm``.
        work_dir: Folder for feeds, generated rows, checkpoints and saved models; shared by the driver
            and every worker.
        spec: The FeatureSpec of ``features_df`` (e.g. ``credspark.features.spec.spec_from_table``).
        valid_df: Validation rows for per-epoch AUC and early stopping (never trained on), or None.
        lineage: JSON-safe identity of the rows recorded in the checkpoints' fingerprint (e.g. the features
            table version and the split plan), or None.

    Returns:
        The models, histories and run details.

    Raises:
        CheckpointMismatchError: ``distributed.resume`` is on and a model's latest checkpoint has another
            fingerprint (unless ``distributed.on_checkpoint_mismatch`` is ``restart``).
    """
    dc = cfg.distributed
    work = str(work_dir).rstrip("/")
    run = DeepRun(cfg, spec, work, (dc.checkpoint_dir or f"{work}/checkpoints").rstrip("/"))
    train = features_df.select(*feed_columns(spec))
    counts = label_counts(train)
    n_new = n_new_minority(counts.get(1, 0), counts.get(0, 0), dc.oversample_ratio) if dc.oversample else 0
    log.info("train_deep: %s rows by label, %d minority rows to generate", counts, n_new)
    fingerprints = _fingerprints(cfg, spec, counts, valid_df, lineage, n_new)
    if dc.resume:  # checked here, on the driver, before any training: the error keeps its exit code (2)
        for model, fp in fingerprints.items():
            checkpoint_to_resume(f"{run.ckpt_root}/{model}", fp, on_mismatch=dc.on_checkpoint_mismatch)
    rl_batch = cfg.resnet_lstm.batch_size
    train_feed = run.feed(train, "train", rl_batch)

    actgan, actgan_run, generated_path, rl_feed = None, None, None, train_feed
    if n_new > 0:
        actgan_run = run.train(ACTGAN_DIR, train_actgan_worker, cfg.actgan, fingerprints[ACTGAN_DIR], (train_feed,))
        actgan = ACTGAN.load(actgan_run["model_dir"], device="cpu")
        generated_path = _generate(spark, run, actgan_run["model_dir"], n_new, train)
        # The generated rows join the training rows only; validation rows are never touched.
        rl_feed = run.feed(train.unionByName(read_scratch_parquet(spark, generated_path)), "train_oversampled",
                           rl_batch)
    valid_feed = run.feed(valid_df.select(*feed_columns(spec)), "valid", rl_batch) if valid_df is not None else None
    rl_run = run.train(RESNET_LSTM_DIR, train_resnet_lstm_worker, cfg.resnet_lstm, fingerprints[RESNET_LSTM_DIR],
                       (rl_feed, valid_feed))
    result = _result(run, rl_run, actgan, actgan_run, n_new, generated_path, fingerprints)
    log.info("train_deep: done in %s", {k: round(v, 1) for k, v in run.timings.items()})
    return result
