"""The model store: ``<warehouse>/models/<name>/<version>/`` bundles and an atomically moved ``current``.

``current`` is a small text file holding a version name, replaced with
:func:`credspark.io.warehouse.write_atomic`: a temp file and a rename on local disk, a single object write on
object stores (which have no rename, but make an object visible only once its upload is complete). A
reader sees either the old or the new version, never a torn write.

A bundle is complete when its ``manifest.json`` exists: :func:`publish_bundle` writes the manifest last on
an object store (a local bundle is renamed into place whole by ``save_bundle``), and every reader here
(:func:`list_versions`, :func:`set_current`, :func:`resolve_bundle_dir`, :func:`read_bundle`) refuses a
version folder without one.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from credspark.errors import ConfigError, MissingDataError
from credspark.io import warehouse as wh
from credspark.io.tables import safe_child

__all__ = [
    "models_root",
    "model_dir",
    "current_version",
    "set_current",
    "resolve_bundle_dir",
    "list_versions",
    "publish_bundle",
    "read_bundle",
]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
CURRENT = "current"
MANIFEST = "manifest.json"


def _check(value: str, what: str) -> str:
    if not isinstance(value, str) or not _NAME.match(value) or value in (".", "..") or ".." in value:
        raise ConfigError(f"{what} {value!r}: only letters, digits, '.', '_' and '-' are allowed")
    return value


def models_root(warehouse: str | Path) -> wh.Location:
    """``<warehouse>/models``."""
    return safe_child(warehouse, "models")


def model_dir(warehouse: str | Path, name: str, version: str) -> wh.Location:
    """Folder of one model version (not created): a Path on a local warehouse, else a URI."""
    return safe_child(warehouse, "models", _check(name, "model name"), _check(version, "model version"))


def list_versions(warehouse: str | Path, name: str) -> list[str]:
    """Published (complete) bundle versions of a model, sorted by name (versions are time-stamped, so by age)."""
    d = safe_child(warehouse, "models", _check(name, "model name"))
    return [v for v in wh.list_dirs(d) if wh.is_file(wh.join(d, v, MANIFEST))]


def current_version(warehouse: str | Path, name: str) -> str | None:
    """The version ``current`` points at, or None when nothing was published yet."""
    f = safe_child(warehouse, "models", _check(name, "model name"), CURRENT)
    if not wh.is_file(f):
        return None
    return _check(wh.read_bytes(f).decode("utf-8").strip(), f"{f}: version")


def set_current(warehouse: str | Path, name: str, version: str) -> None:
    """Point ``current`` at an existing, complete version, atomically (see the module docstring)."""
    target = model_dir(warehouse, name, version)
    if not wh.is_file(wh.join(target, MANIFEST)):
        raise MissingDataError(f"model {name} version {version}: no bundle at {target}")
    wh.write_atomic(safe_child(warehouse, "models", name, CURRENT), (version + "\n").encode("utf-8"))


def _check_local_links(warehouse: str | Path, d: Path) -> None:
    """Refuse a local version folder that is a link leading out of the warehouse.

    Names are checked lexically (:func:`safe_child`); this guards against a link planted *on the local disk*,
    the one filesystem where a folder can point elsewhere.
    """
    root = os.path.realpath(wh.parse_warehouse(warehouse).root)
    real = os.path.realpath(d)
    if real != root and not real.startswith(root.rstrip("/") + "/"):
        raise ConfigError(f"path {d} escapes the warehouse {root} (a link to {real})")


def resolve_bundle_dir(warehouse: str | Path, name: str, version: str | None = None) -> wh.Location:
    """The complete bundle folder for ``version`` (None = current); MissingDataError names what is missing."""
    v = version or current_version(warehouse, name)
    if v is None:
        raise MissingDataError(f"model {name}: nothing published yet (no 'current' under {models_root(warehouse)})")
    d = model_dir(warehouse, name, v)
    if isinstance(d, Path):
        _check_local_links(warehouse, d)
    if not wh.is_file(wh.join(d, MANIFEST)):
        raise MissingDataError(f"model {name} version {v}: no bundle at {d}")
    return d


def read_bundle(bundle_dir: wh.Location) -> dict[str, bytes]:
    """Read a bundle's manifest and every file it lists into memory (verified later by the loader).

    Args:
        bundle_dir: From :func:`resolve_bundle_dir`.

    Returns:
        ``{"manifest.json": ..., "<listed path>": ...}``.

    Raises:
        BundleError: Unreadable manifest, a listed file missing or an unsafe file name.
    """
    from credspark.models.bundle import BundleError, check_relpath, manifest_files
    from credspark.scoring.partition import read_bundle_files

    if isinstance(bundle_dir, Path):
        return read_bundle_files(bundle_dir)
    manifest = wh.join(bundle_dir, MANIFEST)
    try:
        raw = wh.read_bytes(manifest)
    except OSError as e:
        raise BundleError(f"{manifest}: cannot read the manifest's file list ({e})") from e
    listed = manifest_files(raw, manifest)
    files = {MANIFEST: raw}
    for item in listed:
        rel = check_relpath(item, f"{manifest} files")
        try:
            files[item] = wh.read_bytes(wh.join(bundle_dir, *rel.parts))
        except OSError as e:
            raise BundleError(f"{bundle_dir}/{item}: listed in the manifest but unreadable ({e})") from e
    return files


@contextmanager
def publish_bundle(warehouse: str | Path, name: str, version: str) -> Iterator[Path]:
    """A local folder to write one bundle version (and its report) into; published when the block ends.

    On a local warehouse it is the version's own folder path (``save_bundle`` renames it into place whole).
    On an object store it is a private temporary folder, uploaded when the block ends without error, with
    ``manifest.json`` written last (so readers see the version only once complete), and removed; nothing is
    uploaded when the block raises.

    Args:
        warehouse: The warehouse.
        name: Model name.
        version: The new version (must not exist yet).

    Yields:
        The folder to write the bundle into (not created yet).
    """
    target = model_dir(warehouse, name, version)
    if isinstance(target, Path):
        yield target
        return
    if wh.exists(target):
        raise FileExistsError(f"bundle directory {target} already exists")
    staging = Path(tempfile.mkdtemp(prefix="credspark-bundle-"))
    try:
        yield staging / version
        wh.upload_tree(staging / version, target, last=[MANIFEST])
    finally:
        shutil.rmtree(staging, ignore_errors=True)
