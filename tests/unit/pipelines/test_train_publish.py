"""Publishing: the bundle the training job publishes holds exactly the model files it evaluated (staged)."""

from __future__ import annotations

import pytest
from fixtures_models import feature_frame, tiny_spec

from credspark.models.bundle import BundleError, save_bundle
from credspark.models.focal_xgb import FocalXGBClassifier
from credspark.models.inputs import arrays_from_frame
from credspark.pipelines._train_publish import _check_same_models
from credspark.scoring.partition import read_bundle_files


def test_the_published_bundle_must_hold_the_staged_model_files(tmp_path):
    spec = tiny_spec()
    static, _, _, y = arrays_from_frame(feature_frame(spec, 300, seed=1), spec, with_label=True)

    def classifier(rounds: int) -> FocalXGBClassifier:
        return FocalXGBClassifier(n_estimators=rounds, max_depth=2, random_state=0, n_jobs=1,
                                  feature_names=spec.static_names).fit(static, y)

    evaluated = classifier(5)
    save_bundle(tmp_path / "staged", spec=spec, embedder=None, classifier=evaluated, metadata={"staged": True})
    staged = read_bundle_files(tmp_path / "staged")
    # Other metadata (the evaluation), the same models written again: accepted.
    save_bundle(tmp_path / "same", spec=spec, embedder=None, classifier=evaluated, metadata={"gate": {"passed": True}})
    _check_same_models(staged, tmp_path / "same")
    save_bundle(tmp_path / "other", spec=spec, embedder=None, classifier=classifier(6), metadata={})
    with pytest.raises(BundleError, match="differ from the staged bundle"):
        _check_same_models(staged, tmp_path / "other")
