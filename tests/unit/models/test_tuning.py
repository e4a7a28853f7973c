import numpy as np
import pytest

from credspark.models.focal_xgb import FocalXGBClassifier
from credspark.models.tuning import SPACE, monotone_vector, tune_booster


def _data(n, seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4)).astype(np.float32)
    logit = 1.5 * X[:, 0] - 1.0 * X[:, 1] + 0.5 * X[:, 2] * X[:, 3] - 1.0
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return X, y


@pytest.mark.parametrize("objective", ["focal", "logistic"])
def test_the_search_records_every_trial_within_the_space_and_returns_the_best(objective):
    X, y = _data(1500, 0)
    Xv, yv = _data(600, 1)
    res = tune_booster(X, y, Xv, yv, objective=objective, n_trials=4, timeout_s=120, n_estimators=60,
                       early_stopping_rounds=10, seed=3)
    assert len(res.trials) == 4 and res.stopped_by == "trials"
    for t in res.trials:
        for name, (low, high, _, integer) in SPACE.items():
            assert low <= t[name] <= high and (not integer or isinstance(t[name], int))
    best = max(res.trials, key=lambda t: t["auc"])
    assert res.best_auc == best["auc"] and res.best_params == {k: best[k] for k in SPACE}
    assert 0.6 < res.best_auc <= 1.0
    again = tune_booster(X, y, Xv, yv, objective=objective, n_trials=4, timeout_s=120, n_estimators=60,
                         early_stopping_rounds=10, seed=3)
    assert [t["auc"] for t in again.trials] == [t["auc"] for t in res.trials]  # seeded: the same search


def test_the_time_limit_stops_the_search():
    X, y = _data(1500, 0)
    res = tune_booster(X, y, X, y, objective="logistic", n_trials=1000, timeout_s=0.5, n_estimators=30,
                       early_stopping_rounds=5, seed=0)
    assert 1 <= len(res.trials) < 1000 and res.stopped_by == "time"


def test_monotone_constraints_hold_in_the_tuned_and_the_fitted_model():
    X, y = _data(2000, 2)
    mono = monotone_vector(["a", "b", "c", "d"], {"a": 1, "b": -1})
    assert mono == (1, -1, 0, 0)
    res = tune_booster(X, y, X, y, objective="focal", n_trials=2, timeout_s=60, n_estimators=40,
                       early_stopping_rounds=5, seed=0, monotone=mono)
    clf = FocalXGBClassifier(n_estimators=40, random_state=0, monotone_constraints=list(mono),
                             **res.best_params).fit(X, y)
    grid = np.repeat(X[:50], 21, axis=0)
    steps = np.tile(np.linspace(-3, 3, 21), 50)
    for col, sign in ((0, 1), (1, -1)):
        g = grid.copy()
        g[:, col] = steps
        m = clf.predict_margin(g).reshape(50, 21)
        assert np.all(sign * np.diff(m, axis=1) >= -1e-6)
    assert clf.get_params()["monotone_constraints"] == [1, -1, 0, 0] and clf.get_params()["reg_alpha"] >= 0


def test_monotone_settings_are_checked():
    assert monotone_vector(["a"], {}) is None
    with pytest.raises(ValueError, match="train.monotone: unknown feature"):
        monotone_vector(["a"], {"z": 1})
    with pytest.raises(ValueError, match="1 or -1"):
        monotone_vector(["a"], {"a": 2})
    with pytest.raises(ValueError, match="objective"):
        tune_booster(np.zeros((2, 1)), np.array([0, 1]), np.zeros((2, 1)), np.array([0, 1]), objective="hinge",
                     n_trials=1, timeout_s=1, n_estimators=1, early_stopping_rounds=1, seed=0)
