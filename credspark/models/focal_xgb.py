"""Gradient-boosted trees trained with the binary focal loss (Lin et al., 2017).

The focal loss on a raw margin ``z`` with ``p = sigmoid(z)`` is::

    FL(z, y) = -alpha_t * (1 - p_t) ** gamma * log(p_t)

with ``p_t = p``, ``alpha_t = alpha`` for ``y = 1`` and ``p_t = 1 - p``, ``alpha_t = 1 - alpha`` for ``y = 0``.

Derivation used by :func:`focal_gradients`. Write ``s = 2y - 1`` so that ``p_t = sigmoid(s z)`` for both classes,
``q = 1 - p_t`` and ``dp_t/dz = s p_t q``. Then::

    dFL/dz   = alpha_t * s * q**gamma * (gamma * p_t * log(p_t) + p_t - 1)
    d2FL/dz2 = alpha_t * p_t * q**gamma * (-gamma**2 * p_t * log(p_t) + gamma * q * log(p_t) + (2 gamma + 1) q)

(``s**2 = 1`` removes the sign from the second derivative). With ``gamma = 0`` these reduce to
``alpha_t (p - y)`` and ``alpha_t p (1 - p)``: the weighted logistic loss. For ``gamma > 0`` the term
``gamma q log(p_t)`` makes the second derivative negative for confidently wrong rows (``p_t -> 0``);
Newton boosting needs a positive hessian, so it is clipped at ``hess_floor``.

The objective and metric are small top-level callable classes holding only their parameters, so a
distributed trainer can ship them to Spark barrier tasks (they pickle by reference to this module and carry
no global state).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xgboost as xgb

__all__ = [
    "FocalObjective",
    "FocalMetric",
    "FocalXGBClassifier",
    "focal_gradients",
    "focal_loss",
    "focal_metric",
    "focal_objective",
    "keep_best_rounds",
]

#: File names written by :meth:`FocalXGBClassifier.save` inside its directory.
MODEL_FILE = "focal_xgb.ubj"
PARAMS_FILE = "focal_xgb.json"
_FORMAT_VERSION = 1


def _check_alpha_gamma(alpha: float, gamma: float) -> None:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if gamma < 0.0:
        raise ValueError(f"gamma must be >= 0, got {gamma}")


def _terms(margin: np.ndarray, y: np.ndarray, alpha: float) -> tuple[np.ndarray, ...]:
    """Return ``(s, alpha_t, p_t, q, log_p_t)`` computed without overflow or cancellation."""
    z = np.asarray(margin, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    s = 2.0 * y - 1.0
    sz = s * z
    # log(sigmoid(x)) = -log(1 + exp(-x)): logaddexp keeps it finite for large |x|; q is computed as
    # sigmoid(-sz) directly rather than 1 - p_t so that it keeps its precision when p_t is close to 1.
    log_p_t = -np.logaddexp(0.0, -sz)
    p_t = np.exp(log_p_t)
    q = np.exp(-np.logaddexp(0.0, sz))
    alpha_t = np.where(y > 0.5, alpha, 1.0 - alpha)
    return s, alpha_t, p_t, q, log_p_t


def focal_loss(margin: np.ndarray, y: np.ndarray, alpha: float = 0.25, gamma: float = 2.0) -> np.ndarray:
    """Per-row binary focal loss on raw margins.

    Args:
        margin: Raw scores ``z`` (log-odds), shape ``(n,)``.
        y: Labels in {0, 1}, shape ``(n,)``.
        alpha: Weight of the positive class, in (0, 1). Defaults to 0.25.
        gamma: Focusing parameter, >= 0. Defaults to 2.0.

    Returns:
        ``(n,)`` float64 array of losses.
    """
    _check_alpha_gamma(alpha, gamma)
    _, alpha_t, _, q, log_p_t = _terms(margin, y, alpha)
    return -alpha_t * q**gamma * log_p_t


def focal_gradients(
    margin: np.ndarray,
    y: np.ndarray,
    alpha: float = 0.25,
    gamma: float = 2.0,
    hess_floor: float | None = 1e-6,
) -> tuple[np.ndarray, np.ndarray]:
    """First and second derivative of the focal loss with respect to the margin (closed form).

    Args:
        margin: Raw scores ``z``, shape ``(n,)``.
        y: Labels in {0, 1}, shape ``(n,)``.
        alpha: Weight of the positive class, in (0, 1). Defaults to 0.25.
        gamma: Focusing parameter, >= 0. Defaults to 2.0.
        hess_floor: Lower clip for the hessian; None returns the exact (possibly negative) value.
            Defaults to 1e-6.

    Returns:
        ``(grad, hess)``, two ``(n,)`` float64 arrays.
    """
    _check_alpha_gamma(alpha, gamma)
    s, alpha_t, p_t, q, log_p_t = _terms(margin, y, alpha)
    q_g = q**gamma
    grad = alpha_t * s * q_g * (gamma * p_t * log_p_t - q)
    hess = alpha_t * p_t * q_g * (-(gamma**2) * p_t * log_p_t + gamma * q * log_p_t + (2.0 * gamma + 1.0) * q)
    if hess_floor is not None:
        hess = np.maximum(hess, hess_floor)
    return grad, hess


class FocalObjective:
    """XGBoost custom objective ``obj(preds, dtrain) -> (grad, hess)`` for the focal loss.

    Row weights set on the DMatrix scale both gradient and hessian (as xgboost's built-in objectives do).

    Args:
        alpha: Weight of the positive class, in (0, 1).
        gamma: Focusing parameter, >= 0.
        hess_floor: Positive lower clip for the hessian.
    """

    def __init__(self, alpha: float = 0.25, gamma: float = 2.0, hess_floor: float = 1e-6) -> None:
        _check_alpha_gamma(alpha, gamma)
        if not hess_floor > 0.0:
            raise ValueError(f"hess_floor must be > 0, got {hess_floor}")
        self.alpha = float(alpha)
        self.gamma = float(gamma)
        self.hess_floor = float(hess_floor)

    def __call__(self, preds: np.ndarray, dtrain: xgb.DMatrix) -> tuple[np.ndarray, np.ndarray]:
        """Return gradient and hessian for the raw margins ``preds``."""
        grad, hess = focal_gradients(preds, dtrain.get_label(), self.alpha, self.gamma, self.hess_floor)
        w = dtrain.get_weight()
        if w.size:
            grad, hess = grad * w, hess * w
        return grad, hess

    def __repr__(self) -> str:
        return f"FocalObjective(alpha={self.alpha}, gamma={self.gamma}, hess_floor={self.hess_floor})"


class FocalMetric:
    """XGBoost ``custom_metric(preds, dmatrix) -> ("focal", value)``: (weighted) mean focal loss.

    Receives raw margins, which is what xgboost passes to a custom metric when a custom objective is used.

    Args:
        alpha: Weight of the positive class, in (0, 1).
        gamma: Focusing parameter, >= 0.
    """

    name = "focal"

    def __init__(self, alpha: float = 0.25, gamma: float = 2.0) -> None:
        _check_alpha_gamma(alpha, gamma)
        self.alpha = float(alpha)
        self.gamma = float(gamma)

    def __call__(self, preds: np.ndarray, dmatrix: xgb.DMatrix) -> tuple[str, float]:
        """Return the metric name and the mean focal loss of ``preds``."""
        loss = focal_loss(preds, dmatrix.get_label(), self.alpha, self.gamma)
        w = dmatrix.get_weight()
        value = float(np.average(loss, weights=w)) if w.size else float(loss.mean())
        return self.name, value

    def __repr__(self) -> str:
        return f"FocalMetric(alpha={self.alpha}, gamma={self.gamma})"


def focal_objective(alpha: float = 0.25, gamma: float = 2.0, hess_floor: float = 1e-6) -> FocalObjective:
    """Build the focal-loss objective for ``xgboost.train(obj=...)``.

    Args:
        alpha: Weight of the positive class, in (0, 1). Defaults to 0.25.
        gamma: Focusing parameter, >= 0. Defaults to 2.0.
        hess_floor: Positive lower clip for the hessian. Defaults to 1e-6.

    Returns:
        A callable ``obj(preds, dtrain) -> (grad, hess)``.
    """
    return FocalObjective(alpha, gamma, hess_floor)


def focal_metric(alpha: float = 0.25, gamma: float = 2.0) -> FocalMetric:
    """Build the mean-focal-loss metric for ``xgboost.train(custom_metric=...)``.

    Args:
        alpha: Weight of the positive class, in (0, 1). Defaults to 0.25.
        gamma: Focusing parameter, >= 0. Defaults to 2.0.

    Returns:
        A callable ``metric(preds, dmatrix) -> ("focal", value)`` (lower is better).
    """
    return FocalMetric(alpha, gamma)


def prior_log_odds(y: np.ndarray, weight: np.ndarray | None = None, eps: float = 1e-6) -> float:
    """Log-odds of the (weighted) positive rate, clipped to ``[eps, 1 - eps]``; the default start margin."""
    rate = float(np.average(np.asarray(y, dtype=np.float64), weights=weight))
    rate = min(max(rate, eps), 1.0 - eps)
    return math.log(rate / (1.0 - rate))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0.0, -np.asarray(z, dtype=np.float64)))


def _as_features(X: Any, n_features: int | None = None) -> np.ndarray:
    arr = np.asarray(X, dtype=np.float32)
    if arr.ndim != 2:
        raise ValueError(f"X must be 2-D (n, n_features), got shape {arr.shape}")
    if np.isinf(arr).any():
        # NaN is xgboost's "missing" and is allowed; infinities are always a data bug.
        raise ValueError("X contains infinite values")
    if n_features is not None and arr.shape[1] != n_features:
        raise ValueError(f"X has {arr.shape[1]} features, the model was fitted with {n_features}")
    return arr


def _as_labels(y: Any, n: int) -> np.ndarray:
    arr = np.asarray(y)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"y must be 1-D with {n} rows, got shape {arr.shape}")
    if not np.isin(arr, (0, 1)).all():
        raise ValueError("y must contain only 0 and 1")
    return arr.astype(np.float32)


def keep_best_rounds(booster: xgb.Booster, *, early_stopped: bool) -> tuple[xgb.Booster, int]:
    """The booster cut to its best rounds, and the best round (0-based).

    ``xgboost.train`` returns the last model even when early stopping found a better round; keeping only the
    best rounds makes predictions, contributions and the saved file agree. Without early stopping the last
    round is the best.
    """
    best = booster.best_iteration if early_stopped else booster.num_boosted_rounds() - 1
    if best + 1 < booster.num_boosted_rounds():
        booster = booster[: best + 1]
    return booster, int(best)


class FocalXGBClassifier:
    """Binary classifier: XGBoost trees fitted to the focal loss (P(default) = sigmoid(margin)).

    The starting margin (xgboost's ``base_score``) is the log-odds of the training prior, so a model with no
    trees predicts the base rate and early trees spend their splits on ranking rather than on moving every
    row's mean. (The focal loss's own constant optimum differs from the prior when ``alpha != 0.5`` or
    ``gamma > 0``; the first trees absorb that offset.)

    Args:
        alpha: Focal weight of the positive (default) class, in (0, 1). Defaults to 0.25.
        gamma: Focusing parameter, >= 0. Defaults to 2.0.
        n_estimators: Maximum number of boosting rounds. Defaults to 500.
        learning_rate: Shrinkage (``eta``). Defaults to 0.05.
        max_depth: Maximum tree depth. Defaults to 4.
        min_child_weight: Minimum hessian sum in a leaf. With the focal loss the hessians are small
            (down-weighted easy rows), so keep this low. Defaults to 1.0.
        subsample: Row subsampling per tree. Defaults to 0.8.
        colsample_bytree: Column subsampling per tree. Defaults to 0.8.
        reg_lambda: L2 regularisation on leaf weights. Defaults to 1.0.
        reg_alpha: L1 regularisation on leaf weights. Defaults to 0.0.
        monotone_constraints: One of -1 / 0 / 1 per input (XGBoost's ``monotone_constraints``: 1 = the margin
            never falls as the input rises), or None. Defaults to None.
        early_stopping_rounds: Stop when the last ``eval_set`` entry's focal loss has not improved for this
            many rounds; ignored without ``eval_set``; None disables it. Defaults to 50.
        hess_floor: Positive lower clip for the hessian. Defaults to 1e-6.
        tree_method: XGBoost tree method. Defaults to ``"hist"``.
        n_jobs: Threads for xgboost (None: xgboost's default). Defaults to None.
        random_state: Seed for the row/column subsampling. Defaults to None.
        feature_names: Names of the input columns (used in the booster and for reason codes), or None.
    """

    def __init__(
        self,
        *,
        alpha: float = 0.25,
        gamma: float = 2.0,
        n_estimators: int = 500,
        learning_rate: float = 0.05,
        max_depth: int = 4,
        min_child_weight: float = 1.0,
        subsample: float = 0.8,
        colsample_bytree: float = 0.8,
        reg_lambda: float = 1.0,
        reg_alpha: float = 0.0,
        monotone_constraints: Sequence[int] | None = None,
        early_stopping_rounds: int | None = 50,
        hess_floor: float = 1e-6,
        tree_method: str = "hist",
        n_jobs: int | None = None,
        random_state: int | None = None,
        feature_names: Sequence[str] | None = None,
    ) -> None:
        self.alpha = alpha
        self.gamma = gamma
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.max_depth = max_depth
        self.min_child_weight = min_child_weight
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.reg_lambda = reg_lambda
        self.reg_alpha = reg_alpha
        self.monotone_constraints = monotone_constraints
        self.early_stopping_rounds = early_stopping_rounds
        self.hess_floor = hess_floor
        self.tree_method = tree_method
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.feature_names = feature_names

    # ------------------------------------------------------------------ params
    _PARAM_NAMES = (
        "alpha",
        "gamma",
        "n_estimators",
        "learning_rate",
        "max_depth",
        "min_child_weight",
        "subsample",
        "colsample_bytree",
        "reg_lambda",
        "reg_alpha",
        "monotone_constraints",
        "early_stopping_rounds",
        "hess_floor",
        "tree_method",
        "n_jobs",
        "random_state",
        "feature_names",
    )

    def get_params(self) -> dict[str, Any]:
        """Constructor parameters as a JSON-safe dict."""
        params = {name: getattr(self, name) for name in self._PARAM_NAMES}
        for key in ("feature_names", "monotone_constraints"):
            if params[key] is not None:
                params[key] = list(params[key])
        return params

    def xgb_params(self, base_score: float) -> dict[str, Any]:
        """The ``params`` dict passed to ``xgboost.train`` (also used by the distributed trainer).

        Args:
            base_score: Starting margin (log-odds); with a custom objective xgboost's default
                ``reg:squarederror`` link is the identity, so this is used as the margin unchanged.

        Returns:
            Booster parameters.
        """
        params: dict[str, Any] = {
            "eta": self.learning_rate,
            "max_depth": self.max_depth,
            "min_child_weight": self.min_child_weight,
            "subsample": self.subsample,
            "colsample_bytree": self.colsample_bytree,
            "lambda": self.reg_lambda,
            "tree_method": self.tree_method,
            "base_score": base_score,
            # The built-in default metric (rmse on margins) is meaningless here; early stopping must see
            # only the focal metric.
            "disable_default_eval_metric": 1,
            "verbosity": 0,
        }
        if self.reg_alpha:
            params["alpha"] = self.reg_alpha
        if self.monotone_constraints is not None:
            params["monotone_constraints"] = "(" + ",".join(str(int(v)) for v in self.monotone_constraints) + ")"
        if self.n_jobs is not None:
            params["nthread"] = self.n_jobs
        if self.random_state is not None:
            params["seed"] = self.random_state
        return params

    def objective(self) -> FocalObjective:
        """The objective configured by this estimator's parameters."""
        return focal_objective(self.alpha, self.gamma, self.hess_floor)

    def metric(self) -> FocalMetric:
        """The evaluation metric configured by this estimator's parameters."""
        return focal_metric(self.alpha, self.gamma)

    # --------------------------------------------------------------------- fit
    def _dmatrix(self, X: np.ndarray, y: np.ndarray | None = None) -> xgb.DMatrix:
        names = list(self.feature_names) if self.feature_names is not None else None
        return xgb.DMatrix(X, label=y, feature_names=names, nthread=self.n_jobs)

    def fit(
        self,
        X: Any,
        y: Any,
        *,
        eval_set: Sequence[tuple[Any, Any]] | None = None,
    ) -> FocalXGBClassifier:
        """Fit the trees.

        Args:
            X: ``(n, n_features)`` features (NaN means missing).
            y: ``(n,)`` labels in {0, 1}, 1 = default.
            eval_set: Validation ``(X, y)`` pairs; the last one drives early stopping. Defaults to None.

        Returns:
            self, with ``booster_``, ``best_iteration_``, ``n_features_in_``, ``base_score_`` and
            ``evals_result_`` set. After early stopping the booster is cut to the best iteration.
        """
        _check_alpha_gamma(self.alpha, self.gamma)
        if self.n_estimators < 1:
            raise ValueError(f"n_estimators must be >= 1, got {self.n_estimators}")
        X_arr = _as_features(X)
        y_arr = _as_labels(y, X_arr.shape[0])
        if self.feature_names is not None and len(self.feature_names) != X_arr.shape[1]:
            raise ValueError(f"feature_names has {len(self.feature_names)} names, X has {X_arr.shape[1]} columns")
        base_score = prior_log_odds(y_arr)
        dtrain = self._dmatrix(X_arr, y_arr)
        evals = []
        for i, (Xe, ye) in enumerate(eval_set or ()):
            Xe_arr = _as_features(Xe, X_arr.shape[1])
            evals.append((self._dmatrix(Xe_arr, _as_labels(ye, Xe_arr.shape[0])), f"eval_{i}"))
        early = self.early_stopping_rounds if evals else None
        evals_result: dict[str, Any] = {}
        booster = xgb.train(
            self.xgb_params(base_score),
            dtrain,
            num_boost_round=self.n_estimators,
            obj=self.objective(),
            custom_metric=self.metric(),
            maximize=False,
            evals=evals,
            early_stopping_rounds=early,
            evals_result=evals_result,
            verbose_eval=False,
        )
        booster, best = keep_best_rounds(booster, early_stopped=early is not None)
        self.booster_ = booster
        self.best_iteration_ = int(best)
        self.n_features_in_ = int(X_arr.shape[1])
        self.base_score_ = float(base_score)
        self.evals_result_ = evals_result
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "booster_"):
            raise RuntimeError("FocalXGBClassifier is not fitted; call fit() or load() first")

    # ----------------------------------------------------------------- predict
    def predict_margin(self, X: Any) -> np.ndarray:
        """Raw margins (log-odds of default).

        Args:
            X: ``(n, n_features)`` features.

        Returns:
            ``(n,)`` float64 array.
        """
        self._check_fitted()
        X_arr = _as_features(X, self.n_features_in_)
        return self.booster_.predict(self._dmatrix(X_arr), output_margin=True).astype(np.float64)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Probability of default, ``sigmoid(margin)``.

        Unlike scikit-learn's two-column output this returns the positive class only.

        Args:
            X: ``(n, n_features)`` features.

        Returns:
            ``(n,)`` float64 array of P(y = 1).
        """
        return _sigmoid(self.predict_margin(X))

    def contributions(self, X: Any) -> np.ndarray:
        """Per-feature additive contributions to the margin (TreeSHAP), for reason codes.

        Args:
            X: ``(n, n_features)`` features.

        Returns:
            ``(n, n_features + 1)`` float64 array; the last column is the bias (base margin included); each row
            sums to :meth:`predict_margin`.
        """
        self._check_fitted()
        X_arr = _as_features(X, self.n_features_in_)
        return self.booster_.predict(self._dmatrix(X_arr), pred_contribs=True).astype(np.float64)

    # -------------------------------------------------------------- save/load
    def to_booster_bytes(self) -> bytes:
        """The fitted booster serialised as UBJSON bytes."""
        self._check_fitted()
        return bytes(self.booster_.save_raw(raw_format="ubj"))

    @classmethod
    def from_booster_bytes(cls, raw: bytes, **params: Any) -> FocalXGBClassifier:
        """Rebuild a fitted classifier from UBJSON booster bytes (e.g. returned by a distributed chief).

        Args:
            raw: Booster bytes from :meth:`to_booster_bytes` / ``Booster.save_raw("ubj")``.
            **params: Constructor parameters the booster was trained with.

        Returns:
            A fitted classifier; ``best_iteration_`` is the booster's last round.
        """
        model = cls(**params)
        booster = xgb.Booster()
        booster.load_model(bytearray(raw))
        model._set_booster(booster)
        return model

    def _set_booster(self, booster: xgb.Booster, best_iteration: int | None = None) -> None:
        self.booster_ = booster
        rounds = booster.num_boosted_rounds()
        self.best_iteration_ = int(rounds - 1 if best_iteration is None else best_iteration)
        self.n_features_in_ = int(booster.num_features())
        config = json.loads(booster.save_config())
        self.base_score_ = float(_base_score_from_config(config))

    def save(self, directory: str | Path) -> list[str]:
        """Write the booster (UBJSON) and the parameters (JSON) into ``directory``.

        Args:
            directory: Existing or new directory.

        Returns:
            The written file names, relative to ``directory``.
        """
        self._check_fitted()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.booster_.save_model(str(directory / MODEL_FILE))
        meta = {
            "format_version": _FORMAT_VERSION,
            "params": self.get_params(),
            "best_iteration": self.best_iteration_,
            "n_features_in": self.n_features_in_,
            "base_score": self.base_score_,
            "xgboost_version": xgb.__version__,
        }
        (directory / PARAMS_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True))
        return [MODEL_FILE, PARAMS_FILE]

    @classmethod
    def load(cls, directory: str | Path) -> FocalXGBClassifier:
        """Load a classifier written by :meth:`save`.

        Args:
            directory: Directory holding ``focal_xgb.ubj`` and ``focal_xgb.json``.

        Returns:
            The fitted classifier.
        """
        directory = Path(directory)
        meta = json.loads((directory / PARAMS_FILE).read_text())
        if meta.get("format_version") != _FORMAT_VERSION:
            raise ValueError(f"{directory / PARAMS_FILE}: unsupported format_version {meta.get('format_version')}")
        params = meta["params"]
        unknown = set(params) - set(cls._PARAM_NAMES)
        if unknown:
            raise ValueError(f"{directory / PARAMS_FILE}: unknown parameters {sorted(unknown)}")
        model = cls(**params)
        booster = xgb.Booster()
        booster.load_model(str(directory / MODEL_FILE))
        model._set_booster(booster, meta.get("best_iteration"))
        if model.n_features_in_ != meta["n_features_in"]:
            raise ValueError(
                f"{directory}: booster has {model.n_features_in_} features, JSON says {meta['n_features_in']}"
            )
        return model

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"FocalXGBClassifier({args})"


def _base_score_from_config(config: dict[str, Any]) -> float:
    raw = config["learner"]["learner_model_param"]["base_score"]
    # xgboost 3 stores base_score as a (possibly vector-valued) string such as "[-1.2E0]".
    return float(str(raw).strip("[]").split(",")[0])
