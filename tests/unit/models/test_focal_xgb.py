import json
import pickle

import numpy as np
import pytest
import xgboost as xgb

from credspark.metrics import roc_auc
from credspark.models.focal_xgb import (
    FocalXGBClassifier,
    focal_gradients,
    focal_loss,
    focal_metric,
    focal_objective,
)

GRID = [(a, g) for a in (0.25, 0.5, 0.75) for g in (0.0, 1.0, 2.0)]


def _margins_labels():
    z = np.concatenate([np.linspace(-6, 6, 49), np.linspace(-6, 6, 49)])
    y = np.concatenate([np.ones(49), np.zeros(49)])
    return z, y


@pytest.mark.parametrize(("alpha", "gamma"), GRID)
def test_gradient_matches_finite_difference(alpha, gamma):
    z, y = _margins_labels()
    h = 1e-5
    numeric = (focal_loss(z + h, y, alpha, gamma) - focal_loss(z - h, y, alpha, gamma)) / (2 * h)
    grad, _ = focal_gradients(z, y, alpha, gamma, hess_floor=None)
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize(("alpha", "gamma"), GRID)
def test_hessian_matches_finite_difference_where_not_clipped(alpha, gamma):
    z, y = _margins_labels()
    h = 1e-4
    g_plus, _ = focal_gradients(z + h, y, alpha, gamma, hess_floor=None)
    g_minus, _ = focal_gradients(z - h, y, alpha, gamma, hess_floor=None)
    numeric = (g_plus - g_minus) / (2 * h)
    _, exact = focal_gradients(z, y, alpha, gamma, hess_floor=None)
    _, clipped = focal_gradients(z, y, alpha, gamma, hess_floor=1e-6)
    unclipped = exact > 1e-6
    assert unclipped.sum() > 60  # the comparison covers most rows
    np.testing.assert_allclose(exact[unclipped], numeric[unclipped], rtol=1e-4, atol=1e-7)
    np.testing.assert_array_equal(clipped[unclipped], exact[unclipped])


def test_gamma_zero_alpha_half_is_half_logistic_loss():
    z, y = _margins_labels()
    p = 1 / (1 + np.exp(-z))
    logistic = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    np.testing.assert_allclose(focal_loss(z, y, 0.5, 0.0), 0.5 * logistic, rtol=1e-10)
    grad, hess = focal_gradients(z, y, 0.5, 0.0, hess_floor=None)
    np.testing.assert_allclose(grad, 0.5 * (p - y), rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(hess, 0.5 * p * (1 - p), rtol=1e-9, atol=1e-15)


def test_hessian_goes_negative_unclipped_and_never_below_floor_clipped():
    z = np.array([-8.0, -4.0, 4.0, 8.0, 0.0, 30.0, -30.0])
    y = np.array([1, 1, 0, 0, 1, 0, 1])
    _, raw = focal_gradients(z, y, 0.25, 2.0, hess_floor=None)
    assert raw.min() < 0  # confidently wrong rows: the reason for the floor
    for floor in (1e-6, 1e-3):
        _, hess = focal_gradients(z, y, 0.25, 2.0, hess_floor=floor)
        assert hess.min() >= floor
        assert np.isfinite(hess).all()


def test_extreme_margins_stay_finite():
    z = np.array([-800.0, 800.0, -800.0, 800.0])
    y = np.array([1, 1, 0, 0])
    loss = focal_loss(z, y, 0.25, 2.0)
    grad, hess = focal_gradients(z, y, 0.25, 2.0)
    assert np.isfinite(loss).all() and np.isfinite(grad).all() and np.isfinite(hess).all()
    assert loss[0] > 100 and loss[1] < 1e-100


def test_objective_and_metric_use_dmatrix_labels_and_weights():
    z = np.array([0.3, -1.0, 2.0])
    y = np.array([1.0, 0.0, 0.0])
    w = np.array([1.0, 2.0, 0.5])
    d = xgb.DMatrix(np.zeros((3, 1)), label=y, weight=w)
    grad, hess = focal_objective(0.25, 2.0, 1e-6)(z, d)
    g0, h0 = focal_gradients(z, y, 0.25, 2.0, 1e-6)
    np.testing.assert_allclose(grad, g0 * w)
    np.testing.assert_allclose(hess, h0 * w)
    name, value = focal_metric(0.25, 2.0)(z, d)
    assert name == "focal"
    assert value == pytest.approx(np.average(focal_loss(z, y, 0.25, 2.0), weights=w))


def test_objective_is_a_plain_picklable_callable():
    # Shipped to Spark barrier tasks later: must carry only its parameters.
    obj = pickle.loads(pickle.dumps(focal_objective(0.4, 1.5, 1e-5)))
    assert (obj.alpha, obj.gamma, obj.hess_floor) == (0.4, 1.5, 1e-5)


@pytest.mark.parametrize("bad", [{"alpha": 0.0}, {"alpha": 1.0}, {"gamma": -1.0}, {"hess_floor": 0.0}])
def test_objective_rejects_bad_parameters(bad):
    with pytest.raises(ValueError):
        focal_objective(**{"alpha": 0.25, "gamma": 2.0, "hess_floor": 1e-6, **bad})


def _imbalanced(n, seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 6)).astype(np.float32)
    logit = -3.0 + 1.5 * X[:, 0] - 1.0 * X[:, 1] + 0.8 * X[:, 2] * X[:, 3]
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return X, y


@pytest.fixture(scope="module")
def fitted():
    X, y = _imbalanced(3000, 0)
    model = FocalXGBClassifier(n_estimators=400, learning_rate=0.1, early_stopping_rounds=15, random_state=0, n_jobs=1)
    model.fit(X[:2000], y[:2000], eval_set=[(X[2000:], y[2000:])])
    return model, X, y


def test_fit_on_imbalanced_data_beats_auc_08(fitted):
    model, X, y = fitted
    assert 0.05 < y.mean() < 0.2
    p = model.predict_proba(X[2000:])
    assert p.shape == (1000,) and p.min() > 0 and p.max() < 1
    assert roc_auc(y[2000:], p) > 0.8


def test_early_stopping_sets_best_iteration_and_cuts_booster(fitted):
    model, _, _ = fitted
    assert 0 <= model.best_iteration_ < 400 - 15
    assert model.booster_.num_boosted_rounds() == model.best_iteration_ + 1
    history = model.evals_result_["eval_0"]["focal"]
    assert len(history) == model.best_iteration_ + 1 + 15
    assert int(np.argmin(history)) == model.best_iteration_


def test_without_eval_set_all_rounds_are_kept():
    X, y = _imbalanced(400, 1)
    model = FocalXGBClassifier(n_estimators=7, random_state=0, n_jobs=1).fit(X, y)
    assert model.best_iteration_ == 6 and model.booster_.num_boosted_rounds() == 7


def test_base_score_is_prior_log_odds_and_margin_is_sigmoid_inverse(fitted):
    model, X, y = fitted
    rate = y[:2000].mean()
    assert model.base_score_ == pytest.approx(np.log(rate / (1 - rate)), rel=1e-6)
    m = model.predict_margin(X[:50])
    np.testing.assert_allclose(model.predict_proba(X[:50]), 1 / (1 + np.exp(-m)), rtol=1e-12)


def test_contributions_sum_to_margin(fitted):
    model, X, _ = fitted
    contrib = model.contributions(X[:100])
    assert contrib.shape == (100, 7)
    np.testing.assert_allclose(contrib.sum(axis=1), model.predict_margin(X[:100]), atol=1e-4)


def test_save_load_identical_predictions(fitted, tmp_path):
    model, X, _ = fitted
    files = model.save(tmp_path)
    assert sorted(files) == ["focal_xgb.json", "focal_xgb.ubj"]
    meta = json.loads((tmp_path / "focal_xgb.json").read_text())
    assert meta["params"]["alpha"] == 0.25 and meta["best_iteration"] == model.best_iteration_
    loaded = FocalXGBClassifier.load(tmp_path)
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    assert loaded.get_params() == model.get_params()
    assert loaded.best_iteration_ == model.best_iteration_
    assert loaded.base_score_ == pytest.approx(model.base_score_, rel=1e-6)


def test_from_booster_bytes_round_trip(fitted):
    model, X, _ = fitted
    clone = FocalXGBClassifier.from_booster_bytes(model.to_booster_bytes(), **model.get_params())
    np.testing.assert_array_equal(clone.predict_margin(X), model.predict_margin(X))
    assert clone.n_features_in_ == 6


def test_feature_names_reach_the_booster_and_are_checked():
    X, y = _imbalanced(300, 2)
    names = [f"f{i}" for i in range(6)]
    model = FocalXGBClassifier(n_estimators=3, feature_names=names, n_jobs=1).fit(X, y)
    assert model.booster_.feature_names == names
    with pytest.raises(ValueError, match="feature_names"):
        FocalXGBClassifier(n_estimators=3, feature_names=names[:5]).fit(X, y)


def test_input_validation():
    X, y = _imbalanced(100, 3)
    with pytest.raises(ValueError, match="0 and 1"):
        FocalXGBClassifier(n_estimators=2).fit(X, y * 2)
    with pytest.raises(RuntimeError, match="not fitted"):
        FocalXGBClassifier().predict_proba(X)
    model = FocalXGBClassifier(n_estimators=2, n_jobs=1).fit(X, y)
    with pytest.raises(ValueError, match="6"):
        model.predict_proba(X[:, :5])
    X_inf = X.copy()
    X_inf[0, 0] = np.inf
    with pytest.raises(ValueError, match="infinite"):
        model.predict_proba(X_inf)


def test_constructor_is_keyword_only():
    with pytest.raises(TypeError):
        FocalXGBClassifier(0.25)  # type: ignore[misc]
