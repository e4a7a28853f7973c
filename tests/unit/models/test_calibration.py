import json

import numpy as np
import pytest

from credspark.metrics import brier_score, roc_auc
from credspark.models.calibration import IDENTITY, ISOTONIC_PD_BOUNDS, Calibrator, fit_calibrator, margin_from_pd


def _sample(n, seed, slope=0.5, intercept=-1.0):
    """Margins of an over-confident, over-predicting score: the true probability is sigmoid(slope m + b)."""
    rng = np.random.default_rng(seed)
    m = rng.normal(0.5, 2.0, n)
    p = 1.0 / (1.0 + np.exp(-(slope * m + intercept)))
    return m, (rng.random(n) < p).astype(int), p


def test_platt_recovers_the_map_that_generated_the_labels():
    m, y, _ = _sample(40_000, 0)
    cal = fit_calibrator("platt", m, y)
    assert cal.slope == pytest.approx(0.5, abs=0.03)
    assert cal.intercept == pytest.approx(-1.0, abs=0.05)
    assert cal.n_fit == 40_000 and cal.positive_rate == pytest.approx(y.mean())


@pytest.mark.parametrize("method", ["platt", "isotonic"])
def test_calibration_fixes_the_probabilities_on_new_rows_and_keeps_the_ranking(method):
    m_fit, y_fit, _ = _sample(20_000, 1)
    m, y, truth = _sample(20_000, 2)
    cal = fit_calibrator(method, m_fit, y_fit)
    raw, fixed = IDENTITY.pd_from_margin(m), cal.pd_from_margin(m)
    assert brier_score(y, fixed) < brier_score(y, raw) - 0.02
    assert abs(fixed.mean() - y.mean()) < 0.01 < abs(raw.mean() - y.mean())
    assert np.abs(fixed - truth).mean() < 0.02
    assert np.all(np.diff(fixed[np.argsort(m)]) >= 0)  # non-decreasing in the margin
    if method == "platt":
        assert roc_auc(y, fixed) == pytest.approx(roc_auc(y, raw), abs=1e-12)


def test_none_is_the_boosters_sigmoid_and_the_raw_pd_path_agrees():
    m, y, _ = _sample(1000, 3)
    raw = 1.0 / (1.0 + np.exp(-m))
    assert fit_calibrator("none", m, y) is IDENTITY
    np.testing.assert_allclose(IDENTITY.pd_from_margin(m), raw, rtol=1e-15)
    np.testing.assert_allclose(margin_from_pd(raw), m, atol=1e-9)
    cal = fit_calibrator("platt", m, y)
    np.testing.assert_allclose(cal.pd_from_raw_pd(raw), cal.pd_from_margin(m), rtol=1e-9)


@pytest.mark.parametrize("method", ["platt", "isotonic", "none"])
def test_round_trip_through_json(method):
    m, y, _ = _sample(5000, 4)
    cal = fit_calibrator(method, m, y)
    back = Calibrator.from_dict(json.loads(json.dumps(cal.to_dict())))
    assert back == cal
    np.testing.assert_array_equal(back.pd_from_margin(m), cal.pd_from_margin(m))


def test_isotonic_knots_are_capped_and_stay_increasing():
    m, y, _ = _sample(30_000, 5)
    cal = fit_calibrator("isotonic", m, y, max_knots=20)
    assert 2 <= len(cal.knots_margin) <= 20
    assert np.all(np.diff(cal.knots_margin) > 0) and np.all(np.diff(cal.knots_pd) >= 0)
    # Outside the fitted range the map is clipped to its end values.
    assert cal.pd_from_margin(np.array([-1e9, 1e9])).tolist() == [cal.knots_pd[0], cal.knots_pd[-1]]


def test_isotonic_never_says_zero_or_certain():
    # The lowest margins hold no default and the highest only defaults: pd stays within the floor and cap.
    m = np.linspace(-5, 5, 3000)
    y = np.r_[np.zeros(1000, int), np.random.default_rng(7).integers(0, 2, 1000), np.ones(1000, int)]
    cal = fit_calibrator("isotonic", m, y)
    p = cal.pd_from_margin(np.array([-100.0, 0.0, 100.0]))
    assert p[0] == ISOTONIC_PD_BOUNDS[0] and p[2] == ISOTONIC_PD_BOUNDS[1] and 0.3 < p[1] < 0.7


@pytest.mark.parametrize(
    ("d", "match"),
    [
        ({"method": "sigmoid"}, "field 'method'"),
        ({"method": "platt", "slope": 1.0}, "field 'intercept' is missing"),
        ({"method": "platt", "slope": 0.0, "intercept": 0.0}, "field 'slope' must be > 0"),
        ({"method": "platt", "slope": "nan", "intercept": 0.0}, "must be finite"),
        ({"method": "platt", "slope": "x", "intercept": 0.0}, "not a number"),
        ({"method": "isotonic", "knots_margin": [0.0], "knots_pd": [0.1]}, "same length >= 2"),
        ({"method": "isotonic", "knots_margin": [1.0, 0.0], "knots_pd": [0.1, 0.2]}, "strictly increasing"),
        ({"method": "isotonic", "knots_margin": [0.0, 1.0], "knots_pd": [0.3, 0.2]}, "non-decreasing"),
        ({"method": "isotonic", "knots_margin": [0.0, 1.0], "knots_pd": [0.3, 1.2]}, "within \\[0, 1\\]"),
        ([1, 2], "expected an object"),
    ],
)
def test_invalid_maps_are_refused_naming_the_field(d, match):
    with pytest.raises(ValueError, match=match) as info:
        Calibrator.from_dict(d, "bundle/manifest.json field 'calibration'")
    assert str(info.value).startswith("bundle/manifest.json field 'calibration': ")


def test_fitting_refuses_what_cannot_be_calibrated():
    m, y, _ = _sample(2000, 6)
    with pytest.raises(ValueError, match="both classes"):
        fit_calibrator("platt", m, np.zeros_like(y))
    with pytest.raises(ValueError, match="ranks the held-out rows backwards"):
        fit_calibrator("platt", -m, y)
    with pytest.raises(ValueError, match="2000 margins but 3 labels"):
        fit_calibrator("platt", m, y[:3])
    with pytest.raises(ValueError, match="labels must be 0 or 1"):
        fit_calibrator("platt", m, y * 2)
    with pytest.raises(ValueError, match="not one of"):
        fit_calibrator("beta", m, y)
