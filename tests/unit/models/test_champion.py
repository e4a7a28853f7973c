import numpy as np
import pytest

from credspark.models.champion import CANDIDATES, candidates_from_config, choose_champion, select_champion


def test_the_highest_validation_metric_wins_when_no_simpler_candidate_is_within_the_margin():
    sel = select_champion({"paper": 0.80, "focal_static": 0.78, "plain_static": 0.77}, "auc", margin=0.01)
    assert sel.champion == "paper" and sel.best == "paper"
    assert "highest validation auc" in sel.reason and "0.8000" in sel.reason


def test_a_simpler_candidate_within_the_margin_beats_the_best():
    sel = select_champion({"paper": 0.800, "focal_static": 0.797, "plain_static": 0.7955}, "auc", margin=0.005)
    assert sel.best == "paper"
    assert sel.champion == "plain_static"  # the simplest of the three within 0.005
    assert "within train.champion_margin=0.005" in sel.reason and "simpler" in sel.reason


def test_just_outside_the_margin_the_simpler_candidate_loses():
    sel = select_champion({"paper": 0.800, "focal_static": 0.797, "plain_static": 0.7949}, "auc", margin=0.005)
    assert sel.champion == "focal_static"


def test_zero_margin_ties_go_to_the_simpler_candidate():
    assert select_champion({"paper": 0.8, "plain_static": 0.8}, margin=0.0).champion == "plain_static"
    assert select_champion({"paper": 0.8, "focal_static": 0.8}, margin=0.0).champion == "focal_static"


def test_a_single_candidate_is_the_champion():
    sel = select_champion({"paper": 0.61})
    assert sel.champion == "paper" and "only candidate" in sel.reason


def test_bad_inputs_name_the_problem():
    with pytest.raises(ValueError, match="unknown candidate"):
        select_champion({"lightgbm": 0.8})
    with pytest.raises(ValueError, match="champion_margin"):
        select_champion({"paper": 0.8}, margin=-0.1)
    with pytest.raises(ValueError, match="non-finite"):
        select_champion({"paper": float("nan")})
    with pytest.raises(ValueError, match="train.candidates"):
        candidates_from_config(["paper", "xgb"])
    with pytest.raises(ValueError, match="twice"):
        candidates_from_config(["paper", "paper"])
    with pytest.raises(ValueError, match="at least one"):
        candidates_from_config([])
    assert [c.key for c in candidates_from_config(["plain_static", "paper"])] == ["plain_static", "paper"]
    rank = {k: c.complexity for k, c in CANDIDATES.items()}
    assert rank["plain_static"] < rank["focal_static"] < rank["paper"]


def _data(seed=0, n=400):
    rng = np.random.default_rng(seed)
    parts = np.array(["valid"] * (n // 2) + ["test"] * (n // 2))
    y = rng.integers(0, 2, n)
    good = y + rng.normal(0, 0.8, n)  # informative
    weak = y + rng.normal(0, 3.0, n)  # barely informative
    return parts, y, {"paper": 1 / (1 + np.exp(-good)), "plain_static": 1 / (1 + np.exp(-weak))}


def test_the_choice_is_made_on_validation_rows_and_test_scores_cannot_move_it():
    parts, y, scores = _data()
    sel = choose_champion(parts, y, scores, "auc", margin=0.0)
    assert sel.champion == "paper"
    # Make the paper candidate perfect-but-inverted on test, and plain perfect on test: nothing changes.
    is_test = parts == "test"
    rigged = {k: v.copy() for k, v in scores.items()}
    rigged["paper"][is_test] = 1.0 - y[is_test]
    rigged["plain_static"][is_test] = y[is_test].astype(float)
    again = choose_champion(parts, y, rigged, "auc", margin=0.0)
    assert again == sel
    # Whereas changing the validation rows does move it.
    is_valid = parts == "valid"
    rigged["plain_static"][is_valid] = y[is_valid].astype(float)
    assert choose_champion(parts, y, rigged, "auc", margin=0.0).champion == "plain_static"


def test_ks_is_a_selection_metric_and_unknown_metrics_are_refused():
    parts, y, scores = _data(1)
    sel = choose_champion(parts, y, scores, "ks")
    assert sel.metric == "ks" and set(sel.valid) == {"paper", "plain_static"} and 0 < sel.valid["paper"] <= 1
    with pytest.raises(ValueError, match="train.champion_metric"):
        choose_champion(parts, y, scores, "gini")
