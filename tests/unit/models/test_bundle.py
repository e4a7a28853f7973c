import hashlib
import json
import os
import pathlib
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from credspark import __version__
from credspark.models.bundle import BundleError, load_bundle, save_bundle
from credspark.models.calibration import IDENTITY, Calibrator
from credspark.models.focal_xgb import FocalXGBClassifier
from credspark.models.spec import FeatureSpec, SpecMismatchError, StaticFeature

SPEC = FeatureSpec(
    static=(StaticFeature("limit"), StaticFeature("age", "integer"), StaticFeature("sex", "categorical", (1, 2))),
    channels=("bill", "pay"),
    T=4,
)


class TinyEmbedder(nn.Module):
    """Stand-in for ResNetLSTM with the same bundle interface: a real module saved as safetensors + JSON."""

    def __init__(self, *, spec, dim=3, random_state=0):
        super().__init__()
        self.spec, self.dim, self.random_state = spec, dim, random_state
        torch.manual_seed(random_state)
        self.proj = nn.Linear(spec.n_static + spec.C, dim)

    def embed(self, static, dynamic, mask):
        m = torch.as_tensor(np.asarray(mask, dtype=np.float32)).unsqueeze(-1)
        dyn = (torch.as_tensor(dynamic) * m).sum(1) / m.sum(1).clamp(min=1)
        with torch.no_grad():
            return torch.tanh(self.proj(torch.cat([torch.as_tensor(static), dyn], 1))).numpy()

    def get_params(self):
        return {"dim": self.dim, "random_state": self.random_state}

    def save(self, directory):
        directory = Path(directory)
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(directory / "tiny.safetensors"))
        (directory / "tiny.json").write_text(json.dumps({"spec": self.spec.to_dict(), **self.get_params()}))
        return ["tiny.safetensors", "tiny.json"]

    @classmethod
    def load(cls, directory, *, device="cpu"):
        cfg = json.loads((Path(directory) / "tiny.json").read_text())
        model = cls(spec=FeatureSpec.from_dict(cfg["spec"]), dim=cfg["dim"], random_state=cfg["random_state"])
        model.load_state_dict(load_file(str(Path(directory) / "tiny.safetensors")))
        return model.to(device)


REGISTRY = {"tiny": TinyEmbedder}


def _data(n, seed):
    rng = np.random.default_rng(seed)
    static = np.column_stack([rng.normal(size=n), rng.integers(20, 70, n), rng.integers(1, 3, n)]).astype(np.float32)
    dynamic = rng.normal(size=(n, SPEC.T, SPEC.C)).astype(np.float32)
    mask = np.ones((n, SPEC.T), dtype=np.uint8)
    mask[: n // 3, :2] = 0  # leading months unobserved for some customers
    y = (static[:, 0] + dynamic[:, -1, 0] + rng.normal(scale=0.5, size=n) > 1.2).astype(int)
    return static, dynamic, mask, y


@pytest.fixture(scope="module")
def parts():
    static, dynamic, mask, y = _data(300, 0)
    embedder = TinyEmbedder(spec=SPEC)
    emb = embedder.embed(static, dynamic, mask)
    clf = FocalXGBClassifier(n_estimators=8, random_state=0, n_jobs=1).fit(emb, y)
    clf_raw = FocalXGBClassifier(n_estimators=8, random_state=0, n_jobs=1).fit(np.hstack([emb, static]), y)
    return embedder, clf, clf_raw, (static, dynamic, mask)


def _save(path, parts, **kw):
    embedder, clf, _, _ = parts
    args = {
        "spec": SPEC,
        "embedder": embedder,
        "classifier": clf,
        "metadata": {"metrics": {"auc": 0.8}, "git_commit": "abc123", "training_data": {"rows": 300}},
        "created_at": "2024-01-31T00:00:00+00:00",
        "registry": REGISTRY,
    }
    args.update(kw)
    return save_bundle(path, **args)


def _manifest(path):
    return json.loads((path / "manifest.json").read_text())


def _write_manifest(path, manifest):
    (path / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize("use_raw_static", [False, True])
def test_round_trip_identical_predictions(tmp_path, parts, use_raw_static):
    embedder, clf, clf_raw, (static, dynamic, mask) = parts
    clf_used = clf_raw if use_raw_static else clf
    path = _save(tmp_path / "v1", parts, classifier=clf_used, use_raw_static=use_raw_static)
    bundle = load_bundle(path, expected_spec=SPEC, registry=REGISTRY)
    emb = embedder.embed(static, dynamic, mask)
    X = np.hstack([emb, static]) if use_raw_static else emb
    np.testing.assert_array_equal(bundle.predict_proba(static, dynamic, mask), clf_used.predict_proba(X))
    np.testing.assert_array_equal(bundle.embed(static, dynamic, mask), emb)
    names = ["emb_0", "emb_1", "emb_2"] + (["limit", "age", "sex"] if use_raw_static else [])
    assert bundle.feature_names == names
    contrib = bundle.contributions(static[:20], dynamic[:20], mask[:20])
    assert contrib.shape == (20, len(names) + 1)
    assert bundle.spec == SPEC and bundle.use_raw_static is use_raw_static


def test_manifest_contents(tmp_path, parts):
    path = _save(tmp_path / "v1", parts)
    m = _manifest(path)
    assert m["format_version"] == 2
    assert m["calibration"] == {"method": "none", "n_fit": 0, "positive_rate": None}
    assert m["created_at"] == "2024-01-31T00:00:00+00:00"
    assert m["code_version"] == {"credspark": __version__, "git_commit": "abc123"}
    assert FeatureSpec.from_dict(m["feature_spec"]) == SPEC
    assert m["metadata"]["metrics"] == {"auc": 0.8}
    assert m["classifier"]["params"]["n_estimators"] == 8
    assert m["embedder"]["kind"] == "tiny" and m["embedder"]["params"] == {"dim": 3, "random_state": 0}
    listed = set(m["files"])
    on_disk = {p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()} - {"manifest.json"}
    assert listed == on_disk
    for name, entry in m["files"].items():
        assert entry["sha256"] == hashlib.sha256((path / name).read_bytes()).hexdigest()
    assert not any(p.suffix in (".pkl", ".pt", ".pickle") for p in path.rglob("*"))
    assert [p.name for p in tmp_path.iterdir()] == ["v1"]  # no temporary sibling left behind


def test_existing_directory_is_not_overwritten(tmp_path, parts):
    path = _save(tmp_path / "v1", parts)
    with pytest.raises(FileExistsError):
        _save(path, parts)


def test_modified_weight_file_is_refused(tmp_path, parts):
    path = _save(tmp_path / "v1", parts)
    weights = path / "embedder" / "tiny.safetensors"
    raw = bytearray(weights.read_bytes())
    raw[-1] ^= 0x01  # one bit in the last tensor value: still a valid safetensors file
    weights.write_bytes(bytes(raw))
    with pytest.raises(BundleError, match=r"tiny\.safetensors: sha256 mismatch"):
        load_bundle(path, registry=REGISTRY)


@pytest.mark.parametrize("bad", ["../x", "/etc/passwd", "embedder/../../x", "embedder/./tiny.json", "a\\b"])
def test_manifest_with_unsafe_path_is_refused(tmp_path, parts, bad):
    path = _save(tmp_path / "v1", parts)
    (tmp_path / "x").write_text("outside")
    m = _manifest(path)
    m["files"][bad] = {"sha256": hashlib.sha256(b"outside").hexdigest()}
    _write_manifest(path, m)
    with pytest.raises(BundleError, match=r"absolute|'\.\.'|forbidden"):
        load_bundle(path, registry=REGISTRY)


def test_component_file_outside_its_folder_is_refused(tmp_path, parts):
    path = _save(tmp_path / "v1", parts)
    m = _manifest(path)
    m["embedder"]["files"].append("../x")
    _write_manifest(path, m)
    with pytest.raises(BundleError, match=r"'\.\.'"):
        load_bundle(path, registry=REGISTRY)


def test_symlink_pointing_outside_is_refused_even_with_matching_hash(tmp_path, parts):
    path = _save(tmp_path / "v1", parts)
    model = path / "classifier" / "focal_xgb.ubj"
    outside = tmp_path / "elsewhere.ubj"
    outside.write_bytes(model.read_bytes())
    model.unlink()
    model.symlink_to(outside)
    with pytest.raises(BundleError, match="outside the bundle"):
        load_bundle(path, registry=REGISTRY)


class _Payload:
    """A pickle whose unpickling creates a marker file (stands in for arbitrary code execution)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def test_planted_pickle_payload_really_executes_when_unpickled(tmp_path):
    # Guards the two tests below: their marker would appear if anything unpickled the file.
    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps(_Payload(marker)))
    assert marker.exists()


@pytest.mark.parametrize("attacker_updates_hash", [False, True])
def test_planted_pickle_is_refused_without_being_unpickled(tmp_path, parts, attacker_updates_hash):
    path = _save(tmp_path / "v1", parts)
    marker = tmp_path / "pwned"
    payload = pickle.dumps(_Payload(marker))
    (path / "embedder" / "tiny.safetensors").write_bytes(payload)
    if attacker_updates_hash:
        m = _manifest(path)
        m["files"]["embedder/tiny.safetensors"]["sha256"] = hashlib.sha256(payload).hexdigest()
        _write_manifest(path, m)
        match = "embedder failed to load"  # safetensors refuses to parse it
    else:
        match = "sha256 mismatch"
    with pytest.raises(BundleError, match=match):
        load_bundle(path, registry=REGISTRY)
    assert not marker.exists()


def test_wrong_feature_spec_is_refused(tmp_path, parts):
    path = _save(tmp_path / "v1", parts)
    other = FeatureSpec(static=SPEC.static, channels=SPEC.channels, T=6)
    with pytest.raises(BundleError, match="T differs") as info:
        load_bundle(path, expected_spec=other, registry=REGISTRY)
    assert isinstance(info.value, SpecMismatchError)
    renamed = FeatureSpec(static=SPEC.static[:2] + (StaticFeature("gender"),), channels=SPEC.channels, T=4)
    with pytest.raises(BundleError, match="static columns differ"):
        load_bundle(path, expected_spec=renamed, registry=REGISTRY)


def test_wrong_array_shapes_are_refused_at_predict(tmp_path, parts):
    static, dynamic, mask = parts[3]
    bundle = load_bundle(_save(tmp_path / "v1", parts), registry=REGISTRY)
    with pytest.raises(SpecMismatchError, match="dynamic"):
        bundle.predict_proba(static, dynamic[:, :3], mask)


def test_wrong_format_version_and_unknown_kind_are_refused(tmp_path, parts):
    path = _save(tmp_path / "v1", parts)
    m = _manifest(path)
    _write_manifest(path, {**m, "format_version": 99})
    with pytest.raises(BundleError, match="format_version"):
        load_bundle(path, registry=REGISTRY)
    _write_manifest(path, {**m, "embedder": {**m["embedder"], "kind": "os:system"}})
    with pytest.raises(BundleError, match="embedder.kind"):
        load_bundle(path, registry=REGISTRY)
    _write_manifest(path, m)
    with pytest.raises(BundleError, match="embedder.kind"):
        load_bundle(path)  # the default registry has no "tiny"


def test_the_calibration_map_is_stored_and_applied(tmp_path, parts):
    embedder, clf, _, (static, dynamic, mask) = parts
    cal = Calibrator("platt", slope=0.7, intercept=-0.9, n_fit=300, positive_rate=0.25)
    bundle = load_bundle(_save(tmp_path / "v2", parts, calibration=cal), registry=REGISTRY)
    assert bundle.calibrator == cal
    assert _manifest(bundle.path)["calibration"] == cal.to_dict()
    margin = clf.predict_margin(embedder.embed(static, dynamic, mask))
    np.testing.assert_allclose(bundle.predict_proba(static, dynamic, mask), 1 / (1 + np.exp(-(0.7 * margin - 0.9))))


def test_format_1_bundles_read_as_uncalibrated_and_format_2_needs_a_valid_map(tmp_path, parts):
    path = _save(tmp_path / "v", parts, calibration=Calibrator("platt", slope=0.5, intercept=0.0))
    m = _manifest(path)
    old = {k: v for k, v in m.items() if k != "calibration"} | {"format_version": 1}
    _write_manifest(path, old)
    assert load_bundle(path, registry=REGISTRY).calibrator is IDENTITY
    _write_manifest(path, {**old, "format_version": 2})
    with pytest.raises(BundleError, match="'calibration' is missing"):
        load_bundle(path, registry=REGISTRY)
    _write_manifest(path, {**m, "calibration": {"method": "platt", "slope": -1.0, "intercept": 0.0}})
    with pytest.raises(BundleError, match="manifest.json field 'calibration': field 'slope' must be > 0"):
        load_bundle(path, registry=REGISTRY)


def test_missing_listed_file_is_refused(tmp_path, parts):
    path = _save(tmp_path / "v1", parts)
    (path / "classifier" / "focal_xgb.json").unlink()
    with pytest.raises(BundleError, match="missing"):
        load_bundle(path, registry=REGISTRY)


class _FailingClassifier(FocalXGBClassifier):
    def save(self, directory):
        super().save(directory)  # leave real files behind, then fail half-way
        raise OSError("disk full")


def test_failed_save_leaves_nothing_behind(tmp_path, parts):
    embedder, clf, _, _ = parts
    failing = _FailingClassifier(**clf.get_params())
    failing._set_booster(clf.booster_)
    with pytest.raises(OSError, match="disk full"):
        _save(tmp_path / "v1", parts, classifier=failing)
    assert list(tmp_path.iterdir()) == []


def test_embedder_writing_unreported_files_is_refused_at_save(tmp_path, parts):
    class Sneaky(TinyEmbedder):
        def save(self, directory):
            return super().save(directory)[:1]  # wrote tiny.json but does not report it

    sneaky = Sneaky(spec=SPEC)
    with pytest.raises(ValueError, match="tiny.json"):
        _save(tmp_path / "v1", parts, embedder=sneaky, registry={"sneaky": Sneaky})
    assert list(tmp_path.iterdir()) == []


def test_unregistered_embedder_and_mismatched_parts_are_refused_at_save(tmp_path, parts):
    with pytest.raises(ValueError, match="registry"):
        _save(tmp_path / "a", parts, registry={})
    with pytest.raises(SpecMismatchError):
        _save(tmp_path / "b", parts, spec=FeatureSpec(static=SPEC.static, channels=("bill",), T=4))
    with pytest.raises(ValueError, match="features"):
        _save(tmp_path / "c", parts, use_raw_static=True)  # 3 classifier inputs cannot hold 3 raw + embedding
    assert list(tmp_path.iterdir()) == []


def test_resnet_lstm_round_trip(tmp_path):
    rl = pytest.importorskip("credspark.models.resnet_lstm")
    static, dynamic, mask, y = _data(64, 1)
    torch.set_num_threads(1)
    model = _tiny_resnet_lstm(rl.ResNetLSTM).fit(static, dynamic, mask, y)
    emb = model.embed(static, dynamic, mask)
    clf = FocalXGBClassifier(n_estimators=5, random_state=0, n_jobs=1).fit(np.hstack([emb, static]), y)
    path = save_bundle(tmp_path / "v1", spec=SPEC, embedder=model, classifier=clf, metadata={}, use_raw_static=True)
    bundle = load_bundle(path, expected_spec=SPEC)
    assert type(bundle.embedder) is rl.ResNetLSTM
    np.testing.assert_array_equal(
        bundle.predict_proba(static, dynamic, mask), clf.predict_proba(np.hstack([emb, static]))
    )


def _tiny_resnet_lstm(cls):
    return cls(spec=SPEC, embedding_dim=4, filters=(4,), lstm_hidden=4, epochs=1, batch_size=32, random_state=0)


def test_no_file_in_bundle_is_a_pickle(tmp_path, parts):
    path = _save(tmp_path / "v1", parts)
    for p in path.rglob("*"):
        if p.is_file():
            head = p.read_bytes()[:2]
            assert head[:1] != b"\x80", p  # pickle protocol >= 2 starts with PROTO (0x80)
    assert os.path.isfile(path / "classifier" / "focal_xgb.ubj")


def test_a_tree_only_bundle_round_trips_and_predicts_from_the_static_features(tmp_path, parts):
    _, _, _, (static, dynamic, mask) = parts
    _, _, _, y = _data(300, 0)
    clf = FocalXGBClassifier(n_estimators=8, random_state=0, n_jobs=1, feature_names=SPEC.static_names).fit(static, y)
    cal = Calibrator("platt", slope=0.8, intercept=-0.2, n_fit=300, positive_rate=0.25)
    path = _save(tmp_path / "tree", parts, embedder=None, classifier=clf, calibration=cal)
    m = _manifest(path)
    assert m["format_version"] == 3 and m["embedder"] is None and m["use_raw_static"] is True
    assert not (path / "embedder").exists() and all(f.startswith("classifier/") for f in m["files"])
    bundle = load_bundle(path, expected_spec=SPEC, registry=REGISTRY)
    assert bundle.embedder is None and bundle.embedding_dim == 0 and bundle.feature_names == SPEC.static_names
    np.testing.assert_allclose(bundle.predict_proba(static, dynamic, mask),
                               cal.pd_from_margin(clf.predict_margin(static)))
    assert bundle.contributions(static[:5], dynamic[:5], mask[:5]).shape == (5, SPEC.n_static + 1)
    assert "tree-only" in repr(bundle)


def test_a_tree_only_bundle_needs_format_3_and_the_static_features(tmp_path, parts):
    _, _, _, (static, _, _) = parts
    _, _, _, y = _data(300, 0)
    clf = FocalXGBClassifier(n_estimators=4, random_state=0, n_jobs=1, feature_names=SPEC.static_names).fit(static, y)
    path = _save(tmp_path / "tree", parts, embedder=None, classifier=clf)
    m = _manifest(path)
    _write_manifest(path, {**m, "format_version": 2})
    with pytest.raises(BundleError, match="'embedder' is null, which needs format_version >= 3"):
        load_bundle(path, registry=REGISTRY)
    _write_manifest(path, {**m, "feature_names": ["limit", "age", "other"]})
    with pytest.raises(BundleError, match="feature_names equal to the static features"):
        load_bundle(path, registry=REGISTRY)
    with pytest.raises(ValueError, match="tree-only bundle: classifier has 3 features, the spec 2"):
        two = FeatureSpec(static=SPEC.static[:2], channels=SPEC.channels, T=SPEC.T)
        save_bundle(tmp_path / "bad", spec=two, embedder=None, classifier=clf, metadata={})
