"""Input scaling for the neural models: static one-hot + robust standardisation, dynamic per-channel scaling.

Rules (fitted on training data, stored as plain numbers so a saved model is JSON + weights only):

- **categorical** static columns are one-hot expanded over the codes listed in the FeatureSpec; a code not
  in the list, or a non-finite value, gives an all-zero block.
- **binary** static columns pass through as 0/1.
- **continuous / integer** static columns, and every dynamic channel: a column "looks heavy tailed" when
  the absolute sample skewness of its finite training values exceeds ``HEAVY_TAIL_SKEW`` (2.0); such a
  column is first mapped by the signed log ``sign(x) * log1p(|x|)`` (money amounts: bills, payments).
  Then it is standardised with the training mean and standard deviation (a constant column gets std 1).
  Dynamic statistics use only observed months (mask 1).
- **non-finite inputs** (NaN, +-inf) become 0 *after* scaling, i.e. the training mean; scaled values are
  then clipped to ``[-CLIP, CLIP]`` so a wild value at scoring time cannot dominate the network.
- **masked months** are 0 in the scaled dynamic block whatever the raw values were.

The output never contains NaN or inf.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from credspark.models.spec import FeatureSpec

__all__ = ["InputPreprocessor", "signed_log1p", "HEAVY_TAIL_SKEW", "CLIP"]

#: Absolute skewness above which a numeric column gets the signed log before standardising.
HEAVY_TAIL_SKEW = 2.0
#: Scaled values are clipped to [-CLIP, CLIP].
CLIP = 10.0


def signed_log1p(x: np.ndarray) -> np.ndarray:
    """Return ``sign(x) * log1p(|x|)`` (keeps the sign of negative balances, compresses large ones)."""
    return np.sign(x) * np.log1p(np.abs(x))


def _fit_numeric(values: np.ndarray) -> tuple[bool, float, float]:
    """Choose (use_log, mean, std) for one numeric column from its values (non-finite ignored)."""
    x = values[np.isfinite(values)].astype(np.float64)
    if x.size == 0:
        return False, 0.0, 1.0
    use_log = False
    sd = float(x.std())
    if x.size >= 3 and sd > 0:
        skew = float(np.mean((x - x.mean()) ** 3) / sd**3)
        use_log = abs(skew) > HEAVY_TAIL_SKEW
    if use_log:
        x = signed_log1p(x)
    mean, std = float(x.mean()), float(x.std())
    return use_log, mean, (std if std > 0 and np.isfinite(std) else 1.0)


def _scale(x: np.ndarray, use_log: np.ndarray | bool, mean: np.ndarray | float, std: np.ndarray | float) -> np.ndarray:
    """Apply (optional signed log) + standardisation; non-finite -> 0, then clip. Works column-wise."""
    with np.errstate(invalid="ignore", over="ignore"):
        x = np.where(use_log, signed_log1p(x), x)
        z = (x - mean) / std
    z[~np.isfinite(z)] = 0.0
    np.clip(z, -CLIP, CLIP, out=z)
    return z


class InputPreprocessor:
    """Fits and applies the scaling described in the module docstring.

    Attributes (after ``fit``):
        static_columns_ (list[dict]): One entry per static feature: ``name``, ``kind``, and
            ``categories`` (categorical) or ``log``/``mean``/``std`` (continuous, integer).
        dynamic_log_ (list[bool]), dynamic_mean_ (list[float]), dynamic_std_ (list[float]): Per channel.
        n_static_out_ (int): Width of the scaled static vector.
    """

    def fit(self, spec: FeatureSpec, static: np.ndarray, dynamic: np.ndarray, mask: np.ndarray) -> InputPreprocessor:
        """Learn the scaling from training arrays.

        Args:
            spec (FeatureSpec): Describes the columns; categorical codes come from it.
            static (np.ndarray): ``(n, n_static)`` raw static block.
            dynamic (np.ndarray): ``(n, T, C)`` raw dynamic block.
            mask (np.ndarray): ``(n, T)``, 1 for observed months.

        Returns:
            InputPreprocessor: self.
        """
        spec.validate_arrays(static, dynamic, mask)
        static = np.asarray(static, dtype=np.float64)
        cols: list[dict[str, Any]] = []
        for j, feat in enumerate(spec.static):
            entry: dict[str, Any] = {"name": feat.name, "kind": feat.kind}
            if feat.kind == "categorical":
                entry["categories"] = [int(c) for c in feat.categories]
            elif feat.kind in ("continuous", "integer"):
                use_log, mean, std = _fit_numeric(static[:, j])
                entry.update(log=use_log, mean=mean, std=std)
            cols.append(entry)
        self.static_columns_ = cols
        observed = np.asarray(dynamic, dtype=np.float64)[np.asarray(mask).astype(bool)]  # (n_obs, C)
        stats = [_fit_numeric(observed[:, c]) for c in range(spec.C)]
        self.dynamic_log_ = [s[0] for s in stats]
        self.dynamic_mean_ = [s[1] for s in stats]
        self.dynamic_std_ = [s[2] for s in stats]
        self._finish()
        return self

    def _finish(self) -> None:
        self.n_static_out_ = sum(
            len(c["categories"]) if c["kind"] == "categorical" else 1 for c in self.static_columns_
        )
        self._dyn_log = np.asarray(self.dynamic_log_, dtype=bool)
        self._dyn_mean = np.asarray(self.dynamic_mean_, dtype=np.float64)
        self._dyn_std = np.asarray(self.dynamic_std_, dtype=np.float64)

    def transform_static(self, static: np.ndarray) -> np.ndarray:
        """Scale the static block.

        Args:
            static (np.ndarray): ``(n, n_static)`` raw values, categoricals as integer codes.

        Returns:
            np.ndarray: ``(n, n_static_out_)`` float32, finite.
        """
        static = np.asarray(static, dtype=np.float64)
        if static.ndim != 2 or static.shape[1] != len(self.static_columns_):
            raise ValueError(f"static block: expected (n, {len(self.static_columns_)}), got {static.shape}")
        out = np.empty((static.shape[0], self.n_static_out_), dtype=np.float32)
        k = 0
        for j, col in enumerate(self.static_columns_):
            x = static[:, j]
            if col["kind"] == "categorical":
                cats = np.asarray(col["categories"], dtype=np.float64)
                # NaN compares unequal to every code, so missing values give an all-zero block.
                out[:, k : k + cats.size] = x[:, None] == cats[None, :]
                k += cats.size
                continue
            if col["kind"] == "binary":
                out[:, k] = np.where(np.isfinite(x), x, 0.0)
            else:
                out[:, k] = _scale(x.copy(), col["log"], col["mean"], col["std"])
            k += 1
        return out

    def transform_dynamic(self, dynamic: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Scale the dynamic block per channel; masked months become 0.

        Args:
            dynamic (np.ndarray): ``(n, T, C)`` raw values.
            mask (np.ndarray): ``(n, T)``, 1 for observed months.

        Returns:
            np.ndarray: ``(n, T, C)`` float32, finite.
        """
        dynamic = np.asarray(dynamic, dtype=np.float64)
        if dynamic.ndim != 3 or dynamic.shape[2] != self._dyn_mean.size:
            raise ValueError(f"dynamic block: expected (n, T, {self._dyn_mean.size}), got {dynamic.shape}")
        z = _scale(dynamic.copy(), self._dyn_log, self._dyn_mean, self._dyn_std)
        z[~np.asarray(mask).astype(bool)] = 0.0
        return z.astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe numbers describing the fitted scaling (inverse: :meth:`from_dict`)."""
        return {
            "static_columns": [dict(c) for c in self.static_columns_],
            "dynamic_log": [bool(v) for v in self.dynamic_log_],
            "dynamic_mean": [float(v) for v in self.dynamic_mean_],
            "dynamic_std": [float(v) for v in self.dynamic_std_],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> InputPreprocessor:
        """Rebuild a fitted preprocessor from :meth:`to_dict` output."""
        self = cls()
        self.static_columns_ = [dict(c) for c in d["static_columns"]]
        self.dynamic_log_ = [bool(v) for v in d["dynamic_log"]]
        self.dynamic_mean_ = [float(v) for v in d["dynamic_mean"]]
        self.dynamic_std_ = [float(v) for v in d["dynamic_std"]]
        self._finish()
        return self
