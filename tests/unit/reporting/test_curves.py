"""Report curves agree with credspark.metrics and with hand-computed points."""

from __future__ import annotations

import numpy as np
import pytest

from credspark.metrics import ks_statistic, precision_recall_f1, roc_auc
from credspark.reporting.curves import ks_curve, roc_curve, thin, threshold_curves


def _sample(n=2000, seed=0):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.2).astype(int)
    s = 1 / (1 + np.exp(-(rng.normal(size=n) + 1.2 * y)))
    return y, np.round(s, 3)  # rounding makes ties, which must be handled as one threshold


def test_roc_curve_by_hand():
    c = roc_curve([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    np.testing.assert_allclose(c["fpr"], [0, 0, 0.5, 0.5, 1])
    np.testing.assert_allclose(c["tpr"], [0, 0.5, 0.5, 1, 1])
    assert c["threshold"][0] == np.inf


def test_roc_area_and_ks_match_the_metrics_module():
    y, s = _sample()
    c = roc_curve(y, s, max_points=10**6)
    assert np.trapezoid(c["tpr"], c["fpr"]) == pytest.approx(roc_auc(y, s), abs=1e-12)
    k = ks_curve(y, s, max_points=50)
    assert k["ks"] == pytest.approx(ks_statistic(y, s), abs=1e-12)
    # The KS point survives thinning, and "flagged" runs from the riskiest row to everyone.
    assert np.max(k["bad"] - k["good"]) == pytest.approx(k["ks"])
    assert k["flagged"][-1] == pytest.approx(1.0) and np.all(np.diff(k["flagged"]) > 0)


def test_threshold_curves_match_precision_recall_f1():
    y, s = _sample()
    c = threshold_curves(y, s, max_points=40)
    assert c["threshold"].size <= 41
    for t, p, r, f in list(zip(c["threshold"], c["precision"], c["recall"], c["f1"]))[::7]:
        ref = precision_recall_f1(y, s, t)
        assert (p, r, f) == pytest.approx((ref["precision"], ref["recall"], ref["f1"]))


def test_thin_keeps_ends_and_requested_points():
    idx = thin(1000, 10, keep=(333,))
    assert idx[0] == 0 and idx[-1] == 999 and 333 in idx and len(idx) <= 11
    np.testing.assert_array_equal(thin(5, 10), np.arange(5))


@pytest.mark.parametrize("y,s,msg", [([1, 1], [0.1, 0.2], "both classes"), ([0, 1], [0.1, np.nan], "non-finite"),
                                     ([0, 2], [0.1, 0.2], "only 0 and 1"), ([0, 1], [0.1], "same non-zero length")])
def test_curves_reject_bad_input(y, s, msg):
    with pytest.raises(ValueError, match=msg):
        roc_curve(y, s)
