"""The MLflow pyfunc of a credspark bundle: same pd, score, band and reason codes as the nightly scoring job.

Logged with MLflow's models-from-code (:data:`MODEL_CODE` is the code file; nothing is pickled): the model
version's artifacts are the bundle's files (``artifacts/bundle/``: the manifest and every file it lists) and
its ``model_config`` is the ``score`` config section of the training run that registered it (scorecard
scale, bands, reason codes, batch size, threads). ``load_context`` reads the files with
:func:`credspark.scoring.partition.read_bundle_files` and loads them as the nightly job's Python workers do,
with :func:`~credspark.scoring.partition.cached_model` (every file's SHA-256 checked against the manifest,
weights loaded without pickle; the process tuned for scoring and torch/XGBoost held to ``score.torch_threads``
and ``score.xgb_threads``); ``predict`` is :func:`credspark.scoring.partition.score_frame`, the function the
nightly job runs in ``mapInPandas``.

Input: a pandas DataFrame of feature rows (``customer_id``, the static columns, the categorical attributes as
text, ``seq``, ``seq_mask``), as the ``features`` table holds them. Output: ``customer_id, pd, score,
risk_band, reason_1..reason_n``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.pyfunc import PythonModel

__all__ = ["CredsparkScoringModel", "MODEL_CODE", "BUNDLE_ARTIFACT"]

#: The models-from-code file MLflow logs and runs at load time (it calls ``mlflow.models.set_model``).
MODEL_CODE = Path(__file__).with_name("pyfunc_model.py")
#: Name of the artifact (a folder) that holds the bundle files.
BUNDLE_ARTIFACT = "bundle"


class CredsparkScoringModel(PythonModel):
    """Scores feature rows with a verified credspark bundle (see the module docstring)."""

    def load_context(self, context: Any) -> None:
        """Read, verify and load the bundle; build the scoring parameters from ``model_config``."""
        from credspark.config import config_from_dict
        from credspark.models.bundle import MANIFEST_FILE, BundleError
        from credspark.models.spec import FeatureSpec
        from credspark.pipelines.score import score_params
        from credspark.scoring.partition import bundle_digest, cached_model, read_bundle_files

        where = context.artifacts[BUNDLE_ARTIFACT]
        files = read_bundle_files(where)
        try:  # the spec the bundle declares; cached_model verifies the bundle against it
            spec = FeatureSpec.from_dict(json.loads(files[MANIFEST_FILE])["feature_spec"])
        except (ValueError, KeyError, TypeError) as e:
            raise BundleError(f"{where}/{MANIFEST_FILE}: no readable feature_spec ({e})") from e
        # The config loader checks the keys and types (an unknown key is an error that names it).
        sc = config_from_dict({"score": dict(context.model_config or {})}).score
        self._params = score_params(sc, bundle_digest(files), spec)
        # Categorical attributes come as text, as the features table holds them; the bundle's encoding makes
        # their 0/1 features (the scoring job does the same in Spark).
        self._encoding = spec.category_encoding
        # The nightly job's worker path: process tuning, torch and XGBoost threads (score.torch_threads,
        # score.xgb_threads: other thread counts change float rounding, and near-ties of reason codes with it),
        # then load_bundle_from_files (hashes, FeatureSpec) and the per-process cache.
        self._model = cached_model(self._params, files)

    # No type hints here: MLflow would read them as an input schema and check every call against it.
    def predict(self, context, model_input, params=None):
        """Score feature rows: ``customer_id, pd, score, risk_band, reason_1..n`` (one row per input row)."""
        from credspark.models.inputs import encode_categories
        from credspark.scoring.partition import score_frame

        pdf = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        pdf = encode_categories(pdf.reset_index(drop=True), self._encoding)
        return score_frame(pdf, self._model, self._params)
