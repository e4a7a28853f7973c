"""Scratch Parquet files that Spark materialises for code outside Spark (e.g. the training feeds).

Not tables: no Delta log, no properties, overwritten freely. Kept in ``credspark.io`` because every write
of the project lives there.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F  # noqa: N812 - Spark convention

__all__ = ["write_scratch_parquet", "read_scratch_parquet"]


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
