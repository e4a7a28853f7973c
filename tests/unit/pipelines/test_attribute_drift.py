"""PSI monitors the declared attributes: numeric ones by quantile bins, categorical ones one bin per category."""

import math

import pytest

from credspark.config import ScoreConfig
from credspark.features.encoding import drift_columns, mark_attributes
from credspark.models.spec import FeatureSpec, StaticFeature
from credspark.pipelines._score_monitor import _feature_psi
from credspark.pipelines._train_evaluate import training_distributions

pytestmark = pytest.mark.spark

SPEC = FeatureSpec(
    static=(StaticFeature("x"), StaticFeature("bureau_score"),
            *(StaticFeature(f"housing__{c}", "binary") for c in ("own", "rent", "other"))),
    channels=(), T=0,
    extra={"attributes": {"bureau_score": {"kind": "numeric"}, "housing": {"kind": "categorical"}},
           "category_encoding": {"housing": ["own", "rent"]}})
ROW = "customer_id long, x double, bureau_score double, housing__own int, housing__rent int, housing__other int"


def _rows(spark, housing, first=0):
    hot = {"own": (1, 0, 0), "rent": (0, 1, 0), "other": (0, 0, 1), None: (None, None, None)}
    return spark.createDataFrame([(first + i, float(i % 7), float(600 + i % 50), *hot[h])
                                  for i, h in enumerate(housing)], ROW)


def test_every_declared_attribute_is_stored_and_checked_a_categorical_one_per_category(spark):
    # training: own 50%, rent 30%, other 20% (and one missing value)
    train = _rows(spark, ["own"] * 50 + ["rent"] * 30 + ["other"] * 20 + [None])
    columns, fixed = drift_columns(SPEC, top=["housing__rent", "x"])  # an indicator is never monitored alone
    assert list(columns) == ["x", "bureau_score", "housing"] and fixed == {"housing": [1.0, 2.0]}
    dists = mark_attributes(training_distributions(train, columns, 10, 0.0001, fixed), SPEC)
    h = dists["housing"]
    assert (h["edges"], h["binning"], h["categories"], h["attribute"]) == ([1.0, 2.0], "fixed",
                                                                             ["own", "rent", "other"], True)
    assert h["shares"] == pytest.approx([0.5, 0.3, 0.2]) and h["missing_share"] == pytest.approx(1 / 101)
    assert dists["bureau_score"]["attribute"] and "attribute" not in dists["x"]

    # scoring: own 25%, rent 25%, other 50%; psi_top_features=0 still checks the attributes
    scored = _rows(spark, ["own"] * 25 + ["rent"] * 25 + ["other"] * 50, first=1000)
    psi = _feature_psi(scored, dists, ScoreConfig(psi_top_features=0))
    assert list(psi) == ["bureau_score", "housing"]
    expected = sum((a - e) * math.log(a / e) for a, e in ((0.25, 0.5), (0.25, 0.3), (0.5, 0.2)))  # 0.4573
    assert psi["housing"]["value"] == pytest.approx(expected, abs=1e-6) and psi["housing"]["level"] == "fail"
    assert set(_feature_psi(scored, dists, ScoreConfig(psi_top_features=1))) == {"x", "bureau_score", "housing"}
    missing = _feature_psi(scored.drop("housing__other"), dists, ScoreConfig(psi_top_features=0))
    assert missing["housing"]["level"] != "fail" and "not a column" in str(missing["housing"])
