import ctypes
import hashlib
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from fixtures_models import feature_frame, publish_tiny_bundle, tiny_spec

from credspark.models.bundle import BundleError, load_bundle
from credspark.models.calibration import Calibrator
from credspark.models.inputs import arrays_from_frame
from credspark.models.spec import FeatureSpec, SpecMismatchError
from credspark.scoring import partition as P
from credspark.scoring.attribution import embedding_attribution
from credspark.scoring.reasons import top_reasons
from credspark.scoring.scorecard import ScorecardScale, points_from_pd, risk_bands

SPEC = tiny_spec()


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    wh = tmp_path_factory.mktemp("wh")
    train = feature_frame(SPEC, 300, seed=1)
    emb_only = publish_tiny_bundle(wh, "m", "emb", SPEC, train, make_current=False)
    raw = publish_tiny_bundle(wh, "m", "raw", SPEC, train, use_raw_static=True, make_current=False)
    platt = Calibrator("platt", slope=0.6, intercept=-1.1, n_fit=100, positive_rate=0.2)
    cal = publish_tiny_bundle(wh, "m", "cal", SPEC, train, make_current=False, calibration=platt)
    tree = publish_tiny_bundle(wh, "m", "tree", SPEC, train, make_current=False, calibration=platt,
                               models=(None, _static_classifier(train)))
    return {"emb": emb_only, "raw": raw, "cal": cal, "tree": tree}


def _static_classifier(train):
    from credspark.models.focal_xgb import FocalXGBClassifier

    static, _, _, y = arrays_from_frame(train, SPEC, with_label=True)
    return FocalXGBClassifier(n_estimators=20, max_depth=3, random_state=0, n_jobs=1,
                              feature_names=SPEC.static_names).fit(static, y)


@pytest.fixture(scope="module")
def rows():
    return feature_frame(SPEC, 400, seed=7, first_id=1000)  # not the training rows


def _params(files, **kw):
    return P.ScoreParams(digest=P.bundle_digest(files), spec=SPEC.to_dict(), **kw)


def test_bundle_files_are_read_whole_and_named_by_the_manifest_hash(bundles):
    files = P.read_bundle_files(bundles["emb"])
    manifest = json.loads(files["manifest.json"])
    assert set(files) == {"manifest.json", *manifest["files"]}
    assert P.bundle_digest(files) == hashlib.sha256((bundles["emb"] / "manifest.json").read_bytes()).hexdigest()


def test_tampered_bytes_and_a_different_spec_are_refused(bundles):
    files = P.read_bundle_files(bundles["emb"])
    bad = dict(files)
    name = next(n for n in files if n.endswith(".ubj"))
    bad[name] = bytes([files[name][0] ^ 1]) + files[name][1:]
    with pytest.raises(BundleError, match="sha256"):
        P.load_bundle_from_files(bad)
    other = FeatureSpec(static=SPEC.static, channels=SPEC.channels, T=SPEC.T + 1)
    with pytest.raises(SpecMismatchError, match="T differs"):
        P.load_bundle_from_files(files, expected_spec=other)


def test_unsafe_file_names_are_refused_before_anything_is_written(tmp_path):
    with pytest.raises(BundleError, match="plain relative path"):
        P.load_bundle_from_files({"manifest.json": b"{}", "../escape.bin": b"x"})
    (tmp_path / "manifest.json").write_text(json.dumps({"files": {"/etc/passwd": {}}}))
    with pytest.raises(BundleError, match="plain relative path"):
        P.read_bundle_files(tmp_path)


@pytest.mark.parametrize("kind", ["emb", "raw", "cal", "tree"])
def test_scores_equal_the_bundle_predictions_and_follow_the_scorecard(bundles, rows, kind):
    files = P.read_bundle_files(bundles[kind])
    model = P.ScoringModel(P.load_bundle_from_files(files, expected_spec=SPEC))
    reference = load_bundle(bundles[kind], expected_spec=SPEC)
    static, dynamic, mask = arrays_from_frame(rows, SPEC)
    expected_pd = reference.predict_proba(static, dynamic, mask)
    for batch in (64, 1000):
        out = P.score_frame(rows, model, _params(files, model_batch_size=batch, reason_contribs="exact"))
        assert list(out.columns) == P.output_columns(3)
        assert (out["customer_id"].to_numpy() == rows["customer_id"].to_numpy()).all()
        assert np.abs(out["pd"].to_numpy() - expected_pd).max() < 1e-6
    np.testing.assert_allclose(out["score"], points_from_pd(out["pd"].to_numpy(), ScorecardScale()))
    assert list(out["risk_band"]) == list(risk_bands(out["score"].to_numpy(), (500, 540, 580, 620), "EDCBA"))
    # Reasons, recomputed through the bundle's public contributions API.
    groups = model.reason_map.groups
    want = top_reasons(model.reason_map.scores(reference.contributions(static, dynamic, mask)), groups, 3)
    for i in range(3):
        assert list(out[f"reason_{i + 1}"]) == list(want[i])
    assert out["reason_1"].notna().any()
    if kind == "raw":
        assert model.reason_map.method == "raw+attribution"
        assert set(out["reason_1"].dropna()) <= set(groups)
    if kind == "tree":  # a tree-only bundle: every reason is a named static feature
        assert model.bundle.embedder is None and model.reason_map.method == "raw"
        assert groups == tuple(SPEC.static_names) and set(out["reason_1"].dropna()) <= set(groups)


def test_scoring_publishes_the_calibrated_pd_and_keeps_the_reasons(bundles, rows):
    # Same models (same seed and rows), one bundle with a Platt map: pd follows the map, the reasons (which
    # explain the margin) do not move.
    plain = P.ScoringModel(P.load_bundle_from_files(P.read_bundle_files(bundles["emb"]), expected_spec=SPEC))
    cal = P.ScoringModel(P.load_bundle_from_files(P.read_bundle_files(bundles["cal"]), expected_spec=SPEC))
    assert cal.bundle.calibrator.method == "platt" and plain.bundle.calibrator.method == "none"
    static, dynamic, mask = arrays_from_frame(rows, SPEC)
    pd_plain, groups_plain = plain.score_arrays(static, dynamic, mask)
    pd_cal, groups_cal = cal.score_arrays(static, dynamic, mask)
    margin = np.log(pd_plain) - np.log1p(-pd_plain)
    np.testing.assert_allclose(pd_cal, 1.0 / (1.0 + np.exp(-(0.6 * margin - 1.1))), rtol=1e-9)
    assert np.abs(pd_cal - pd_plain).max() > 0.01
    np.testing.assert_array_equal(groups_cal, groups_plain)


def test_scoring_embeds_through_the_folded_network_with_the_eager_results(bundles, rows):
    model = P.ScoringModel(P.load_bundle_from_files(P.read_bundle_files(bundles["emb"]), expected_spec=SPEC))
    embedder = model.bundle.embedder
    assert model.embed != embedder.embed  # ResNetLSTM.inference_embedder, not the eager embed
    static, dynamic, mask = arrays_from_frame(rows, SPEC)
    folded = model.embed(static, dynamic, mask, batch_size=1000)
    np.testing.assert_allclose(folded, embedder.embed(static, dynamic, mask), rtol=1e-5, atol=1e-6)
    pd_, _ = model.score_arrays(static, dynamic, mask)
    assert np.abs(pd_ - model.bundle.predict_proba(static, dynamic, mask)).max() < 1e-6


def test_tuning_a_scoring_process_keeps_its_heap_and_puts_blas_on_one_thread():
    # A fresh process: glibc's adaptive defaults serve a 24 MB block by mmap and give it back on free; once
    # tuned, the heap serves it and keeps it for the next batch. mallinfo2 tells which.
    code = """
import ctypes, json
from threadpoolctl import threadpool_info
from credspark.scoring.partition import tune_scoring_process
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                               "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL(None)
libc.mallinfo2.restype, libc.malloc.restype = Info, ctypes.c_void_p
libc.malloc.argtypes, libc.free.argtypes = [ctypes.c_size_t], [ctypes.c_void_p]
def block(size):
    before = libc.mallinfo2()
    p = libc.malloc(size)
    during = libc.mallinfo2()
    libc.free(p)
    after = libc.mallinfo2()
    return {"mmapped": during.hblkhd - before.hblkhd, "heap_kept": after.arena - before.arena}
untuned = block(24 << 20)
tuning = tune_scoring_process()
print(json.dumps({"untuned": untuned, "tuned": block(24 << 20), "tuning": tuning, "again": tune_scoring_process(),
                  "blas": sorted({i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"})}))
"""
    if not hasattr(ctypes.CDLL(None), "mallinfo2"):
        pytest.skip("needs glibc >= 2.33 (mallinfo2)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         cwd=Path(__file__).resolve().parents[3])
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    mb = 2**20
    assert got["untuned"]["mmapped"] >= 24 * mb  # the defaults this replaces
    assert got["tuning"] == got["again"] == {"malloc": True, "blas_threads": 1}
    assert got["tuned"]["mmapped"] == 0 and got["tuned"]["heap_kept"] >= 20 * mb  # (less what was free on top)
    assert got["blas"] == [1]


def test_approximate_contributions_keep_pd_and_mostly_agree_on_the_first_reason(bundles, rows):
    files = P.read_bundle_files(bundles["raw"])
    model = P.ScoringModel(P.load_bundle_from_files(files))
    exact = P.score_frame(rows, model, _params(files, reason_contribs="exact"))
    approx = P.score_frame(rows, model, _params(files))  # the default
    np.testing.assert_array_equal(exact["pd"], approx["pd"])
    assert approx["reason_1"].notna().sum() > 0
    both = exact["reason_1"].notna() & approx["reason_1"].notna()
    assert (exact.loc[both, "reason_1"] == approx.loc[both, "reason_1"]).mean() > 0.5


def test_attribution_spreads_each_embedding_dimension_over_named_inputs(bundles):
    bundle = load_bundle(bundles["emb"])
    att = embedding_attribution(bundle.embedder)
    assert att.shape == (bundle.embedding_dim, SPEC.n_static + SPEC.C)
    assert (att >= 0).all()
    np.testing.assert_allclose(att.sum(axis=1), 1.0)
    assert att[:, SPEC.n_static:].sum() > 0 and att[:, : SPEC.n_static].sum() > 0
    np.testing.assert_array_equal(att, embedding_attribution(bundle.embedder))  # deterministic
    assert embedding_attribution(object()) is None


class CountingBroadcast:
    """Stands in for a Spark Broadcast: counts how often the bytes are fetched."""

    def __init__(self, files):
        self._files, self.reads = files, 0

    @property
    def value(self):
        self.reads += 1
        return self._files


def test_the_model_loads_once_per_worker_keyed_by_content_not_by_object(bundles, rows):
    P._MODELS.clear()
    files = P.read_bundle_files(bundles["emb"])
    params = _params(files)
    first, second = CountingBroadcast(files), CountingBroadcast(dict(files))  # a new object per task
    out1 = pd.concat(P.PartitionScorer(files=first, params=params)(iter([rows.iloc[:200], rows.iloc[200:]])))
    out2 = pd.concat(P.PartitionScorer(files=second, params=params)(iter([rows])))
    assert (first.reads, second.reads) == (1, 0)
    pd.testing.assert_frame_equal(out1.reset_index(drop=True), out2.reset_index(drop=True))
    other = P.read_bundle_files(bundles["raw"])
    third = CountingBroadcast(other)
    list(P.PartitionScorer(files=third, params=_params(other))(iter([rows.iloc[:10]])))
    assert third.reads == 1 and len(P._MODELS) == 2
    P._MODELS.clear()


def test_bytes_that_do_not_match_the_verified_digest_are_refused(bundles):
    P._MODELS.clear()
    files = P.read_bundle_files(bundles["emb"])
    params = P.ScoreParams(digest="0" * 64, spec=SPEC.to_dict())
    with pytest.raises(BundleError, match="digest"):
        P.cached_model(params, SimpleNamespace(value=files))


def test_fault_injection_raises_after_the_configured_batches(bundles, rows):
    files = P.read_bundle_files(bundles["emb"])
    scorer = P.PartitionScorer(files=files, params=_params(files, model_batch_size=50, fail_after_batches=3))
    batches = scorer(iter([rows.iloc[:100], rows.iloc[100:200]]))
    assert len(next(batches)) == 100  # batches 1-2
    with pytest.raises(P.InjectedFailureError, match="after 3 model batches"):
        next(batches)
    P._MODELS.clear()


def test_scoring_package_imports_no_pyspark():
    code = ("import importlib, pkgutil, sys, credspark.scoring as s\n"
            "[importlib.import_module('credspark.scoring.' + m.name) for m in pkgutil.iter_modules(s.__path__)]\n"
            "print(sorted(k for k in sys.modules if k.split('.')[0] == 'pyspark'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         cwd=Path(__file__).resolve().parents[3])
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_a_bundle_with_a_categorical_attribute_names_the_attribute_or_its_configured_group(tmp_path):
    from credspark.models.bundle import save_bundle
    from credspark.models.focal_xgb import FocalXGBClassifier
    from credspark.models.spec import StaticFeature

    spec = FeatureSpec(static=(StaticFeature("debt_ratio"),
                               *(StaticFeature(f"housing__{c}", "binary") for c in ("own", "rent", "other"))),
                       channels=(), T=0, extra={"category_encoding": {"housing": ["own", "rent"]}})
    rng = np.random.default_rng(0)
    housing, debt = rng.integers(0, 3, 600), rng.normal(size=600)
    y = ((housing == 2) | (debt > 1.0)).astype(int)  # 'other' housing or a high debt ratio defaults
    static = np.column_stack([debt, np.eye(3)[housing]]).astype(np.float32)
    clf = FocalXGBClassifier(n_estimators=30, max_depth=3, random_state=0, n_jobs=1,
                             feature_names=spec.static_names).fit(static, y)
    save_bundle(tmp_path / "b", spec=spec, embedder=None, classifier=clf, metadata={},
                created_at="2026-01-01T00:00:00+00:00")
    files = P.read_bundle_files(tmp_path / "b")
    frame = pd.DataFrame({"customer_id": [1, 2], "as_of_date": [None, None], "debt_ratio": [0.0, 2.0],
                          "housing__own": [0, 1], "housing__rent": [0, 0], "housing__other": [1, 0],
                          "seq": [[], []], "seq_mask": [[], []]})
    params = P.ScoreParams(digest=P.bundle_digest(files), spec=spec.to_dict(), n_reasons=2)
    model = P.ScoringModel(P.load_bundle_from_files(files, expected_spec=spec))
    assert model.reason_map.groups == ("debt_ratio", "housing")
    out = P.score_frame(frame, model, params)
    assert list(out["reason_1"]) == ["housing", "debt_ratio"]
    groups = {"home": ("housing",), "debt": ("debt_ratio",)}
    grouped = P.ScoringModel(P.load_bundle_from_files(files), reason_groups=groups)
    out = P.score_frame(frame, grouped, P.ScoreParams(**{**params.__dict__, "reason_groups": tuple(groups.items())}))
    assert list(out["reason_1"]) == ["home", "debt"]
    assert set(out["reason_2"]) <= {"home", "debt", None}


def test_a_bundle_whose_embedder_was_trained_on_static_only_features_scores_with_named_reasons(tmp_path):
    spec = FeatureSpec(static=SPEC.static, channels=(), T=0)
    bundle_dir = publish_tiny_bundle(tmp_path, "m", "static", spec, feature_frame(spec, 300, seed=1),
                                     make_current=False, embedder_kwargs={"epochs": 3, "lr": 3e-3})
    rows = feature_frame(spec, 200, seed=7, first_id=1000)
    files = P.read_bundle_files(bundle_dir)
    model = P.ScoringModel(P.load_bundle_from_files(files, expected_spec=spec))
    assert model.bundle.embedder.module_.lstm is None
    reference = load_bundle(bundle_dir, expected_spec=spec)
    static, dynamic, mask = arrays_from_frame(rows, spec)
    assert dynamic.shape == (200, 0, 0)
    out = P.score_frame(rows, model, P.ScoreParams(digest=P.bundle_digest(files), spec=spec.to_dict()))
    assert np.abs(out["pd"].to_numpy() - reference.predict_proba(static, dynamic, mask)).max() < 1e-6
    att = embedding_attribution(model.bundle.embedder)
    assert att.shape == (model.bundle.embedding_dim, spec.n_static)  # no sequence group
    np.testing.assert_allclose(att.sum(axis=1)[att.sum(axis=1) > 0], 1.0)
    assert model.reason_map.groups == tuple(spec.static_names)
    assert out["reason_1"].notna().any() and set(out["reason_1"].dropna()) <= set(spec.static_names)
