"""Spark-free partition code of the training job: ResNet-LSTM embeddings and XGBoost scores per partition.

Models reach the executors as bytes (the files the model's ``save`` writes, or a UBJSON booster) in a
broadcast variable. The first task on a Python worker loads them and caches the loaded model under a
module-level name keyed by the SHA-256 of the bytes; later tasks on that (reused) worker skip the load.
Keying by content, not by the broadcast object: each task unpickles a new broadcast object, so its id
changes on every task and would reload the model every time. Nothing here imports pyspark; the tests drive
these functions with plain pandas frames and a lambda in place of the broadcast.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from credspark.models.inputs import arrays_from_frame, stack_array_column
from credspark.models.spec import FeatureSpec
from credspark.worker_cache import WorkerCache

__all__ = [
    "ModelFiles",
    "EmbedParams",
    "ScoreColumn",
    "files_digest",
    "cached_model",
    "load_embedder",
    "load_booster",
    "embed_frame",
    "embed_partition",
    "score_frame",
    "score_partition",
]

#: ``{file name: bytes}`` of a saved model.
ModelFiles = Mapping[str, bytes]

#: Loaded models kept per Python worker (oldest evicted first).
_CACHE: WorkerCache[Any] = WorkerCache(4)

T = TypeVar("T")


def files_digest(files: ModelFiles) -> str:
    """SHA-256 naming a set of model files by content (names and bytes, order-independent)."""
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(name.encode("utf-8") + b"\0" + hashlib.sha256(files[name]).digest())
    return h.hexdigest()


def cached_model(key: str, build: Callable[[], T]) -> T:
    """The model cached under ``key`` in this process, built (and cached) on the first call.

    Args:
        key: Content hash of the model's bytes.
        build: Loads the model; called only on a miss.

    Returns:
        The cached model.
    """
    return _CACHE.get(key, build)


def load_embedder(files: ModelFiles, device: str = "cpu") -> Any:
    """Write the files of a saved ResNet-LSTM into a private temporary folder and load them from there.

    Args:
        files: ``{name: bytes}`` as written by ``ResNetLSTM.save``.
        device: Torch device. Defaults to ``"cpu"``.

    Returns:
        The loaded ``ResNetLSTM``.
    """
    from credspark.models.resnet_lstm import ResNetLSTM

    tmp = Path(tempfile.mkdtemp(prefix="credspark-embedder-"))
    try:
        for name, data in files.items():
            rel = PurePosixPath(name)
            if rel.is_absolute() or ".." in rel.parts or len(rel.parts) != 1:
                raise ValueError(f"embedder file name {name!r} is not a plain file name")
            (tmp / name).write_bytes(data)
        return ResNetLSTM.load(tmp, device=device)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def load_booster(raw: bytes, nthread: int = 1) -> Any:
    """An ``xgboost.Booster`` from UBJSON bytes."""
    import xgboost as xgb

    booster = xgb.Booster()
    booster.load_model(bytearray(raw))
    booster.set_param({"nthread": int(nthread)})
    return booster


@dataclass(frozen=True)
class EmbedParams:
    """What the embedding partition code needs besides the model bytes (small, picklable).

    Attributes:
        key: :func:`files_digest` of the embedder files (the cache key).
        spec: FeatureSpec as a dict.
        keep: Input columns copied to the output, in order.
        out_col: Name of the output array<float> column.
        use_raw_static: Append the raw static block after the embedding (the bundle's classifier input).
        batch_size: Rows per forward pass.
        torch_threads: Torch intra-op threads per worker (None: leave torch's setting).
    """

    key: str
    spec: dict[str, Any]
    keep: tuple[str, ...]
    out_col: str = "features"
    use_raw_static: bool = False
    batch_size: int = 1024
    torch_threads: int | None = 1


def embed_frame(pdf: pd.DataFrame, embedder: Any, spec: FeatureSpec, params: EmbedParams) -> pd.DataFrame:
    """The ``keep`` columns of ``pdf`` plus the classifier input ``out_col`` (embedding [+ raw static]).

    Args:
        pdf: Feature-table rows (static columns, ``seq``, ``seq_mask``).
        embedder: A fitted ResNet-LSTM (anything with ``embed(static, dynamic, mask, batch_size)``).
        spec: The FeatureSpec.
        params: Output layout.

    Returns:
        A new frame; ``out_col`` holds one float32 array per row.
    """
    out = pdf[list(params.keep)].reset_index(drop=True)
    if len(pdf) == 0:
        out[params.out_col] = pd.Series([], dtype=object)
        return out
    static, dynamic, mask = arrays_from_frame(pdf, spec)
    emb = np.asarray(embedder.embed(static, dynamic, mask, batch_size=params.batch_size), dtype=np.float32)
    if params.use_raw_static:
        # The same layout as Bundle.classifier_input: embedding first, then the raw static block.
        emb = np.hstack([emb, static.astype(np.float32)])
    out[params.out_col] = list(emb)
    return out


def embed_partition(
    frames: Iterator[pd.DataFrame], params: EmbedParams, load_files: Callable[[], ModelFiles]
) -> Iterator[pd.DataFrame]:
    """The ``mapInPandas`` body: embed every frame with the (cached) embedder.

    Args:
        frames: This partition's frames.
        params: Layout and cache key.
        load_files: Returns the embedder's files (e.g. ``lambda: broadcast.value``); called only when the
            model is not cached in this process yet.

    Yields:
        One output frame per input frame.
    """
    if params.torch_threads is not None:
        import torch

        torch.set_num_threads(int(params.torch_threads))
    spec = FeatureSpec.from_dict(params.spec)
    embedder = cached_model(params.key, lambda: _InferenceEmbedder(load_embedder(load_files())))
    for pdf in frames:
        yield embed_frame(pdf, embedder, spec, params)


class _InferenceEmbedder:
    """A loaded embedder whose ``embed`` is the scoring path (:func:`credspark.models.bundle.inference_embed`).

    The training job trains and evaluates the focal XGBoost on these embeddings, so its test metrics and the
    stored training distributions of ``pd`` are those of the network the nightly scoring job runs.
    """

    def __init__(self, model: Any) -> None:
        from credspark.models.bundle import inference_embed

        self.model = model
        self.embed = inference_embed(model)


@dataclass(frozen=True)
class ScoreColumn:
    """One XGBoost score to add: ``out_col = sigmoid(margin(features_col))``.

    Attributes:
        out_col: Output column (double).
        features_col: Input array<float> column.
        key: SHA-256 of the booster's UBJSON bytes (the cache key and the lookup into the loaded bytes).
        width: Length of the feature arrays.
    """

    out_col: str
    features_col: str
    key: str
    width: int


def score_frame(pdf: pd.DataFrame, boosters: Mapping[str, Any], columns: Sequence[ScoreColumn],
                keep: Sequence[str]) -> pd.DataFrame:
    """The ``keep`` columns plus one probability column per :class:`ScoreColumn`.

    Margins go through a stable sigmoid, so custom-objective boosters (whose output is the raw margin) and
    ``binary:logistic`` boosters give probabilities alike.

    Args:
        pdf: Rows with the feature array columns.
        boosters: ``{key: xgboost.Booster}``.
        columns: The scores to compute.
        keep: Columns copied to the output.

    Returns:
        A new frame.
    """
    import xgboost as xgb

    out = pdf[list(keep)].reset_index(drop=True)
    for c in columns:
        if len(pdf) == 0:
            out[c.out_col] = pd.Series([], dtype=np.float64)
            continue
        X = stack_array_column(pdf[c.features_col], c.width, np.float32, c.features_col)
        # The column layout is fixed by construction (names are not shipped with the arrays).
        margin = boosters[c.key].predict(xgb.DMatrix(X), output_margin=True, validate_features=False)
        margin = margin.astype(np.float64)
        out[c.out_col] = np.exp(-np.logaddexp(0.0, -margin))
    return out


def score_partition(
    frames: Iterator[pd.DataFrame],
    columns: Sequence[ScoreColumn],
    keep: Sequence[str],
    load_models: Callable[[], Mapping[str, bytes]],
    nthread: int = 1,
) -> Iterator[pd.DataFrame]:
    """The ``mapInPandas`` body: add XGBoost probabilities with (cached) boosters.

    Args:
        frames: This partition's frames.
        columns: The scores to add.
        keep: Columns copied to the output.
        load_models: Returns ``{key: UBJSON bytes}``; called only for boosters not cached in this process.
        nthread: XGBoost threads.

    Yields:
        One output frame per input frame.
    """
    boosters = {c.key: cached_model(c.key, lambda k=c.key: load_booster(load_models()[k], nthread)) for c in columns}
    for pdf in frames:
        yield score_frame(pdf, boosters, columns, keep)
