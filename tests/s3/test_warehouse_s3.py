"""The warehouse abstraction and the model store against a real S3 server (moto): read, write, list, remove,
``current`` replaced atomically, a bundle visible only once complete."""

from __future__ import annotations

import threading
import uuid

import pytest

from credspark.errors import ConfigError, MissingDataError
from credspark.io import model_store as ms
from credspark.io import warehouse as wh
from tests.s3.conftest import BUCKET, list_bucket


@pytest.fixture
def root(s3):
    """A fresh warehouse prefix in the bucket per test."""
    prefix = f"t-{uuid.uuid4().hex[:8]}"
    yield f"s3a://{BUCKET}/{prefix}"
    wh.remove_tree(f"s3a://{BUCKET}/{prefix}")


def test_read_write_list_and_remove_on_s3(s3, root):
    f = wh.child(root, "a", "b", "x.json")
    assert isinstance(f, str) and f == f"{root}/a/b/x.json"
    assert not wh.exists(f) and wh.list_dirs(wh.child(root, "a")) == []
    wh.write_atomic(f, b"one")
    wh.write_atomic(wh.child(root, "a", "c", "y"), b"two")
    assert wh.read_bytes(f) == b"one" and wh.is_file(f) and not wh.is_file(wh.child(root, "a"))
    assert wh.list_dirs(wh.child(root, "a")) == ["b", "c"] and wh.list_files(wh.child(root, "a", "b")) == ["x.json"]
    prefix = root.split("/", 3)[3]
    assert list_bucket(s3, prefix) == [f"{prefix}/a/b/x.json", f"{prefix}/a/c/y"]
    assert wh.list_tree(wh.child(root, "a")) == {"b/x.json": 3, "c/y": 3}  # what maintain_tables counts with
    wh.remove_tree(wh.child(root, "a"))
    assert list_bucket(s3, prefix) == [] and not wh.exists(wh.child(root, "a"))
    with pytest.raises(ConfigError, match="escapes the warehouse"):
        wh.child(root, "..", "other-prefix")


def test_a_replaced_object_is_seen_whole_by_a_concurrent_reader(root):
    f = wh.child(root, "models", "m", "current")
    values = [f"version-{i:04d}-{'x' * 20000}\n".encode() for i in range(40)]
    wh.write_atomic(f, values[0])
    seen: list[bytes] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            seen.append(wh.read_bytes(f))

    reader = threading.Thread(target=read)
    reader.start()
    for v in values[1:]:
        wh.write_atomic(f, v)
    done.set()
    reader.join()
    assert len(seen) > 1 and set(seen) <= set(values)
    assert wh.read_bytes(f) == values[-1]  # read-after-write


def test_a_bundle_is_visible_only_with_its_manifest_and_current_moves_on_s3(s3, root):
    # A version whose upload stopped before the manifest: invisible to every reader.
    wh.write_atomic(wh.child(root, "models", "pd", "v0", "embedder", "w.bin"), b"partial")
    assert ms.list_versions(root, "pd") == []
    with pytest.raises(MissingDataError, match="no bundle"):
        ms.set_current(root, "pd", "v0")
    with pytest.raises(MissingDataError, match="no bundle"):
        ms.resolve_bundle_dir(root, "pd", "v0")

    # A block that fails uploads nothing.
    with pytest.raises(RuntimeError, match="boom"), ms.publish_bundle(root, "pd", "v1") as folder:
        folder.mkdir(parents=True)
        (folder / "manifest.json").write_text("{}")
        raise RuntimeError("boom")
    assert not wh.exists(ms.model_dir(root, "pd", "v1"))

    manifest = b'{"files": {"embedder/w.bin": {}, "classifier/c.json": {}}}'
    with ms.publish_bundle(root, "pd", "v1") as folder:
        (folder / "embedder").mkdir(parents=True)
        (folder / "classifier").mkdir()
        (folder / "embedder" / "w.bin").write_bytes(b"weights")
        (folder / "classifier" / "c.json").write_bytes(b"{}")
        (folder / "manifest.json").write_bytes(manifest)
        (folder / "report.html").write_text("<html></html>")
    with pytest.raises(FileExistsError), ms.publish_bundle(root, "pd", "v1"):
        pass  # versions are immutable
    assert ms.list_versions(root, "pd") == ["v1"] and ms.current_version(root, "pd") is None
    ms.set_current(root, "pd", "v1")
    assert ms.current_version(root, "pd") == "v1"
    d = ms.resolve_bundle_dir(root, "pd")
    assert d == f"{root}/models/pd/v1"
    assert ms.read_bundle(d) == {"manifest.json": manifest, "embedder/w.bin": b"weights", "classifier/c.json": b"{}"}

    # A tampered pointer or a listed name leaving the bundle is refused.
    wh.write_atomic(wh.child(root, "models", "pd", "current"), b"../../x\n")
    with pytest.raises(ConfigError):
        ms.current_version(root, "pd")
    from credspark.models.bundle import BundleError

    wh.write_atomic(wh.child(root, "models", "pd", "v1", "manifest.json"), b'{"files": {"../../current": {}}}')
    with pytest.raises(BundleError, match="not a plain relative path"):
        ms.read_bundle(d)
