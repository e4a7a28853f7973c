"""Untrusted files and config values: refused without executing anything, never escaping the warehouse.

What tests/unit/models/test_bundle.py already proves with a stand-in embedder (tampered weights, ``..`` and
absolute paths, a symlink out of the bundle, a planted pickle in the embedder file) is proved here again on
the *real* bundle (ResNetLSTM safetensors + JSON, XGBoost UBJSON + JSON) for EVERY file of it, and through the
path the scoring job takes: :func:`credspark.pipelines.score.load_verified_bundle`, which reads the files into
memory before verifying them (``read_bundle_files``) and broadcasts exactly those bytes.

"Without executing": each planted pickle's payload would create a marker file when unpickled
(``test_the_payload_really_runs_when_unpickled`` proves it would); the tests assert the marker never appears.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import pathlib
import pickle
import shutil
import threading
from pathlib import Path

import pytest
from fixtures_models import feature_frame, publish_tiny_bundle, tiny_spec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from credspark.config import config_from_dict, load_config
from credspark.errors import EXIT_CONFIG, ConfigError, MissingDataError
from credspark.io.model_store import model_dir, resolve_bundle_dir
from credspark.io.tables import _sql_literal, safe_child, table_ref
from credspark.job_requests import JobOptions
from credspark.models.bundle import BundleError, load_bundle
from credspark.pipelines.score import ModelRefusedError, load_verified_bundle
from credspark.scoring import partition
from credspark.scoring.partition import ScoreParams, cached_model, read_bundle_files

SPEC = tiny_spec()
BUNDLE_FILES = [
    "embedder/resnet_lstm.safetensors",
    "embedder/resnet_lstm.json",
    "classifier/focal_xgb.ubj",
    "classifier/focal_xgb.json",
]


class _Payload:
    """Unpickling this creates ``marker``: stands in for arbitrary code an attacker would run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """One real tiny bundle, published once; tests tamper with copies of it."""
    wh = tmp_path_factory.mktemp("untrusted_wh")
    publish_tiny_bundle(wh, "m", "good", SPEC, feature_frame(SPEC, 160, seed=1))
    return wh


def _copy(wh: Path, version: str) -> Path:
    """A fresh copy of the good bundle as ``models/m/<version>``."""
    target = model_dir(wh, "m", version)
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(model_dir(wh, "m", "good"), target, symlinks=True)
    return target


def _cfg(wh: Path):
    return config_from_dict({"warehouse": {"path": str(wh)}, "score": {"model_name": "m"}})


def _rehash(bundle: Path, name: str) -> None:
    """What an attacker able to edit the manifest does: make its sha256 of ``name`` match the new bytes."""
    manifest = json.loads((bundle / "manifest.json").read_text())
    data = (bundle / name).read_bytes()
    manifest["files"][name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    (bundle / "manifest.json").write_text(json.dumps(manifest))


def test_the_payload_really_runs_when_unpickled(tmp_path):
    # Guards every "marker does not exist" below: unpickling the payload does create the marker.
    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps(_Payload(marker)))
    assert marker.exists()


def test_the_good_bundle_passes_the_scoring_jobs_verification(published):
    files, bundle, version, _ = load_verified_bundle(_cfg(published), "good", SPEC)
    assert version == "good" and sorted(files) == sorted(["manifest.json", *BUNDLE_FILES])
    assert bundle.spec == SPEC


@pytest.mark.parametrize("attacker_rehashes", [False, True], ids=["hash-kept", "hash-updated"])
@pytest.mark.parametrize("name", BUNDLE_FILES)
def test_a_pickle_planted_in_any_bundle_file_is_refused_without_running(published, tmp_path, name, attacker_rehashes):
    version = f"pickle-{name.replace('/', '-')}-{attacker_rehashes}"
    bundle = _copy(published, version)
    marker = tmp_path / "pwned"
    (bundle / name).write_bytes(pickle.dumps(_Payload(marker)))
    if attacker_rehashes:
        _rehash(bundle, name)
    expected = "failed to load" if attacker_rehashes else "sha256 mismatch"
    # The scoring job's path (bytes read into memory, verified, loaded from a private copy) ...
    with pytest.raises(ModelRefusedError, match=expected):
        load_verified_bundle(_cfg(published), version, SPEC)
    # ... and the in-place loader.
    with pytest.raises(BundleError, match=expected):
        load_bundle(bundle, expected_spec=SPEC)
    assert not marker.exists()


@pytest.mark.parametrize("name", BUNDLE_FILES)
def test_one_flipped_bit_in_any_bundle_file_is_refused(published, name):
    version = f"bitflip-{name.replace('/', '-')}"
    bundle = _copy(published, version)
    raw = bytearray((bundle / name).read_bytes())
    raw[len(raw) // 2] ^= 0x01
    (bundle / name).write_bytes(bytes(raw))
    with pytest.raises(ModelRefusedError, match=r"sha256 mismatch"):
        load_verified_bundle(_cfg(published), version, SPEC)


def test_a_manifest_naming_files_outside_the_bundle_is_refused(published, tmp_path):
    outside = tmp_path / "outside.bin"
    outside.write_bytes(b"secret")
    digest = hashlib.sha256(b"secret").hexdigest()
    for i, name in enumerate(["../../../../outside.bin", str(outside), "embedder/../../x", "a\\b", "c:/x"]):
        bundle = _copy(published, f"escape{i}")
        manifest = json.loads((bundle / "manifest.json").read_text())
        manifest["files"][name] = {"sha256": digest}
        (bundle / "manifest.json").write_text(json.dumps(manifest))
        with pytest.raises(ModelRefusedError, match="relative path|absolute|forbidden|'\\.\\.'"):
            load_verified_bundle(_cfg(published), f"escape{i}", SPEC)


def test_a_symlink_out_of_the_bundle_is_refused_by_the_scoring_path_even_with_matching_hash(published, tmp_path):
    # The link's target is a byte-identical copy of the real weights, so the manifest's hash matches: only
    # the "stays inside the bundle" rule can refuse it (the scoring path reads the bytes before verifying).
    bundle = _copy(published, "symlink")
    target = bundle / "classifier" / "focal_xgb.ubj"
    outside = tmp_path / "planted.ubj"
    outside.write_bytes(target.read_bytes())
    target.unlink()
    target.symlink_to(outside)
    with pytest.raises(ModelRefusedError, match="outside the bundle"):
        load_verified_bundle(_cfg(published), "symlink", SPEC)
    # A manifest that is itself a link out of the bundle.
    bundle = _copy(published, "manifest-link")
    copy = tmp_path / "manifest.json"
    copy.write_bytes((bundle / "manifest.json").read_bytes())
    (bundle / "manifest.json").unlink()
    (bundle / "manifest.json").symlink_to(copy)
    with pytest.raises(ModelRefusedError, match="manifest.json: missing or not a regular file"):
        load_verified_bundle(_cfg(published), "manifest-link", SPEC)


def test_a_fifo_in_place_of_a_weight_file_is_refused_without_blocking(published):
    # Reading a FIFO blocks until someone writes to it: the scoring job would hang instead of refusing.
    bundle = _copy(published, "fifo")
    weights = bundle / "embedder" / "resnet_lstm.safetensors"
    weights.unlink()
    os.mkfifo(weights)
    outcome: list[BaseException | None] = []

    def attempt():
        try:
            load_verified_bundle(_cfg(published), "fifo", SPEC)
            outcome.append(None)
        except BaseException as e:  # noqa: BLE001 - inspected below
            outcome.append(e)

    t = threading.Thread(target=attempt, daemon=True)
    t.start()
    t.join(20)
    if t.is_alive():  # unblock the reader so the thread ends, then fail
        with open(weights, "wb") as fh:
            fh.write(b"x")
        pytest.fail("reading the bundle blocked on a FIFO instead of refusing it")
    assert isinstance(outcome[0], ModelRefusedError), outcome
    assert "not a regular file" in str(outcome[0])


def test_bytes_shipped_to_a_worker_must_match_the_digest_the_driver_verified(published):
    # The worker-side cache loads only bytes whose manifest digest is the one the driver checked.
    files = read_bundle_files(model_dir(published, "m", "good"))
    other = dict(files)
    other["manifest.json"] = files["manifest.json"] + b" "
    partition._MODELS.clear()
    params = ScoreParams(digest=hashlib.sha256(files["manifest.json"]).hexdigest(), spec=SPEC.to_dict())
    with pytest.raises(BundleError, match="do not match the digest"):
        cached_model(params, other)
    partition._MODELS.clear()


def test_current_and_version_names_cannot_leave_the_model_store(published):
    store = published / "models" / "m"
    with pytest.raises(ConfigError):
        resolve_bundle_dir(published, "m", "../../../etc")
    with pytest.raises(ConfigError):
        resolve_bundle_dir(published, "../m", None)
    (store / "current").write_text("../../escape\n")  # a tampered pointer
    try:
        with pytest.raises(ConfigError):
            resolve_bundle_dir(published, "m", None)
    finally:
        (store / "current").write_text("good\n")
    # A version folder that is a link out of the warehouse resolves outside: refused.
    os.symlink(published.parent, store / "linked")
    with pytest.raises(ConfigError, match="escapes the warehouse"):
        resolve_bundle_dir(published, "m", "linked")
    with pytest.raises(MissingDataError):
        resolve_bundle_dir(published, "m", "nope")


# ------------------------------------------------------------------------------------------- config values
def test_yaml_with_a_python_tag_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    payload = f"!!python/object/apply:pathlib.Path.touch [!!python/object/apply:pathlib.Path [{str(marker)!r}]]"
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "score_portfolio.yaml").write_text(f"score:\n  model_name: {payload}\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config("score_portfolio", JobOptions(conf_dir=str(conf)))
    with pytest.raises(ConfigError, match="--set"):
        load_config("score_portfolio", JobOptions(conf_dir=str(tmp_path),
                                                     overrides=(f"score.model_name={payload}",)))
    assert not marker.exists()


_NAME = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20) | st.sampled_from(
    ["..", ".", "../x", "a/../../b", "/etc", "x;DROP TABLE y", "`x`", "x y", "a.b", "_ok", "ok_1", "é"]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=_NAME, version=_NAME)
def test_names_from_config_stay_inside_the_warehouse_or_are_refused(tmp_path, name, version):
    wh = (tmp_path / "wh").resolve()
    cfg = config_from_dict({"warehouse": {"path": str(wh)}})
    for make in (lambda: Path(table_ref(cfg, name).path), lambda: model_dir(wh, name, version)):
        try:
            path = make()
        except ConfigError:
            continue
        assert path == path.resolve() and wh in path.parents, (name, version, path)
    try:
        path = safe_child(wh, name, version)
    except ValueError:  # ConfigError, or the OS's refusal of a NUL byte: a refusal either way
        pass
    else:  # safe_child allows the root itself ("" parts), never anything outside it
        assert path == wh or wh in path.parents, (name, version, path)
    try:
        ref = table_ref(config_from_dict({"warehouse": {"path": str(wh), "database": name}}), "features")
    except ConfigError:
        return
    assert ref.qualified == f"`{name}`.`features`" and name.isidentifier() and name.isascii()


@pytest.mark.spark
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    values=st.lists(
        st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)
        | st.sampled_from(
            [
                "' OR '1'='1",
                "\\'",
                "\\",
                "x\\u0041",
                "$$",
                "'); DROP TABLE t; --",
                "\\\\'",
                "${x}",
                "${spark.app.name}",
                "$${x}",
            ]
        ),
        min_size=1,
        max_size=25,
    )
)
def test_text_values_become_sql_literals_that_read_back_unchanged(spark, values):
    """Partition values and table property values reach SQL only through ``_sql_literal``."""
    ok = []
    for v in values:
        try:
            ok.append((v, _sql_literal(v)))
        except ConfigError:
            assert any(ord(c) < 32 for c in v), repr(v)  # only control characters are refused
    if not ok:
        return
    row = spark.sql("SELECT " + ", ".join(f"{lit} AS c{i}" for i, (_, lit) in enumerate(ok))).first()
    assert [row[i] for i in range(len(ok))] == [v for v, _ in ok]


@pytest.mark.spark
def test_a_quoted_partition_value_replaces_only_its_own_partition(spark, tmp_path):
    from pyspark.sql import functions as F

    from credspark.io.tables import overwrite_partitions, read_table

    ref = table_ref(config_from_dict({"warehouse": {"path": str(tmp_path)}}), "t")
    evil = "a' OR '1'='1"
    base = spark.createDataFrame([(1, "a"), (2, "b"), (3, evil)], "id int, k string")
    overwrite_partitions(base, ref, "k", ["a", "b", evil])
    overwrite_partitions(spark.createDataFrame([(30, evil)], "id int, k string"), ref, "k", [evil])
    got = sorted((r.id, r.k) for r in read_table(spark, ref).orderBy(F.col("id")).collect())
    assert got == [(1, "a"), (2, "b"), (30, evil)]


@pytest.mark.spark
@pytest.mark.parametrize(
    "override",
    [
        "tables.scores=scores; DROP TABLE features",
        "tables.features=../outside",
        "tables.score_runs=x`y",
        "tables.runs=../../escaped_runs",
        "warehouse.database=db`; DROP DATABASE x; --",
    ],
)
def test_config_values_cannot_inject_sql_or_escape_the_warehouse_through_a_job(spark, tmp_path, override, capsys):
    from jobs import score_portfolio

    wh = tmp_path / "wh"
    wh.mkdir()
    with pytest.raises(SystemExit) as e:
        score_portfolio.main(
            ["--score-date", dt.date(2025, 12, 31).isoformat(), "--warehouse", str(wh), "--set", override]
        )
    assert e.value.code == EXIT_CONFIG, capsys.readouterr().err
    err = capsys.readouterr().err
    assert "FAILED" in err or "error" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wh"]  # nothing created beside the warehouse
