"""MLflow tracking and model registry (optional: ``pip install credspark[mlflow]``).

- :func:`track_job_run` logs a finished job run (config, counts, metrics, curves, artifacts) and, for a
  training run that published its bundle, registers the bundle as a model version with the ``champion``
  alias. It never raises: a tracker that is down or refuses is a warning and a run-summary field.
- :func:`fetch_bundle_files` reads a registered bundle back (``models:/NAME@champion``) for the scoring job.
- :mod:`credspark.tracking.pyfunc` is the MLflow pyfunc model (models-from-code, no pickle).

mlflow is imported inside the functions, so importing this package works without the extra.
"""

from credspark.tracking.mlflow_runs import flatten_config, metric_key, track_job_run
from credspark.tracking.registry import CHAMPION, fetch_bundle_files, register_bundle

__all__ = ["track_job_run", "flatten_config", "metric_key", "register_bundle", "fetch_bundle_files", "CHAMPION"]
