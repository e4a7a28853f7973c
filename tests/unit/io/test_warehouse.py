"""The warehouse abstraction on a local folder: URI parsing, refusals, read/write/list, the atomic replace.

The same functions against a real S3 server are in tests/s3/test_warehouse_s3.py.
"""

import os
import threading
from pathlib import Path

import pytest

from credspark.errors import ConfigError
from credspark.io import model_store as ms
from credspark.io import warehouse as wh


@pytest.mark.parametrize(
    ("value", "scheme", "root"),
    [
        ("s3a://bank-risk/credspark", "s3a", "s3a://bank-risk/credspark"),
        ("s3a://bank-risk/credspark/", "s3a", "s3a://bank-risk/credspark"),
        ("s3a://bank-risk", "s3a", "s3a://bank-risk"),
        ("S3A://b//x/./y", "s3a", "s3a://b/x/y"),
        ("abfss://lake@acct.dfs.core.windows.net/risk", "abfss", "abfss://lake@acct.dfs.core.windows.net/risk"),
        ("gs://bucket/wh", "gs", "gs://bucket/wh"),
        ("hdfs://namenode:8020/data/wh", "hdfs", "hdfs://namenode:8020/data/wh"),
        ("file:///tmp/wh", "file", "/tmp/wh"),
        ("file:/tmp/wh", "file", "/tmp/wh"),
        ("file://localhost/tmp/wh", "file", "/tmp/wh"),
        ("/tmp/a/../wh", "file", "/tmp/wh"),
    ],
)
def test_accepted_warehouses_parse_to_a_scheme_and_a_normalised_root(value, scheme, root):
    parsed = wh.parse_warehouse(value)
    assert (parsed.scheme, parsed.root) == (scheme, root)


def test_a_relative_path_is_a_local_folder_below_the_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert wh.parse_warehouse("warehouse") == wh.Warehouse("file", str(tmp_path / "warehouse"))
    assert wh.child("warehouse", "features") == tmp_path / "warehouse" / "features"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("s3://bank-risk/credspark", r"scheme 's3://' is not supported \(use s3a:// for S3\).*s3a://"),
        ("http://example.com/wh", r"'http://example.com/wh'.*not supported; use a local path or file://, s3a://, "
                                  r"abfss://, gs://, hdfs://"),
        ("wasb://c@a.blob.core.windows.net/x", "not supported"),
        ("s3a:/bank-risk", "expected s3a://<bucket or host>/<path>"),
        ("s3a:///path", "no bucket"),
        ("gs://b/../../x", r"'\.\.' in the path"),
        ("file://relative/x", "absolute path"),
        ("", "non-empty"),
    ],
)
def test_other_warehouses_are_refused_naming_the_value_and_the_accepted_schemes(value, message):
    with pytest.raises(ConfigError, match=message):
        wh.parse_warehouse(value)


@pytest.mark.parametrize("root", ["s3a://b/wh", "/srv/wh", "hdfs://nn:8020/wh"])
def test_names_escaping_the_warehouse_are_refused_without_touching_the_disk(root):
    for bad in [("..",), ("..", "etc"), ("a", "..", ".."), ("/etc",), ("a/../../b",), ("x\x00",)]:
        with pytest.raises(ConfigError):
            wh.child(root, *bad)
    inside = wh.child(root, "a/../b", "c")
    assert str(inside) == f"{wh.parse_warehouse(root).root}/b/c"
    assert str(wh.child(root)) == wh.parse_warehouse(root).root


def test_a_local_warehouse_gives_paths_and_a_remote_one_uris():
    assert wh.child("/srv/wh", "models") == Path("/srv/wh/models")
    assert wh.child("s3a://b/wh", "models", "m") == "s3a://b/wh/models/m"
    assert wh.is_remote("s3a://b/wh") and not wh.is_remote("/srv/wh") and not wh.is_remote("file:///srv/wh")
    assert wh.location_name("s3a://b/wh/models/m/v1") == "v1" and wh.location_name(Path("/a/v2")) == "v2"


def test_s3_options_come_from_the_hadoop_s3a_settings_spark_gets():
    try:
        wh.configure_s3({
            "spark.hadoop.fs.s3a.endpoint": "http://127.0.0.1:9999",
            "spark.hadoop.fs.s3a.access.key": "AK",
            "spark.hadoop.fs.s3a.secret.key": "SK",
            "spark.hadoop.fs.s3a.path.style.access": "true",
            "spark.hadoop.fs.s3a.endpoint.region": "eu-west-1",
            "spark.executor.memory": "1g",
        })
        assert wh.s3_options() == {"endpoint_override": "127.0.0.1:9999", "scheme": "http", "access_key": "AK",
                                   "secret_key": "SK", "region": "eu-west-1", "force_virtual_addressing": False}
        wh.configure_s3([("fs.s3a.connection.ssl.enabled", "false"), ("fs.s3a.endpoint", "minio:9000")])
        assert wh.s3_options() == {"endpoint_override": "minio:9000", "scheme": "http"}
    finally:
        wh.configure_s3({})
    assert wh.s3_options() == {"scheme": "https"}  # nothing given: pyarrow's AWS default chain


def test_local_read_write_list_and_remove(tmp_path):
    root = tmp_path / "wh"
    f = wh.child(root, "a", "b", "x.json")
    assert not wh.exists(f) and wh.list_dirs(wh.child(root, "a")) == []
    wh.write_atomic(f, b"one")
    wh.write_atomic(wh.child(root, "a", "c", "y"), b"two")
    assert wh.read_bytes(f) == b"one" and wh.is_file(f) and not wh.is_file(wh.child(root, "a"))
    assert wh.list_dirs(wh.child(root, "a")) == ["b", "c"] and wh.list_files(wh.child(root, "a", "b")) == ["x.json"]
    assert wh.list_tree(wh.child(root, "a")) == {"b/x.json": 3, "c/y": 3} and wh.list_tree(wh.child(root, "z")) == {}
    wh.write_atomic(f, b"three")
    assert wh.read_bytes(str(f)) == b"three"
    assert not [p for p in (root / "a" / "b").iterdir() if p.name.endswith(".tmp")]
    wh.remove_tree(wh.child(root, "a"))
    assert not (root / "a").exists()
    wh.remove_tree(wh.child(root, "a"))  # already gone: no error


def test_a_local_replace_is_seen_whole_by_a_concurrent_reader(tmp_path):
    f = wh.child(tmp_path, "models", "m", "current")
    values = [f"version-{i:04d}-{'x' * 4000}\n".encode() for i in range(200)]
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
    assert seen and set(seen) <= set(values)


def test_upload_tree_writes_the_named_files_last(tmp_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    for name in ("manifest.json", "a.bin", "sub/b.bin", "z.html"):
        (src / name).write_bytes(name.encode())
    order = wh.upload_tree(src, wh.child(tmp_path / "wh", "v1"), last=["manifest.json"])
    assert order == ["a.bin", "sub/b.bin", "z.html", "manifest.json"]
    assert (tmp_path / "wh" / "v1" / "sub" / "b.bin").read_bytes() == b"sub/b.bin"


def test_a_local_bundle_is_published_in_place_and_current_moves(tmp_path):
    with ms.publish_bundle(tmp_path, "pd", "v1") as folder:
        assert folder == tmp_path / "models" / "pd" / "v1"
        folder.mkdir(parents=True)
        (folder / "manifest.json").write_text('{"files": {}}')
    ms.set_current(tmp_path, "pd", "v1")
    assert ms.read_bundle(ms.resolve_bundle_dir(tmp_path, "pd")) == {"manifest.json": b'{"files": {}}'}
    assert set(os.listdir(tmp_path / "models" / "pd")) == {"current", "v1"}


def test_the_demo_summary_lists_what_the_warehouse_holds(tmp_path, capsys):
    from credspark.pipelines.demo import print_demo_summary

    (tmp_path / "features" / "_delta_log").mkdir(parents=True)
    (tmp_path / "scores").mkdir()  # no Delta log: not a table
    wh.write_atomic(wh.child(tmp_path, "_runs", "train-1.json"), b"{}")
    with ms.publish_bundle(tmp_path, "pd", "v1") as folder:
        folder.mkdir(parents=True)
        (folder / "manifest.json").write_text("{}")
        (folder / "report.html").write_text("<html></html>")
    ms.set_current(tmp_path, "pd", "v1")
    print_demo_summary(str(tmp_path))
    out = capsys.readouterr().out
    assert f"table features      {tmp_path / 'features'}" in out and "table scores" not in out
    assert f"run summaries      {tmp_path / '_runs'} (1 runs)" in out
    assert f"training report    {tmp_path / 'models' / 'pd' / 'v1' / 'report.html'}" in out


def test_a_job_given_an_unsupported_warehouse_exits_2_naming_it_and_writes_nothing(tmp_path, monkeypatch, capsys):
    import jobs.build_features as build_features

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as stop:
        build_features.main(["--as-of", "2025-12-31", "--warehouse", "s3://bank-risk/credspark"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "warehouse 's3://bank-risk/credspark': scheme 's3://' is not supported (use s3a:// for S3)" in err
    assert list(tmp_path.iterdir()) == []  # no ./s3:/bank-risk/... folder, no run summary anywhere local
