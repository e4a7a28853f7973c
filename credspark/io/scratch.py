"""Scratch Parquet files that Spark materialises for code outside Spark (e.g. the training feeds).

Not tables: no Delta log, no properties, overwritten freely. Kept in ``credspark.io`` because every write
of the project lives there.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from pyspark.sql import DataFrame
from pyspark.sql import functions as F  # noqa: N812 - Spark convention

from credspark.errors import ConfigError
from credspark.io import warehouse

__all__ = ["write_scratch_parquet", "read_scratch_parquet", "work_folder"]


def write_scratch_parquet(df: DataFrame, path: str, *, files: int, seed: int) -> list[str]:
    """Write ``df`` as ``files`` Parquet files with rows spread over them at random.

    The random spread (a seeded hash of each row's content, which also orders the rows inside each file)
    means that consecutive rows of a file are not ordered by customer or by label, so a reader may take
    contiguous row ranges as random samples. Being a function of the content only, the layout is the same
    on every run: a shuffle delivers rows in whatever order the executors answer, so ``rand()`` plus
    ``repartition`` alone gave a different row order per run on a multi-executor cluster (and models fed
    from the files then differed for the same seed).

    Args:
        df: Rows to write (nothing is collected to the driver).
        path: Target folder (replaced).
        files: Number of output files (>= 1).
        seed: Seed of the spread.

    Returns:
        The written files' URIs, sorted (Spark lists them, so any file system works).
    """
    if files < 1:
        raise ValueError(f"files must be >= 1, got {files}")
    key = F.xxhash64(F.lit(int(seed)), *[df[c] for c in df.columns])
    spread = df.withColumn("_spread", key).repartition(int(files), "_spread").sortWithinPartitions("_spread")
    spread.drop("_spread").write.mode("overwrite").parquet(path)
    return sorted(df.sparkSession.read.parquet(path).inputFiles())


def read_scratch_parquet(spark, path: str) -> DataFrame:  # noqa: ANN001 - SparkSession, kept import-light
    """Read scratch Parquet files back as a DataFrame.

    Args:
        spark: The session.
        path: Folder written by :func:`write_scratch_parquet` (or any Parquet folder).

    Returns:
        The DataFrame.
    """
    return spark.read.parquet(path)


def work_folder(root: str | Path, job: str, run_id: str, master: str, shared: str | None = None) -> Path:
    """The folder where one run's driver and training workers exchange files (feeds, checkpoints, models).

    The training workers read and write it with local file calls, so it must be a path that the driver and
    every executor see as the same folder:

    - ``shared`` given (``distributed.work_dir``, e.g. an NFS mount): ``<shared>/<job>/<run_id>``;
    - a warehouse that is a local folder: ``<warehouse>/_work/<job>/<run_id>``;
    - otherwise (``s3a://`` and the other URIs) a private temporary folder on the driver's disk, which the
      workers share only when they run on the driver's machine (a ``local`` master); other masters are refused.

    The caller removes the folder when the run ends, failed or not.

    Args:
        root: The warehouse.
        job: Job name (a plain name).
        run_id: The run id (a plain name).
        master: The session's master URL (``spark.sparkContext.master``).
        shared: ``distributed.work_dir``: a local path (``file://`` accepted) every process reaches.

    Returns:
        The folder (not created under ``shared`` or a local warehouse; created empty otherwise).

    Raises:
        ConfigError: ``shared`` is not a local path, or a warehouse that is not a local folder with a master
            that is not ``local`` and no ``shared``.
    """
    if shared:
        base = warehouse.child(shared, job, run_id)
        if not isinstance(base, Path):
            raise ConfigError(
                f"distributed.work_dir={shared!r}: the training workers use file calls, so it must be a local path "
                "that the driver and every executor reach (a shared mount such as NFS), not an object-store URI"
            )
        return base
    where = warehouse.child(root, "_work", job, run_id)
    if isinstance(where, Path):
        return where
    if not master.startswith("local"):
        raise ConfigError(
            f"warehouse {root}: distributed training needs a work folder that the driver and every executor "
            f"reach with file calls, and {where} is not one; with master {master!r} set distributed.work_dir to "
            "a shared local path (e.g. an NFS mount), or use a local master"
        )
    return Path(tempfile.mkdtemp(prefix=f"credspark-{job}-{run_id}-"))
