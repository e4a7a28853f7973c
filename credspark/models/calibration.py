"""Turning the focal XGBoost's scores into probabilities of default (post-hoc calibration).

Why it is needed: the focal loss down-weights well-classified rows and the training part holds generated
defaults (minority/majority 0.4 instead of the real ~0.28), so ``sigmoid(margin)`` ranks customers well but is
not a probability: on the UCI data it says 0.25 where 0.12 default. Risk teams read ``pd`` as a probability
(expected loss, provisions, cut-offs in odds), so the training job fits a one-dimensional map from the
booster's margin to the observed default rate on the **validation** part (real rows only, never the test
part), stores it in the bundle manifest, and scoring applies it.

Methods (``train.calibration``):

``platt``
    ``pd = sigmoid(slope * margin + intercept)`` fitted by maximum likelihood (Newton's method) with Platt's
    (1999) smoothed targets ``(N+ + 1) / (N+ + 2)`` and ``1 / (N- + 2)``. Two numbers, strictly increasing in
    the margin, so AUC, KS and the ranking (and the reason codes, which explain the margin) are unchanged.
``isotonic``
    A non-decreasing piecewise-linear map fitted by pool-adjacent-violators (scikit-learn's
    ``IsotonicRegression``), stored as knots and applied by linear interpolation, clipped at the ends. More
    flexible; it needs more validation rows and creates ties, so AUC can move slightly. A block of validation
    rows without a default would get pd 0 (and one of only defaults pd 1), so its values are bounded to
    :data:`ISOTONIC_PD_BOUNDS` (the 0.03% PD floor of the Basel framework for retail exposures).
``none``
    ``pd = sigmoid(margin)``, the booster's own output.

A :class:`Calibrator` is plain numbers: :meth:`Calibrator.to_dict` goes into the bundle manifest (JSON) and
:meth:`Calibrator.from_dict` checks every field when a bundle is read.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["CALIBRATION_METHODS", "Calibrator", "IDENTITY", "ISOTONIC_PD_BOUNDS", "fit_calibrator", "margin_from_pd"]

#: Methods :func:`fit_calibrator` knows.
CALIBRATION_METHODS = ("none", "platt", "isotonic")

#: Probabilities are clipped to [_P_EPS, 1 - _P_EPS] before taking log-odds (margin_from_pd).
_P_EPS = 1e-15

#: Range of an isotonic map's probabilities: no customer gets pd 0 or 1 from a block of validation rows that
#: happened to hold no default (or only defaults). 0.0003 is the Basel PD floor (0.03%).
ISOTONIC_PD_BOUNDS = (0.0003, 1.0 - 0.0003)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    # The same expression as FocalXGBClassifier.predict_proba and the scorer, so "none" changes nothing.
    return np.exp(-np.logaddexp(0.0, -z))


def margin_from_pd(pd: Any) -> np.ndarray:
    """Log-odds of probabilities (the booster's margin, recovered from ``sigmoid(margin)``).

    Exact up to float64 rounding for margins within about +-34; beyond that ``pd`` saturates and the margin is
    clipped at ``+-logit(1e-15)``.
    """
    p = np.clip(np.asarray(pd, dtype=np.float64), _P_EPS, 1.0 - _P_EPS)
    return np.log(p) - np.log1p(-p)


@dataclass(frozen=True)
class Calibrator:
    """A fitted margin -> probability map.

    Attributes:
        method: ``none``, ``platt`` or ``isotonic``.
        slope: Platt slope (> 0).
        intercept: Platt intercept.
        knots_margin: Isotonic knots on the margin axis, strictly increasing.
        knots_pd: Isotonic probabilities at the knots, non-decreasing, in [0, 1].
        n_fit: Rows the map was fitted on (0 for ``none``).
        positive_rate: Default rate of those rows (information only).
    """

    method: str = "none"
    slope: float = 1.0
    intercept: float = 0.0
    knots_margin: tuple[float, ...] = ()
    knots_pd: tuple[float, ...] = ()
    n_fit: int = 0
    positive_rate: float | None = None

    def __post_init__(self) -> None:
        _check(self, "calibration")

    def pd_from_margin(self, margin: Any) -> np.ndarray:
        """Probabilities of default for booster margins.

        Args:
            margin: Raw booster margins (log-odds of the uncalibrated score).

        Returns:
            float64 probabilities, the same shape as ``margin``.
        """
        m = np.asarray(margin, dtype=np.float64)
        if self.method == "none":
            return _sigmoid(m)
        if self.method == "platt":
            return _sigmoid(self.slope * m + self.intercept)
        return np.interp(m, np.asarray(self.knots_margin), np.asarray(self.knots_pd))

    def pd_from_raw_pd(self, raw_pd: Any) -> np.ndarray:
        """Calibrated probabilities from uncalibrated ones (``sigmoid(margin)``), via :func:`margin_from_pd`."""
        if self.method == "none":
            return np.asarray(raw_pd, dtype=np.float64)
        return self.pd_from_margin(margin_from_pd(raw_pd))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (what the bundle manifest stores)."""
        out: dict[str, Any] = {"method": self.method, "n_fit": self.n_fit, "positive_rate": self.positive_rate}
        if self.method == "platt":
            out |= {"slope": self.slope, "intercept": self.intercept}
        elif self.method == "isotonic":
            out |= {"knots_margin": list(self.knots_margin), "knots_pd": list(self.knots_pd)}
        return out

    @classmethod
    def from_dict(cls, d: Any, where: str = "calibration") -> Calibrator:
        """Rebuild and check a calibrator written by :meth:`to_dict`.

        Args:
            d: The mapping.
            where: Name used in error messages (e.g. ``"<bundle>/manifest.json field 'calibration'"``).

        Raises:
            ValueError: Naming ``where`` and the field, for anything that is not a valid calibrator.
        """
        if not isinstance(d, Mapping):
            raise ValueError(f"{where}: expected an object, got {type(d).__name__}")
        method = d.get("method")
        if method not in CALIBRATION_METHODS:
            raise ValueError(f"{where}: field 'method' is {method!r}, expected one of {list(CALIBRATION_METHODS)}")
        try:
            kw: dict[str, Any] = {"method": method, "n_fit": int(d.get("n_fit", 0))}
            rate = d.get("positive_rate")
            kw["positive_rate"] = None if rate is None else float(rate)
            if method == "platt":
                kw |= {"slope": float(d["slope"]), "intercept": float(d["intercept"])}
            elif method == "isotonic":
                kw |= {"knots_margin": tuple(float(x) for x in d["knots_margin"]),
                       "knots_pd": tuple(float(x) for x in d["knots_pd"])}
        except KeyError as exc:
            raise ValueError(f"{where}: field {exc.args[0]!r} is missing for method {method!r}") from exc
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{where}: a field is not a number ({exc})") from exc
        try:
            return cls(**kw)
        except ValueError as exc:
            raise ValueError(f"{where}: {str(exc).removeprefix('calibration: ')}") from None


def _check(c: Calibrator, where: str) -> None:
    """Raise ValueError naming ``where`` and the field when ``c`` is not a usable, increasing map."""
    if c.method not in CALIBRATION_METHODS:
        raise ValueError(f"{where}: field 'method' is {c.method!r}, expected one of {list(CALIBRATION_METHODS)}")
    if c.n_fit < 0:
        raise ValueError(f"{where}: field 'n_fit' must be >= 0, got {c.n_fit}")
    if c.method == "platt":
        if not (math.isfinite(c.slope) and math.isfinite(c.intercept)):
            raise ValueError(f"{where}: fields 'slope' and 'intercept' must be finite, got {c.slope}, {c.intercept}")
        if c.slope <= 0:
            raise ValueError(f"{where}: field 'slope' must be > 0 (an increasing map), got {c.slope}")
    if c.method == "isotonic":
        xm, yp = np.asarray(c.knots_margin, dtype=np.float64), np.asarray(c.knots_pd, dtype=np.float64)
        if xm.size < 2 or xm.size != yp.size:
            raise ValueError(f"{where}: fields 'knots_margin' and 'knots_pd' need the same length >= 2, "
                             f"got {xm.size} and {yp.size}")
        if not (np.isfinite(xm).all() and np.isfinite(yp).all()):
            raise ValueError(f"{where}: knots must be finite numbers")
        if np.any(np.diff(xm) <= 0):
            raise ValueError(f"{where}: field 'knots_margin' must be strictly increasing")
        if np.any(np.diff(yp) < 0) or yp.min() < 0 or yp.max() > 1:
            raise ValueError(f"{where}: field 'knots_pd' must be non-decreasing within [0, 1]")


#: The booster's own output, ``sigmoid(margin)`` (bundles written before calibration existed).
IDENTITY = Calibrator()


def _fit_platt(m: np.ndarray, y: np.ndarray, max_iter: int = 100, tol: float = 1e-10) -> tuple[float, float]:
    """Maximum-likelihood ``(slope, intercept)`` with Platt's smoothed targets (Newton with step halving)."""
    n_pos = float(y.sum())
    n_neg = float(y.size - n_pos)
    t = np.where(y == 1, (n_pos + 1.0) / (n_pos + 2.0), 1.0 / (n_neg + 2.0))
    # Centre and scale the margin so the Newton steps are well conditioned; map back at the end.
    mu, sd = float(m.mean()), float(m.std()) or 1.0
    x = (m - mu) / sd

    def loss(a: float, b: float) -> float:
        z = a * x + b  # cross-entropy with soft targets, written without overflow
        return float(np.sum(np.logaddexp(0.0, z) - t * z))

    a, b = 1.0, math.log((n_pos + 1.0) / (n_neg + 1.0))
    cur = loss(a, b)
    for _ in range(max_iter):
        p = _sigmoid(a * x + b)
        r, w = p - t, np.maximum(p * (1.0 - p), 1e-12)
        g = np.array([np.dot(r, x), r.sum()])
        h = np.array([[np.dot(w * x, x), np.dot(w, x)], [np.dot(w, x), w.sum()]]) + 1e-9 * np.eye(2)
        step = np.linalg.solve(h, g)
        scale = 1.0
        while scale > 1e-8:
            na, nb = a - scale * step[0], b - scale * step[1]
            new = loss(na, nb)
            if new <= cur:
                break
            scale /= 2.0
        else:
            break
        done = abs(cur - new) <= tol * max(1.0, abs(cur))
        a, b, cur = na, nb, new
        if done:
            break
    return a / sd, b - a * mu / sd


def fit_calibrator(method: str, margin: Any, y: Any, *, max_knots: int = 2000) -> Calibrator:
    """Fit a margin -> probability map on held-out rows (the training job uses the validation part).

    Args:
        method: ``none``, ``platt`` or ``isotonic``.
        margin: Booster margins of the held-out rows.
        y: Their 0/1 labels.
        max_knots: Isotonic only: at most this many knots are kept (evenly spaced along the fitted steps), so
            the manifest stays small. Defaults to 2000.

    Returns:
        The calibrator.

    Raises:
        ValueError: For an unknown method, mismatched or non-finite inputs, a single class, or a fit that is not
            increasing (the model ranks the held-out rows backwards).
    """
    if method not in CALIBRATION_METHODS:
        raise ValueError(f"calibration method {method!r} is not one of {list(CALIBRATION_METHODS)}")
    m = np.asarray(margin, dtype=np.float64).ravel()
    yy = np.asarray(y).ravel()
    if m.shape != yy.shape:
        raise ValueError(f"calibration: {m.size} margins but {yy.size} labels")
    if method == "none":
        return IDENTITY
    if not np.isfinite(m).all():
        raise ValueError("calibration: margins must be finite")
    if not np.isin(yy, (0, 1)).all():
        raise ValueError("calibration: labels must be 0 or 1")
    yy = yy.astype(np.int64)
    n_pos = int(yy.sum())
    if n_pos == 0 or n_pos == yy.size:
        raise ValueError(f"calibration needs both classes among the held-out rows; got {n_pos} of {yy.size} positive")
    rate = n_pos / yy.size
    if method == "platt":
        slope, intercept = _fit_platt(m, yy)
        if not slope > 0:
            raise ValueError(f"calibration: the Platt slope is {slope:.4g} <= 0: the model ranks the held-out rows "
                             "backwards, so no increasing map fits")
        return Calibrator("platt", slope=slope, intercept=intercept, n_fit=int(yy.size), positive_rate=rate)
    from sklearn.isotonic import IsotonicRegression

    low, high = ISOTONIC_PD_BOUNDS
    iso = IsotonicRegression(y_min=low, y_max=high, increasing=True, out_of_bounds="clip").fit(m, yy)
    xk, pk = np.asarray(iso.X_thresholds_, dtype=np.float64), np.asarray(iso.y_thresholds_, dtype=np.float64)
    if xk.size < 2:  # every row in one block: a constant map
        raise ValueError("calibration: the isotonic fit is constant (the margins do not separate the classes)")
    if xk.size > max_knots:
        keep = np.unique(np.linspace(0, xk.size - 1, max_knots).round().astype(int))
        xk, pk = xk[keep], pk[keep]
    return Calibrator("isotonic", knots_margin=tuple(xk.tolist()), knots_pd=tuple(pk.tolist()),
                      n_fit=int(yy.size), positive_rate=rate)
