"""Partition code that generates ACTGAN minority rows as feature-table rows (Spark-free, pyarrow only).

Used by :func:`credspark.pipelines._train_oversample.generate_rows` inside ``mapInArrow``: every partition loads
the saved ACTGAN once per Python worker (cached by folder) and turns each batch of row ids into generated
rows, seeded by the batch's first id so the output does not depend on how Spark schedules the work.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa

from credspark.models.inputs import LABEL_COLUMN, MASK_COLUMN, SEQ_COLUMN
from credspark.worker_cache import WorkerCache

__all__ = ["generated_batch", "generate_partition", "generated_arrow_schema"]

#: The ACTGAN generator loaded per Python worker, keyed by its (per-run) model folder.
_MODELS: WorkerCache[Any] = WorkerCache(2)


def generated_arrow_schema(static_names: list[str]) -> pa.Schema:
    """Arrow schema of generated rows: static columns as float64, ``seq``, ``seq_mask``, ``label``."""
    return pa.schema(
        [pa.field(n, pa.float64()) for n in static_names]
        + [
            pa.field(SEQ_COLUMN, pa.list_(pa.float32())),
            pa.field(MASK_COLUMN, pa.list_(pa.int8())),
            pa.field(LABEL_COLUMN, pa.int32()),
        ]
    )


def _list_array(values: np.ndarray, width: int, n: int) -> pa.ListArray:
    # One flat buffer plus offsets: no per-row Python objects.
    # Multiplied rather than stepped: width is 0 for the empty sequence of a static-only source.
    offsets = pa.array(np.arange(n + 1, dtype=np.int32) * np.int32(width))
    return pa.ListArray.from_arrays(offsets, pa.array(values.reshape(-1)))


def generated_batch(model: Any, n: int, seed: int, label: int = 1) -> pa.RecordBatch:
    """``n`` rows sampled from a fitted ACTGAN conditioned on ``label``, as a feature-row record batch.

    Args:
        model: A fitted :class:`~credspark.models.actgan.ACTGAN`.
        n: Rows.
        seed: Sampling seed.
        label: Class to generate (1 = default, the minority).

    Returns:
        A batch with :func:`generated_arrow_schema`.
    """
    spec = model.spec
    static, dynamic, mask = model.sample(int(n), label=label, random_state=int(seed))
    cols = [pa.array(static[:, j].astype(np.float64)) for j in range(spec.n_static)]
    cols.append(_list_array(dynamic.astype(np.float32), spec.T * spec.C, n))
    cols.append(_list_array(mask.astype(np.int8), spec.T, n))
    cols.append(pa.array(np.full(n, label, dtype=np.int32)))
    return pa.RecordBatch.from_arrays(cols, schema=generated_arrow_schema(spec.static_names))


def _model(model_dir: str) -> Any:
    def load() -> Any:
        import torch

        from credspark.models.actgan import ACTGAN

        torch.set_num_threads(1)
        return ACTGAN.load(model_dir, device="cpu")

    return _MODELS.get(model_dir, load)


def generate_partition(batches: Iterator[pa.RecordBatch], *, model_dir: str, seed: int) -> Iterator[pa.RecordBatch]:
    """``mapInArrow`` body: one generated row per input row id (column ``id``).

    Args:
        batches: Record batches with an ``id`` column (``spark.range``).
        model_dir: Folder of the saved ACTGAN (readable from the executors).
        seed: Base seed; a batch uses ``seed`` and its first id.

    Yields:
        Generated rows with :func:`generated_arrow_schema`.
    """
    for batch in batches:
        n = batch.num_rows
        if n == 0:
            continue
        first = int(batch.column(0)[0].as_py())
        seq = np.random.SeedSequence([int(seed), first]).generate_state(1)[0]
        yield generated_batch(_model(model_dir), n, int(seq))
