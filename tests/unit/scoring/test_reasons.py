import numpy as np
import pytest

from credspark.errors import ConfigError
from credspark.models.spec import FeatureSpec, StaticFeature
from credspark.scoring.reasons import EMBEDDING_GROUP, build_reason_map, reason_grouping, reason_groups, top_reasons

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


ENCODED = FeatureSpec(
    static=(StaticFeature("debt_ratio"), StaticFeature("utilisation"),
            *(StaticFeature(f"housing__{c}", "binary") for c in ("own", "rent", "other"))),
    channels=(), T=0, extra={"category_encoding": {"housing": ["own", "Rent"]}})
TREE_INPUTS = ["debt_ratio", "utilisation", "housing__own", "housing__rent", "housing__other"]


def test_a_categorical_attributes_indicators_report_as_the_attribute():
    rmap = build_reason_map(TREE_INPUTS, ENCODED, None)
    assert rmap.groups == ("debt_ratio", "utilisation", "housing")
    # the three indicator contributions add up: 0.25 - 0.05 + 0.1 = 0.3
    np.testing.assert_allclose(rmap.scores(np.array([[0.2, -0.1, 0.25, -0.05, 0.1, 7.0]])), [[0.2, -0.1, 0.3]])
    assert [c[0] for c in top_reasons(rmap.scores(np.array([[0.2, -0.1, 0.25, -0.05, 0.1]])), rmap.groups, 2)] \
        == ["housing", "debt_ratio"]


def test_configured_reason_groups_sum_their_members_and_name_the_group():
    grouping = reason_grouping(ENCODED, {"indebtedness": ["debt_ratio", "utilisation"], "home": ["housing"]})
    rmap = build_reason_map(TREE_INPUTS, ENCODED, None, grouping)
    assert rmap.groups == ("indebtedness", "home")
    np.testing.assert_allclose(rmap.scores(np.array([[0.2, -0.1, 0.25, -0.05, 0.1]])), [[0.1, 0.3]])
    # an unlisted input stays its own group; an embedding's channel group can be configured too
    partial = build_reason_map(["emb_0", "emb_1", "age", "limit"], SPEC,
                               np.array([[0.5, 0.0, 0.5, 0.0], [0.0, 0.0, 0.0, 1.0]]),
                               reason_grouping(SPEC, {"history": ["seq:bill", "seq:pay"]}))
    assert partial.groups == ("age", "limit", "history")
    np.testing.assert_allclose(partial.scores(np.array([[1.0, 0.2, 0.3, -0.4]])), [[0.8, -0.4, 0.7]])


def test_reason_groups_naming_no_input_or_one_input_twice_are_refused():
    with pytest.raises(ConfigError, match=r"score.reason_groups.debt: 'debts' is not an input"):
        reason_grouping(ENCODED, {"debt": ["debts"]})
    with pytest.raises(ConfigError, match="'housing' is in both 'a' and 'b'"):
        reason_grouping(ENCODED, {"a": ["housing"], "b": ["housing"]})
