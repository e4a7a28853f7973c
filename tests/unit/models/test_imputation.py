"""Library use of the deep step's imputation: fill values from numpy statistics, no Spark needed."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from credspark.models.actgan import ACTGAN
from credspark.models.imputation import fill_missing_static, imputation_values, static_statistics
from credspark.models.spec import FeatureSpec, StaticFeature

SPEC = FeatureSpec(static=(StaticFeature("x"), StaticFeature("n", "integer"),
                           StaticFeature("grade", "categorical", (3, 5, 7)), StaticFeature("flag", "binary")),
                   channels=("a",), T=1)
NAN = np.nan


def test_fill_values_by_hand_and_an_all_missing_categorical_gets_a_code_actgan_accepts():
    static = np.array([[1.0, 2.0, NAN, 1.0],
                       [3.0, NAN, NAN, NAN],
                       [NAN, 5.0, NAN, 0.0],
                       [2.0, 4.0, NAN, 1.0]])  # fmt: skip
    stats = static_statistics(static, SPEC)
    assert (stats["__n"], stats["n0"], stats["m0"], stats["s0"]) == (4, 3, 2.0, 0.0)
    values = imputation_values(stats, SPEC)
    # x: mean 2; n: mean 11/3 (rounded to 4 when filled); grade: no value at all -> its first code 3; flag: 0
    assert values == {"x": {"value": 2.0, "missing_share": 0.25}, "n": {"value": pytest.approx(11 / 3),
                                                                      "missing_share": 0.25},
                      "grade": {"value": 3.0, "missing_share": 1.0}, "flag": {"value": 0.0, "missing_share": 0.25}}
    filled, _ = fill_missing_static(static, SPEC)
    np.testing.assert_array_equal(filled, [[1, 2, 3, 1], [3, 4, 3, 0], [2, 5, 3, 0], [2, 4, 3, 1]])
    assert np.isnan(static).sum() == 7  # the input is not changed
    y = np.array([0, 1, 0, 1])
    ACTGAN(spec=SPEC, epochs=1, batch_size=4, noise_dim=4, generator_dims=(8,), discriminator_dims=(8,),
           random_state=0).fit(filled, np.zeros((4, 1, 1)), y)  # refuses NaN and codes outside 3, 5, 7


def test_the_imputation_helper_imports_without_pyspark():
    code = ("import sys, credspark.models.imputation, credspark.models.actgan\n"
            "print(sorted(k for k in sys.modules if k.split('.')[0] == 'pyspark'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         cwd=Path(__file__).resolve().parents[3])
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"
