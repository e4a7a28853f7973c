import json

import numpy as np
import pytest

from credspark.models._gan_transformer import (
    MASK_COLUMN,
    GanDataTransformer,
    mask_from_counts,
    observed_counts,
)
from credspark.models.spec import FeatureSpec, StaticFeature

T, C = 4, 2

SPEC = FeatureSpec(
    static=(
        StaticFeature("limit", "continuous", lower=0.0),  # lower bound from the spec, upper from data
        StaticFeature("grade", "categorical", categories=(1, 2, 3, 7)),  # code 7 never occurs in the data
        StaticFeature("age", "integer", lower=18, upper=80),
        StaticFeature("flag", "binary"),
        StaticFeature("score", "continuous"),  # bimodal, unbounded
        StaticFeature("constant", "continuous"),
        StaticFeature("two_values", "integer"),
    ),
    channels=("balance", "late"),
    T=T,
)


def make_rows(n=300, seed=0):
    rng = np.random.default_rng(seed)
    static = np.column_stack(
        [
            rng.gamma(2.0, 1000.0, n),
            rng.choice([1, 2, 3], n),
            rng.integers(20, 70, n),
            rng.integers(0, 2, n),
            np.where(rng.random(n) < 0.5, rng.normal(-5, 0.5, n), rng.normal(5, 0.5, n)),
            np.full(n, 3.5),
            rng.choice([0, 10], n),
        ]
    ).astype(float)
    counts = rng.integers(0, T + 1, n)
    mask = mask_from_counts(counts, T)
    dynamic = np.stack([rng.normal(100, 20, (n, T)), rng.integers(-2, 5, (n, T))], axis=2).astype(float)
    dynamic *= mask[:, :, None]  # masked months carry 0, as the feature job writes them
    return static, dynamic, mask


@pytest.fixture(scope="module")
def fitted():
    static, dynamic, mask = make_rows()
    return GanDataTransformer(SPEC, random_state=0).fit(static, dynamic, mask), (static, dynamic, mask)


def test_round_trip_is_exact_for_discrete_and_close_for_continuous(fitted):
    tr, (static, dynamic, mask) = fitted
    s, d, m = tr.inverse_transform(tr.transform(static, dynamic, mask))
    np.testing.assert_array_equal(m, mask)
    for j in (1, 2, 3, 5, 6):  # categorical, integer, binary, constant, two-valued: exact
        np.testing.assert_array_equal(s[:, j], static[:, j])
    np.testing.assert_allclose(s[:, 0], static[:, 0], rtol=1e-5, atol=1e-2)
    np.testing.assert_allclose(s[:, 4], static[:, 4], rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(d[:, :, 1], dynamic[:, :, 1])  # all-integral channel stays integral
    np.testing.assert_allclose(d[:, :, 0], dynamic[:, :, 0], rtol=1e-5, atol=1e-3)
    assert np.all(d[mask == 0] == 0)


def test_inverse_of_random_vectors_gives_valid_rows(fitted):
    tr, (static, dynamic, _) = fitted
    rng = np.random.default_rng(1)
    s, d, m = tr.inverse_transform(rng.normal(0, 3, (500, tr.output_dim_)))
    assert set(np.unique(s[:, 1])) <= {1, 2, 3, 7}
    assert set(np.unique(s[:, 3])) <= {0, 1}
    assert np.all(s[:, 2] == np.round(s[:, 2])) and s[:, 2].min() >= 18 and s[:, 2].max() <= 80
    assert s[:, 0].min() >= 0.0 and s[:, 0].max() <= static[:, 0].max()  # spec lower, observed upper
    assert s[:, 4].min() >= static[:, 4].min() and s[:, 4].max() <= static[:, 4].max()
    assert set(np.unique(s[:, 5])) == {3.5}
    assert set(np.unique(s[:, 6])) <= {0.0, 10.0}
    # the mask is a trailing block, every count occurs, and masked months are 0
    np.testing.assert_array_equal(m, mask_from_counts(m.sum(axis=1), T))
    assert set(m.sum(axis=1)) == set(range(T + 1))
    assert np.all(d[m == 0] == 0)
    observed = d[m == 1]
    assert np.all(observed[:, 1] == np.round(observed[:, 1]))
    assert observed[:, 1].min() >= dynamic[:, :, 1].min() and observed[:, 1].max() <= dynamic[:, :, 1].max()


def test_output_layout_matches_transformed_vectors(fitted):
    tr, (static, dynamic, mask) = fitted
    spans = tr.output_info_
    assert spans[0].start == 0
    assert all(a.start + a.width == b.start for a, b in zip(spans, spans[1:]))
    assert spans[-1].start + spans[-1].width == tr.output_dim_
    data = tr.transform(static, dynamic, mask)
    assert data.shape == (len(static), tr.output_dim_) and data.dtype == np.float32
    for span in spans:
        block = data[:, span.start : span.start + span.width]
        if span.activation == "tanh":
            assert span.width == 1 and np.abs(block).max() <= 1.0
        else:
            assert span.activation == "softmax"
            np.testing.assert_array_equal(block.sum(axis=1), 1.0)
            assert set(np.unique(block)) <= {0.0, 1.0}


def test_column_encodings(fitted):
    tr, _ = fitted
    by_name = {c.name: c for c in tr.columns_}
    assert len(tr.columns_) == SPEC.n_static + T * C + 1
    assert by_name["grade"].encoding == "onehot" and by_name["grade"].values == (1.0, 2.0, 3.0, 7.0)
    assert by_name["flag"].values == (0.0, 1.0)
    assert by_name["constant"].encoding == "onehot" and by_name["constant"].values == (3.5,)
    assert by_name["two_values"].encoding == "onehot"
    assert by_name[MASK_COLUMN].values == tuple(float(v) for v in range(T + 1))
    score = by_name["score"]
    assert score.encoding == "mode"
    # the bimodal column gets (at least) one mode near each of its two centres
    assert min(abs(np.array(score.means) + 5)) < 0.5 and min(abs(np.array(score.means) - 5)) < 0.5
    assert abs(sum(score.weights) - 1) < 1e-9 and all(w > 0.005 for w in score.weights)
    assert by_name["late@0"].integral and not by_name["balance@0"].integral
    assert by_name["limit"].lower == 0.0 and by_name["age"].upper == 80.0


def test_masked_months_do_not_shape_the_mixture(fitted):
    # about 1/5 of the rows mask month 0 with a 0; the balance mixture must describe values near 100 only
    tr, _ = fitted
    balance = next(c for c in tr.columns_ if c.name == "balance@0")
    assert min(balance.means) > 40
    assert balance.lower > 0


def test_dict_round_trip_through_json_transforms_identically(fitted):
    tr, (static, dynamic, mask) = fitted
    clone = GanDataTransformer.from_dict(json.loads(json.dumps(tr.to_dict())))
    np.testing.assert_array_equal(clone.transform(static, dynamic, mask), tr.transform(static, dynamic, mask))
    vectors = np.random.default_rng(2).normal(size=(50, tr.output_dim_))
    for a, b in zip(clone.inverse_transform(vectors), tr.inverse_transform(vectors)):
        np.testing.assert_array_equal(a, b)
    assert clone.output_info_ == tr.output_info_


def test_same_seed_same_fit():
    static, dynamic, mask = make_rows(n=400, seed=3)
    a = GanDataTransformer(SPEC, max_fit_rows=100, max_iter=20, random_state=5).fit(static, dynamic, mask)
    b = GanDataTransformer(SPEC, max_fit_rows=100, max_iter=20, random_state=5).fit(static, dynamic, mask)
    c = GanDataTransformer(SPEC, max_fit_rows=100, max_iter=20, random_state=6).fit(static, dynamic, mask)
    assert a.to_dict() == b.to_dict()
    assert a.to_dict()["columns"] != c.to_dict()["columns"]  # a different subsample gives other mixtures


def test_mixtures_are_fitted_on_a_subsample(monkeypatch):
    sizes = []
    original = GanDataTransformer._fit_mixture

    def spy(self, x, seed):
        sizes.append(x.size)
        return original(self, x, seed)

    monkeypatch.setattr(GanDataTransformer, "_fit_mixture", spy)
    static, dynamic, mask = make_rows(n=400, seed=3)
    GanDataTransformer(SPEC, max_fit_rows=50, max_iter=10, random_state=0).fit(static, dynamic, mask)
    # limit, age, score + T * C dynamic columns get a mixture; all others are one-hot
    assert len(sizes) == 3 + T * C
    assert max(sizes) == 50


def test_all_observed_when_mask_is_none():
    static, dynamic, _ = make_rows(n=100)
    tr = GanDataTransformer(SPEC, max_iter=10, random_state=0).fit(static, dynamic)
    _, _, m = tr.inverse_transform(tr.transform(static, dynamic))
    assert np.all(m == 1)


def test_rejects_bad_input(fitted):
    tr, (static, dynamic, mask) = fitted
    gap = mask.copy()
    gap[0] = [1, 0, 1, 1]  # an observed month before an unobserved one
    with pytest.raises(ValueError, match="row 0 is not a trailing block"):
        tr.transform(static, dynamic, gap)
    bad = static.copy()
    bad[0, 1] = 4  # not a listed category
    with pytest.raises(ValueError, match="grade"):
        GanDataTransformer(SPEC).fit(bad, dynamic, mask)
    bad = static.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        tr.transform(bad, dynamic, mask)
    with pytest.raises(ValueError, match="expected an"):
        tr.inverse_transform(np.zeros((3, tr.output_dim_ + 1)))


def test_observed_counts_and_mask_from_counts_are_inverse():
    counts = np.array([0, 1, 4, 2])
    m = mask_from_counts(counts, 4)
    np.testing.assert_array_equal(m, [[0, 0, 0, 0], [0, 0, 0, 1], [1, 1, 1, 1], [0, 0, 1, 1]])
    np.testing.assert_array_equal(observed_counts(m), counts)
