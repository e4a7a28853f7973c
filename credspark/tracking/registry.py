"""The MLflow model registry side: a published bundle becomes a model version; the scoring job reads one back.

:func:`register_bundle` logs the bundle as an MLflow pyfunc (models-from-code, :mod:`credspark.tracking.pyfunc`)
in the training run, registers it under ``tracking.registered_model_name`` and points the ``champion`` alias
at it: the training job calls it only after the store's ``current`` moved to that bundle, so ``champion``
follows ``current``. :func:`fetch_bundle_files` downloads a model version (``models:/NAME@champion``,
``models:/NAME/3``) and returns the bundle's bytes for the scoring job, which verifies them as it verifies a
bundle of the store.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from credspark.config import ScoreConfig, TrackingConfig
from credspark.errors import ConfigError, MissingDataError

__all__ = ["CHAMPION", "register_bundle", "fetch_bundle_files", "pip_requirements"]

#: The alias that follows the model store's ``current``.
CHAMPION = "champion"
#: Model-version tags.
TAG_VERSION = "credspark.version"
TAG_SHA256 = "credspark.bundle_sha256"


def pip_requirements() -> list[str]:
    """What the pyfunc needs to load: this process's versions of credspark and the packages it scores with."""
    import importlib.metadata as md

    from credspark.io.runs import versions

    out = [f"{pkg}=={v}" for pkg, v in versions().items() if pkg != "python"]
    for pkg in ("mlflow-skinny", "scikit-learn", "safetensors", "threadpoolctl", "pyyaml"):
        try:
            out.append(f"{pkg}=={md.version(pkg)}")
        except md.PackageNotFoundError:
            pass
    return out


def _mlflow_for(tc: TrackingConfig) -> Any:
    """MLflow with its fluent API pointed at the configured tracker and registry (for this process: a job)."""
    import mlflow

    mlflow.set_tracking_uri(tc.mlflow_uri)
    mlflow.set_registry_uri(tc.registry_uri or tc.mlflow_uri)
    return mlflow


def _write_files(files: Mapping[str, bytes], root: Path) -> Path:
    from credspark.models.bundle import check_relpath

    for name, data in files.items():
        target = root / check_relpath(name, "bundle")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return root


def register_bundle(
    tc: TrackingConfig, score: ScoreConfig, run_id: str, bundle_dir: str | Path, version: str
) -> dict[str, Any]:
    """Log a published bundle as a pyfunc in MLflow run ``run_id``, register it, move ``champion`` to it.

    Only the manifest and the files it lists are logged, after they were verified here
    (:func:`credspark.scoring.partition.load_bundle_from_files`).

    Args:
        tc: The ``tracking`` section (URIs, registered model name).
        score: The ``score`` section: becomes the pyfunc's ``model_config`` (scale, bands, reasons).
        run_id: The MLflow run of the training job.
        bundle_dir: The published bundle's location (a folder or a warehouse URI).
        version: The bundle's credspark version (a model-version tag).

    Returns:
        ``{"model_uri", "registered_model", "model_version", "alias"}``.
    """
    from credspark.io.model_store import read_bundle
    from credspark.scoring.partition import bundle_digest, load_bundle_from_files
    from credspark.tracking.pyfunc import BUNDLE_ARTIFACT, MODEL_CODE

    if not tc.registered_model_name:
        raise ConfigError("tracking.registered_model_name is null: nothing to register the bundle as")
    files = read_bundle(bundle_dir)  # any warehouse: local, s3a://, ...
    load_bundle_from_files(files)
    mlflow = _mlflow_for(tc)
    with tempfile.TemporaryDirectory(prefix="credspark-register-") as tmp:
        root = _write_files(files, Path(tmp) / BUNDLE_ARTIFACT)
        with mlflow.start_run(run_id=run_id):
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=str(MODEL_CODE),
                artifacts={BUNDLE_ARTIFACT: str(root)},
                model_config=json.loads(json.dumps(dataclasses.asdict(score))),  # tuples -> lists (YAML-safe)
                pip_requirements=pip_requirements(),
                registered_model_name=tc.registered_model_name,
            )
        mv = info.registered_model_version
        client = mlflow.MlflowClient()
        client.set_model_version_tag(tc.registered_model_name, mv, TAG_VERSION, version)
        client.set_model_version_tag(tc.registered_model_name, mv, TAG_SHA256, bundle_digest(files))
        client.set_registered_model_alias(tc.registered_model_name, CHAMPION, mv)
    return {"model_uri": info.model_uri, "registered_model": tc.registered_model_name, "model_version": str(mv),
            "alias": CHAMPION}


def fetch_bundle_files(tc: TrackingConfig, model_uri: str) -> tuple[dict[str, bytes], str]:
    """Download a registered bundle and read its files into memory (not verified yet: the caller verifies).

    Args:
        tc: The ``tracking`` section (its URIs; ``tracking.mlflow_uri`` must be set).
        model_uri: ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``.

    Returns:
        ``(files, version)``: :data:`~credspark.scoring.partition.BundleFiles` and the bundle's credspark
        version (from its manifest).

    Raises:
        ConfigError: No tracking URI, or the URI is not a ``models:/`` URI.
        MissingDataError: MLflow cannot resolve or download the model.
    """
    from credspark.models.bundle import MANIFEST_FILE
    from credspark.scoring.partition import read_bundle_files
    from credspark.tracking.pyfunc import BUNDLE_ARTIFACT

    if not tc.mlflow_uri:
        raise ConfigError(f"--model-uri {model_uri}: set tracking.mlflow_uri to the MLflow server to read it from")
    if not model_uri.startswith("models:/"):
        raise ConfigError(f"--model-uri {model_uri!r}: expected models:/NAME@ALIAS or models:/NAME/VERSION")
    try:
        mlflow = _mlflow_for(tc)
    except ImportError as e:
        raise ConfigError("--model-uri needs the mlflow extra: pip install 'credspark[mlflow]'") from e
    with tempfile.TemporaryDirectory(prefix="credspark-fetch-") as tmp:
        try:
            local = mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=tmp)
        except Exception as e:  # noqa: BLE001 - MLflow raises several types for an unknown or unreachable model
            raise MissingDataError(f"--model-uri {model_uri}: MLflow could not provide it ({type(e).__name__}: "
                                   f"{str(e).splitlines()[0] if str(e) else ''})") from e
        files = read_bundle_files(Path(local) / "artifacts" / BUNDLE_ARTIFACT)
    manifest = json.loads(files[MANIFEST_FILE])
    version = str((manifest.get("metadata") or {}).get("version") or model_uri)
    return files, version
