"""A bounded search of the booster's main parameters on the validation part (Optuna's TPE sampler). No pyspark.

Each trial fits XGBoost on the training rows with early stopping on the validation rows and is scored by the
validation AUC; the search stops after ``n_trials`` trials or ``timeout_s`` seconds, whichever comes first. The
test part never reaches this module. The training job tunes each tree-only candidate this way on (a capped
sample of) its rows on the driver, then fits the candidate with the best parameters over the Spark workers.

Searched (:data:`SPACE`): ``max_depth`` 2..8, ``learning_rate`` 0.01..0.3 (log), ``min_child_weight``
0.01..20 (log; focal hessians are small), ``subsample`` and ``colsample_bytree`` 0.5..1, ``reg_lambda``
0.01..100 (log), ``reg_alpha`` 0..10 (L1, 0 with probability of TPE's choice).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["SPACE", "TuningResult", "monotone_vector", "tune_booster"]

#: ``name: (low, high, log scale, integer)``.
SPACE: Mapping[str, tuple[float, float, bool, bool]] = {
    "max_depth": (2, 8, False, True),
    "learning_rate": (0.01, 0.3, True, False),
    "min_child_weight": (0.01, 20.0, True, False),
    "subsample": (0.5, 1.0, False, False),
    "colsample_bytree": (0.5, 1.0, False, False),
    "reg_lambda": (0.01, 100.0, True, False),
    "reg_alpha": (0.0, 10.0, False, False),
}


@dataclass(frozen=True)
class TuningResult:
    """The search's outcome.

    Attributes:
        best_params: The best trial's parameters (names of :data:`SPACE`), or empty when no trial finished.
        best_auc: Its validation AUC.
        best_iteration: Its early-stopping round.
        trials: One record per finished trial: ``number``, ``auc``, ``best_iteration``, ``seconds``, params.
        stopped_by: ``trials`` or ``time``.
    """

    best_params: dict[str, Any]
    best_auc: float
    best_iteration: int
    trials: list[dict[str, Any]] = field(default_factory=list)
    stopped_by: str = "trials"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (report, metrics.json, run summary)."""
        return {"best_params": dict(self.best_params), "best_auc": self.best_auc,
                "best_iteration": self.best_iteration, "stopped_by": self.stopped_by, "trials": list(self.trials)}


def monotone_vector(feature_names: Sequence[str], monotone: Mapping[str, int]) -> tuple[int, ...] | None:
    """XGBoost's ``monotone_constraints`` for the given input order, from ``{feature: 1 or -1}``.

    Args:
        feature_names: The booster's inputs, in order.
        monotone: ``train.monotone``: 1 = the risk never falls as the feature rises, -1 = never rises.

    Returns:
        One entry per input (0 = free), or None when ``monotone`` is empty.

    Raises:
        ValueError: An unknown feature or a value other than -1 / 1 (naming ``train.monotone``).
    """
    if not monotone:
        return None
    unknown = sorted(set(monotone) - set(feature_names))
    if unknown:
        raise ValueError(f"train.monotone: unknown feature(s) {unknown}; inputs are {list(feature_names)}")
    bad = {k: v for k, v in monotone.items() if v not in (-1, 1)}
    if bad:
        raise ValueError(f"train.monotone: values must be 1 or -1, got {bad}")
    return tuple(int(monotone.get(n, 0)) for n in feature_names)


def _xgb_params(params: Mapping[str, Any], objective: str, base: Mapping[str, Any]) -> dict[str, Any]:
    out = {"eta": params["learning_rate"], "max_depth": int(params["max_depth"]),
           "min_child_weight": params["min_child_weight"], "subsample": params["subsample"],
           "colsample_bytree": params["colsample_bytree"], "lambda": params["reg_lambda"],
           "alpha": params["reg_alpha"], "tree_method": "hist", "verbosity": 0, **base}
    if objective == "logistic":
        out |= {"objective": "binary:logistic", "eval_metric": "logloss"}
    else:
        out["disable_default_eval_metric"] = 1
    return out


def _fixed_params(objective: str, y_train: np.ndarray, seed: int, nthread: int, monotone: Sequence[int] | None,
                  focal_alpha: float, focal_gamma: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """What every trial shares: XGBoost parameters (seed, threads, constraints, base score) and ``train`` extras.

    The base score is the training prior: a probability for ``logistic``, log-odds for ``focal``, which also
    brings its objective and metric as ``xgb.train`` keyword arguments.

    Returns:
        ``(params, extra keyword arguments of xgb.train)``.
    """
    from credspark.models.focal_xgb import focal_metric, focal_objective, prior_log_odds

    prior = prior_log_odds(np.asarray(y_train, np.float64))
    base: dict[str, Any] = {"seed": seed, "nthread": nthread}
    if monotone is not None:
        base["monotone_constraints"] = "(" + ",".join(str(int(v)) for v in monotone) + ")"
    if objective == "logistic":
        base["base_score"] = 1.0 / (1.0 + math.exp(-prior))
        return base, {}
    base["base_score"] = prior
    return base, {"obj": focal_objective(focal_alpha, focal_gamma),
                  "custom_metric": focal_metric(focal_alpha, focal_gamma)}


def _suggest(trial: Any) -> dict[str, Any]:
    """One trial's parameters drawn from :data:`SPACE` (integers, or floats on a linear or log scale)."""
    params = {}
    for name, (low, high, log, integer) in SPACE.items():
        params[name] = (trial.suggest_int(name, int(low), int(high)) if integer
                        else trial.suggest_float(name, low, high, log=log))
    return params


def tune_booster(
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_valid: np.ndarray,
    y_valid: np.ndarray,
    *,
    objective: str,
    n_trials: int,
    timeout_s: float,
    n_estimators: int,
    early_stopping_rounds: int,
    seed: int,
    focal_alpha: float = 0.25,
    focal_gamma: float = 2.0,
    monotone: Sequence[int] | None = None,
    nthread: int = 1,
) -> TuningResult:
    """Search :data:`SPACE` with TPE; each trial trains on ``X_train`` and early-stops on ``X_valid``.

    Args:
        X_train: ``(n, d)`` training features (NaN = missing).
        y_train: ``(n,)`` labels.
        X_valid: ``(m, d)`` validation features.
        y_valid: ``(m,)`` labels.
        objective: ``focal`` (with ``focal_alpha``, ``focal_gamma``) or ``logistic``.
        n_trials: Trials at most (``train.tuning_trials``).
        timeout_s: Seconds at most (``train.tuning_timeout_s``); a trial running at the limit finishes.
        n_estimators: Boosting rounds at most.
        early_stopping_rounds: Rounds without a better validation loss before a trial stops.
        seed: Seed of the sampler and of XGBoost.
        focal_alpha: Focal loss alpha. Defaults to 0.25.
        focal_gamma: Focal loss gamma. Defaults to 2.0.
        monotone: XGBoost ``monotone_constraints`` (:func:`monotone_vector`), or None. Defaults to None.
        nthread: XGBoost threads. Defaults to 1.

    Returns:
        The best parameters and every trial.

    Raises:
        ValueError: An unknown objective or a non-positive trial count.
    """
    import optuna
    import xgboost as xgb

    from credspark.metrics import roc_auc

    if objective not in ("focal", "logistic"):
        raise ValueError(f"tuning: objective must be 'focal' or 'logistic', got {objective!r}")
    if n_trials < 1:
        raise ValueError(f"train.tuning_trials must be >= 1 to tune, got {n_trials}")
    dtrain = xgb.DMatrix(np.asarray(X_train, np.float32), label=np.asarray(y_train), nthread=nthread)
    dvalid = xgb.DMatrix(np.asarray(X_valid, np.float32), label=np.asarray(y_valid), nthread=nthread)
    base, extra = _fixed_params(objective, y_train, seed, nthread, monotone, focal_alpha, focal_gamma)
    trials: list[dict[str, Any]] = []

    def run(trial: optuna.Trial) -> float:
        params = _suggest(trial)
        t0 = time.perf_counter()
        booster = xgb.train(_xgb_params(params, objective, base), dtrain, num_boost_round=n_estimators,
                            evals=[(dvalid, "valid")], early_stopping_rounds=early_stopping_rounds,
                            verbose_eval=False, **extra)
        best = int(booster.best_iteration)
        margin = booster.predict(dvalid, output_margin=True, iteration_range=(0, best + 1))
        auc = float(roc_auc(np.asarray(y_valid), margin))
        trials.append({"number": trial.number, "auc": auc, "best_iteration": best,
                       "seconds": round(time.perf_counter() - t0, 2), **params})
        trial.set_user_attr("best_iteration", best)
        return auc

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(run, n_trials=n_trials, timeout=timeout_s)
    stopped_by = "trials" if len(study.trials) >= n_trials else "time"
    if not trials:
        return TuningResult({}, float("nan"), -1, [], "time")
    best = study.best_trial
    return TuningResult(dict(best.params), float(best.value), int(best.user_attrs["best_iteration"]), trials,
                        stopped_by)
