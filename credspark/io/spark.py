"""The one place that builds a SparkSession."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from credspark.config import SparkConfig
from credspark.errors import ConfigError
from credspark.io import warehouse as wh

__all__ = ["build_session", "delta_jar_paths", "s3a_jar_paths", "DELTA_MAVEN_COORDINATE"]

#: delta-spark 4.4.1 has no JAR on Maven Central; 4.4.0 is the nearest release that resolves.
DELTA_MAVEN_COORDINATE = "io.delta:delta-spark_4.2_2.13:4.4.0"
_DEFAULT_JARS_DIR = Path.home() / ".cache" / "credspark" / "jars" / "delta-4.4.0"
#: hadoop-aws for the Hadoop 3.5.0 that pyspark 4.2.0 ships, with the AWS SDK v2 modules it needs (`make jars-s3a`).
_DEFAULT_S3A_JARS_DIR = Path.home() / ".cache" / "credspark" / "jars" / "s3a-hadoop-3.5.0"


def _jars_dir(cfg: SparkConfig) -> Path:
    if cfg.jars_dir:
        return Path(cfg.jars_dir).expanduser()
    env = os.environ.get("CREDSPARK_JARS_DIR")
    return Path(env).expanduser() if env else _DEFAULT_JARS_DIR


def delta_jar_paths(cfg: SparkConfig) -> list[str]:
    """The Delta JAR files in the configured folder (empty when it was never fetched)."""
    d = _jars_dir(cfg)
    if not (d / ".complete").exists():
        return []
    return sorted(str(p) for p in d.glob("*.jar"))


def s3a_jar_paths() -> list[str]:
    """The s3a connector JARs fetched by ``make jars-s3a`` (``CREDSPARK_S3A_JARS_DIR`` or the default cache).

    Empty when never fetched: then ``s3a://`` works only where the cluster's classpath has hadoop-aws.
    """
    env = os.environ.get("CREDSPARK_S3A_JARS_DIR")
    d = Path(env).expanduser() if env else _DEFAULT_S3A_JARS_DIR
    if not (d / ".complete").exists():
        return []
    return sorted(str(p) for p in d.glob("*.jar"))


def _is_local(master: str | None) -> bool:
    return bool(master) and (master.startswith("local") or master.startswith("local-cluster"))


def build_session(cfg: SparkConfig, job: str | None = None, warehouse: str | None = None):
    """Build (or return the already running) SparkSession for a job.

    Args:
        cfg: The ``spark`` config section.
        job: Job name, appended to the app name.
        warehouse: Warehouse root; Spark's own warehouse dir goes beneath it so nothing lands in the cwd.

    Returns:
        A SparkSession with the Delta extension and catalog, UTC time zone and WARN logs.
    """
    from pyspark.sql import SparkSession  # local import: model-only users need no pyspark

    # Workers must run the interpreter (and venv) the driver runs, or pandas UDFs meet another Python.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)

    name = cfg.app_name + (f"-{job}" if job else "")
    b = SparkSession.builder.appName(name)
    if cfg.master:
        b = b.master(cfg.master)
    if _is_local(cfg.master):
        # Bind to loopback: these machines have no resolvable external hostname and tests must not
        # expose ports.
        b = b.config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        if cfg.driver_memory:
            b = b.config("spark.driver.memory", cfg.driver_memory)
        # Delta replays its log with 50 tasks by default; on one machine that is pure overhead on every
        # read and write (measured: a tiny table write 62 s -> 10 s on the loaded 2-core machine).
        b = b.config("spark.databricks.delta.snapshotPartitions", "2")
    b = (
        b.config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
        .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", str(cfg.shuffle_partitions))
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", str(cfg.arrow_batch_size))
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.ui.enabled", "false")
        .config("spark.databricks.delta.schema.autoMerge.enabled", "false")
    )
    if warehouse:
        b = b.config("spark.sql.warehouse.dir", wh.spark_path(wh.child(warehouse, "_spark_warehouse")))

    mode = cfg.delta_jars
    jars = delta_jar_paths(cfg) if mode in ("auto", "local") else []
    if mode == "local" and not jars:
        raise ConfigError(
            f"spark.delta_jars is 'local' but {_jars_dir(cfg)} holds no fetched JARs (run `make jars`)"
        )
    s3a_jars = s3a_jar_paths() if warehouse and wh.parse_warehouse(warehouse).scheme == "s3a" else []
    if jars or s3a_jars:
        b = b.config("spark.jars", ",".join(jars + s3a_jars))
    if not jars and mode in ("auto", "packages"):
        b = b.config("spark.jars.packages", DELTA_MAVEN_COORDINATE)
    for k, v in cfg.conf.items():
        b = b.config(k, v)

    spark = b.getOrCreate()
    spark.sparkContext.setLogLevel(cfg.log_level)
    # Python-side warehouse I/O (model store, run summaries) uses the s3a settings Spark got, however given.
    wh.configure_s3(spark.sparkContext.getConf().getAll())
    return spark
