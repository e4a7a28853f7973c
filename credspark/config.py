"""Job configuration: frozen dataclasses filled from YAML, environment overlays and ``--set`` overrides.

Defaults live here and only here (each field's ``doc`` is the config reference; ``python -m
credspark.config`` renders ``docs/config.md``). Layering, last wins::

    dataclass defaults < conf/<job>.yaml < conf/env/<env>.yaml < --warehouse < --set key=value

Unknown keys and wrong types are errors that name the dotted key.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import os
import re
import types
import typing
from dataclasses import dataclass, field
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Literal

import yaml

from credspark.dates import parse_date
from credspark.errors import ConfigError
from credspark.job_requests import JobOptions

__all__ = [
    "Config",
    "SparkConfig",
    "WarehouseConfig",
    "TablesConfig",
    "RetentionConfig",
    "parse_interval",
    "ValidationConfig",
    "FeaturesConfig",
    "GenerateConfig",
    "UciConfig",
    "AttributeConfig",
    "ATTRIBUTE_KINDS",
    "OTHER_CATEGORY",
    "ScoreConfig",
    "DistributedConfig",
    "ResNetLSTMConfig",
    "ACTGANConfig",
    "TrainConfig",
    "XGBConfig",
    "TrackingConfig",
    "load_config",
    "config_from_dict",
    "apply_override",
    "default_conf_dir",
    "CONF_DIR_ENV",
    "render_reference",
    "AUTO",
]

#: ``num_workers: auto``: every free task slot of the Spark application (credspark.distributed.slots).
AUTO = "auto"


_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


def _check_identifier(key: str, value: str) -> None:
    """Table and database names become paths and SQL identifiers: letters, digits and underscores only."""
    if not _IDENTIFIER.match(value):
        raise ConfigError(f"config key '{key}': {value!r} must match {_IDENTIFIER.pattern} "
                          "(letters, digits, underscore)")


def _f(default: Any, doc: str) -> Any:
    """A dataclass field with a default and its reference text."""
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: type(default)(default), metadata={"doc": doc})
    return field(default=default, metadata={"doc": doc})


@dataclass(frozen=True)
class SparkConfig:
    """How the SparkSession is built (credspark.io.spark.build_session)."""

    app_name: str = _f("credspark", "Spark application name (the job name is appended).")
    master: str | None = _f(
        "local[2]", "Spark master URL; null leaves it to spark-submit (use null on a cluster)."
    )
    shuffle_partitions: int = _f(8, "spark.sql.shuffle.partitions (8 measured best on 2 cores).")
    driver_memory: str | None = _f("2g", "spark.driver.memory for local masters; null keeps Spark's default.")
    log_level: str = _f("WARN", "Spark log level.")
    delta_jars: Literal["auto", "local", "packages", "provided"] = _f(
        "auto",
        "Where the Delta JARs come from: 'local' = the folder in jars_dir (make jars), 'packages' = "
        "spark.jars.packages from Maven via Ivy, 'provided' = the cluster or spark-submit already has them, "
        "'auto' = local if jars_dir holds them, else packages.",
    )
    jars_dir: str | None = _f(
        None, "Folder with the Delta JARs; null = $CREDSPARK_JARS_DIR or ~/.cache/credspark/jars/delta-4.4.0."
    )
    arrow_batch_size: int = _f(10000, "spark.sql.execution.arrow.maxRecordsPerBatch for pandas UDFs.")
    ui_enabled: bool = _f(True, "spark.ui.enabled: the Spark web UI (off in the local and ci overlays).")
    conf: dict[str, str] = _f(
        {},
        "Extra Spark settings (e.g. spark.executor.memory). Like every setting credspark makes, each applies only "
        "where spark-submit (--conf, spark-defaults.conf) did not give that setting.",
    )


@dataclass(frozen=True)
class WarehouseConfig:
    """Where tables live."""

    path: str = _f("./warehouse", "Root folder of all tables, model store and run summaries (--warehouse).")
    database: str | None = _f(
        None,
        "Metastore database for managed tables on a cluster; null = path-based Delta tables under path.",
    )

    def __post_init__(self) -> None:
        if self.database is not None:
            _check_identifier("warehouse.database", self.database)


@dataclass(frozen=True)
class TablesConfig:
    """Table names (letters, digits, underscores)."""

    customers: str = _f("customers", "Input: customer profiles.")
    transactions: str = _f("transactions", "Input: card/loan transactions.")
    statements: str = _f("statements", "Input: monthly statements.")
    outcomes: str = _f("outcomes", "Input: default events.")
    attributes: str = _f(
        "attributes",
        "Optional input: declared attributes by (customer_id, snapshot_date), joined point-in-time (the latest "
        "snapshot on or before the as-of date).",
    )
    features: str = _f("features", "Output of build_features, partitioned by as_of_date.")
    monthly_activity: str = _f(
        "monthly_activity",
        "Kept by build_features: per customer and closed month, the aggregates the features read, partitioned by "
        "month (docs/data-contract.md, 'The monthly activity table').",
    )
    scores: str = _f("scores", "Output of score_portfolio, partitioned by score_date.")
    score_runs: str = _f("score_runs", "One row per score_portfolio run: counts, quantiles, bands, drift.")
    train_splits: str = _f(
        "train_splits", "Row-level train/valid/test assignment of every training run, partitioned by run_id."
    )
    runs: str = _f("_runs", "Folder (under the warehouse) of JSON run summaries.")

    def __post_init__(self) -> None:
        # Checked when the config is built, so a bad name stops a job before it reads or writes anything
        # (a scoring run would otherwise commit its scores and only then refuse tables.score_runs);
        # credspark.io.tables checks again where a name becomes a path or SQL.
        for f in dataclasses.fields(self):
            _check_identifier(f"tables.{f.name}", getattr(self, f.name))


#: Units of a retention interval and their seconds (fixed lengths only: Delta refuses months and years).
_INTERVAL_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400, "week": 604800}
_INTERVAL = re.compile(r"^(?:interval\s+)?(\d{1,6})\s*(second|minute|hour|day|week)s?$", re.IGNORECASE)


def parse_interval(key: str, text: str) -> tuple[str, int]:
    """A retention interval such as ``7 days`` or ``1 hour``: Delta's form of it and its length in seconds.

    Args:
        key: The config key (named in the error).
        text: ``<whole number up to 999999> <unit>``, unit one of second, minute, hour, day, week (singular or plural),
            optionally prefixed by ``interval`` as Delta writes it.

    Returns:
        ``("interval <n> <unit>s", seconds)``, the value Delta stores as the table property (weeks as days).

    Raises:
        ConfigError: Naming the key, for anything else (months and years have no fixed length; Delta refuses them).
    """
    m = _INTERVAL.match(text.strip()) if isinstance(text, str) else None
    if m is None:
        raise ConfigError(f"config key '{key}': {text!r} is not an interval; expected '<whole number> <unit>' with "
                          f"unit one of {', '.join(_INTERVAL_UNITS)} (e.g. '7 days', '1 hour')")
    n, unit = int(m.group(1)), m.group(2).lower()
    if unit == "week":  # Delta's intervals count days; a week is 7 of them
        n, unit = n * 7, "day"
    return f"interval {n} {unit}s", n * _INTERVAL_UNITS[unit]


@dataclass(frozen=True)
class RetentionConfig:
    """How long a Delta table keeps what its older versions need (table properties of every table credspark writes).

    Set on a table when a write creates it; ``jobs/maintain_tables.py`` brings existing tables up to date and runs
    VACUUM, which deletes only files older than ``deleted_files`` that the current version does not use
    (docs/reliability.md, 'Retention and VACUUM').
    """

    deleted_files: str = _f(
        "7 days",
        "delta.deletedFileRetentionDuration: how long data files that a commit removed (and files no commit "
        "references, e.g. a killed write's) stay before VACUUM may delete them. Time travel to versions younger than "
        "this and readers of such versions keep working (Delta refuses time travel to older versions, VACUUM or not); "
        "keep it above the longest write and the longest read. '<n> <unit>', unit second, minute, hour, day or week.",
    )
    log: str = _f(
        "30 days",
        "delta.logRetentionDuration: how long entries of the Delta log stay (removed when a checkpoint is written). "
        "At least deleted_files: a version is readable only while both its log entries and its files exist.",
    )

    def __post_init__(self) -> None:
        _, files_s = parse_interval("retention.deleted_files", self.deleted_files)
        _, log_s = parse_interval("retention.log", self.log)
        if files_s < 1:
            raise ConfigError(f"config key 'retention.deleted_files': {self.deleted_files!r} must be at least "
                              "1 second (0 would let VACUUM delete the files of a write still running)")
        if log_s < files_s:
            raise ConfigError(f"config key 'retention.log': {self.log!r} is shorter than retention.deleted_files "
                              f"({self.deleted_files!r}); versions whose files are kept would lose their log entries")

    def table_properties(self) -> dict[str, str]:
        """The Delta table properties these settings give every table credspark writes."""
        return {
            "delta.deletedFileRetentionDuration": parse_interval("retention.deleted_files", self.deleted_files)[0],
            "delta.logRetentionDuration": parse_interval("retention.log", self.log)[0],
        }


@dataclass(frozen=True)
class ValidationConfig:
    """Input-contract validation (credspark.contract)."""

    max_reject_fraction: float = _f(
        0.05, "A table whose rejected share exceeds this fails the run (0..1)."
    )
    write_rejects: bool = _f(True, "Write rejected rows to <table>_rejects with reason and run id.")


#: Kinds of a declared attribute.
ATTRIBUTE_KINDS = ("numeric", "categorical")
#: Name of the category that values outside an attribute's known categories map to.
OTHER_CATEGORY = "other"


@dataclass(frozen=True)
class AttributeConfig:
    """One declared attribute (``attributes.<name>``): a customer column of the user's own, validated and a feature."""

    kind: Literal["numeric", "categorical"] = _f(
        "numeric", "'numeric' (a real value) or 'categorical' (one of the known categories, one-hot encoded)."
    )
    lower: float | None = _f(None, "Numeric: lowest valid value (inclusive); below it the missing policy applies.")
    upper: float | None = _f(None, "Numeric: highest valid value (inclusive); above it the missing policy applies.")
    categories: tuple[str, ...] = _f(
        (),
        "Categorical: the known categories (compared as text), in the order of their 0/1 features "
        "<name>__<category>. Other values map to 'other' and are counted. Empty: the training job fits the "
        "categories on its training rows (see max_categories) and stores them in the model bundle.",
    )
    max_categories: int = _f(
        20,
        "Categorical without declared categories: the training job keeps at most this many of the categories "
        "seen in its training rows (most frequent first, ties by text); the others score as 'other'.",
    )
    missing: Literal["null", "reject"] = _f(
        "null",
        "A null, NaN or infinite value, or a numeric value outside the bounds: 'null' keeps the row with the value "
        "missing (counted), 'reject' rejects the row (rule not_null, finite or range).",
    )
    monotone: int = _f(
        0, "Numeric: monotone constraint of the tree-only candidates: 1 = risk never falls as it rises, -1, 0 = none."
    )

    def __post_init__(self) -> None:
        if self.kind == "categorical":
            if len(set(self.categories)) != len(self.categories) or OTHER_CATEGORY in self.categories:
                raise ConfigError(f"attributes: categories must be distinct and not {OTHER_CATEGORY!r}: "
                                  f"{list(self.categories)}")
            if self.lower is not None or self.upper is not None or self.monotone:
                raise ConfigError("attributes: lower, upper and monotone apply to numeric attributes only")
        elif self.categories:
            raise ConfigError("attributes: 'categories' applies to categorical attributes only")
        if self.max_categories < 1:
            raise ConfigError(f"attributes: max_categories must be >= 1, got {self.max_categories}")
        if self.monotone not in (-1, 0, 1):
            raise ConfigError(f"attributes: monotone must be 1, -1 or 0, got {self.monotone}")
        if self.lower is not None and self.upper is not None and self.lower > self.upper:
            raise ConfigError(f"attributes: lower {self.lower} is above upper {self.upper}")


@dataclass(frozen=True)
class FeaturesConfig:
    """The feature job (credspark.pipelines.features)."""

    T: int = _f(12, "Months in the behaviour sequence (6 for UCI).")
    windows: tuple[int, ...] = _f((1, 3, 6, 12), "Rolling windows (months) of the static aggregates.")
    horizon_months: int = _f(12, "Label = default within this many months after the as-of date.")
    version: str = _f(
        "2", "Feature-set version stored as a table property and in every row (2: with the behaviour group)."
    )
    behaviour: bool = _f(
        True,
        "Build the behaviour group (credspark.features.behaviour): paid / previous bill, months since the last "
        "delinquency, pay-ratio trend, bill and payment volatility, cash-advance and fee shares, per window.",
    )
    channels: tuple[str, ...] | None = _f(
        None, "Sequence channels to build; null = every channel the sources support."
    )
    exclude_defaulted: bool = _f(
        True, "Leave out customers with a default on or before the as-of date (already in default)."
    )

    def __post_init__(self) -> None:
        if self.T < 1 or not self.windows or min(self.windows) < 1 or self.horizon_months < 1:
            raise ConfigError("features.T, features.windows and features.horizon_months must be >= 1")


@dataclass(frozen=True)
class GenerateConfig:
    """The synthetic portfolio generator (credspark.sources.generator)."""

    customers: int = _f(10000, "Number of customers.")
    months: int = _f(24, "Months of history, ending at end_month.")
    end_month: str = _f("2025-12", "Last generated month (YYYY-MM).")
    default_rate: float = _f(0.05, "Target share of customers who default (0.15 = the paper's bank).")
    txn_per_month: float = _f(10.0, "Mean transactions per active customer-month.")
    seed: int = _f(7, "Random seed; the same seed gives the same portfolio.")
    partitions: int = _f(8, "Spark partitions of the generated customers.")
    with_transactions: bool = _f(True, "Generate the transactions table.")
    with_statements: bool = _f(True, "Generate the statements table.")


@dataclass(frozen=True)
class UciConfig:
    """The UCI 'default of credit card clients' adapter (credspark.sources.uci)."""

    input: str = _f(
        "../shared/data/uci_taiwan/UCI_Credit_Card.csv", "Path of the UCI CSV (Kaggle or original layout)."
    )
    as_of: str = _f("2005-09-30", "As-of date whose 1-month-horizon label is the file's target.")

    def __post_init__(self) -> None:
        parse_date("uci.as_of", self.as_of)


@dataclass(frozen=True)
class ScoreConfig:
    """The nightly scoring job (credspark.pipelines.score, credspark.scoring)."""

    model_name: str = _f("credspark", "Model store name of the bundle to score with (models/<name>/current).")
    arrow_batch_size: int | None = _f(
        None, "Rows per Arrow batch handed to the scoring UDF; null = spark.arrow_batch_size."
    )
    model_batch_size: int = _f(
        1000,
        "Rows per forward pass of the model inside the UDF (1,000 measured fastest on CPU: see docs/scoring.md).",
    )
    torch_threads: int = _f(
        1, "Torch intra-op threads per Python worker (1: Spark already runs one worker per core)."
    )
    xgb_threads: int = _f(1, "XGBoost threads per Python worker.")
    base_points: float = _f(600.0, "Scorecard points at the base odds.")
    base_odds: float = _f(50.0, "Base odds good:bad (50 = 50:1) that earn base_points.")
    pdo: float = _f(20.0, "Points to double the odds.")
    band_cutoffs: tuple[float, ...] = _f(
        (500.0, 540.0, 580.0, 620.0), "Score cut-offs between risk bands, ascending (a score equal to a cut-off "
        "goes to the better band)."
    )
    band_labels: tuple[str, ...] = _f(
        ("E", "D", "C", "B", "A"), "Risk band names from the riskiest (lowest score) up; one more than cut-offs."
    )
    n_reasons: int = _f(3, "Reason-code columns reason_1..reason_n.")
    reason_contribs: Literal["exact", "approx"] = _f(
        "approx",
        "XGBoost contributions for reason codes: 'approx' (Saabas: ~27x cheaper, measured) or 'exact' (TreeSHAP, "
        "slower than the whole ResNet-LSTM at 300 trees).",
    )
    reason_groups: dict[str, tuple[str, ...]] = _f(
        {},
        "Reason groups: group name -> members (static features, declared attribute names, seq:<channel>) whose "
        "contributions add up to one reason code named by the group. A categorical attribute's 0/1 features are "
        "the attribute's group unless listed; every other input is its own group.",
    )
    quantiles: tuple[float, ...] = _f(
        (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99), "pd quantiles reported in the run summary."
    )
    quantile_error: float = _f(0.001, "Relative error of approxQuantile for the pd quantiles and PSI bins.")
    psi_bins: int = _f(10, "Quantile bins of the score PSI against the previous score date.")
    psi_warn: float = _f(0.1, "PSI at or above this is a drift warning (logged, in the summary).")
    psi_fail: float = _f(0.25, "PSI at or above this fails the run with exit code 3 (scores are still written).")
    psi_top_features: int = _f(
        10, "Features (in the bundle's training-distribution order) checked for drift; every declared attribute "
        "with a stored distribution is checked as well."
    )
    write_retries: int = _f(2, "Retries of the scores write after a Delta concurrent-write conflict.")

    def __post_init__(self) -> None:
        # Refuses a section that cannot work, naming the key, before any session starts or data is read.
        if len(self.band_labels) != len(self.band_cutoffs) + 1:
            raise ConfigError(f"score.band_labels: {len(self.band_cutoffs)} cut-offs need {len(self.band_cutoffs) + 1} "
                              f"labels, got {len(self.band_labels)}")
        if any(b <= a for a, b in zip(self.band_cutoffs, self.band_cutoffs[1:])):
            raise ConfigError(f"score.band_cutoffs must be strictly ascending, got {list(self.band_cutoffs)}")
        if len(set(self.band_labels)) != len(self.band_labels):
            raise ConfigError("score.band_labels must be distinct")
        for key, value in (("model_batch_size", self.model_batch_size), ("n_reasons", self.n_reasons),
                           ("psi_bins", self.psi_bins), ("torch_threads", self.torch_threads),
                           ("xgb_threads", self.xgb_threads)):
            if value < 1:
                raise ConfigError(f"score.{key} must be >= 1, got {value}")
        if self.arrow_batch_size is not None and self.arrow_batch_size < 1:
            raise ConfigError(f"score.arrow_batch_size must be >= 1 or null, got {self.arrow_batch_size}")
        if not (self.base_odds > 0 and self.pdo > 0):
            raise ConfigError("score.base_odds and score.pdo must be > 0")
        if not 0 < self.psi_warn <= self.psi_fail:
            raise ConfigError(f"score.psi_warn ({self.psi_warn}) must be > 0 and <= score.psi_fail ({self.psi_fail})")
        if any(not 0.0 <= q <= 1.0 for q in self.quantiles):
            raise ConfigError(f"score.quantiles must lie in [0, 1], got {list(self.quantiles)}")
        if self.write_retries < 0:
            raise ConfigError(f"score.write_retries must be >= 0, got {self.write_retries}")

@dataclass(frozen=True)
class DistributedConfig:
    """Distributed deep-model training (credspark.distributed, credspark.pipelines.train_deep)."""

    backend: Literal["torch_distributor", "horovod", "local"] = _f(
        "torch_distributor",
        "Launcher: 'torch_distributor' (pyspark's TorchDistributor), 'horovod' (make horovod), or 'local' "
        "(one worker in the driver process; needs num_workers 1).",
    )
    feed: Literal["arrow", "petastorm"] = _f(
        "arrow", "Spark-to-torch feed: 'arrow' (Parquet + pyarrow shards) or 'petastorm' (compat lane only)."
    )
    num_workers: int | Literal["auto"] = _f(
        2,
        "Training workers (ranks); one Spark task slot (or GPU) each. 'auto' = every free task slot when training "
        "starts (at least 1; 1 for backend 'local'). Checked before any work: too few free slots exit with code 2.",
    )
    use_gpu: bool = _f(False, "One GPU per worker with NCCL; false = CPU with gloo.")
    local_mode: bool = _f(
        False, "TorchDistributor: run the workers on the driver; false = barrier tasks on the executors."
    )
    timeout_s: float = _f(
        3600.0,
        "Limit (seconds) of one model's distributed run, its wait for task slots included, and of every collective; "
        "the run is cancelled after it.",
    )
    work_dir: str | None = _f(
        None,
        "Local-path folder where a training run's driver and workers exchange feeds, checkpoints and models, "
        "reached with file calls by the driver and every executor (a shared mount such as NFS or a mounted "
        "bucket); each run uses <work_dir>/train/<run id> and removes it at the end. null = <warehouse>/_work "
        "when the warehouse is a local folder; on an object-store or HDFS warehouse a private temporary folder "
        "on the driver, which only a local master can use (other masters are refused until this is set).",
    )
    checkpoint_dir: str | None = _f(
        None, "Folder of per-epoch checkpoints (shared by all workers); null = <run's work folder>/checkpoints."
    )
    resume: bool = _f(
        True,
        "Resume each model from its latest checkpoint in checkpoint_dir when one exists and was written by the "
        "same run: same fingerprint (features table version, split, label counts of the training and validation "
        "rows, feature spec, the model's config section but epochs, seed, checkpoint format).",
    )
    on_checkpoint_mismatch: Literal["fail", "restart"] = _f(
        "fail",
        "When the latest checkpoint's fingerprint differs from the run's: 'fail' stops before training (exit "
        "code 2, naming each difference); 'restart' trains from epoch 0 and replaces those checkpoints.",
    )
    seed: int = _f(7, "Seed of the feeds' shuffles, weight initialisation and noise.")
    files_per_worker: int = _f(4, "arrow feed: Parquet files written per worker when materialising a feed.")
    prefetch: int = _f(2, "Batches each worker prepares ahead in a background thread.")
    fit_sample_rows: int = _f(
        200000, "Rows the chief samples to fit input scaling and the GAN data transformer (then broadcast)."
    )
    torch_threads: int | None = _f(1, "torch intra-op threads per worker; null keeps torch's default.")
    oversample: bool = _f(True, "Train ACTGAN and add generated minority rows to the ResNet-LSTM training feed.")
    oversample_ratio: float = _f(0.4, "Minority/majority ratio the generated rows bring the training set to.")
    generate_partitions: int = _f(4, "Spark partitions that generate the oversampled rows.")

    def __post_init__(self) -> None:
        # The workers use file calls on the work folder: a URI other than file:// can never work there.
        if self.work_dir and "://" in self.work_dir and not self.work_dir.startswith("file://"):
            raise ConfigError(
                f"distributed.work_dir={self.work_dir!r}: the training workers use file calls, so it must be a "
                "local path that the driver and every executor reach (a shared mount such as NFS), not a URI")


@dataclass(frozen=True)
class ResNetLSTMConfig:
    """ResNet-LSTM hyper-parameters (credspark.models.resnet_lstm.ResNetLSTM) for distributed training."""

    epochs: int = _f(30, "Maximum epochs.")
    batch_size: int = _f(256, "Global batch size (split across the workers).")
    lr: float = _f(1e-4, "Adam learning rate.")
    weight_decay: float = _f(0.0, "Adam weight decay.")
    loss: Literal["bce", "focal"] = _f("bce", "Training loss of the network's own head.")
    focal_alpha: float = _f(0.25, "Focal loss alpha (loss 'focal').")
    focal_gamma: float = _f(2.0, "Focal loss gamma (loss 'focal').")
    patience: int = _f(5, "Early-stopping patience in epochs on validation AUC (only with validation rows).")
    embedding_dim: int = _f(32, "Fused embedding size.")
    filters: tuple[int, ...] = _f((16, 32, 64, 128), "Filters per ResNet stage.")
    blocks_per_stage: int = _f(1, "Residual blocks per stage.")
    lstm_hidden: int = _f(64, "LSTM hidden size per direction (no LSTM is built for static-only features).")
    spatial_attention: bool = _f(True, "Spatial attention on the static branch.")
    temporal_attention: bool = _f(
        True, "Temporal attention on the dynamic branch (static-only features have no dynamic branch)."
    )
    dropout: float = _f(0.5, "Dropout before the classification head.")


@dataclass(frozen=True)
class ACTGANConfig:
    """ACTGAN hyper-parameters (credspark.models.actgan.ACTGAN) for distributed training."""

    epochs: int = _f(300, "Epochs; an epoch is max(1, rows // batch_size) iterations of n_critic critic steps.")
    batch_size: int = _f(500, "Global batch size (split across the workers).")
    noise_dim: int = _f(128, "Generator noise width.")
    generator_dims: tuple[int, ...] = _f((256, 256), "Generator residual block widths.")
    discriminator_dims: tuple[int, ...] = _f((256, 256), "Discriminator deep tower widths.")
    n_cross: int = _f(3, "DCN cross layers in the discriminator.")
    n_critic: int = _f(5, "Critic steps per generator step.")
    gp_lambda: float = _f(10.0, "Gradient-penalty weight.")
    aux_weight: float = _f(1.0, "Auxiliary classifier cross-entropy weight.")
    aux_on_fake: bool = _f(False, "Also train the auxiliary classifier on fake rows.")
    dropout: float = _f(0.5, "Dropout in the discriminator tower.")
    lr: float = _f(2e-4, "Adam learning rate of both networks.")
    betas: tuple[float, ...] = _f((0.5, 0.9), "Adam betas of both networks.")
    positive_share: float | None = _f(0.5, "Share of label-1 conditions per batch; null = training frequency.")
    tau: float = _f(0.2, "Gumbel-softmax temperature.")


@dataclass(frozen=True)
class TrainConfig:
    """The training job (credspark.pipelines.train): split, evaluation, quality gate, publishing."""

    model_name: str = _f("credspark", "Model store name: bundles go to <warehouse>/models/<model_name>/<version>/.")
    split: Literal["random", "time"] = _f(
        "random",
        "'random': stratified by label, test_fraction held out, validation_fraction of the rest for validation "
        "(the paper's 70/30 with 20% of train for validation); 'time': test = the latest --as-of date, "
        "validation = --validation-as-of (else the second latest), train = the earlier dates.",
    )
    test_fraction: float = _f(0.3, "random split: share of the rows held out for test.")
    validation_fraction: float = _f(0.2, "random split: share of the non-test rows used for validation.")
    seed: int = _f(42, "Seed of the split and of XGBoost (the deep models use distributed.seed).")
    use_raw_static: bool = _f(False, "Feed the raw static features to the focal XGBoost after the embedding.")
    calibration: Literal["platt", "isotonic", "none"] = _f(
        "platt",
        "Map from the focal XGBoost's margin to the published pd, fitted on the validation part: 'platt' "
        "(sigmoid(a * margin + b); ranking unchanged), 'isotonic' (non-decreasing steps; needs more rows), 'none' "
        "(sigmoid(margin): focal loss and the generated defaults make it overstate risk). See "
        "credspark.models.calibration.",
    )
    baseline_with_seq: bool = _f(
        True, "The plain XGBoost baseline sees the flattened sequences as well as the static features."
    )
    candidates: tuple[str, ...] = _f(
        ("paper", "focal_static", "plain_static"),
        "Models fitted and compared (credspark.models.champion): 'paper' (ACTGAN -> ResNet-LSTM -> focal XGBoost "
        "on the embedding), 'focal_static' (focal XGBoost on the static features, no deep models), "
        "'plain_static' (binary:logistic XGBoost on the static features). Without 'paper' no deep model is trained.",
    )
    champion_metric: Literal["auc", "ks"] = _f(
        "auc", "Validation metric that picks the champion among the candidates (never the test part)."
    )
    tuning_trials: int = _f(
        20,
        "Trials of the bounded search (Optuna TPE; credspark.models.tuning) of each tree-only candidate's depth, "
        "learning rate, min child weight, subsample, colsample and L1/L2 regularisation on the validation part; "
        "0 = no tuning (the xgb section's values).",
    )
    tuning_timeout_s: float = _f(60.0, "Seconds of search per tree-only candidate at most.")
    tuning_max_rows: int = _f(
        200_000, "Training + validation rows the search runs on (on the driver, picked by a seeded hash)."
    )
    monotone: dict[str, int] = _f(
        {},
        "Monotone constraints of the tree-only candidates: {static feature: 1 (risk never falls as it rises) or -1}; "
        "e.g. worst_delinquency_3m: 1, months_delinquent_6m: 1, months_since_delinquency_12m: -1.",
    )
    champion_margin: float = _f(
        0.003,
        "A candidate at most this far below the best validation metric counts as equal; the simplest of those "
        "(plain_static, then focal_static, then paper) is the champion.",
    )
    embed_batch_size: int = _f(1024, "Rows per ResNet-LSTM forward pass when embedding on the executors.")
    min_test_auc: float = _f(0.65, "Quality gate: the test AUC must reach this floor for 'current' to move.")
    max_auc_below_baseline: float = _f(
        0.02, "Quality gate: the test AUC may be at most this much below the plain XGBoost baseline's."
    )
    drift_features: int = _f(
        10, "Top static features (by the baseline's gain) whose training distribution the manifest stores; every "
        "declared attribute's is stored as well (a categorical one over its categories)."
    )
    drift_bins: int = _f(10, "Quantile bins of the training distributions stored in the manifest (for PSI).")
    quantile_error: float = _f(0.001, "Relative error of approxQuantile for the stored distributions.")
    report_columns: tuple[str, ...] | None = _f(
        None,
        "Columns of the report's real-vs-generated plots: static names or '<channel>[t]' (t = month index, "
        "-1 = the as-of month); null = the top six static features.",
    )
    report_sample_rows: int = _f(5000, "Rows sampled (real and generated, each) for the report's distribution plots.")
    max_eval_rows: int = _f(
        5_000_000, "Validation + test rows whose (label, score) pairs the driver may collect for evaluation."
    )


@dataclass(frozen=True)
class XGBConfig:
    """Distributed XGBoost on the embeddings (credspark.distributed.xgb) and the plain baseline."""

    num_workers: int | Literal["auto"] = _f(
        2,
        "XGBoost workers (barrier tasks); must not exceed the application's free task slots (checked before training "
        "starts, exit code 2). 'auto' = every free task slot (at least 1).",
    )
    timeout_s: int = _f(
        600, "Seconds the tracker waits for the workers to connect and every collective call may take."
    )
    tracker_host: str | None = _f(
        None, "Address the workers reach the tracker at; null = 127.0.0.1 on local masters, else spark.driver.host."
    )
    nthread: int = _f(1, "Threads per worker (1: Spark already runs one task per core).")
    focal_alpha: float = _f(0.25, "Focal loss alpha (weight of the default class).")
    focal_gamma: float = _f(2.0, "Focal loss gamma (focusing parameter).")
    n_estimators: int = _f(500, "Maximum boosting rounds.")
    learning_rate: float = _f(0.05, "Shrinkage (eta).")
    max_depth: int = _f(4, "Maximum tree depth.")
    min_child_weight: float = _f(1.0, "Minimum hessian sum in a leaf (focal hessians are small: keep it low).")
    subsample: float = _f(0.8, "Row subsampling per tree (each worker samples its own rows).")
    colsample_bytree: float = _f(0.8, "Column subsampling per tree.")
    reg_lambda: float = _f(1.0, "L2 regularisation of leaf weights.")
    early_stopping_rounds: int | None = _f(
        50, "Stop when the validation loss has not improved for this many rounds; null trains all rounds."
    )


@dataclass(frozen=True)
class TrackingConfig:
    """MLflow tracking and model registry (credspark.tracking; needs the ``mlflow`` extra)."""

    mlflow_uri: str | None = _f(
        None,
        "MLflow tracking URI (e.g. http://mlflow:5000, sqlite:///mlflow.db, databricks); null = no tracking. "
        "A tracker that is down or refuses is reported (warning, run summary 'mlflow' field) and never fails a job.",
    )
    registry_uri: str | None = _f(None, "MLflow model registry URI; null = the tracking URI.")
    experiment_name: str = _f("credspark", "MLflow experiment the runs of every job are logged to.")
    registered_model_name: str | None = _f(
        "credspark",
        "Registered model a published bundle becomes a version of (alias 'champion' follows the store's "
        "'current'); null = log runs only, register nothing.",
    )


@dataclass(frozen=True)
class Config:
    """Everything a job can be configured with."""

    spark: SparkConfig = field(default_factory=SparkConfig)
    warehouse: WarehouseConfig = field(default_factory=WarehouseConfig)
    tables: TablesConfig = field(default_factory=TablesConfig)
    retention: RetentionConfig = field(default_factory=RetentionConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    uci: UciConfig = field(default_factory=UciConfig)
    score: ScoreConfig = field(default_factory=ScoreConfig)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)
    resnet_lstm: ResNetLSTMConfig = field(default_factory=ResNetLSTMConfig)
    actgan: ACTGANConfig = field(default_factory=ACTGANConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    xgb: XGBConfig = field(default_factory=XGBConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    attributes: dict[str, AttributeConfig] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in self.attributes:
            _check_identifier(f"attributes.{name}", name)
            if "__" in name or not name.islower():
                raise ConfigError(f"config key 'attributes.{name}': attribute names are lower case and hold no '__' "
                                  "(it separates a categorical attribute from its category)")


# ---------------------------------------------------------------------------------------------- loading


def _check_value(key: str, tp: Any, value: Any) -> Any:
    """Coerce ``value`` to the annotated type ``tp`` or raise ConfigError naming ``key``."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"config key '{key}': expected a mapping, got {type(value).__name__}")
        return _build(tp, value, key)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        errors = []
        for a in inner:
            try:
                return _check_value(key, a, value)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"config key '{key}': null is not allowed")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"config key '{key}': {value!r} is not one of {list(args)}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key '{key}': expected a list, got {type(value).__name__}")
        return tuple(_check_value(f"{key}[{i}]", args[0], v) for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"config key '{key}': expected a mapping, got {type(value).__name__}")
        return {str(k): _check_value(f"{key}.{k}", args[1], v) for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"config key '{key}': expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"config key '{key}': expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"config key '{key}': expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if isinstance(value, (dict, list, tuple)) or value is None:
            raise ConfigError(f"config key '{key}': expected a string, got {value!r}")
        # YAML reads 2025-12 as a string but 2025-12-31 as a date; both mean the text the user wrote.
        return str(value)
    raise ConfigError(f"config key '{key}': unsupported type {tp}")  # pragma: no cover - programming error


def _build(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for k, v in data.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if k not in names:
            raise ConfigError(f"unknown config key '{key}' (known: {', '.join(sorted(names))})")
        kwargs[k] = _check_value(key, hints[k], v)
    return cls(**kwargs)


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def config_from_dict(data: dict[str, Any]) -> Config:
    """Build a Config from a nested mapping (keys absent keep their defaults)."""
    return _build(Config, data)


def apply_override(data: dict[str, Any], assignment: str) -> dict[str, Any]:
    """Apply one ``key.path=value`` override (value parsed as YAML) to a nested mapping.

    Args:
        data: The nested mapping so far.
        assignment: Text such as ``features.T=6`` or ``spark.conf.spark.executor.memory=2g``.

    Returns:
        A new mapping with the value set.
    """
    if "=" not in assignment:
        raise ConfigError(f"--set {assignment!r}: expected key=value")
    key, raw = assignment.split("=", 1)
    parts = key.strip().split(".")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as e:  # e.g. a !!python/... tag: refused by safe_load, reported as a config error
        raise ConfigError(f"--set {assignment!r}: the value is not valid YAML ({str(e).splitlines()[0]})") from e
    # Free-form dict fields (spark.conf) take the rest of the dotted key as one key.
    if len(parts) > 2 and parts[0] == "spark" and parts[1] == "conf":
        parts = ["spark", "conf", ".".join(parts[2:])]
        value = str(value) if not isinstance(value, str) else value
    out = dict(data)
    cur = out
    for p in parts[:-1]:
        nxt = cur.get(p)
        nxt = dict(nxt) if isinstance(nxt, dict) else {}
        cur[p] = nxt
        cur = nxt
    cur[parts[-1]] = value
    return out


def _read_yaml(path: Traversable) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    return data


#: Environment variable naming the folder with ``<job>.yaml`` and ``env/`` (what ``--conf-dir`` gives per run).
CONF_DIR_ENV = "CREDSPARK_CONF_DIR"


def default_conf_dir() -> Traversable:
    """The folder with ``<job>.yaml`` and ``env/`` when ``--conf-dir`` is not given.

    In this order: ``$CREDSPARK_CONF_DIR``; the checkout's ``conf/`` beside the package; the copy of those
    files inside the installed package (``credspark/_conf``, package data of the wheel, also read from a
    wheel on ``sys.path`` as ``spark-submit --py-files`` puts it); else ``./conf``.
    """
    env = os.environ.get(CONF_DIR_ENV)
    if env:
        return Path(env)
    repo_conf = Path(__file__).resolve().parents[1] / "conf"
    if repo_conf.is_dir():
        return repo_conf
    packaged = importlib.resources.files("credspark") / "_conf"
    return packaged if packaged.is_dir() else Path("conf")


def load_config(job: str, options: JobOptions | None = None) -> Config:
    """Build a job's Config from its YAML files and command-line options.

    Args:
        job: Job name; ``conf/<job>.yaml`` is read when it exists.
        options: ``--env``, ``--set``, ``--warehouse`` and ``--conf-dir`` (None = none given).

    Returns:
        The frozen Config.
    """
    options = options or JobOptions()
    conf_dir: Traversable = Path(options.conf_dir) if options.conf_dir else default_conf_dir()
    data: dict[str, Any] = {}
    job_file = conf_dir / f"{job}.yaml"
    if job_file.is_file():
        data = _deep_merge(data, _read_yaml(job_file))
    if options.env:
        if not options.env.replace("-", "").replace("_", "").isalnum():
            raise ConfigError(f"--env {options.env!r}: only letters, digits, '-' and '_' are allowed")
        env_file = conf_dir / "env" / f"{options.env}.yaml"
        if not env_file.is_file():
            raise ConfigError(f"--env {options.env}: {env_file} does not exist")
        data = _deep_merge(data, _read_yaml(env_file))
    if options.warehouse:
        data = _deep_merge(data, {"warehouse": {"path": options.warehouse}})
    for assignment in options.overrides:
        data = apply_override(data, assignment)
    return config_from_dict(data)


def _reference_table(title: str, cls: type, prefix: str) -> list[str]:
    """One section of the reference: a heading, the class's docstring and a row per field (key ``prefix.field``)."""
    lines = [f"## `{title}`", "", (cls.__doc__ or "").strip(), "",
             "| key | type | default | meaning |", "|---|---|---|---|"]
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        tp = str(hints[f.name]).replace("typing.", "").replace("|", "\\|")
        d = "null" if default is None else repr(default).replace("|", "\\|")
        lines.append(f"| `{prefix}.{f.name}` | `{tp}` | `{d}` | {f.metadata.get('doc', '')} |")
    return [*lines, ""]


def render_reference() -> str:
    """The config reference (docs/config.md) rendered from the dataclasses' field docs."""
    lines = [
        "# Configuration reference",
        "",
        "Generated by `python -m credspark.config > docs/config.md` from `credspark/config.py`, where the "
        "defaults live. Every job reads `conf/<job>.yaml`, then `conf/env/<env>.yaml` (`--env`), then "
        "`--warehouse`, then `--set key=value` (repeatable; values are YAML). Unknown keys and wrong types "
        "are errors that name the key.",
        "",
    ]
    hints_root = typing.get_type_hints(Config)
    for section in dataclasses.fields(Config):
        cls = hints_root[section.name]
        if typing.get_origin(cls) is dict:  # named entries (attributes.<name>): one table of an entry's keys
            lines += _reference_table(section.name, typing.get_args(cls)[1], f"{section.name}.<name>")
        else:
            lines += _reference_table(section.name, cls, section.name)
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    print(render_reference())
