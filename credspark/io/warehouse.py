"""The warehouse: every location the project reads or writes, on a local folder or an object store.

A warehouse is a local path, a ``file://`` URI, or an ``s3a://``, ``abfss://``, ``gs://`` or ``hdfs://`` URI;
anything else is refused (:func:`parse_warehouse`). Locations below it come from :func:`child`, which checks
each name against escaping the warehouse by lexical normalisation only: nothing is resolved through the
local disk, so the same rule holds for a bucket and for a folder.

A location is a :class:`pathlib.Path` on a local warehouse (absolute, normalised) and a URI string on the
others. Spark reads and writes both as they are (:func:`spark_path`: Delta goes through Spark's Hadoop
filesystems); Python-side reads and writes (model store, ``current``, run summaries, reports) go through
:mod:`pyarrow.fs` via the functions of this module:

- local: the local disk (temp file + rename for :func:`write_atomic`);
- ``s3a://``: :class:`pyarrow.fs.S3FileSystem`, configured from the same Hadoop settings Spark gets
  (``spark.hadoop.fs.s3a.endpoint``, ``.access.key``, ``.secret.key``, ``.session.token``,
  ``.path.style.access``, ``.connection.ssl.enabled``, ``.endpoint.region``; see :func:`configure_s3`),
  otherwise from the AWS default chain (environment variables ``AWS_ACCESS_KEY_ID`` etc., profile, instance
  role);
- ``gs://``, ``abfss://``, ``hdfs://``: pyarrow's GCS, Azure and Hadoop filesystems from the URI
  (credentials from their own environment; untested here).

:func:`write_atomic` replaces one small object so that a reader sees either the old or the new content: a
rename on local disk and HDFS, a single object write on object stores (S3, GCS and Azure Blob make an
object visible only when its upload completes; S3 reads after a write are strongly consistent).
"""

from __future__ import annotations

import functools
import os
import posixpath
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from credspark.errors import ConfigError

__all__ = [
    "ACCEPTED_SCHEMES",
    "OBJECT_STORE_SCHEMES",
    "Location",
    "Warehouse",
    "parse_warehouse",
    "child",
    "as_location",
    "is_remote",
    "join",
    "spark_path",
    "location_name",
    "configure_s3",
    "s3_options",
    "filesystem",
    "exists",
    "is_file",
    "read_bytes",
    "write_atomic",
    "list_dirs",
    "list_files",
    "list_tree",
    "remove_tree",
    "upload_tree",
]

#: The warehouse URI schemes the project accepts ("" = a plain local path).
ACCEPTED_SCHEMES = ("file", "s3a", "abfss", "gs", "hdfs")
#: Schemes whose filesystem has no atomic rename.
OBJECT_STORE_SCHEMES = ("s3a", "abfss", "gs")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")

#: A location: a Path on a local warehouse, a URI string on the others.
Location = Path | str


@dataclass(frozen=True)
class Warehouse:
    """A parsed warehouse root.

    Attributes:
        scheme: ``"file"`` for a local warehouse, else the URI scheme.
        root: Absolute normalised local path, or ``scheme://authority/path`` without a trailing slash.
    """

    scheme: str
    root: str

    @property
    def is_local(self) -> bool:
        """True for a local folder (a plain path or ``file://``)."""
        return self.scheme == "file"

    def child(self, *parts: str) -> Location:
        """``root/part/...``, refusing any result outside the root (lexical check, nothing resolved on disk).

        Args:
            *parts: Names below the root; a part may hold ``/`` as long as the result stays inside.

        Returns:
            A Path (local warehouse) or a URI string.

        Raises:
            ConfigError: A part is not a string, holds a NUL byte, or the result leaves the warehouse.
        """
        for p in parts:
            if not isinstance(p, str) or "\x00" in p:
                raise ConfigError(f"path part {p!r} in the warehouse {self.root}: not a plain string")
        rel = posixpath.normpath(posixpath.join("", *parts)) if parts else "."
        if posixpath.isabs(rel) or rel == ".." or rel.startswith("../"):
            raise ConfigError(f"path {'/'.join(parts)!r} escapes the warehouse {self.root}")
        if self.is_local:
            return Path(self.root) if rel == "." else Path(self.root, rel)
        return self.root if rel == "." else f"{self.root}/{rel}"


def parse_warehouse(value: str | Path) -> Warehouse:
    """Parse a warehouse setting: a local path, ``file://`` or an ``s3a``/``abfss``/``gs``/``hdfs`` URI.

    Args:
        value: The configured warehouse (``warehouse.path`` / ``--warehouse``).

    Returns:
        The parsed warehouse.

    Raises:
        ConfigError: Naming the value and the accepted schemes, for any other scheme or a URI without a
            bucket/host.
    """
    if isinstance(value, Path):
        return Warehouse("file", os.path.abspath(value))
    if not isinstance(value, str) or not value or "\x00" in value:
        raise ConfigError(f"warehouse {value!r}: must be a non-empty path or URI")
    m = _SCHEME.match(value)
    if m is None:
        return Warehouse("file", os.path.abspath(value))
    scheme = m.group(1).lower()
    rest = value[m.end():]
    if scheme not in ACCEPTED_SCHEMES:
        hint = " (use s3a:// for S3)" if scheme in ("s3", "s3n") else ""
        raise ConfigError(f"warehouse {value!r}: scheme '{scheme}://' is not supported{hint}; use a local path or "
                          + ", ".join(f"{s}://" for s in ACCEPTED_SCHEMES))
    if scheme == "file":
        # file:///abs, file:/abs (Hadoop's form) and file://localhost/abs name local folders.
        path = rest[len("//"):] if rest.startswith("//") else rest
        if path.startswith("localhost/"):
            path = path[len("localhost"):]
        if not path.startswith("/"):
            raise ConfigError(f"warehouse {value!r}: a file:// URI needs an absolute path (file:///path)")
        return Warehouse("file", os.path.abspath(path))
    if not rest.startswith("//"):
        raise ConfigError(f"warehouse {value!r}: expected {scheme}://<bucket or host>/<path>")
    authority, _, path = rest[2:].partition("/")
    if not authority:
        raise ConfigError(f"warehouse {value!r}: no bucket, container or host after {scheme}://")
    if ".." in path.split("/"):
        raise ConfigError(f"warehouse {value!r}: '..' in the path")
    norm = posixpath.normpath("/" + path.lstrip("/"))
    return Warehouse(scheme, f"{scheme}://{authority}{norm.rstrip('/')}")


def child(root: str | Path, *parts: str) -> Location:
    """``root/part/...`` for a warehouse root given as configured (see :meth:`Warehouse.child`)."""
    return parse_warehouse(root).child(*parts)


def as_location(loc: str | Path) -> Location:
    """A location in its canonical form: a Path when it is local, else the normalised URI string."""
    if isinstance(loc, Path):
        return loc
    wh = parse_warehouse(loc)
    return Path(wh.root) if wh.is_local else wh.root


def is_remote(loc: str | Path) -> bool:
    """True for a location on a non-local filesystem."""
    return not isinstance(as_location(loc), Path)


def spark_path(loc: Location) -> str:
    """The string Spark takes for a location (a local path, or the URI)."""
    return str(loc)


def location_name(loc: Location) -> str:
    """The last name of a location (a folder's or file's name)."""
    return loc.name if isinstance(loc, Path) else posixpath.basename(str(loc).rstrip("/"))


def join(loc: str | Path, *names: str) -> Location:
    """``loc/name/...`` for names this project builds (checked like :meth:`Warehouse.child`)."""
    loc = as_location(loc)
    if isinstance(loc, Path):
        return Warehouse("file", str(loc)).child(*names)
    return parse_warehouse(loc).child(*names)


# --------------------------------------------------------------------------------------------- S3 settings
_S3_KEYS = {
    "endpoint": "fs.s3a.endpoint",
    "access_key": "fs.s3a.access.key",
    "secret_key": "fs.s3a.secret.key",
    "session_token": "fs.s3a.session.token",
    "path_style": "fs.s3a.path.style.access",
    "ssl": "fs.s3a.connection.ssl.enabled",
    "region": "fs.s3a.endpoint.region",
}
_s3_settings: dict[str, str] = {}


def configure_s3(conf: Mapping[str, str] | Iterable[tuple[str, str]]) -> None:
    """Take the Python side's S3 settings from Spark/Hadoop settings (the ones the user gives Spark).

    Reads ``fs.s3a.*`` keys, with or without the ``spark.hadoop.`` prefix: endpoint, access/secret key,
    session token, path-style access, SSL and region. Keys not given fall back to the AWS default chain.
    ``build_session`` calls this with the session's settings, so ``spark-submit --conf`` counts too.

    Args:
        conf: Settings as a mapping or ``(key, value)`` pairs.
    """
    items = conf.items() if isinstance(conf, Mapping) else conf
    found: dict[str, str] = {}
    for key, value in items:
        k = key[len("spark.hadoop."):] if key.startswith("spark.hadoop.") else key
        if k.startswith("fs.s3a.") and value is not None:
            found[k] = str(value)
    if found != _s3_settings:
        _s3_settings.clear()
        _s3_settings.update(found)
        _s3_filesystem.cache_clear()


def _truthy(value: str | None) -> bool | None:
    return None if value is None else value.strip().lower() in ("true", "1", "yes")


def s3_options() -> dict[str, Any]:
    """Keyword arguments for :class:`pyarrow.fs.S3FileSystem` from the configured Hadoop s3a settings."""
    s = {name: _s3_settings.get(key) for name, key in _S3_KEYS.items()}
    opts: dict[str, Any] = {}
    scheme = "http" if _truthy(s["ssl"]) is False else "https"
    if s["endpoint"]:
        endpoint = s["endpoint"].strip()
        if "://" in endpoint:
            scheme, endpoint = endpoint.split("://", 1)
        opts["endpoint_override"] = endpoint.rstrip("/")
    opts["scheme"] = scheme
    if s["access_key"] and s["secret_key"]:
        opts["access_key"], opts["secret_key"] = s["access_key"], s["secret_key"]
        if s["session_token"]:
            opts["session_token"] = s["session_token"]
    if s["region"]:
        opts["region"] = s["region"]
    path_style = _truthy(s["path_style"])
    if path_style is not None:
        opts["force_virtual_addressing"] = not path_style
    return opts


@functools.lru_cache(maxsize=4)
def _s3_filesystem(frozen: tuple[tuple[str, Any], ...]):  # noqa: ANN202 - pyarrow type, imported lazily
    from pyarrow import fs

    return fs.S3FileSystem(**dict(frozen))


# ------------------------------------------------------------------------------------------- filesystems
def filesystem(loc: Location) -> tuple[Any, str]:
    """The pyarrow filesystem holding ``loc`` and the path inside it.

    Args:
        loc: A location from :func:`child` (or a warehouse URI).

    Returns:
        ``(pyarrow.fs.FileSystem, path)``.

    Raises:
        ConfigError: The filesystem cannot be set up here (e.g. libhdfs or cloud credentials missing).
    """
    from pyarrow import fs

    loc = as_location(loc)
    if isinstance(loc, Path):
        return fs.LocalFileSystem(), str(loc)
    wh = parse_warehouse(loc)
    rest = wh.root.split("://", 1)[1]
    if wh.scheme == "s3a":
        return _s3_filesystem(tuple(sorted(s3_options().items()))), rest
    try:
        # pyarrow parses gs://bucket/path, abfss://container@account.dfs.core.windows.net/path and
        # hdfs://host:port/path itself, with credentials from each service's own environment.
        return fs.FileSystem.from_uri(wh.root)
    except Exception as e:  # noqa: BLE001 - pyarrow raises ArrowInvalid/OSError by backend
        raise ConfigError(f"warehouse location {loc}: no {wh.scheme}:// filesystem for Python-side I/O here "
                          f"({type(e).__name__}: {e})") from e


def _info(loc: Location):  # noqa: ANN202 - pyarrow FileInfo
    f, path = filesystem(loc)
    return f.get_file_info(path)


def exists(loc: Location) -> bool:
    """True when a file or folder is at ``loc``."""
    from pyarrow import fs

    return _info(loc).type != fs.FileType.NotFound


def is_file(loc: Location) -> bool:
    """True when a regular file (object) is at ``loc``."""
    from pyarrow import fs

    return _info(loc).type == fs.FileType.File


def read_bytes(loc: Location) -> bytes:
    """The content of the file at ``loc`` (FileNotFoundError when there is none)."""
    loc = as_location(loc)
    if isinstance(loc, Path):
        return loc.read_bytes()
    f, path = filesystem(loc)
    with f.open_input_stream(path) as s:
        return s.read()


def write_atomic(loc: Location, data: bytes) -> None:
    """Replace the file at ``loc`` so that readers see either the old or the whole new content.

    Local disk: a temp file beside it, fsync'd, renamed over it. Object stores: one object write (visible
    only once complete). HDFS: temp file, then the old one removed and the temp renamed (a reader can find
    none for that instant).

    Args:
        loc: Target file.
        data: The complete new content.
    """
    loc = as_location(loc)
    if isinstance(loc, Path):
        loc.parent.mkdir(parents=True, exist_ok=True)
        # Unique per writer (process and thread): two publishers must never share, and so move, one temp file.
        tmp = loc.parent / f".{loc.name}.{os.getpid()}.{threading.get_ident()}.tmp"
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, loc)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return
    f, path = filesystem(loc)
    if parse_warehouse(loc).scheme in OBJECT_STORE_SCHEMES:
        with f.open_output_stream(path) as s:
            s.write(data)
        return
    parent = posixpath.dirname(path)
    f.create_dir(parent, recursive=True)
    tmp = f"{parent}/.{posixpath.basename(path)}.{os.getpid()}.{threading.get_ident()}.tmp"
    with f.open_output_stream(tmp) as s:
        s.write(data)
    if is_file(loc):
        f.delete_file(path)
    f.move(tmp, path)


def _children(loc: Location, kind: str) -> list[str]:
    from pyarrow import fs

    f, path = filesystem(loc)
    if _info(loc).type != fs.FileType.Directory:
        return []
    want = fs.FileType.Directory if kind == "dir" else fs.FileType.File
    infos = f.get_file_info(fs.FileSelector(path, allow_not_found=True))
    return sorted(i.base_name for i in infos if i.type == want)


def list_dirs(loc: Location) -> list[str]:
    """Names of the folders directly under ``loc``, sorted (empty when ``loc`` does not exist)."""
    return _children(loc, "dir")


def list_files(loc: Location) -> list[str]:
    """Names of the files directly under ``loc``, sorted (empty when ``loc`` does not exist)."""
    return _children(loc, "file")


def list_tree(loc: Location) -> dict[str, int]:
    """Every file below ``loc`` (recursively): ``/``-separated path relative to ``loc`` -> size in bytes.

    Empty when ``loc`` does not exist. On an object store this lists the objects under the prefix.
    """
    from pyarrow import fs

    f, path = filesystem(loc)
    if _info(loc).type != fs.FileType.Directory:
        return {}
    root = path.rstrip("/") + "/"
    infos = f.get_file_info(fs.FileSelector(path, recursive=True, allow_not_found=True))
    return {i.path[len(root):] if i.path.startswith(root) else i.path: int(i.size or 0)
            for i in infos if i.type == fs.FileType.File}


def remove_tree(loc: Location) -> None:
    """Remove the folder ``loc`` and everything below it (nothing happens when it does not exist)."""
    from pyarrow import fs

    loc = as_location(loc)
    f, path = filesystem(loc)
    info = f.get_file_info(path)
    if info.type == fs.FileType.Directory:
        f.delete_dir(path)
    elif info.type == fs.FileType.File:
        f.delete_file(path)
    if not isinstance(loc, Path) and parse_warehouse(loc).scheme == "s3a":
        # S3 has no folders: objects named <path>/... are gone, but a zero-byte marker may remain.
        for marker in (path, path + "/"):
            if f.get_file_info(marker).type == fs.FileType.File:
                f.delete_file(marker)


def upload_tree(local_dir: str | Path, loc: Location, *, last: Iterable[str] = ()) -> list[str]:
    """Copy a local folder's files to ``loc``; the files named in ``last`` are written after all others.

    A reader that looks for one of ``last`` (a manifest) therefore finds every other file already complete.

    Args:
        local_dir: The folder to copy (its files, recursively).
        loc: Target folder.
        last: Relative names (``/``-separated) to write last, in this order.

    Returns:
        The relative names copied, in the order written.
    """
    src = Path(local_dir)
    names = sorted(p.relative_to(src).as_posix() for p in src.rglob("*") if p.is_file())
    tail = [n for n in last if n in names]
    order = [n for n in names if n not in tail] + tail
    for name in order:
        write_atomic(join(loc, *name.split("/")), (src / name).read_bytes())
    return order
