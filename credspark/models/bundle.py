"""Model bundle: one directory holding everything needed to score, verified before anything is loaded.

Layout::

    <bundle>/manifest.json              format version, FeatureSpec, parameters, calibration, metadata, sha256 of
                                        every file
    <bundle>/embedder/...               files written by the embedder's own save(directory) (safetensors + JSON);
                                        absent in a tree-only bundle (manifest ``embedder`` null: the classifier
                                        reads the raw static features alone)
    <bundle>/classifier/focal_xgb.ubj   XGBoost booster as UBJSON
    <bundle>/classifier/focal_xgb.json  classifier parameters

No file in a bundle is a pickle. :func:`load_bundle` checks the manifest before any model code reads a byte:
format version, every listed path is a plain relative path that stays inside the bundle (no absolute paths,
no ``..``, no symlink leading out), every sha256 matches. The verified bytes are then copied into a private
staging directory and the models load from there, so they can only see listed files, and a file swapped
after verification is never read. The embedder class comes from a fixed registry in this module, looked up
by the manifest's ``kind`` name: the manifest never names code to import.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import importlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

import numpy as np

from credspark import __version__
from credspark.models.calibration import IDENTITY, Calibrator
from credspark.models.focal_xgb import FocalXGBClassifier
from credspark.models.spec import FeatureSpec, SpecMismatchError

__all__ = [
    "manifest_files",
    "BUNDLE_FORMAT",
    "BUNDLE_FORMAT_VERSION",
    "EMBEDDERS",
    "MANIFEST_FILE",
    "Bundle",
    "BundleError",
    "Embedder",
    "READABLE_FORMAT_VERSIONS",
    "check_relpath",
    "inference_embed",
    "listed_file",
    "load_bundle",
    "save_bundle",
]

BUNDLE_FORMAT = "credspark-bundle"
BUNDLE_FORMAT_VERSION = 3
#: Versions :func:`load_bundle` reads: 1 = before calibration (read as ``sigmoid(margin)``), 2 = with ``calibration``,
#: 3 = the embedder may be null (a tree-only model on the raw static features).
READABLE_FORMAT_VERSIONS = (1, 2, 3)
MANIFEST_FILE = "manifest.json"
_EMBEDDER_DIR = "embedder"
_CLASSIFIER_DIR = "classifier"
_CLASSIFIER_KIND = "focal_xgb"

#: Embedder registry: manifest ``kind`` -> ``"module:ClassName"``. Fixed in code, resolved lazily (so that
#: importing this module does not import torch).
EMBEDDERS: Mapping[str, str] = {"resnet_lstm": "credspark.models.resnet_lstm:ResNetLSTM"}


class BundleError(ValueError):
    """A bundle is malformed, tampered with, or does not match what the caller expects."""


class BundleSpecError(BundleError, SpecMismatchError):
    """The bundle's FeatureSpec differs from the expected one (catchable as either parent)."""


class Embedder(Protocol):
    """What a bundle needs from an embedder (implemented by ``ResNetLSTM``)."""

    def save(self, directory: str | Path) -> list[str]:
        """Write the weights into ``directory``; return the file names written."""
        ...

    @classmethod
    def load(cls, directory: str | Path, *, device: str = "cpu") -> Embedder:
        """Read an embedder written by :meth:`save`."""
        ...

    def embed(self, static: np.ndarray, dynamic: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Return ``(n, d)`` float32 embeddings."""
        ...


# --------------------------------------------------------------------------- registry
def inference_embed(embedder: Any) -> Any:
    """The embedding function inference uses: the embedder's ``inference_embedder()`` if it has one, else ``embed``.

    Scoring and the training job's embedding step both call this, so the classifier is trained, evaluated and
    used on embeddings from the same network (for ResNetLSTM the folded one, equal to the eager ``embed`` up
    to float32 rounding; see :meth:`credspark.models.resnet_lstm.ResNetLSTM.inference_embedder`).
    """
    make = getattr(embedder, "inference_embedder", None)
    return make() if callable(make) else embedder.embed


def _resolve(target: str | type) -> type:
    if isinstance(target, type):
        return target
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def _embedder_kind(embedder: object, registry: Mapping[str, str | type]) -> str:
    for kind, target in registry.items():
        try:
            cls = _resolve(target)
        except ModuleNotFoundError:
            continue  # a registered model whose module is not installed cannot be this object's class
        if type(embedder) is cls:
            return kind
    raise ValueError(f"embedder of type {type(embedder).__qualname__} is not in the bundle registry {sorted(registry)}")


# --------------------------------------------------------------------------- file helpers
def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _fsync_tree(root: Path) -> None:
    # Flush file contents and directory entries before the rename publishes the bundle.
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            with open(os.path.join(dirpath, name), "rb") as fh:
                os.fsync(fh.fileno())
        fd = os.open(dirpath, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def manifest_files(raw: bytes, where: object) -> dict[str, Any]:
    """The ``files`` object of a manifest's bytes (listed path -> hash), before anything is verified.

    Args:
        raw: The manifest's bytes.
        where: The manifest's location, for the error.

    Raises:
        BundleError: Unreadable JSON, no ``files`` field, or one that is not an object.
    """
    try:
        listed = json.loads(raw)["files"]
    except (ValueError, KeyError, TypeError) as e:
        raise BundleError(f"{where}: cannot read the manifest's file list ({e})") from e
    if not isinstance(listed, dict):
        raise BundleError(f"{where}: field 'files' must be an object")
    return listed


def check_relpath(name: Any, where: str) -> PurePosixPath:
    """Refuse anything but a plain relative POSIX path without ``.``/``..`` parts (a bundle file name).

    Raises:
        BundleError: ``"<where>: file name ... is not a plain relative path (<why>)"``.
    """
    problem = None
    if not isinstance(name, str) or not name:
        problem = "not a non-empty string"
    elif "\\" in name or "\x00" in name or ":" in name:
        problem = "contains a forbidden character"
    elif PurePosixPath(name).is_absolute():
        problem = "an absolute path"
    elif any(part in ("", ".", "..") for part in name.split("/")):
        problem = "contains '..', '.' or an empty part"
    if problem is not None:
        raise BundleError(f"{where}: file name {name!r} is not a plain relative path ({problem})")
    return PurePosixPath(name)


def listed_file(root: Path, root_real: Path, name: Any, where: str) -> Path:
    """The real path of the manifest-listed file ``name``: it must resolve to a regular file inside the bundle.

    Args:
        root: The bundle directory.
        root_real: ``root.resolve()``.
        name: The name as the manifest lists it.
        where: Prefix of the error messages about the name itself.

    Raises:
        BundleError: For an unsafe name, a missing file, a link leading out of the bundle, or anything that is
            not a regular file (a FIFO or device could block the reader forever).
    """
    path = root / check_relpath(name, where)
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError) as exc:
        raise BundleError(f"{path}: listed in the manifest but missing ({exc})") from exc
    if not real.is_relative_to(root_real):
        raise BundleError(f"{path}: resolves to {real}, outside the bundle directory")
    if not real.is_file():
        raise BundleError(f"{path}: not a regular file")
    return real


def _component_files(directory: Path, reported: list[str | Path], what: str) -> list[str]:
    """Check what a model's save() reported against what it actually wrote; return names relative to it.

    A model may report bare file names (the contract) or full paths inside ``directory`` (tolerated).
    """
    root = directory.resolve()
    names = []
    for item in reported:
        path = Path(item)
        if path.is_absolute():
            if not path.resolve().is_relative_to(root):
                raise ValueError(f"{what}.save() reported {item}, outside {directory}")
            item = path.resolve().relative_to(root).as_posix()
        names.append(str(item))
        check_relpath(names[-1], f"{what}.save()")
    written = {p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file() or p.is_symlink()}
    if set(names) != written:
        raise ValueError(
            f"{what}.save() returned {sorted(names)} but wrote {sorted(written)}: every file a model needs to "
            "load must be reported so the bundle can hash it"
        )
    return sorted(names)


def _json_safe(value: Any) -> Any:
    """Round-trip through JSON, stringifying what JSON cannot hold (for informational parameters)."""
    return json.loads(json.dumps(value, default=str))


# --------------------------------------------------------------------------- save
@dataclass(frozen=True)
class _Layout:
    """How the classifier's input is made: the embedder kind, the embedding width and the input names."""

    kind: str | None
    use_raw_static: bool
    embedding_dim: int
    feature_names: list[str]


def _layout(spec: FeatureSpec, embedder: Embedder | None, classifier: FocalXGBClassifier, use_raw_static: bool,
            registry: Mapping[str, str | type]) -> _Layout:
    """Check that spec, embedder and classifier fit together; return the classifier input's layout.

    Raises:
        ValueError: An unfitted classifier, an unregistered embedder, an embedder trained on another spec,
            a feature count that does not add up, or classifier feature names other than the bundle's.
    """
    if not isinstance(classifier, FocalXGBClassifier) or not hasattr(classifier, "booster_"):
        raise ValueError("classifier must be a fitted FocalXGBClassifier")
    if embedder is None:
        kind, use_raw_static, embedding_dim = None, True, classifier.n_features_in_ - spec.n_static
        if embedding_dim != 0:
            raise ValueError(f"tree-only bundle: classifier has {classifier.n_features_in_} features, the spec "
                             f"{spec.n_static} static ones")
    else:
        kind = _embedder_kind(embedder, registry)
        embedder_spec = getattr(embedder, "spec", None)
        if embedder_spec is not None:
            spec.check_compatible(embedder_spec, what="embedder")
        n_raw = spec.n_static if use_raw_static else 0
        embedding_dim = classifier.n_features_in_ - n_raw
        if embedding_dim < 1:
            raise ValueError(f"classifier has {classifier.n_features_in_} features; cannot hold {n_raw} raw static "
                             "ones")
    feature_names = [f"emb_{i}" for i in range(embedding_dim)] + (spec.static_names if use_raw_static else [])
    if classifier.feature_names is not None and list(classifier.feature_names) != feature_names:
        raise ValueError(f"classifier.feature_names {list(classifier.feature_names)} != bundle names {feature_names}")
    return _Layout(kind, bool(use_raw_static), embedding_dim, feature_names)


def _save_models(root: Path, embedder: Embedder | None, classifier: FocalXGBClassifier) -> dict[str, list[str]]:
    """Save each model into its folder of ``root``; return the bundle-relative names of the files each wrote."""
    files = {}
    if embedder is not None:
        (root / _EMBEDDER_DIR).mkdir()
        files[_EMBEDDER_DIR] = _component_files(root / _EMBEDDER_DIR, list(embedder.save(root / _EMBEDDER_DIR)),
                                                "embedder")
    (root / _CLASSIFIER_DIR).mkdir()
    files[_CLASSIFIER_DIR] = _component_files(root / _CLASSIFIER_DIR, list(classifier.save(root / _CLASSIFIER_DIR)),
                                              "classifier")
    return {folder: [f"{folder}/{name}" for name in names] for folder, names in files.items()}


def _manifest(root: Path, files: Mapping[str, list[str]], layout: _Layout, spec: FeatureSpec,
              embedder: Embedder | None, classifier: FocalXGBClassifier, calibration: Calibrator | None,
              metadata: dict[str, Any], created_at: str | None) -> dict[str, Any]:
    """The manifest of the models saved in ``root`` (``files``: their names by folder), with every file's hash."""
    get_params = getattr(embedder, "get_params", None)
    names = [name for folder in (_EMBEDDER_DIR, _CLASSIFIER_DIR) for name in files.get(folder, [])]
    return {
        "format": BUNDLE_FORMAT,
        # Only a tree-only bundle needs format 3; with an embedder it stays readable by format-2 readers.
        "format_version": BUNDLE_FORMAT_VERSION if embedder is None else 2,
        "created_at": created_at or _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "code_version": {"credspark": __version__, "git_commit": metadata.get("git_commit")},
        "feature_spec": spec.to_dict(),
        "use_raw_static": layout.use_raw_static,
        "feature_names": layout.feature_names,
        "embedder": None if embedder is None else {
            "kind": layout.kind,
            "embedding_dim": layout.embedding_dim,
            "files": files[_EMBEDDER_DIR],
            "params": _json_safe(get_params()) if callable(get_params) else None,
        },
        "classifier": {
            "kind": _CLASSIFIER_KIND,
            "files": files[_CLASSIFIER_DIR],
            "params": classifier.get_params(),
            "best_iteration": classifier.best_iteration_,
        },
        "calibration": (IDENTITY if calibration is None else calibration).to_dict(),
        "metadata": metadata,
        "files": {name: {"sha256": _sha256_file(root / name), "bytes": (root / name).stat().st_size} for name in names},
    }


def _write_atomically(target: Path, fill: Callable[[Path], None]) -> None:
    """Fill a temporary sibling directory of ``target``, flush it to disk, rename it to ``target``.

    On any failure the temporary directory is removed and ``target`` is not created.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        fill(tmp)
        _fsync_tree(tmp)
        os.rename(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def save_bundle(
    directory: str | Path,
    *,
    spec: FeatureSpec,
    embedder: Embedder | None,
    classifier: FocalXGBClassifier,
    metadata: dict[str, Any],
    use_raw_static: bool = False,
    calibration: Calibrator | None = None,
    created_at: str | None = None,
    registry: Mapping[str, str | type] | None = None,
) -> Path:
    """Write a bundle atomically: into a temporary sibling directory, renamed into place when complete.

    Args:
        directory: Target directory; must not exist yet (bundles are immutable versions).
        spec: The FeatureSpec the models were trained on.
        embedder: A fitted embedder whose class is in the registry (``ResNetLSTM``), or None for a tree-only
            bundle: the classifier then reads the raw static features alone (``use_raw_static`` is implied).
        classifier: The fitted XGBoost on the embedding (plus raw static columns if ``use_raw_static``), or on the
            static features when ``embedder`` is None.
        metadata: JSON-serialisable description, stored verbatim under ``metadata``. Conventional keys:
            ``preprocessing``, ``metrics``, ``training_data``, ``git_commit`` (also copied to ``code_version``).
        use_raw_static: Whether the classifier input is the embedding followed by the raw static block.
            Defaults to False.
        calibration: The margin -> probability map fitted on held-out rows
            (:func:`credspark.models.calibration.fit_calibrator`); None stores the identity (``sigmoid(margin)``).
            Defaults to None.
        created_at: Timestamp for the manifest (ISO 8601), passed in by the job; None stamps the current UTC
            time, for information only. Defaults to None.
        registry: Embedder registry ``kind -> class`` to use instead of :data:`EMBEDDERS` (tests, plug-ins).
            Defaults to None.

    Returns:
        The bundle directory.

    Raises:
        FileExistsError: If ``directory`` exists.
        ValueError: If the parts do not fit together (feature counts, spec, unregistered embedder).
    """
    target = Path(directory)
    if target.exists() or target.is_symlink():
        raise FileExistsError(f"bundle directory {target} already exists")
    layout = _layout(spec, embedder, classifier, use_raw_static, EMBEDDERS if registry is None else registry)
    metadata = dict(metadata)
    json.dumps(metadata)  # fail before writing anything if it is not JSON-serialisable

    def fill(tmp: Path) -> None:
        files = _save_models(tmp, embedder, classifier)
        manifest = _manifest(tmp, files, layout, spec, embedder, classifier, calibration, metadata, created_at)
        (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, sort_keys=True))

    _write_atomically(target, fill)
    return target


# --------------------------------------------------------------------------- load
class Bundle:
    """A verified, loaded bundle: FeatureSpec, embedder and classifier wired together.

    Attributes:
        spec: The bundle's FeatureSpec.
        manifest: The parsed manifest.
        embedder: The loaded embedder, or None for a tree-only bundle (``embedding_dim`` 0).
        classifier: The loaded FocalXGBClassifier.
        calibrator: The margin -> probability map (identity for format 1 bundles).
        use_raw_static: Whether the raw static block follows the embedding in the classifier input.
        feature_names: Classifier input names: ``emb_0..emb_{d-1}`` then, if raw static is used, the static names.
        path: The bundle directory.
    """

    def __init__(
        self,
        *,
        spec: FeatureSpec,
        manifest: dict[str, Any],
        embedder: Embedder | None,
        classifier: FocalXGBClassifier,
        path: Path,
        calibrator: Calibrator = IDENTITY,
    ) -> None:
        self.spec = spec
        self.manifest = manifest
        self.embedder = embedder
        self.classifier = classifier
        self.calibrator = calibrator
        self.use_raw_static = bool(manifest["use_raw_static"])
        self.feature_names: list[str] = list(manifest["feature_names"])
        self.embedding_dim = 0 if manifest["embedder"] is None else int(manifest["embedder"]["embedding_dim"])
        self.path = path

    def embed(self, static: np.ndarray, dynamic: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Embed a batch after checking its shapes against the spec.

        Args:
            static: ``(n, n_static)`` static block.
            dynamic: ``(n, T, C)`` monthly block.
            mask: ``(n, T)`` month mask (1 = observed).

        Returns:
            ``(n, embedding_dim)`` float32 embeddings (no columns in a tree-only bundle).
        """
        static = np.asarray(static, dtype=np.float32)
        dynamic = np.asarray(dynamic, dtype=np.float32)
        mask = np.asarray(mask)
        self.spec.validate_arrays(static, dynamic, mask)
        if self.embedder is None:
            return np.zeros((static.shape[0], 0), dtype=np.float32)
        emb = np.asarray(self.embedder.embed(static, dynamic, mask), dtype=np.float32)
        if emb.shape != (static.shape[0], self.embedding_dim):
            raise BundleError(
                f"embedder returned shape {emb.shape}, expected ({static.shape[0]}, {self.embedding_dim})"
            )
        return emb

    def classifier_input(self, static: np.ndarray, dynamic: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """The classifier's input matrix, columns named by :attr:`feature_names`.

        Args:
            static: ``(n, n_static)`` static block.
            dynamic: ``(n, T, C)`` monthly block.
            mask: ``(n, T)`` month mask.

        Returns:
            ``(n, len(feature_names))`` float32 matrix.
        """
        emb = self.embed(static, dynamic, mask)
        if self.use_raw_static:
            return np.hstack([emb, np.asarray(static, dtype=np.float32)])
        return emb

    def predict_proba(self, static: np.ndarray, dynamic: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Probability of default per row.

        Args:
            static: ``(n, n_static)`` static block.
            dynamic: ``(n, T, C)`` monthly block.
            mask: ``(n, T)`` month mask.

        Returns:
            ``(n,)`` float64 probabilities: the classifier's margin through :attr:`calibrator`.
        """
        margin = self.classifier.predict_margin(self.classifier_input(static, dynamic, mask))
        return self.calibrator.pd_from_margin(margin)

    def contributions(self, static: np.ndarray, dynamic: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Additive margin contributions per classifier input (for reason codes).

        Args:
            static: ``(n, n_static)`` static block.
            dynamic: ``(n, T, C)`` monthly block.
            mask: ``(n, T)`` month mask.

        Returns:
            ``(n, len(feature_names) + 1)``; the last column is the bias.
        """
        return self.classifier.contributions(self.classifier_input(static, dynamic, mask))

    def __repr__(self) -> str:
        kind = "tree-only" if self.manifest["embedder"] is None else self.manifest["embedder"]["kind"]
        return f"Bundle(path={str(self.path)!r}, kind={kind!r}, features={len(self.feature_names)})"


def _read_manifest(root: Path) -> dict[str, Any]:
    path = root / MANIFEST_FILE
    if path.is_symlink() or not path.is_file():
        raise BundleError(f"{path}: missing or not a regular file")
    try:
        manifest = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(manifest, dict):
        raise BundleError(f"{path}: expected a JSON object")
    if manifest.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{path}: field 'format' is {manifest.get('format')!r}, expected {BUNDLE_FORMAT!r}")
    version = manifest.get("format_version")
    if version not in READABLE_FORMAT_VERSIONS:
        raise BundleError(
            f"{path}: field 'format_version' is {version!r}, this code reads {list(READABLE_FORMAT_VERSIONS)}"
        )
    required = ("feature_spec", "embedder", "classifier", "files", "feature_names", "use_raw_static")
    for key in required + (("calibration",) if version >= 2 else ()):
        if key not in manifest:
            raise BundleError(f"{path}: field {key!r} is missing")
    if not isinstance(manifest["files"], dict) or not manifest["files"]:
        raise BundleError(f"{path}: field 'files' must be a non-empty object")
    return manifest


def _verified_copy(root: Path, manifest: dict[str, Any], staging: Path) -> None:
    """Hash every listed file and copy the verified bytes into ``staging``."""
    root_real = root.resolve(strict=True)
    for name, entry in manifest["files"].items():
        where = f"{root / MANIFEST_FILE} files[{name!r}]"
        rel = check_relpath(name, where)
        if name == MANIFEST_FILE:
            raise BundleError(f"{where}: the manifest cannot list itself")
        if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str):
            raise BundleError(f"{where}: entry needs a 'sha256' string")
        path = root / rel
        data = listed_file(root, root_real, name, where).read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if digest != entry["sha256"]:
            raise BundleError(f"{path}: sha256 mismatch (manifest {entry['sha256']}, file {digest}); refusing to load")
        out = staging / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(data)


def _component(manifest: dict[str, Any], key: str, subdir: str) -> dict[str, Any]:
    comp = manifest[key]
    if not isinstance(comp, dict) or not isinstance(comp.get("kind"), str) or not isinstance(comp.get("files"), list):
        raise BundleError(f"manifest field {key!r} needs 'kind' and 'files'")
    for name in comp["files"]:
        check_relpath(name, f"manifest field {key!r}")
        if name not in manifest["files"]:
            raise BundleError(f"manifest field {key!r}: file {name!r} is not hashed in 'files'")
        if not str(name).startswith(subdir + "/"):
            raise BundleError(f"manifest field {key!r}: file {name!r} is outside {subdir}/")
    return comp


def _bundle_spec(root: Path, manifest: dict[str, Any], expected_spec: FeatureSpec | None) -> FeatureSpec:
    """The manifest's FeatureSpec, checked against the caller's when one is given."""
    try:
        spec = FeatureSpec.from_dict(manifest["feature_spec"])
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"{root / MANIFEST_FILE}: field 'feature_spec' is invalid ({exc})") from exc
    if expected_spec is not None:
        try:
            expected_spec.check_compatible(spec, what=f"bundle {root} field 'feature_spec'")
        except SpecMismatchError as exc:
            raise BundleSpecError(str(exc)) from exc
    return spec


def _embedder_class(root: Path, manifest: dict[str, Any], spec: FeatureSpec,
                    registry: Mapping[str, str | type]) -> type | None:
    """Check the manifest's model entries; return the registered embedder class, None for a tree-only bundle."""
    tree_only = manifest["embedder"] is None
    if tree_only and (manifest["format_version"] < 3 or manifest["use_raw_static"] is not True
                      or manifest["feature_names"] != spec.static_names):
        raise BundleError(f"{root / MANIFEST_FILE}: field 'embedder' is null, which needs format_version >= 3, "
                          "use_raw_static true and feature_names equal to the static features")
    clf_comp = _component(manifest, "classifier", _CLASSIFIER_DIR)
    if clf_comp["kind"] != _CLASSIFIER_KIND:
        raise BundleError(f"manifest field 'classifier.kind': {clf_comp['kind']!r}, expected {_CLASSIFIER_KIND!r}")
    if tree_only:
        return None
    emb_comp = _component(manifest, "embedder", _EMBEDDER_DIR)
    if emb_comp["kind"] not in registry:
        raise BundleError(f"manifest field 'embedder.kind': {emb_comp['kind']!r} is not one of {sorted(registry)}")
    return _resolve(registry[emb_comp["kind"]])


def _load_models(root: Path, manifest: dict[str, Any], embedder_cls: type | None,
                 device: str) -> tuple[Embedder | None, FocalXGBClassifier]:
    """Load the models from a private copy of the verified bytes (see the module docstring)."""
    with tempfile.TemporaryDirectory(prefix="credspark-bundle-") as staging_name:
        staging = Path(staging_name)
        _verified_copy(root, manifest, staging)
        embedder = None
        try:
            if embedder_cls is not None:
                embedder = embedder_cls.load(staging / _EMBEDDER_DIR, device=device)
        except Exception as exc:
            raise BundleError(f"{root / _EMBEDDER_DIR}: embedder failed to load ({type(exc).__name__}: {exc})") from exc
        try:
            classifier = FocalXGBClassifier.load(staging / _CLASSIFIER_DIR)
        except Exception as exc:
            raise BundleError(
                f"{root / _CLASSIFIER_DIR}: classifier failed to load ({type(exc).__name__}: {exc})"
            ) from exc
    return embedder, classifier


def _check_loaded(root: Path, manifest: dict[str, Any], spec: FeatureSpec, embedder: Embedder | None,
                  classifier: FocalXGBClassifier) -> None:
    """Refuse loaded models that disagree with the manifest (the embedder's spec, the classifier's inputs)."""
    embedder_spec = getattr(embedder, "spec", None)
    if embedder_spec is not None and embedder_spec != spec:
        raise BundleError(f"{root / _EMBEDDER_DIR}: the embedder's FeatureSpec differs from the manifest's")
    if classifier.n_features_in_ != len(manifest["feature_names"]):
        raise BundleError(
            f"{root / _CLASSIFIER_DIR}: classifier has {classifier.n_features_in_} inputs, manifest field "
            f"'feature_names' lists {len(manifest['feature_names'])}"
        )


def _calibrator(root: Path, manifest: dict[str, Any]) -> Calibrator:
    """The manifest's calibration map; the identity for a format 1 bundle, which has none."""
    if "calibration" not in manifest:
        return IDENTITY
    try:
        return Calibrator.from_dict(manifest["calibration"], f"{root / MANIFEST_FILE} field 'calibration'")
    except ValueError as exc:
        raise BundleError(str(exc)) from exc


def load_bundle(
    directory: str | Path,
    *,
    expected_spec: FeatureSpec | None = None,
    device: str = "cpu",
    registry: Mapping[str, str | type] | None = None,
) -> Bundle:
    """Verify and load a bundle written by :func:`save_bundle`.

    Args:
        directory: The bundle directory.
        expected_spec: The FeatureSpec the caller will feed; None skips that check. Defaults to None.
        device: Torch device for the embedder. Defaults to ``"cpu"``.
        registry: Embedder registry ``kind -> class`` to use instead of :data:`EMBEDDERS`. Defaults to None.

    Returns:
        The loaded :class:`Bundle`.

    Raises:
        BundleError: For a wrong format version, a path outside the bundle, a missing file, a hash mismatch,
            an unknown embedder kind, a model file that fails to parse, or a FeatureSpec that differs from
            ``expected_spec`` (then also a ``SpecMismatchError``).
    """
    root = Path(directory)
    if not root.is_dir():
        raise BundleError(f"{root}: not a bundle directory")
    manifest = _read_manifest(root)
    spec = _bundle_spec(root, manifest, expected_spec)
    embedder_cls = _embedder_class(root, manifest, spec, EMBEDDERS if registry is None else registry)
    embedder, classifier = _load_models(root, manifest, embedder_cls, device)
    _check_loaded(root, manifest, spec, embedder, classifier)
    return Bundle(spec=spec, manifest=manifest, embedder=embedder, classifier=classifier, path=root,
                  calibrator=_calibrator(root, manifest))
