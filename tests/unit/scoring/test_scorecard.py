import math

import numpy as np
import pytest

from credspark.scoring.scorecard import PD_CLIP, ScorecardScale, points_from_pd, risk_bands

SCALE = ScorecardScale(base_points=600, base_odds=50, pdo=20)


def test_base_odds_earn_base_points_and_pdo_doubles_the_odds():
    def pd_at(odds):  # good:bad odds -> probability of bad
        return 1.0 / (1.0 + odds)

    pts = points_from_pd(np.array([pd_at(50), pd_at(100), pd_at(25), pd_at(1)]), SCALE)
    factor = 20 / math.log(2)
    np.testing.assert_allclose(pts, [600, 620, 580, 600 - factor * math.log(50)], atol=1e-9)
    assert SCALE.factor == pytest.approx(28.8539, abs=1e-4)
    assert SCALE.offset == pytest.approx(600 - factor * math.log(50))


def test_points_fall_as_risk_rises_and_stay_finite_at_zero_and_one():
    pts = points_from_pd(np.array([0.0, 0.01, 0.1, 0.5, 0.9, 1.0, np.nan]), SCALE)
    assert np.all(np.diff(pts[:6]) < 0)
    assert np.isfinite(pts[:6]).all() and np.isnan(pts[6])
    assert pts[0] == pytest.approx(points_from_pd(np.array([PD_CLIP]), SCALE)[0])


def test_bad_scale_is_refused():
    with pytest.raises(ValueError, match="pdo"):
        ScorecardScale(pdo=0)


def test_bands_from_cutoffs_with_ties_going_to_the_better_band():
    labels = risk_bands(np.array([400.0, 500.0, 539.99, 540.0, 700.0, np.nan]), (500, 540, 580, 620),
                        ("E", "D", "C", "B", "A"))
    assert list(labels) == ["E", "D", "D", "C", "A", None]


def test_bands_refuse_wrong_label_count_and_unsorted_cutoffs():
    with pytest.raises(ValueError, match="labels"):
        risk_bands(np.array([1.0]), (500, 540), ("B", "A"))
    with pytest.raises(ValueError, match="ascending"):
        risk_bands(np.array([1.0]), (540, 500), ("C", "B", "A"))


def test_the_scale_round_trips_through_its_dict():
    scale = ScorecardScale(base_points=500, base_odds=20, pdo=40)
    assert ScorecardScale.of(scale) == scale and ScorecardScale(**scale.to_dict()) == scale
