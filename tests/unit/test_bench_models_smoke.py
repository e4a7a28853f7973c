"""Smoke test of benchmarks/models_uci.py: the whole protocol on a small synthetic UCI-layout CSV, quick sizes."""

from __future__ import annotations

import csv
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load_module():
    path = ROOT / "benchmarks" / "models_uci.py"
    spec = importlib.util.spec_from_file_location("bench_models_uci", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("bench_models_uci", module)
    spec.loader.exec_module(module)
    return module


def _write_uci_like_csv(path: Path, n: int = 900, seed: int = 0) -> None:
    """A CSV in the Kaggle layout whose default depends on the most recent PAY status (learnable signal)."""
    rng = np.random.default_rng(seed)
    pay = rng.integers(-2, 4, size=(n, 6))
    bill = rng.gamma(2.0, 20_000.0, size=(n, 6)).round()
    paid = rng.gamma(1.5, 2_000.0, size=(n, 6)).round()
    logit = -2.6 + 1.2 * np.clip(pay[:, 0], 0, None) + 0.3 * rng.normal(size=n)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    header = ["ID", "LIMIT_BAL", "SEX", "EDUCATION", "MARRIAGE", "AGE"]
    header += ["PAY_0", "PAY_2", "PAY_3", "PAY_4", "PAY_5", "PAY_6"]
    header += [f"BILL_AMT{i}" for i in range(1, 7)] + [f"PAY_AMT{i}" for i in range(1, 7)]
    header += ["default.payment.next.month"]
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        for i in range(n):
            row = [i + 1, rng.integers(1, 50) * 10_000, rng.integers(1, 3), rng.integers(0, 7), rng.integers(0, 4)]
            row += [rng.integers(21, 70), *pay[i], *bill[i], *paid[i], y[i]]
            w.writerow(row)


def test_quick_run_prints_json_and_writes_section(tmp_path, capsys):
    bench = _load_module()
    data = tmp_path / "uci.csv"
    _write_uci_like_csv(data)
    out = tmp_path / "results.md"
    out.write_text("# Results\n\n## Other section\n\nkeep me\n")
    variants = "xgb_raw,focal_raw,rl_head,rl_emb_raw_focal,gan_rl_emb_raw_focal"
    argv = ["--quick", "--seeds", "0", "--data", str(data), "--out", str(out), "--variants", variants]
    assert bench.main(argv) == 0

    last = capsys.readouterr().out.strip().splitlines()[-1]
    result = json.loads(last)
    assert result["benchmark"] == "models_uci" and result["part"] == "test"
    assert set(result["summary"]) == set(variants.split(","))
    for entry in result["summary"].values():
        assert entry["seeds"] == [0]
        assert 0.0 <= entry["auc"]["mean"] <= 1.0 and 0.0 <= entry["ks"]["mean"] <= 1.0
    # the synthetic signal is strong: a tree model on the raw columns must find it
    assert result["summary"]["xgb_raw"]["auc"]["mean"] > 0.7
    seed0 = result["per_seed"]["0"]
    assert seed0["info"]["n_generated"] > 0 and seed0["info"]["train_positive_share_after_gan"] == pytest.approx(
        0.4 / 1.4, abs=0.01
    )

    text = out.read_text()
    assert "## Other section\n\nkeep me" in text
    assert "## Model quality on UCI" in text and "`gan_rl_emb_raw_focal`" in text


def test_valid_only_never_reads_the_test_part(tmp_path, monkeypatch):
    bench = _load_module()
    data = tmp_path / "uci.csv"
    _write_uci_like_csv(data, n=400)
    arrays = bench.load_uci_arrays(data)
    run = bench.SeedRun(arrays, 0, bench.build_config(quick=True), ["xgb_raw"], 1, valid_only=True)
    _, valid_idx, _ = bench.paper_split(arrays.y, 0)
    assert np.array_equal(run.test.ids, arrays.ids[valid_idx])
    metrics = run.run()["metrics"]["xgb_raw"]
    assert metrics["auc"] == pytest.approx(metrics["valid_auc"])


def test_set_overrides_parse_literals_and_reject_unknown_sections():
    bench = _load_module()
    cfg = bench.build_config(False, ["resnet.lr=3e-4", "resnet.filters=(8, 16)", "resnet.loss=focal"])
    assert cfg["resnet"]["lr"] == 3e-4 and cfg["resnet"]["filters"] == (8, 16) and cfg["resnet"]["loss"] == "focal"
    assert bench.build_config(False)["resnet"] == bench.DEFAULTS["resnet"]
    with pytest.raises(SystemExit):
        bench.build_config(False, ["nosuch.key=1"])


def test_resume_runs_only_what_is_missing_and_refuses_other_settings(tmp_path, capsys):
    bench = _load_module()
    data = tmp_path / "uci.csv"
    _write_uci_like_csv(data, n=500)
    common = ["--quick", "--data", str(data)]
    assert bench.main([*common, "--seeds", "0", "--variants", "xgb_raw"]) == 0
    log = tmp_path / "first.log"
    log.write_text(capsys.readouterr().out)
    first = json.loads(log.read_text().strip().splitlines()[-1])

    assert bench.main([*common, "--seeds", "0,1", "--variants", "xgb_raw,focal_raw", "--resume", str(log)]) == 0
    merged = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert merged["summary"]["xgb_raw"]["seeds"] == [0, 1] and merged["summary"]["focal_raw"]["seeds"] == [0, 1]
    # seed 0's xgb_raw was reused, not refitted (its timing entry is the earlier one)
    assert merged["per_seed"]["0"]["timings"]["xgb_raw"] == first["per_seed"]["0"]["timings"]["xgb_raw"]
    assert merged["per_seed"]["0"]["metrics"]["xgb_raw"] == first["per_seed"]["0"]["metrics"]["xgb_raw"]

    with pytest.raises(SystemExit, match="settings"):
        bench.main([*common, "--seeds", "0", "--set", "focal.gamma=2.0", "--resume", str(log)])
