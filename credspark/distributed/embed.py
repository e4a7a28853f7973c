"""Embeddings and XGBoost scores computed on the executors (driver side of the training job's UDFs).

Each function ships the model's bytes once per executor in a broadcast variable and runs a top-level,
Spark-free partition function from :mod:`credspark.distributed._embed_worker`, which loads the model once
per Python worker (cached by content hash).
"""

from __future__ import annotations

import functools
import hashlib
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import types as T

from credspark.distributed._embed_worker import (
    EmbedParams,
    ScoreColumn,
    embed_partition,
    files_digest,
    score_partition,
)
from credspark.models.spec import FeatureSpec

__all__ = ["model_files", "with_embeddings", "with_scores", "booster_key"]


def model_files(model: Any) -> dict[str, bytes]:
    """The bytes of every file ``model.save(directory)`` writes (safetensors + JSON for the ResNet-LSTM)."""
    with tempfile.TemporaryDirectory(prefix="credspark-model-") as d:
        model.save(d)
        return {p.name: p.read_bytes() for p in sorted(Path(d).iterdir()) if p.is_file()}


def _broadcast_getter(df: DataFrame, value: Any):  # noqa: ANN202 - returns a zero-argument getter
    bc = df.sparkSession.sparkContext.broadcast(value)
    # The getter captures the Broadcast handle only; its value is read on the worker at first use.
    return functools.partial(_broadcast_value, bc)


def _broadcast_value(bc: Any) -> Any:
    return bc.value


def with_embeddings(
    df: DataFrame,
    embedder: Any,
    spec: FeatureSpec,
    *,
    keep: Sequence[str],
    out_col: str = "features",
    use_raw_static: bool = False,
    batch_size: int = 1024,
    torch_threads: int | None = 1,
) -> DataFrame:
    """Rows of ``df`` reduced to ``keep`` plus ``out_col``: the embedding (and raw static block if asked).

    Args:
        df: Feature-table rows (static columns, ``seq``, ``seq_mask`` and the ``keep`` columns).
        embedder: A fitted ResNet-LSTM (saved to bytes here, loaded once per executor Python worker).
        spec: The FeatureSpec of ``df``.
        keep: Columns carried to the output.
        out_col: Output array<float> column. Defaults to ``"features"``.
        use_raw_static: Append the raw static block (the bundle's ``use_raw_static`` layout).
        batch_size: Rows per forward pass.
        torch_threads: Torch threads per Python worker.

    Returns:
        A DataFrame (lazy: nothing runs until an action).
    """
    files = model_files(embedder)
    params = EmbedParams(key=files_digest(files), spec=spec.to_dict(), keep=tuple(keep), out_col=out_col,
                         use_raw_static=use_raw_static, batch_size=batch_size, torch_threads=torch_threads)
    schema = T.StructType([df.schema[c] for c in keep] + [T.StructField(out_col, T.ArrayType(T.FloatType()), True)])
    fn = functools.partial(embed_partition, params=params, load_files=_broadcast_getter(df, files))
    return df.mapInPandas(fn, schema=schema)


def booster_key(raw: bytes) -> str:
    """The cache key of a booster's UBJSON bytes."""
    return hashlib.sha256(raw).hexdigest()


def with_scores(
    df: DataFrame,
    models: Mapping[str, tuple[bytes, str, int]],
    *,
    keep: Sequence[str],
    nthread: int = 1,
) -> DataFrame:
    """Rows of ``df`` reduced to ``keep`` plus one probability column per model.

    Args:
        df: Rows with the models' feature array columns.
        models: ``{out_col: (UBJSON booster bytes, features column, feature width)}``.
        keep: Columns carried to the output.
        nthread: XGBoost threads per Python worker.

    Returns:
        A DataFrame with double columns named by ``models``' keys.
    """
    blobs = {booster_key(raw): raw for raw, _, _ in models.values()}
    columns = tuple(ScoreColumn(out, col, booster_key(raw), int(width)) for out, (raw, col, width) in models.items())
    schema = T.StructType([df.schema[c] for c in keep] + [T.StructField(out, T.DoubleType(), True) for out in models])
    fn = functools.partial(score_partition, columns=columns, keep=tuple(keep), load_models=_broadcast_getter(df, blobs),
                           nthread=nthread)
    return df.mapInPandas(fn, schema=schema)
