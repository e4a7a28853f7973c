"""A bundle as bytes in memory: read from a folder, named by its manifest's hash, loaded from a private copy.

The scoring job reads a bundle's files once on the driver, verifies exactly those bytes and broadcasts them;
every Python worker loads the same bytes (:mod:`credspark.scoring.partition`). Nothing here imports pyspark.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

from credspark.models.bundle import (
    MANIFEST_FILE,
    Bundle,
    BundleError,
    check_relpath,
    listed_file,
    load_bundle,
    manifest_files,
)
from credspark.models.spec import FeatureSpec

__all__ = ["BundleFiles", "read_bundle_files", "bundle_digest", "load_bundle_from_files"]

#: ``{relative path: bytes}`` of every file of a bundle, manifest included.
BundleFiles = Mapping[str, bytes]


def read_bundle_files(directory: str | Path) -> dict[str, bytes]:
    """Read a bundle's manifest and every file it lists into memory (not verified yet).

    Args:
        directory: The bundle directory.

    Returns:
        ``{"manifest.json": ..., "<listed path>": ...}``.

    Raises:
        BundleError: Missing manifest, unreadable manifest, a listed file missing or an unsafe file name.
    """
    root = Path(directory)
    manifest = root / MANIFEST_FILE
    # These bytes are verified only afterwards, from a private copy where links are gone: so, as load_bundle
    # does in place, never follow a link out of the bundle (its target's hash could be in the manifest) and
    # never open a FIFO or device (reading one can block the job forever).
    if manifest.is_symlink() or not manifest.is_file():
        raise BundleError(f"{manifest}: missing or not a regular file")
    try:
        raw = manifest.read_bytes()
    except OSError as e:
        raise BundleError(f"{manifest}: cannot read the manifest's file list ({e})") from e
    listed = manifest_files(raw, manifest)
    files = {MANIFEST_FILE: raw}
    root_real = root.resolve()
    for name in listed:
        real = listed_file(root, root_real, name, f"{manifest} files")
        try:
            files[name] = real.read_bytes()
        except OSError as e:
            raise BundleError(f"{root / name}: listed in the manifest but unreadable ({e})") from e
    return files


def bundle_digest(files: BundleFiles) -> str:
    """SHA-256 of the manifest bytes: names the whole bundle's content (the manifest hashes every file)."""
    return hashlib.sha256(files[MANIFEST_FILE]).hexdigest()


def load_bundle_from_files(files: BundleFiles, *, expected_spec: FeatureSpec | None = None) -> Bundle:
    """Write the bytes into a private temporary directory and :func:`load_bundle` them (hashes re-verified).

    Args:
        files: From :func:`read_bundle_files`.
        expected_spec: The FeatureSpec the rows will have; None skips the check. Defaults to None.

    Returns:
        The loaded bundle (its ``path`` names the removed temporary directory).
    """
    tmp = Path(tempfile.mkdtemp(prefix="credspark-score-"))
    try:
        for name, data in files.items():
            target = tmp / check_relpath(name, "bundle")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        return load_bundle(tmp, expected_spec=expected_spec)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
