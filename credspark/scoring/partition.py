"""The partition scorer: feature rows in, scores out. Runs inside ``mapInPandas``; imports no pyspark.

How a bundle reaches the executors: the driver reads the bundle's files into a ``{name: bytes}`` mapping
(:func:`read_bundle_files`), verifies exactly those bytes (:func:`load_bundle_from_files`; both in
:mod:`credspark.scoring._bundle_bytes`) and broadcasts the mapping. On a Python worker the first task writes the
bytes into a private temporary directory and loads them with :func:`credspark.models.bundle.load_bundle`
(hashes and FeatureSpec verified again), then removes the directory. The loaded model is cached under a
module-level name keyed by the SHA-256 of the manifest (which lists the SHA-256 of every other file, so it names
the whole bundle's content): later tasks on a reused worker find it there. (Keying by the broadcast object's id
reloaded the model on every task: each task unpickles a new object.)

Inside a task, each Arrow batch is cut into model batches (``model_batch_size`` rows) that go through the
ResNet-LSTM embedding and the focal XGBoost; array columns become arrays with
:func:`credspark.models.inputs.arrays_from_frame` (no per-row Python loop).

Cheaper arithmetic, same scores (docs/scoring.md, Performance): the embedding runs through the embedder's
``inference_embedder()`` when it has one (the ResNet-LSTM's batch norms folded into its convolutions, built in
memory from the verified weights and checked against the eager network); and :func:`tune_scoring_process`
(:mod:`credspark.scoring._process`) keeps the worker's heap resident (glibc) and numpy's BLAS on one thread.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol

import numpy as np
import pandas as pd
import xgboost as xgb

from credspark.models.bundle import Bundle, BundleError, inference_embed
from credspark.models.inputs import arrays_from_frame
from credspark.models.spec import FeatureSpec
from credspark.scoring._bundle_bytes import BundleFiles, bundle_digest, load_bundle_from_files, read_bundle_files
from credspark.scoring._process import tune_scoring_process
from credspark.scoring.attribution import embedding_attribution
from credspark.scoring.reasons import ReasonMap, build_reason_map, reason_grouping, top_reasons
from credspark.scoring.scorecard import ScorecardScale, points_from_pd, risk_bands
from credspark.worker_cache import WorkerCache

__all__ = [
    "BundleFiles",
    "ScoreParams",
    "ScoringModel",
    "PartitionScorer",
    "InjectedFailureError",
    "read_bundle_files",
    "bundle_digest",
    "load_bundle_from_files",
    "cached_model",
    "tune_scoring_process",
    "score_frame",
    "output_columns",
]


#: Models kept per Python worker (a reused worker may see a new bundle version; old ones are evicted).
_MODELS: WorkerCache[ScoringModel] = WorkerCache(2)


class InjectedFailureError(RuntimeError):
    """Raised by the fault-injection hook (``credspark.faults.SCORE_FAIL_AFTER_BATCHES``), for tests only."""


class _HasValue(Protocol):
    value: BundleFiles


# ---------------------------------------------------------------------------------------------- params
@dataclass(frozen=True)
class ScoreParams:
    """Everything the partition code needs besides the bundle (small and picklable).

    Args:
        digest: :func:`bundle_digest` of the bundle to use (the cache key).
        spec: The feature table's FeatureSpec as a dict (checked against the bundle on the worker too).
        scale: Scorecard scaling.
        band_cutoffs: Ascending score cut-offs.
        band_labels: Band names, riskiest first.
        n_reasons: Reason columns.
        model_batch_size: Rows per forward pass.
        reason_contribs: ``approx`` (Saabas) or ``exact`` (TreeSHAP) XGBoost contributions.
        torch_threads: Torch threads per worker (None leaves torch's setting).
        xgb_threads: XGBoost threads per worker (None leaves the bundle's setting).
        reason_groups: ``score.reason_groups`` as ``((group, (member, ...)), ...)``
            (:func:`~credspark.scoring.reasons.reason_grouping`).
        fail_after_batches: Test hook: raise :class:`InjectedFailureError` after this many model batches of a task.
    """

    digest: str
    spec: dict[str, Any]
    scale: ScorecardScale = field(default_factory=ScorecardScale)
    band_cutoffs: tuple[float, ...] = (500.0, 540.0, 580.0, 620.0)
    band_labels: tuple[str, ...] = ("E", "D", "C", "B", "A")
    n_reasons: int = 3
    model_batch_size: int = 1000
    reason_contribs: str = "approx"
    torch_threads: int | None = 1
    xgb_threads: int | None = 1
    reason_groups: tuple[tuple[str, tuple[str, ...]], ...] = ()
    fail_after_batches: int | None = None


def output_columns(n_reasons: int) -> list[str]:
    """Columns of :func:`score_frame`'s output, in order."""
    return ["customer_id", "pd", "score", "risk_band", *(f"reason_{i + 1}" for i in range(n_reasons))]


# ----------------------------------------------------------------------------------------------- model
class ScoringModel:
    """A loaded bundle plus what scoring derives from it once (reason map, thread settings).

    Args:
        bundle: The verified bundle.
        xgb_threads: XGBoost threads (None keeps the bundle's ``n_jobs``).
        reason_groups: Configured reason groups ``{group: members}`` (``score.reason_groups``).
    """

    def __init__(self, bundle: Bundle, *, xgb_threads: int | None = 1,
                 reason_groups: Mapping[str, Sequence[str]] = MappingProxyType({})) -> None:
        self.bundle = bundle
        self.spec = bundle.spec
        if xgb_threads is not None:
            bundle.classifier.n_jobs = int(xgb_threads)
            bundle.classifier.booster_.set_param({"nthread": int(xgb_threads)})
        attribution = embedding_attribution(bundle.embedder) if bundle.embedding_dim else None
        self.reason_map: ReasonMap = build_reason_map(bundle.feature_names, bundle.spec, attribution,
                                                      reason_grouping(bundle.spec, reason_groups))
        self._embed: Callable[..., np.ndarray] | None = None  # built on first use (the driver never embeds)
        self._embed_takes_batch = False

    @property
    def embed(self) -> Callable[..., np.ndarray]:
        """The embedding function scoring uses: the embedder's ``inference_embedder()`` if it has one, else ``embed``.

        The inference embedder gives the same embeddings as the eager ``embed`` up to float32 rounding
        (scores within 1e-6; see :meth:`credspark.models.resnet_lstm.ResNetLSTM.inference_embedder`).
        """
        if self._embed is None:
            embed = inference_embed(self.bundle.embedder)
            self._embed_takes_batch = "batch_size" in inspect.signature(embed).parameters
            self._embed = embed
        return self._embed

    def _classifier_input(self, static: np.ndarray, dynamic: np.ndarray, mask: np.ndarray) -> np.ndarray:
        b = self.bundle
        if b.embedder is None:  # a tree-only bundle reads the static block alone
            return static
        embed = self.embed
        if self._embed_takes_batch:  # one forward pass for the whole model batch
            emb = embed(static, dynamic, mask, batch_size=max(1, static.shape[0]))
        else:
            emb = embed(static, dynamic, mask)
        emb = np.asarray(emb, dtype=np.float32)
        if emb.shape != (static.shape[0], b.embedding_dim):
            raise BundleError(f"embedder returned {emb.shape}, expected ({static.shape[0]}, {b.embedding_dim})")
        return np.hstack([emb, static]) if b.use_raw_static else emb

    def score_arrays(
        self, static: np.ndarray, dynamic: np.ndarray, mask: np.ndarray, *, contribs: str = "approx"
    ) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities of default and reason-group scores of one model batch.

        Args:
            static: ``(n, n_static)``.
            dynamic: ``(n, T, C)``.
            mask: ``(n, T)``.
            contribs: ``approx`` or ``exact`` XGBoost contributions. Defaults to ``approx``.

        Returns:
            ``pd`` ``(n,)`` float64 and group scores ``(n, len(reason_map.groups))``.
        """
        self.spec.validate_arrays(static, dynamic, mask)
        X = self._classifier_input(static, dynamic, mask)
        clf = self.bundle.classifier
        # The names the booster was trained with (xgboost refuses a DMatrix whose names differ or are missing).
        dm = xgb.DMatrix(X, feature_names=clf.booster_.feature_names, nthread=clf.n_jobs)  # one for both calls
        margin = clf.booster_.predict(dm, output_margin=True).astype(np.float64)
        phi = clf.booster_.predict(dm, pred_contribs=True, approx_contribs=contribs == "approx")
        # The bundle's calibration (Bundle.predict_proba uses the same map, so in-process and Spark pd agree).
        pd_ = self.bundle.calibrator.pd_from_margin(margin)
        return pd_, self.reason_map.scores(phi)


def cached_model(params: ScoreParams, files: _HasValue | BundleFiles) -> ScoringModel:
    """The worker's model for ``params.digest``, loading it from ``files`` on the first call only.

    Args:
        params: Scoring parameters (digest, spec, threads).
        files: A Spark Broadcast of :data:`BundleFiles` (anything with ``.value``) or the mapping itself;
            only read on a cache miss.

    Returns:
        The cached :class:`ScoringModel`.
    """
    tune_scoring_process()
    if params.torch_threads is not None:
        import torch

        if torch.get_num_threads() != params.torch_threads:
            torch.set_num_threads(int(params.torch_threads))

    def load() -> ScoringModel:
        raw = files if isinstance(files, Mapping) else files.value  # a Broadcast: fetched on a cache miss only
        if bundle_digest(raw) != params.digest:
            raise BundleError("the shipped bundle bytes do not match the digest the driver verified")
        bundle = load_bundle_from_files(raw, expected_spec=FeatureSpec.from_dict(params.spec))
        return ScoringModel(bundle, xgb_threads=params.xgb_threads, reason_groups=dict(params.reason_groups))

    # The reason groups are part of the key: the same bundle scored under another grouping is another model.
    return _MODELS.get(f"{params.digest}|{params.reason_groups!r}" if params.reason_groups else params.digest, load)


# ----------------------------------------------------------------------------------------------- score
class _BatchCounter:
    def __init__(self, limit: int | None) -> None:
        self.limit, self.done = limit, 0

    def tick(self) -> None:
        if self.limit is not None and self.done >= self.limit:
            raise InjectedFailureError(
                f"injected failure after {self.done} model batches (CREDSPARK_TEST_SCORE_FAIL_AFTER_BATCHES)")
        self.done += 1


def score_frame(
    pdf: pd.DataFrame, model: ScoringModel, params: ScoreParams, *, counter: _BatchCounter | None = None
) -> pd.DataFrame:
    """Score feature rows.

    Args:
        pdf: Feature rows: ``customer_id``, the static columns, ``seq``, ``seq_mask``.
        model: The loaded model.
        params: Scoring parameters.
        counter: Fault-injection counter shared by a task's batches (None: no injection).

    Returns:
        One row per input row with :func:`output_columns`.
    """
    n = len(pdf)
    pd_ = np.empty(n, dtype=np.float64)
    group_scores = np.empty((n, len(model.reason_map.groups)), dtype=np.float64)
    bs = max(1, int(params.model_batch_size))
    for start in range(0, n, bs):
        if counter is not None:
            counter.tick()
        chunk = pdf.iloc[start : start + bs]
        static, dynamic, mask = arrays_from_frame(chunk, model.spec)
        p, g = model.score_arrays(static, dynamic, mask, contribs=params.reason_contribs)
        pd_[start : start + len(chunk)] = p
        group_scores[start : start + len(chunk)] = g
    points = points_from_pd(pd_, params.scale)
    out = {
        "customer_id": pdf["customer_id"].to_numpy(),
        "pd": pd_,
        "score": points,
        "risk_band": risk_bands(points, params.band_cutoffs, params.band_labels),
    }
    for i, col in enumerate(top_reasons(group_scores, model.reason_map.groups, params.n_reasons)):
        out[f"reason_{i + 1}"] = col
    return pd.DataFrame(out, columns=output_columns(params.n_reasons))


@dataclass(frozen=True)
class PartitionScorer:
    """The ``mapInPandas`` function: ``Iterator[pd.DataFrame] -> Iterator[pd.DataFrame]``.

    A small top-level callable holding only the broadcast handle and the parameters, so nothing else is
    pickled to the executors.

    Args:
        files: A Spark Broadcast of the bundle's :data:`BundleFiles` (or the mapping itself, in tests).
        params: Scoring parameters.
        keep: Input columns copied unchanged after :func:`output_columns` (the training job keeps each row's
            ``as_of_date`` to join the scores back to its split). Defaults to none.
    """

    files: Any
    params: ScoreParams
    keep: tuple[str, ...] = ()

    def __call__(self, batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        """Score every batch of one partition."""
        model = cached_model(self.params, self.files)
        counter = _BatchCounter(self.params.fail_after_batches)
        for pdf in batches:
            out = score_frame(pdf, model, self.params, counter=counter)
            for col in self.keep:
                out[col] = pdf[col].to_numpy()
            yield out
