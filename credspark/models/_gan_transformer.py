"""Data transformer for the tabular GANs: rows <-> the generator's output space.

A customer row is flattened into one vector of columns:

* the ``n_static`` static columns, kinds taken from the :class:`~credspark.models.spec.FeatureSpec`;
* the ``T * C`` dynamic values, month-major (``dynamic.reshape(n, T * C)``), named ``"{channel}@{t}"``;
* one column ``n_observed_months`` in ``[0, T]`` that encodes the month mask (the trailing ``n`` months
  are observed).

A static-only spec (no channels, ``T = 0``) has no dynamic values and a ``n_observed_months`` of one value,
0: the rows are their static columns, and the generator's output for that column is a constant one-hot.

Each column is encoded in one of two ways:

* ``mode``: mode-specific normalisation as in CTGAN (Xu et al., 2019). A variational Gaussian mixture
  (sklearn ``BayesianGaussianMixture``) is fitted per column on a subsample; modes whose weight falls
  under a threshold are dropped. A value ``x`` is assigned the most likely mode ``k`` and encoded as the
  scalar ``clip((x - mu_k) / (4 sigma_k), -1, 1)`` followed by a one-hot of ``k``. Used for
  continuous and integer columns (integers are rounded back on the way out).
* ``onehot``: one-hot over a fixed list of values. Used for categorical and binary static columns
  (their codes come from the spec), for ``n_observed_months`` (values ``0..T``) and for numeric
  columns with very few distinct training values, where a mixture fit would be degenerate.

Only numbers are kept once fitted (mixture weights, means, standard deviations, value lists, bounds),
so the state is written to JSON by :meth:`GanDataTransformer.to_dict` and nothing is pickled. Mode
assignment is computed from these numbers too, so a transformer rebuilt from its dict transforms
exactly like the original.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import BayesianGaussianMixture

from credspark.models.spec import FeatureSpec

__all__ = ["ColumnTransform", "GanDataTransformer", "Span", "mask_from_counts", "observed_counts"]

MASK_COLUMN = "n_observed_months"

# The scalar within a mode is (x - mu) / (SIGMA_SCALE * sigma), as in CTGAN.
SIGMA_SCALE = 4.0


class Span(NamedTuple):
    """A block of the transformed vector that gets one output activation.

    Attributes:
        start: Index of the block's first column.
        width: Number of columns.
        activation: ``"tanh"`` for a within-mode scalar, ``"softmax"`` for a one-hot block.
    """

    start: int
    width: int
    activation: str


@dataclass(frozen=True)
class ColumnTransform:
    """The fitted encoding of one flattened column (numbers only, JSON-safe).

    Attributes:
        name: Column name (static name, ``"{channel}@{t}"`` or ``n_observed_months``).
        encoding: ``"mode"`` (scalar + mode one-hot) or ``"onehot"``.
        integral: Whether decoded values are rounded to integers.
        lower: Lowest decoded value (spec bound, else training minimum).
        upper: Highest decoded value (spec bound, else training maximum).
        means: Mode means (``mode`` encoding).
        stds: Mode standard deviations (``mode`` encoding).
        weights: Mode weights, summing to one (``mode`` encoding).
        values: The values of the one-hot positions (``onehot`` encoding).
        fill: Value encoded in place of a masked month (dynamic columns only): a typical observed value,
            so that masked entries stay inside the mixture's support.
    """

    name: str
    encoding: str
    integral: bool
    lower: float
    upper: float
    means: tuple[float, ...] = ()
    stds: tuple[float, ...] = ()
    weights: tuple[float, ...] = ()
    values: tuple[float, ...] = ()
    fill: float = 0.0

    @property
    def width(self) -> int:
        """Number of columns this column takes in the transformed vector."""
        return 1 + len(self.means) if self.encoding == "mode" else len(self.values)

    def spans(self, start: int) -> list[Span]:
        """Output spans of this column when it starts at ``start``."""
        if self.encoding == "mode":
            return [Span(start, 1, "tanh"), Span(start + 1, len(self.means), "softmax")]
        return [Span(start, len(self.values), "softmax")]

    def encode(self, x: np.ndarray) -> np.ndarray:
        """Encode a 1-d array of values into an ``(n, width)`` block."""
        if self.encoding == "onehot":
            values = np.asarray(self.values)
            # Nearest listed value: exact for training data, sensible for unseen numeric values.
            idx = np.abs(x[:, None] - values[None, :]).argmin(axis=1)
            return np.eye(len(values))[idx]
        means, stds = np.asarray(self.means), np.asarray(self.stds)
        mode = _most_likely_mode(x, np.asarray(self.weights), means, stds)
        scalar = np.clip((x - means[mode]) / (SIGMA_SCALE * stds[mode]), -1.0, 1.0)
        out = np.zeros((len(x), self.width))
        out[:, 0] = scalar
        out[np.arange(len(x)), 1 + mode] = 1.0
        return out

    def decode(self, block: np.ndarray) -> np.ndarray:
        """Decode an ``(n, width)`` block (any real numbers) into valid values."""
        if self.encoding == "onehot":
            x = np.asarray(self.values)[block.argmax(axis=1)]
        else:
            mode = block[:, 1:].argmax(axis=1)
            scalar = np.clip(block[:, 0], -1.0, 1.0)
            x = scalar * SIGMA_SCALE * np.asarray(self.stds)[mode] + np.asarray(self.means)[mode]
        if self.integral:
            return np.clip(np.round(x), math.ceil(self.lower), math.floor(self.upper))
        return np.clip(x, self.lower, self.upper)


def _most_likely_mode(x: np.ndarray, weights: np.ndarray, means: np.ndarray, stds: np.ndarray) -> np.ndarray:
    """Index of the mode with the highest posterior weight for each value (argmax, deterministic)."""
    z = (x[:, None] - means[None, :]) / stds[None, :]
    log_post = np.log(weights)[None, :] - np.log(stds)[None, :] - 0.5 * z * z
    return log_post.argmax(axis=1)


def observed_counts(mask: np.ndarray) -> np.ndarray:
    """Number of observed months per row; checks that the observed months are the trailing ones.

    Args:
        mask: ``(n, T)`` array of 0/1 (or bool).

    Returns:
        ``(n,)`` int64 array of counts in ``[0, T]``.

    Raises:
        ValueError: If a row's observed months are not a trailing block.
    """
    m = np.asarray(mask).astype(bool)
    counts = m.sum(axis=1).astype(np.int64)
    if not np.array_equal(mask_from_counts(counts, m.shape[1]).astype(bool), m):
        bad = int(np.flatnonzero((mask_from_counts(counts, m.shape[1]).astype(bool) != m).any(axis=1))[0])
        raise ValueError(f"month mask of row {bad} is not a trailing block of observed months: {m[bad].astype(int)}")
    return counts


def mask_from_counts(counts: np.ndarray, T: int) -> np.ndarray:  # noqa: N803 - the spec's name
    """The ``(n, T)`` uint8 mask whose trailing ``counts[i]`` months are 1."""
    counts = np.asarray(counts).reshape(-1, 1)
    return (np.arange(T)[None, :] >= T - counts).astype(np.uint8)


class GanDataTransformer:
    """Encode static + dynamic + mask rows into the GAN's vector space and back.

    Args:
        spec (FeatureSpec): Feature spec giving the static kinds, bounds and categories, the channels and ``T``.
        max_modes (int): Most mixture components per column. Defaults to 10.
        weight_threshold (float): Modes with a smaller weight are dropped. Defaults to 0.005.
        max_fit_rows (int): Each mixture is fitted on at most this many rows (a random subsample), which
            keeps fitting ~140 columns to seconds. Defaults to 2000.
        discrete_threshold (int): Numeric columns with at most this many distinct training values are
            one-hot encoded over those values instead of getting a (degenerate) mixture. Defaults to 2.
        max_iter (int): Iteration limit of each mixture fit. Defaults to 100.
        random_state (int | None): Seed for the subsamples and the mixture fits. Defaults to None.

    Fitted attributes: ``columns_`` (one :class:`ColumnTransform` per flattened column), ``output_info_``
    (the :class:`Span` layout for the generator's heads), ``output_dim_``, ``column_starts_``.
    """

    def __init__(
        self,
        spec: FeatureSpec,
        *,
        max_modes: int = 10,
        weight_threshold: float = 0.005,
        max_fit_rows: int = 2000,
        discrete_threshold: int = 2,
        max_iter: int = 100,
        random_state: int | None = None,
    ) -> None:
        self.spec = spec
        self.max_modes = max_modes
        self.weight_threshold = weight_threshold
        self.max_fit_rows = max_fit_rows
        self.discrete_threshold = discrete_threshold
        self.max_iter = max_iter
        self.random_state = random_state

    # ------------------------------------------------------------------ fitting
    def fit(self, static: np.ndarray, dynamic: np.ndarray, mask: np.ndarray | None = None) -> GanDataTransformer:
        """Fit one encoding per flattened column.

        Args:
            static (np.ndarray): ``(n, n_static)`` array, categoricals as integer codes.
            dynamic (np.ndarray): ``(n, T, C)`` array; masked months are ignored.
            mask (np.ndarray | None): ``(n, T)`` 0/1 array with trailing observed months; None means all
                observed. Defaults to None.

        Returns:
            GanDataTransformer: self.
        """
        static, dynamic, counts = self._validate(static, dynamic, mask)
        rng = np.random.default_rng(self.random_state)
        columns = [self._fit_static(j, static[:, j], rng) for j in range(self.spec.n_static)]
        T, C = self.spec.T, self.spec.C  # noqa: N806
        flat = dynamic.reshape(len(dynamic), T * C)
        for t in range(T):
            observed = counts >= T - t  # month t is observed when it is among the trailing counts
            for c in range(C):
                name = f"{self.spec.channels[c]}@{t}"
                columns.append(self._fit_numeric(name, flat[observed, t * C + c], None, None, False, rng))
        columns.append(
            ColumnTransform(MASK_COLUMN, "onehot", True, 0.0, float(T), values=tuple(float(v) for v in range(T + 1)))
        )
        self._set_columns(columns)
        return self

    def _fit_static(self, j: int, x: np.ndarray, rng: np.random.Generator) -> ColumnTransform:
        feat = self.spec.static[j]
        if feat.kind in ("categorical", "binary"):
            cats = feat.categories if feat.kind == "categorical" else (0, 1)
            unknown = np.setdiff1d(np.unique(x), np.asarray(cats, dtype=float))
            if unknown.size:
                raise ValueError(f"static column {feat.name!r}: values {unknown[:5].tolist()} not in {list(cats)}")
            return ColumnTransform(
                feat.name, "onehot", True, float(min(cats)), float(max(cats)), values=tuple(float(c) for c in cats)
            )
        return self._fit_numeric(feat.name, x, feat.lower, feat.upper, feat.kind == "integer", rng)

    def _fit_numeric(
        self,
        name: str,
        x: np.ndarray,
        lower: float | None,
        upper: float | None,
        integral: bool,
        rng: np.random.Generator,
    ) -> ColumnTransform:
        if x.size == 0:  # a month nobody has observed: it always decodes to 0 (and is masked anyway)
            return ColumnTransform(name, "onehot", integral, 0.0, 0.0, values=(0.0,))
        # Dynamic channels carry no kind in the spec: values that are all integral stay integral.
        integral = integral or bool(np.all(x == np.round(x)))
        lo = float(lower) if lower is not None else float(x.min())
        hi = float(upper) if upper is not None else float(x.max())
        fill = float(np.median(x))
        if integral:
            fill = float(np.round(fill))
        distinct = np.unique(x)
        if distinct.size <= self.discrete_threshold:
            return ColumnTransform(
                name, "onehot", integral, lo, hi, values=tuple(float(v) for v in distinct), fill=fill
            )
        sub = x if x.size <= self.max_fit_rows else rng.choice(x, self.max_fit_rows, replace=False)
        weights, means, stds = self._fit_mixture(sub, int(rng.integers(2**31 - 1)))
        return ColumnTransform(
            name,
            "mode",
            integral,
            lo,
            hi,
            means=tuple(means.tolist()),
            stds=tuple(stds.tolist()),
            weights=tuple(weights.tolist()),
            fill=fill,
        )

    def _fit_mixture(self, x: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Fit the variational mixture; return the (weights, means, stds) of the modes kept."""
        n_components = int(min(self.max_modes, np.unique(x).size))
        bgm = BayesianGaussianMixture(
            n_components=n_components,
            weight_concentration_prior_type="dirichlet_process",
            weight_concentration_prior=0.001,
            max_iter=self.max_iter,
            n_init=1,
            random_state=seed,
        )
        with warnings.catch_warnings():
            # Hitting max_iter on a subsample is expected and harmless for an encoding.
            warnings.simplefilter("ignore", ConvergenceWarning)
            bgm.fit(x.reshape(-1, 1))
        weights = bgm.weights_
        keep = weights > self.weight_threshold
        if not keep.any():
            keep = weights == weights.max()
        # reg_covar keeps variances positive; the floor guards against a zero-variance mode all the same.
        stds = np.sqrt(np.maximum(bgm.covariances_.reshape(-1), 1e-12))
        w = weights[keep] / weights[keep].sum()
        return w, bgm.means_.reshape(-1)[keep], stds[keep]

    def _set_columns(self, columns: list[ColumnTransform]) -> None:
        self.columns_ = columns
        spans: list[Span] = []
        starts: list[int] = []
        start = 0
        for col in columns:
            starts.append(start)
            spans.extend(col.spans(start))
            start += col.width
        self.column_starts_ = starts
        self.output_info_ = spans
        self.output_dim_ = start

    # ------------------------------------------------------------------ transforms
    def transform(self, static: np.ndarray, dynamic: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """Encode rows into the GAN's vector space.

        Args:
            static (np.ndarray): ``(n, n_static)`` array.
            dynamic (np.ndarray): ``(n, T, C)`` array.
            mask (np.ndarray | None): ``(n, T)`` mask with trailing observed months, or None for all observed.
                Defaults to None.

        Returns:
            np.ndarray: ``(n, output_dim_)`` float32 array.
        """
        static, dynamic, counts = self._validate(static, dynamic, mask)
        n = len(static)
        T, C = self.spec.T, self.spec.C  # noqa: N806
        dyn = dynamic.reshape(n, T * C).copy()
        observed = mask_from_counts(counts, T).astype(bool)
        for t in range(T):
            for c in range(C):
                dyn[~observed[:, t], t * C + c] = self.columns_[self.spec.n_static + t * C + c].fill
        flat = np.concatenate([static, dyn, counts[:, None].astype(float)], axis=1)
        out = np.empty((n, self.output_dim_), dtype=np.float32)
        for j, col in enumerate(self.columns_):
            s = self.column_starts_[j]
            out[:, s : s + col.width] = col.encode(flat[:, j])
        return out

    def inverse_transform(self, data: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Decode vectors (generator output or any real numbers) into valid rows.

        Scalars are clipped to ``[-1, 1]`` and each one-hot block is read by its argmax, so any input
        decodes to a valid row: categoricals among their codes, integers integral, values within their
        bounds, a trailing month mask, and 0 in masked months.

        Args:
            data (np.ndarray): ``(n, output_dim_)`` array.

        Returns:
            tuple[np.ndarray, np.ndarray, np.ndarray]: ``(static (n, n_static) float64,
            dynamic (n, T, C) float64, mask (n, T) uint8)``.
        """
        data = np.asarray(data, dtype=np.float64)
        if data.ndim != 2 or data.shape[1] != self.output_dim_:
            raise ValueError(f"expected an (n, {self.output_dim_}) array, got {data.shape}")
        flat = np.empty((len(data), len(self.columns_)))
        for j, col in enumerate(self.columns_):
            s = self.column_starts_[j]
            flat[:, j] = col.decode(data[:, s : s + col.width])
        S, T, C = self.spec.n_static, self.spec.T, self.spec.C  # noqa: N806
        mask = mask_from_counts(flat[:, -1].astype(np.int64), T)
        dynamic = flat[:, S : S + T * C].reshape(len(data), T, C) * mask[:, :, None]
        return flat[:, :S], dynamic + 0.0, mask  # + 0.0 turns -0.0 of masked negatives into 0.0

    # ------------------------------------------------------------------ helpers
    def _validate(
        self, static: np.ndarray, dynamic: np.ndarray, mask: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        static = np.asarray(static, dtype=np.float64)
        dynamic = np.asarray(dynamic, dtype=np.float64)
        if mask is None:
            mask = np.ones((len(static), self.spec.T), dtype=np.uint8)
        self.spec.validate_arrays(static, dynamic, np.asarray(mask))
        if not (np.isfinite(static).all() and np.isfinite(dynamic).all()):
            raise ValueError("static and dynamic blocks must be finite (no NaN or inf)")
        return static, dynamic, observed_counts(mask)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe state: constructor parameters, spec and the fitted numbers of every column."""
        return {
            "params": {
                "max_modes": self.max_modes,
                "weight_threshold": self.weight_threshold,
                "max_fit_rows": self.max_fit_rows,
                "discrete_threshold": self.discrete_threshold,
                "max_iter": self.max_iter,
                "random_state": self.random_state,
            },
            "spec": self.spec.to_dict(),
            # Derived from the columns; written so that readers of the JSON see the generator's layout.
            "output_info": [list(span) for span in self.output_info_],
            "columns": [
                dict(asdict(c), means=list(c.means), stds=list(c.stds), weights=list(c.weights), values=list(c.values))
                for c in self.columns_
            ],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GanDataTransformer:
        """Rebuild a fitted transformer from :meth:`to_dict` output."""
        obj = cls(FeatureSpec.from_dict(d["spec"]), **d["params"])
        columns = [
            ColumnTransform(
                name=c["name"],
                encoding=c["encoding"],
                integral=bool(c["integral"]),
                lower=float(c["lower"]),
                upper=float(c["upper"]),
                means=tuple(float(v) for v in c["means"]),
                stds=tuple(float(v) for v in c["stds"]),
                weights=tuple(float(v) for v in c["weights"]),
                values=tuple(float(v) for v in c["values"]),
                fill=float(c["fill"]),
            )
            for c in d["columns"]
        ]
        obj._set_columns(columns)
        if "output_info" in d and [list(span) for span in obj.output_info_] != d["output_info"]:
            raise ValueError("transformer state: the stored output layout does not match its columns")
        return obj
