"""Smoke test of benchmarks/paper.py on an 800-row subsample of the UCI data at quick sizes, plus its pieces."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import paper  # noqa: E402
import paper_baselines as pb  # noqa: E402
import paper_fidelity as fid  # noqa: E402

BOOSTERS = {"adaboost", "rusboost", "smoteboost", "cusboost"}


def _run(capsys, argv):
    assert paper.main(argv) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_quick_run_is_resumable_and_reports_only_what_ran(tmp_path, uci_csv, capsys):
    data = tmp_path / "uci_head.csv"  # the first 800 rows: parsing all 30,000 three times would dominate
    with open(uci_csv, encoding="utf-8") as fh:
        data.write_text("".join(line for _, line in zip(range(801), fh)), encoding="utf-8")
    log, out = tmp_path / "runs.jsonl", tmp_path / "docs" / "paper.md"
    out.parent.mkdir()
    out.write_text("# Paper\n\n## Discussion\n\nhand-written, kept\n")
    argv = [str(data), "--quick", "--seeds", "0", "--log", str(log), "--out", str(out),
            "--workdir", str(tmp_path / "work")]  # fmt: skip

    first = _run(capsys, [*argv, "--parts", "5", "--no-plots"])
    assert {u.split("/")[2] for u in first["units_run"]} == set(paper.BASELINES)
    text = out.read_text()
    assert "| none | - | not run |" in text  # part 1 never ran: no invented numbers
    assert "| XGBoost (plain) | 0 |" in text and "hand-written, kept" in text

    second = _run(capsys, argv)
    ran = {tuple(u.split("/")[1:]) for u in second["units_run"]}
    assert not any(part == "5" for part, _ in ran)  # part 5 was reused from the log
    assert ran == {("1", m) for m in paper.OVERSAMPLERS} | {("4", v) for v in paper.ABLATIONS}
    records = [json.loads(line) for line in log.read_text().splitlines()]
    by = {(r["part"], r["method"]): r["result"] for r in records}
    assert {p for p, _ in by} == {1, 2, 3, 4, 5}
    # generated rows went into the training part only, up to minority/majority 0.4
    for m in ("smote", "actgan", "ctgan"):
        assert by[(1, m)]["info"]["positive_share"] == pytest.approx(0.4 / 1.4, abs=0.01)
    assert by[(1, "none")]["info"]["n_generated"] == 0
    for g in paper.GANS:
        f = by[(2, g)]
        assert 0 <= f["shape_continuous"] <= 1 and 0 <= f["correlation_similarity"] <= 1
        assert 0 <= f["detection"]["auc"] <= 1 and 0 <= f["tstr_auc"] <= 1
    assert len(by[(3, "actgan")]["probe_w1"]) == paper.QUICK["actgan"]["epochs"]
    text = out.read_text()
    for png in ("oversamplers", "fidelity_columns", "training_curves", "histograms", "ablation", "baselines"):
        assert (out.parent / "img" / "paper" / f"{png}.png").stat().st_size > 0
        assert f"(img/paper/{png}.png)" in text
    assert "hand-written, kept" in text and second["summary"]["baselines"]["XGBoost (plain)"]["auc"]["n"] == 1
    assert "| CGAN | " in text.split("ACTGAN minus each other oversampler (same seed), test AUC")[1]
    assert "- TSTR AUC: " in text.split("ACTGAN minus CGAN")[1]

    third = _run(capsys, [*argv, "--parts", "5", "--set", "boost.n_estimators=5", "--no-plots"])
    assert {u.split("/")[2] for u in third["units_run"]} == BOOSTERS  # only the units whose settings changed


def test_fidelity_metrics_on_identical_and_shifted_data():
    rng = np.random.default_rng(0)
    n = 300
    real = np.column_stack([rng.normal(size=n) if c not in fid.CATEGORICAL else rng.integers(0, 3, n)
                            for c in fid.RAW_COLUMNS]).astype(float)  # fmt: skip
    same = fid.column_shapes(real, real)
    assert set(same) == set(fid.RAW_COLUMNS) and all(v == pytest.approx(1.0) for v in same.values())
    assert fid.correlation_similarity(real, real) == pytest.approx(1.0)
    shifted = real.copy()
    shifted[:, fid.RAW_COLUMNS.index("AGE")] += 3.0
    assert fid.column_shapes(real, shifted)["AGE"] < 0.2
    assert fid.detection(real, shifted, seed=0)["auc"] > 0.95
    assert fid.detection(real[: n // 2], real[n // 2 :], seed=0)["auc"] < 0.65


def test_sampled_boost_round_samples():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(400, 3))
    y = (rng.random(400) < 0.2).astype(int)
    n_min, n_maj = int(y.sum()), int((y == 0).sum())
    w = np.full(len(y), 1 / len(y))
    smote = pb.SampledBoostClassifier(sampler="smote", smote_ratio=1.0, random_state=0)
    Xs, ys, ws = smote._prepare_sampler(X, y, np.random.default_rng(0))(w)
    new = Xs[len(y) :]
    assert len(new) == n_maj - n_min and ys[len(y) :].all() and len(ws) == len(ys)
    lo, hi = X[y == 1].min(axis=0), X[y == 1].max(axis=0)
    assert ((new >= lo - 1e-9) & (new <= hi + 1e-9)).all()  # interpolations between minority rows
    rus = pb.SampledBoostClassifier(sampler="rus", rus_ratio=1.0, random_state=0)
    _, yr, _ = rus._prepare_sampler(X, y, np.random.default_rng(0))(w)
    assert int(yr.sum()) == n_min and int((yr == 0).sum()) == n_min
    cus = pb.SampledBoostClassifier(sampler="cluster", n_clusters=4, keep_share=0.5, random_state=0)
    Xc, yc, _ = cus._prepare_sampler(X, y, np.random.default_rng(0))(w)
    assert int(yc.sum()) == n_min and abs(int((yc == 0).sum()) - n_maj // 2) <= 4
    # AdaBoost.M2 keeps boosting on a rebalanced sample (discrete SAMME stopped after 2 rounds on UCI)
    signal = np.column_stack([X[:, 0] + (y == 1) * 1.0, X[:, 1]])
    model = pb.SampledBoostClassifier(sampler="rus", n_estimators=30, random_state=0).fit(signal, y)
    assert len(model.estimators_) == 30
    score = model.predict_proba(signal)
    assert ((score >= 0) & (score <= 1)).all() and np.corrcoef(score, y)[0, 1] > 0.3
