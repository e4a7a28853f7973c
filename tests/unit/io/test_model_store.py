import pytest

from credspark.errors import ConfigError, MissingDataError
from credspark.io import model_store as ms


def _publish(wh, name, version):
    d = ms.model_dir(wh, name, version)
    d.mkdir(parents=True)
    (d / "manifest.json").write_text("{}")
    return d


def test_current_moves_atomically_and_resolves(tmp_path):
    assert ms.current_version(tmp_path, "pd") is None
    with pytest.raises(MissingDataError, match="nothing published"):
        ms.resolve_bundle_dir(tmp_path, "pd")
    _publish(tmp_path, "pd", "v1")
    _publish(tmp_path, "pd", "v2")
    ms.set_current(tmp_path, "pd", "v1")
    assert ms.resolve_bundle_dir(tmp_path, "pd").name == "v1"
    ms.set_current(tmp_path, "pd", "v2")
    assert ms.current_version(tmp_path, "pd") == "v2"
    assert ms.resolve_bundle_dir(tmp_path, "pd", "v1").name == "v1"
    assert ms.list_versions(tmp_path, "pd") == ["v1", "v2"]
    assert not [p for p in (tmp_path / "models" / "pd").iterdir() if p.name.endswith(".tmp")]


def test_refuses_unknown_and_escaping_versions(tmp_path):
    with pytest.raises(MissingDataError):
        ms.set_current(tmp_path, "pd", "v9")
    for bad in ["../x", "a/b", "..", ""]:
        with pytest.raises(ConfigError):
            ms.model_dir(tmp_path, "pd", bad)
    _publish(tmp_path, "pd", "v1")
    (tmp_path / "models" / "pd" / "current").write_text("../../etc\n")
    with pytest.raises(ConfigError):
        ms.current_version(tmp_path, "pd")


def _complete_bundle(wh, name, version, payload: bytes):
    """A bundle the way ``save_bundle`` writes one: a temp sibling with manifest (hashes), renamed into place."""
    import hashlib
    import json
    import os

    final = ms.model_dir(wh, name, version)
    tmp = final.parent / f".{version}.tmp"
    tmp.mkdir(parents=True)
    (tmp / "weights.bin").write_bytes(payload)
    files = {"weights.bin": {"sha256": hashlib.sha256(payload).hexdigest()}}
    (tmp / "manifest.json").write_text(json.dumps({"files": files, "version": version}))
    os.replace(tmp, final)


def test_two_publishers_moving_current_at_once_leave_a_pointer_to_a_complete_bundle(tmp_path):
    import hashlib
    import json
    import threading
    import time

    import credspark.scoring.partition  # noqa: F401 - read_bundle's import (seconds) must not happen in the race
    from credspark.io.model_store import read_bundle

    rounds, seen, problems = 60, set(), []
    start, stop = threading.Barrier(3), threading.Event()

    def publisher(k):
        start.wait()
        try:
            for i in range(rounds):
                version = f"p{k}-{i:03d}"
                _complete_bundle(tmp_path, "pd", version, f"{version} ".encode() * 2_000)
                ms.set_current(tmp_path, "pd", version)
                time.sleep(0.005)  # let the reader run between moves (the GIL would otherwise batch them)
        except Exception as e:  # noqa: BLE001 - collected and asserted below
            problems.append(f"publisher {k}: {e!r}")

    def reader():
        start.wait()
        while not stop.is_set():
            try:
                if ms.current_version(tmp_path, "pd") is None:
                    continue
                d = ms.resolve_bundle_dir(tmp_path, "pd")
                files = read_bundle(d)
                manifest = json.loads(files["manifest.json"])
                for name, entry in manifest["files"].items():
                    assert hashlib.sha256(files[name]).hexdigest() == entry["sha256"], name
                assert manifest["version"] == d.name
                seen.add(d.name)
            except Exception as e:  # noqa: BLE001 - collected and asserted below
                problems.append(repr(e))

    threads = [threading.Thread(target=publisher, args=(k,)) for k in (1, 2)]
    watcher = threading.Thread(target=reader)
    for t in [*threads, watcher]:
        t.start()
    for t in threads:
        t.join(timeout=120)
    stop.set()
    watcher.join(timeout=30)
    assert problems == []
    assert len(seen) > 1  # the reader really read while the pointer moved
    final = ms.current_version(tmp_path, "pd")
    assert final in {f"p1-{rounds - 1:03d}", f"p2-{rounds - 1:03d}"}  # the last write wins
    assert json.loads(read_bundle(ms.resolve_bundle_dir(tmp_path, "pd"))["manifest.json"])["version"] == final
    assert len(ms.list_versions(tmp_path, "pd")) == 2 * rounds
    assert not [p for p in (tmp_path / "models" / "pd").iterdir() if p.name.endswith(".tmp")]
