import json

import numpy as np
import pytest

from credspark.models._preprocess import CLIP, InputPreprocessor, signed_log1p
from credspark.models.spec import FeatureSpec, SpecMismatchError, StaticFeature

SPEC = FeatureSpec(
    static=(
        StaticFeature("amount", "continuous"),
        StaticFeature("grade", "categorical", categories=(1, 2, 5)),
        StaticFeature("age", "integer"),
        StaticFeature("flag", "binary"),
    ),
    channels=("bill", "delay"),
    T=4,
)


def make(n=500, seed=0):
    rng = np.random.default_rng(seed)
    static = np.c_[
        rng.lognormal(8, 1.5, n),  # heavy tailed
        rng.choice([1, 2, 5], n),
        rng.integers(20, 70, n),  # not heavy tailed
        rng.integers(0, 2, n),
    ].astype(float)
    dynamic = np.stack([rng.lognormal(6, 2, (n, 4)), rng.normal(1.0, 2.0, (n, 4))], axis=-1)
    lens = rng.integers(0, 5, n)
    mask = (np.arange(4)[None] >= 4 - lens[:, None]).astype(np.uint8)
    return static, dynamic, mask


def test_one_hot_uses_spec_codes_and_unknown_or_missing_give_zeros():
    static, dynamic, mask = make()
    pre = InputPreprocessor().fit(SPEC, static, dynamic, mask)
    assert pre.n_static_out_ == 1 + 3 + 1 + 1
    rows = static[:5].copy()
    rows[:, 1] = [1, 2, 5, 3, np.nan]  # 3 is not a listed code
    out = pre.transform_static(rows)
    np.testing.assert_array_equal(out[:, 1:4], [[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 0], [0, 0, 0]])


def test_heavy_tailed_column_gets_signed_log_and_columns_are_standardised():
    static, dynamic, mask = make()
    pre = InputPreprocessor().fit(SPEC, static, dynamic, mask)
    cols = {c["name"]: c for c in pre.static_columns_}
    assert cols["amount"]["log"] is True
    assert cols["age"]["log"] is False
    assert pre.dynamic_log_ == [True, False]
    out = pre.transform_static(static)
    for j in (0, 4):  # amount, age
        assert abs(out[:, j].mean()) < 1e-4
        assert abs(out[:, j].std() - 1.0) < 1e-3
    np.testing.assert_array_equal(out[:, 5], static[:, 3])  # binary passes through


def test_signed_log_keeps_sign():
    np.testing.assert_allclose(signed_log1p(np.array([-np.e + 1, 0.0, np.e - 1])), [-1.0, 0.0, 1.0])


def test_non_finite_values_become_zero_and_extremes_are_clipped():
    static, dynamic, mask = make()
    pre = InputPreprocessor().fit(SPEC, static, dynamic, mask)
    rows = static[:4].copy()
    rows[:, 0] = [np.nan, np.inf, -np.inf, 1e300]
    rows[:, 2] = [np.nan, 30, 30, 1e12]
    rows[:, 3] = [np.nan, 1, 0, 1]
    out = pre.transform_static(rows)
    assert np.isfinite(out).all()
    np.testing.assert_array_equal(out[:3, 0], 0.0)
    assert out[0, 4] == 0.0 and out[0, 5] == 0.0
    assert out[3, 4] == CLIP  # 1e12 years old: clipped, not dominating
    dyn = dynamic[:3].copy()
    m = np.ones((3, 4), dtype=np.uint8)
    dyn[0, 0, :] = np.nan
    dyn[1, 1, :] = np.inf
    dyn[2, 2, :] = -np.inf
    z = pre.transform_dynamic(dyn, m)
    assert np.isfinite(z).all()
    assert (z[0, 0] == 0).all() and (z[1, 1] == 0).all() and (z[2, 2] == 0).all()


def test_dynamic_statistics_use_observed_months_only_and_masked_months_are_zero():
    static, dynamic, mask = make()
    pre = InputPreprocessor().fit(SPEC, static, dynamic, mask)
    poisoned = dynamic.copy()
    poisoned[mask == 0] = 1e9  # junk in unobserved months must not move the statistics
    pre2 = InputPreprocessor().fit(SPEC, static, poisoned, mask)
    assert pre2.dynamic_mean_ == pre.dynamic_mean_ and pre2.dynamic_std_ == pre.dynamic_std_
    z = pre2.transform_dynamic(poisoned, mask)
    assert z.dtype == np.float32
    assert (z[mask == 0] == 0).all()
    obs = z[mask == 1]
    np.testing.assert_allclose(obs.mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(obs.std(axis=0), 1.0, atol=1e-3)


def test_dict_round_trip_through_json_gives_identical_outputs():
    static, dynamic, mask = make()
    pre = InputPreprocessor().fit(SPEC, static, dynamic, mask)
    back = InputPreprocessor.from_dict(json.loads(json.dumps(pre.to_dict(), allow_nan=False)))
    np.testing.assert_array_equal(back.transform_static(static), pre.transform_static(static))
    np.testing.assert_array_equal(back.transform_dynamic(dynamic, mask), pre.transform_dynamic(dynamic, mask))


def test_constant_or_all_missing_column_does_not_divide_by_zero():
    static, dynamic, mask = make(n=50)
    static[:, 0] = 7.0
    static[:, 2] = np.nan
    pre = InputPreprocessor().fit(SPEC, static, dynamic, mask)
    out = pre.transform_static(static)
    assert np.isfinite(out).all()
    np.testing.assert_array_equal(out[:, 0], 0.0)
    np.testing.assert_array_equal(out[:, 4], 0.0)


def test_shape_mismatch_is_rejected():
    static, dynamic, mask = make(n=20)
    with pytest.raises(SpecMismatchError):
        InputPreprocessor().fit(SPEC, static[:, :3], dynamic, mask)
    pre = InputPreprocessor().fit(SPEC, static, dynamic, mask)
    with pytest.raises(ValueError):
        pre.transform_dynamic(dynamic[..., :1], mask)
