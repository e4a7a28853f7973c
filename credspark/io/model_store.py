"""The model store: ``<warehouse>/models/<name>/<version>/`` bundles and an atomically moved ``current``.

``current`` is a small text file holding a version name; it is replaced by writing a temp file and renaming
it, so a reader sees either the old or the new version, never a torn write.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from credspark.errors import ConfigError, MissingDataError
from credspark.io.tables import safe_child

__all__ = ["models_root", "model_dir", "current_version", "set_current", "resolve_bundle_dir", "list_versions"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
CURRENT = "current"


def _check(value: str, what: str) -> str:
    if not isinstance(value, str) or not _NAME.match(value) or value in (".", "..") or ".." in value:
        raise ConfigError(f"{what} {value!r}: only letters, digits, '.', '_' and '-' are allowed")
    return value


def models_root(warehouse: str | Path) -> Path:
    """``<warehouse>/models``."""
    return safe_child(warehouse, "models")


def model_dir(warehouse: str | Path, name: str, version: str) -> Path:
    """Folder of one model version (not created)."""
    return safe_child(warehouse, "models", _check(name, "model name"), _check(version, "model version"))


def list_versions(warehouse: str | Path, name: str) -> list[str]:
    """Published bundle versions of a model, sorted by name (versions are time-stamped, so by age)."""
    d = safe_child(warehouse, "models", _check(name, "model name"))
    if not d.is_dir():
        return []
    return sorted(p.name for p in d.iterdir() if p.is_dir() and (p / "manifest.json").is_file())


def current_version(warehouse: str | Path, name: str) -> str | None:
    """The version ``current`` points at, or None when nothing was published yet."""
    f = safe_child(warehouse, "models", _check(name, "model name"), CURRENT)
    if not f.is_file():
        return None
    return _check(f.read_text(encoding="utf-8").strip(), f"{f}: version")


def set_current(warehouse: str | Path, name: str, version: str) -> None:
    """Point ``current`` at an existing version, atomically (temp file + rename)."""
    target = model_dir(warehouse, name, version)
    if not (target / "manifest.json").is_file():
        raise MissingDataError(f"model {name} version {version}: no bundle at {target}")
    f = target.parent / CURRENT
    tmp = target.parent / f".{CURRENT}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(version + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, f)


def resolve_bundle_dir(warehouse: str | Path, name: str, version: str | None = None) -> Path:
    """The bundle folder for ``version`` (None = current); MissingDataError names what is missing."""
    v = version or current_version(warehouse, name)
    if v is None:
        raise MissingDataError(f"model {name}: nothing published yet (no 'current' under {models_root(warehouse)})")
    d = model_dir(warehouse, name, v)
    if not (d / "manifest.json").is_file():
        raise MissingDataError(f"model {name} version {v}: no bundle at {d}")
    return d
