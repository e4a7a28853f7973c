import json
import math

import numpy as np
import pytest
from sklearn import metrics as skm
from sklearn.calibration import calibration_curve

from credspark.metrics import (
    best_f1_threshold,
    brier_score,
    calibration_table,
    confusion_at,
    credit_report,
    ks_statistic,
    log_loss,
    precision_recall_f1,
    psi,
    roc_auc,
)


def _data(seed, n=500, rounding=1):
    """Scores rounded to one decimal: many ties, the case rank-based AUC must handle."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.2).astype(int)
    score = np.clip(0.3 * y + rng.normal(0.35, 0.2, n), 0.001, 0.999)
    return y, np.round(score, rounding).clip(0.0, 1.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auc_and_ks_match_sklearn_with_ties(seed):
    y, s = _data(seed)
    assert len(np.unique(s)) < 15  # heavy ties
    assert roc_auc(y, s) == pytest.approx(skm.roc_auc_score(y, s), abs=1e-12)
    fpr, tpr, _ = skm.roc_curve(y, s, drop_intermediate=False)
    assert ks_statistic(y, s) == pytest.approx(np.max(tpr - fpr), abs=1e-12)


def test_auc_ks_continuous_scores_and_perfect_separation():
    y, s = _data(5, rounding=6)
    assert roc_auc(y, s) == pytest.approx(skm.roc_auc_score(y, s), abs=1e-12)
    y2 = np.array([0, 0, 1, 1])
    assert roc_auc(y2, [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert roc_auc(y2, [0.9, 0.8, 0.2, 0.1]) == 0.0
    assert roc_auc(y2, [0.5, 0.5, 0.5, 0.5]) == 0.5
    assert ks_statistic(y2, [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert ks_statistic(y2, [0.5, 0.5, 0.5, 0.5]) == 0.0


@pytest.mark.parametrize("threshold", [0.2, 0.4, 0.5, 0.7])
def test_confusion_and_prf_match_sklearn(threshold):
    y, s = _data(3)
    pred = (s >= threshold).astype(int)
    tn, fp, fn, tp = skm.confusion_matrix(y, pred, labels=[0, 1]).ravel()
    assert confusion_at(y, s, threshold) == {"tp": tp, "fp": fp, "fn": fn, "tn": tn}
    prf = precision_recall_f1(y, s, threshold)
    assert prf["precision"] == pytest.approx(skm.precision_score(y, pred, zero_division=0))
    assert prf["recall"] == pytest.approx(skm.recall_score(y, pred, zero_division=0))
    assert prf["f1"] == pytest.approx(skm.f1_score(y, pred, zero_division=0))


def test_threshold_is_inclusive_and_empty_prediction_gives_zero():
    y = np.array([1, 0, 1, 0])
    s = np.array([0.5, 0.5, 0.2, 0.1])
    assert confusion_at(y, s, 0.5) == {"tp": 1, "fp": 1, "fn": 1, "tn": 1}
    assert precision_recall_f1(y, s, 0.99) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}


def test_best_f1_threshold_is_the_maximiser_over_observed_scores():
    y, s = _data(4)
    t = best_f1_threshold(y, s)
    assert t in set(s)
    best = skm.f1_score(y, (s >= t).astype(int))
    for cand in np.unique(s):
        assert skm.f1_score(y, (s >= cand).astype(int)) <= best + 1e-12
    # hand example: flagging the top two rows gives F1 = 1
    assert best_f1_threshold([0, 1, 1, 0], [0.1, 0.9, 0.7, 0.3]) == 0.7


def test_brier_and_log_loss_match_sklearn():
    y, s = _data(6, rounding=3)
    s = s.clip(0.01, 0.99)
    assert brier_score(y, s) == pytest.approx(skm.brier_score_loss(y, s), abs=1e-12)
    assert log_loss(y, s) == pytest.approx(skm.log_loss(y, s), rel=1e-10)


def test_log_loss_is_clipped():
    assert log_loss([1, 1], [0.0, 0.0]) == pytest.approx(-math.log(1e-15), rel=1e-12)
    # 1 - 1e-15 is not exact in float64, hence the looser tolerance on the other side
    assert log_loss([0], [1.0]) == pytest.approx(-math.log(1e-15), rel=1e-3)
    assert log_loss([1, 0], [0.0, 1.0], eps=1e-3) == pytest.approx(-math.log(1e-3), rel=1e-9)


def test_psi_hand_computed():
    expected = np.arange(10, dtype=float)  # quartile edges 2.25, 4.5, 6.75 -> bins of 3, 2, 2, 3
    actual = np.array([0.0, 0.0, 0.0, 0.0, 4.0, 9.0, 9.0, 9.0])  # shares 4/8, 1/8, 0 -> eps, 3/8
    e = np.array([0.3, 0.2, 0.2, 0.3])
    a = np.array([0.5, 0.125, 1e-4, 0.375])
    want = float(np.sum((a - e) * np.log(a / e)))
    assert psi(expected, actual, bins=4) == pytest.approx(want, rel=1e-12)


def test_psi_identical_samples_is_zero_and_shift_is_large():
    rng = np.random.default_rng(0)
    x = rng.normal(size=2000)
    assert psi(x, x) == 0.0
    assert psi(x, x + 1.0) > 0.25
    assert psi(x, rng.normal(size=2000)) < 0.05


def test_psi_with_ties_merges_bins():
    expected = np.array([0.0] * 8 + [1.0, 2.0])
    # deciles collapse to {0, 0.2, 1.1}; the edge at the minimum is dropped, so no always-empty bin
    assert psi(expected, expected, bins=10) == 0.0
    assert psi(expected, np.full(10, 0.0), bins=10) > 0


def test_calibration_table_matches_sklearn_calibration_curve():
    y, s = _data(7, rounding=3)
    table = calibration_table(y, s, bins=10)
    prob_true, prob_pred = calibration_curve(y, s, n_bins=10, strategy="uniform")
    np.testing.assert_allclose([r["observed_rate"] for r in table], prob_true, rtol=1e-12)
    np.testing.assert_allclose([r["mean_predicted"] for r in table], prob_pred, rtol=1e-12)
    assert sum(r["count"] for r in table) == len(y)


def test_credit_report_contains_everything_and_is_json_safe():
    y, s = _data(8, rounding=3)
    rep = credit_report(y, s, 0.5, reference_score=s)
    assert rep["auc"] == pytest.approx(skm.roc_auc_score(y, s))
    assert rep["recall"] == pytest.approx(skm.recall_score(y, (s >= 0.5).astype(int)))
    assert rep["tp"] + rep["fp"] + rep["fn"] + rep["tn"] == rep["n"] == len(y)
    assert rep["psi"] == 0.0
    assert rep["mean_score"] == pytest.approx(s.mean())
    for key in ("ks", "precision", "f1", "best_f1_threshold", "brier", "log_loss", "calibration", "positive_rate"):
        assert key in rep
    assert json.loads(json.dumps(rep)) == rep
    assert "psi" not in credit_report(y, s, 0.5)


@pytest.mark.parametrize(
    ("fn", "args", "match"),
    [
        (roc_auc, ([0, 1, 1], [0.1, 0.2]), "length mismatch"),
        (roc_auc, ([1, 1, 1], [0.1, 0.2, 0.3]), "both classes"),
        (ks_statistic, ([0, 0], [0.1, 0.2]), "both classes"),
        (roc_auc, ([0, 1], [0.1, np.nan]), "non-finite"),
        (brier_score, ([0, 1], [0.1, np.inf]), "non-finite"),
        (roc_auc, ([0, 2], [0.1, 0.2]), "0 and 1"),
        (brier_score, ([0, 1], [0.1, 1.2]), r"\[0, 1\]"),
        (psi, ([0.1, 0.2], [np.nan]), "non-finite"),
        (best_f1_threshold, ([0, 0], [0.1, 0.2]), "positive"),
        (roc_auc, ([], []), "empty"),
    ],
)
def test_invalid_inputs_raise_clear_value_errors(fn, args, match):
    with pytest.raises(ValueError, match=match):
        fn(*args)
