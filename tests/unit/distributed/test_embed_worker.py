"""Embedding and scoring partition code with plain pandas (a lambda stands in for the broadcast)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from credspark.distributed import _embed_worker as W
from credspark.models.inputs import arrays_from_frame
from tests.fixtures_models import feature_frame, fit_tiny_models, tiny_spec


@pytest.fixture(scope="module")
def tiny():
    spec = tiny_spec()
    pdf = feature_frame(spec, 120, seed=4)
    embedder, clf = fit_tiny_models(spec, pdf, use_raw_static=True, n_estimators=5)
    return spec, pdf, embedder, clf


def _files(model, tmp_path: Path) -> dict[str, bytes]:
    model.save(tmp_path)
    return {p.name: p.read_bytes() for p in tmp_path.iterdir()}


def test_files_digest_names_content_not_order():
    a = {"x.json": b"1", "w.safetensors": b"2"}
    assert W.files_digest(a) == W.files_digest(dict(reversed(list(a.items()))))
    assert W.files_digest(a) != W.files_digest({"x.json": b"1", "w.safetensors": b"3"})
    assert W.files_digest(a) != W.files_digest({"y.json": b"1", "w.safetensors": b"2"})


def test_model_is_loaded_once_per_process_whatever_the_loader_object():
    W._CACHE.clear()
    calls = []

    def build():
        calls.append(1)
        return object()

    first = W.cached_model("k1", build)
    # A new task brings a new broadcast object (a new loader) but the same content hash: no reload.
    assert W.cached_model("k1", lambda: build()) is first
    assert len(calls) == 1
    for i in range(W._CACHE.size):
        W.cached_model(f"other{i}", object)
    assert "k1" not in W._CACHE  # the oldest is evicted, the cache stays bounded
    W._CACHE.clear()


def test_embed_partition_layout_matches_the_bundle(tiny, tmp_path):
    spec, pdf, embedder, _ = tiny
    W._CACHE.clear()
    files = _files(embedder, tmp_path)
    loads = []

    def load_files():
        loads.append(1)
        return files

    params = W.EmbedParams(key=W.files_digest(files), spec=spec.to_dict(), keep=("customer_id", "label"),
                           use_raw_static=True, batch_size=16)
    frames = [pdf.iloc[:50], pdf.iloc[50:50], pdf.iloc[50:]]
    out = list(W.embed_partition(iter(frames), params, load_files))
    out += list(W.embed_partition(iter(frames[:1]), params, load_files))
    assert len(loads) == 1  # loaded on the first task only
    assert [len(o) for o in out] == [50, 0, 70, 50]
    got = pd.concat(out[:3], ignore_index=True)
    assert list(got.columns) == ["customer_id", "label", "features"]
    static, dynamic, mask = arrays_from_frame(pdf, spec)
    expected = np.hstack([embedder.embed(static, dynamic, mask), static])
    np.testing.assert_allclose(np.stack(got["features"].to_list()), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(got["customer_id"].to_numpy(), pdf["customer_id"].to_numpy())
    # Exactly what scoring computes: the embedder's inference path (the folded network), frame by frame.
    scoring_embed = embedder.inference_embedder()
    assert scoring_embed != embedder.embed
    for frame, result in ((frames[0], out[0]), (frames[2], out[2])):
        s, d, m = arrays_from_frame(frame, spec)
        np.testing.assert_array_equal(np.stack(result["features"].to_list()),
                                      np.hstack([scoring_embed(s, d, m, batch_size=16), s]))
    W._CACHE.clear()


def test_load_embedder_refuses_paths(tiny, tmp_path):
    _, _, embedder, _ = tiny
    files = _files(embedder, tmp_path)
    files["../evil.json"] = b"{}"
    with pytest.raises(ValueError, match="plain file name"):
        W.load_embedder(files)


def test_score_partition_gives_the_classifiers_probabilities(tiny):
    spec, pdf, embedder, clf = tiny
    W._CACHE.clear()
    static, dynamic, mask = arrays_from_frame(pdf, spec)
    X = np.hstack([embedder.embed(static, dynamic, mask), static]).astype(np.float32)
    raw = clf.to_booster_bytes()
    key = W.files_digest({"m": raw})
    frame = pd.DataFrame({"customer_id": pdf["customer_id"], "x": list(X)})
    col = W.ScoreColumn("pd", "x", key, X.shape[1])
    out = pd.concat(W.score_partition(iter([frame.iloc[:60], frame.iloc[60:]]), [col], ["customer_id"],
                                      lambda: {key: raw}), ignore_index=True)
    assert list(out.columns) == ["customer_id", "pd"]
    np.testing.assert_allclose(out["pd"].to_numpy(), clf.predict_proba(X), rtol=1e-6)
    W._CACHE.clear()
