"""Driver side of ACTGAN oversampling in training: label counts, generated rows as a DataFrame, cast to the real rows.

The rows are generated on the executors (``mapInArrow`` over ``spark.range``) by the Spark-free partition
code in :mod:`credspark.distributed._oversample`.
"""

from __future__ import annotations

import functools

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F  # noqa: N812 - Spark convention
from pyspark.sql import types as T  # noqa: N812 - Spark convention

from credspark.distributed._oversample import generate_partition
from credspark.models.inputs import LABEL_COLUMN, MASK_COLUMN, SEQ_COLUMN
from credspark.models.spec import FeatureSpec

__all__ = ["label_counts", "generate_rows", "cast_like"]


def label_counts(df: DataFrame) -> dict[int, int]:
    """Rows per label (one tiny aggregate comes back to the driver)."""
    return {int(r[LABEL_COLUMN]): int(r["count"]) for r in df.groupBy(LABEL_COLUMN).count().collect()}


def generate_rows(
    spark: SparkSession, model_dir: str, spec: FeatureSpec, n: int, *, seed: int, partitions: int = 4
) -> DataFrame:
    """``n`` ACTGAN minority rows generated on the executors (static columns as double).

    Args:
        spark: The session.
        model_dir: Folder of the saved ACTGAN, readable from the executors.
        spec: Its FeatureSpec.
        n: Rows.
        seed: Sampling seed.
        partitions: Spark partitions doing the work.

    Returns:
        A lazy DataFrame: the static columns, ``seq`` (array<float>), ``seq_mask`` (array<tinyint>),
        ``label`` (int, all 1).
    """
    schema = T.StructType(
        [T.StructField(name, T.DoubleType()) for name in spec.static_names]
        + [
            T.StructField(SEQ_COLUMN, T.ArrayType(T.FloatType())),
            T.StructField(MASK_COLUMN, T.ArrayType(T.ByteType())),
            T.StructField(LABEL_COLUMN, T.IntegerType()),
        ]
    )
    # Bind plain values (not self or the session) into the partition function shipped to executors.
    fn = functools.partial(generate_partition, model_dir=str(model_dir), seed=int(seed))
    return spark.range(0, int(n), numPartitions=max(1, int(partitions))).mapInArrow(fn, schema)


def cast_like(generated: DataFrame, real: DataFrame) -> DataFrame:
    """Cast generated columns to the real rows' types (integral static columns are rounded first)."""
    types = {f.name: f.dataType for f in real.schema.fields}
    cols = []
    for name in real.columns:
        c = F.col(name)
        if isinstance(types[name], T.ArrayType):
            # Same element type already; only element nullability may differ, which unionByName merges
            # (a cast to a non-nullable element type is refused by Spark).
            cols.append(c.alias(name))
            continue
        if isinstance(types[name], T.IntegralType) and name != LABEL_COLUMN:
            c = F.round(c)
        cols.append(c.cast(types[name]).alias(name))
    return generated.select(*cols)
