import numpy as np
import pytest

from credspark.models.spec import FeatureSpec, StaticFeature
from credspark.scoring.reasons import EMBEDDING_GROUP, build_reason_map, reason_groups, top_reasons

SPEC = FeatureSpec(static=(StaticFeature("age", "integer"), StaticFeature("limit")), channels=("bill", "pay"), T=3)


def test_groups_are_static_names_then_channels():
    assert reason_groups(SPEC) == ["age", "limit", "seq:bill", "seq:pay"]


def test_raw_static_contributions_map_to_their_names_and_embeddings_through_the_attribution():
    att = np.array([[0.5, 0.0, 0.5, 0.0], [0.0, 0.0, 0.0, 1.0]])  # emb_0 reads age+bill, emb_1 reads pay
    rmap = build_reason_map(["emb_0", "emb_1", "age", "limit"], SPEC, att)
    assert rmap.method == "raw+attribution"
    contribs = np.array([[1.0, 0.2, 0.3, -0.4, 9.9]])  # last column: bias, ignored
    np.testing.assert_allclose(rmap.scores(contribs), [[0.5 + 0.3, -0.4, 0.5, 0.2]])


def test_without_attribution_embeddings_form_one_group():
    rmap = build_reason_map(["emb_0", "emb_1"], SPEC, None)
    assert rmap.groups == (EMBEDDING_GROUP,) and rmap.method == "embedding"
    np.testing.assert_allclose(rmap.scores(np.array([[0.1, 0.2, 0.0]])), [[0.3]])
    mixed = build_reason_map(["emb_0", "age"], SPEC, None)
    assert mixed.groups == ("age", "limit", EMBEDDING_GROUP)


def test_reason_map_refuses_unknown_inputs_and_wrong_shapes():
    with pytest.raises(ValueError, match="neither"):
        build_reason_map(["emb_0", "mystery"], SPEC, None)
    with pytest.raises(ValueError, match="attribution"):
        build_reason_map(["emb_0"], SPEC, np.ones((2, 4)))
    rmap = build_reason_map(["emb_0"], SPEC, None)
    with pytest.raises(ValueError, match="contributions"):
        rmap.scores(np.zeros((2, 5)))


def test_top_reasons_are_the_largest_positive_scores_in_order():
    scores = np.array([
        [0.1, 0.5, -0.2, 0.3],   # limit, pay, age
        [-1.0, -0.1, 0.2, 0.0],  # only bill raised the risk
        [0.2, 0.2, 0.2, 0.1],    # ties keep group order
    ])  # fmt: skip
    r1, r2, r3 = top_reasons(scores, ["age", "limit", "bill", "pay"], 3)
    assert list(r1) == ["limit", "bill", "age"]
    assert list(r2) == ["pay", None, "limit"]
    assert list(r3) == ["age", None, "bill"]


def test_more_reasons_than_groups_leave_none():
    r = top_reasons(np.array([[1.0, 2.0]]), ["a", "b"], 3)
    assert [c[0] for c in r] == ["b", "a", None]
