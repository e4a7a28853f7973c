"""The MLflow pyfunc of a credspark bundle: same pd, score, band and reason codes as the nightly scoring job.

Logged with MLflow's models-from-code (:data:`MODEL_CODE` is the code file; nothing is pickled): the model
version's artifacts are the bundle's files (``artifacts/bundle/``: the manifest and every file it lists) and
its ``model_config`` is the ``score`` config section of the training run that registered it (scorecard
scale, bands, reason codes, batch size). ``load_context`` reads the files with
:func:`credspark.scoring.partition.read_bundle_files` and loads them with
:func:`~credspark.scoring.partition.load_bundle_from_files` (every file's SHA-256 checked against the
manifest, weights loaded without pickle); ``predict`` is :func:`credspark.scoring.partition.score_frame`, the
function the nightly job runs in ``mapInPandas``.

Input: a pandas DataFrame of feature rows (``customer_id``, the static columns, ``seq``, ``seq_mask``), as
the ``features`` table holds them. Output: ``customer_id, pd, score, risk_band, reason_1..reason_n``.
"""

from __future__ import annotations

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
        from credspark.pipelines.score import score_params
        from credspark.scoring.partition import (
            ScoringModel,
            bundle_digest,
            load_bundle_from_files,
            read_bundle_files,
        )

        files = read_bundle_files(context.artifacts[BUNDLE_ARTIFACT])
        bundle = load_bundle_from_files(files)
        # The config loader checks the keys and types (an unknown key is an error that names it).
        sc = config_from_dict({"score": dict(context.model_config or {})}).score
        self._params = score_params(sc, bundle_digest(files), bundle.spec)
        self._model = ScoringModel(bundle, xgb_threads=self._params.xgb_threads)

    # No type hints here: MLflow would read them as an input schema and check every call against it.
    def predict(self, context, model_input, params=None):
        """Score feature rows: ``customer_id, pd, score, risk_band, reason_1..n`` (one row per input row)."""
        from credspark.scoring.partition import score_frame

        pdf = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        return score_frame(pdf.reset_index(drop=True), self._model, self._params)
