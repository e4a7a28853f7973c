"""The one place that builds a SparkSession."""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

from credspark.config import SparkConfig
from credspark.errors import ConfigError
from credspark.io import warehouse as wh

__all__ = ["build_session", "session_defaults", "user_settings", "delta_jar_paths", "s3a_jar_paths",
           "DELTA_MAVEN_COORDINATE"]

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


#: Keys build_session set in this process (so a later call can tell them from the user's settings).
_FILLED: set[str] = set()


def session_defaults(cfg: SparkConfig, job: str | None = None, warehouse: str | None = None) -> dict[str, str]:
    """The Spark settings credspark makes for a config: what :func:`build_session` fills in where the user gave none.

    Args:
        cfg: The ``spark`` config section.
        job: Job name, appended to the app name.
        warehouse: Warehouse root; Spark's own warehouse dir goes beneath it so nothing lands in the cwd.

    Returns:
        Setting -> value, ``cfg.conf`` last.
    """
    d = {"spark.app.name": cfg.app_name + (f"-{job}" if job else "")}
    if cfg.master:
        d["spark.master"] = cfg.master
    if _is_local(cfg.master):
        # Bind to loopback: these machines have no resolvable external hostname and tests must not
        # expose ports.
        d["spark.driver.host"] = d["spark.driver.bindAddress"] = "127.0.0.1"
        if cfg.driver_memory:
            d["spark.driver.memory"] = cfg.driver_memory
        # Delta replays its log with 50 tasks by default; on one machine that is pure overhead on every
        # read and write (measured: a tiny table write 62 s -> 10 s on the loaded 2-core machine).
        d["spark.databricks.delta.snapshotPartitions"] = "2"
    d |= {
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": str(cfg.shuffle_partitions),
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.execution.arrow.maxRecordsPerBatch": str(cfg.arrow_batch_size),
        "spark.ui.showConsoleProgress": "false",
        "spark.ui.enabled": "true" if cfg.ui_enabled else "false",
        "spark.databricks.delta.schema.autoMerge.enabled": "false",
    }
    if warehouse:
        d["spark.sql.warehouse.dir"] = wh.spark_path(wh.child(warehouse, "_spark_warehouse"))
    mode = cfg.delta_jars
    jars = delta_jar_paths(cfg) if mode in ("auto", "local") else []
    if mode == "local" and not jars:
        raise ConfigError(
            f"spark.delta_jars is 'local' but {_jars_dir(cfg)} holds no fetched JARs (run `make jars`)"
        )
    s3a_jars = s3a_jar_paths() if warehouse and wh.parse_warehouse(warehouse).scheme == "s3a" else []
    if jars or s3a_jars:
        d["spark.jars"] = ",".join(jars + s3a_jars)
    if not jars and mode in ("auto", "packages"):
        d["spark.jars.packages"] = DELTA_MAVEN_COORDINATE
    d |= {str(k): str(v) for k, v in cfg.conf.items()}
    return d


def user_settings(launch: dict[str, str] | None = None) -> dict[str, str]:
    """The Spark settings the user gave (spark-submit, spark-defaults.conf), which credspark leaves alone.

    Sources: ``spark-submit --conf``/``--master``/``--name``/``--jars``, ``spark-defaults.conf``,
    ``PYSPARK_SUBMIT_ARGS``, or the running context's settings that credspark did not set.

    Reads the driver JVM's configuration (system properties, where spark-submit puts everything it was
    given). Without a JVM yet (a plain ``python jobs/x.py``) one is started first with ``launch`` (credspark's
    settings: some, such as the driver memory and the JARs, count only at JVM start; the others keep
    spark-submit's own defaults for a Python shell out). spark-submit names the application after the script
    unless ``--name`` is given: that default name is not counted as the user's.

    Args:
        launch: The settings to start a JVM with, if none runs yet.

    Returns:
        Setting -> value.
    """
    from pyspark import SparkConf, SparkContext

    active = SparkContext._active_spark_context
    if active is not None:
        given = dict(active.getConf().getAll())
    else:
        if SparkContext._gateway is None and "PYSPARK_GATEWAY_PORT" not in os.environ:
            start = dict(launch or {})
            SparkContext._ensure_initialized(conf=SparkConf(loadDefaults=False).setAll(list(start.items())))
            _FILLED.update(start)
        else:
            SparkContext._ensure_initialized()
        given = dict(SparkConf().getAll())
    script = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if given.get("spark.app.name") == script:
        given.pop("spark.app.name")
    return {k: v for k, v in given.items() if k not in _FILLED}


def build_session(cfg: SparkConfig, job: str | None = None, warehouse: str | None = None):
    """Build (or return the already running) SparkSession for a job.

    Only fills in what the user did not give: a setting passed to ``spark-submit`` (``--conf``,
    ``--master``, ``--name``, ``--jars``) or in ``spark-defaults.conf`` wins over credspark's value for it
    (:func:`session_defaults`). A job started without spark-submit (plain ``python``) starts its JVM with
    credspark's settings.

    Args:
        cfg: The ``spark`` config section.
        job: Job name, appended to the app name.
        warehouse: Warehouse root; Spark's own warehouse dir goes beneath it so nothing lands in the cwd.

    Returns:
        A SparkSession with the Delta extension and catalog, UTC time zone and ``cfg.log_level`` logs.
    """
    from pyspark.sql import SparkSession  # local import: model-only users need no pyspark

    # Workers must run the interpreter (and venv) the driver runs, or pandas UDFs meet another Python.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    if _is_local(cfg.master):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")

    defaults = session_defaults(cfg, job, warehouse)
    given = user_settings(defaults)
    if given.get("spark.master", cfg.master) != cfg.master:
        # spark-submit's master decides what is local (loopback binding, driver memory).
        defaults = session_defaults(dataclasses.replace(cfg, master=given["spark.master"]), job, warehouse)
    b = SparkSession.builder
    for key, value in defaults.items():
        if key not in given:
            b = b.config(key, value)
            _FILLED.add(key)
    if "spark.master" not in given and "spark.master" not in defaults:
        raise ConfigError("spark.master is null but no master was given: run with spark-submit --master, "
                          "or set spark.master")
    spark = b.getOrCreate()
    spark.sparkContext.setLogLevel(cfg.log_level)
    # Python-side warehouse I/O (model store, run summaries) uses the s3a settings Spark got, however given.
    wh.configure_s3(spark.sparkContext.getConf().getAll())
    return spark
