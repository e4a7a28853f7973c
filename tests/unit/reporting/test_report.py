"""The HTML report is self-contained, escapes its text and shows what the run measured; metrics.json is JSON."""

from __future__ import annotations

import base64
import json
import re

import numpy as np
import pytest

from credspark.metrics import credit_report
from credspark.reporting import TrainingReport, metrics_document, render_html, report_figures, write_report

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def report():
    rng = np.random.default_rng(0)
    y = (rng.random(400) < 0.25).astype(int)
    a = 1 / (1 + np.exp(-(rng.normal(size=400) + 1.5 * y - 1)))
    b = 1 / (1 + np.exp(-(rng.normal(size=400) + 0.8 * y - 1)))
    # Per-epoch records, as the distributed trainer keeps them (ACTGAN.fit keeps per-iteration ones).
    gan = [{"epoch": i, "g_loss": 1.0 / (i + 1), "d_loss": -0.5, "wasserstein": 2.0 / (i + 1), "rows_per_s": 9.0}
           for i in range(12)]
    return TrainingReport(
        title="run <script>alert(1)</script>",
        run={"run_id": "train-x", "version": "20050930-train-x"},
        gate={"passed": False, "reasons": ["test AUC 0.61 is below the floor <0.65>"]},
        metrics={"candidate": credit_report(y, a, 0.4), "baseline": credit_report(y, b, 0.4)},
        y_test=y, scores_test={"candidate": a, "baseline": b},
        data={"rows per part and label": {"train": {"0": 10, "1": 3}}},
        config={"xgb": {"n_estimators": 5, "note": "<b>bold</b>"}},
        gan_history=gan, resnet_history={"train_loss": [0.7, 0.6], "valid_auc": [0.7, None]},
        xgb_histories={"candidate": {"train": {"focal": [0.1, 0.09]}, "valid": {"focal": [0.11, 0.1]}}},
        xgb_best={"candidate": 1},
        importances={"baseline (total gain)": {"age": 3.0, "limit": 1.0}},
        real_vs_generated={"age": (rng.normal(40, 9, 200), rng.normal(41, 10, 150))},
        notes=["deep step: local"],
    )


@pytest.fixture(scope="module")
def figs(report):
    return report_figures(report)


def test_figures_are_pngs_and_follow_the_available_data(report, figs):
    assert set(figs) == {"roc", "ks", "score_distribution", "calibration", "precision_recall", "actgan",
                         "real_vs_generated", "resnet_lstm", "xgboost", "importance_0"}
    assert all(v.startswith(PNG) and len(v) > 1000 for v in figs.values())
    bare = TrainingReport(title="t", run={}, gate={"passed": True}, metrics=report.metrics, y_test=report.y_test,
                          scores_test=report.scores_test)
    assert set(report_figures(bare)) == {"roc", "ks", "score_distribution", "calibration", "precision_recall"}


def test_html_is_self_contained_and_escaped(report, figs):
    page = render_html(report, figs)
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "<script>" not in page and "&lt;script&gt;" in page and "&lt;b&gt;bold&lt;/b&gt;" in page
    assert not re.search(r"""(src|href)=["'](https?:|//|file:)""", page)  # nothing fetched from outside
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == len(figs)
    assert all(base64.b64decode(i).startswith(PNG) for i in images)
    assert "Quality gate FAILED" in page and "below the floor &lt;0.65&gt;" in page
    # The metrics table puts the candidate next to the baseline with the difference.
    auc_row = re.search(r"<tr><th>AUC</th>(.*?)</tr>", page).group(1)
    cand, base = report.metrics["candidate"]["auc"], report.metrics["baseline"]["auc"]
    assert f"{cand:.4f}" in auc_row and f"{base:.4f}" in auc_row and f"{cand - base:+.4f}" in auc_row


def test_metrics_json_is_strict_json(report, figs, tmp_path):
    html_path, json_path = write_report(tmp_path, report, figs)
    doc = json.loads(json_path.read_text())
    assert doc["metrics"]["candidate"]["auc"] == pytest.approx(report.metrics["candidate"]["auc"])
    assert doc["gate"]["passed"] is False
    assert html_path.read_text().count("data:image/png;base64,") == 10
    # NaN is not JSON: it becomes null.
    r = TrainingReport(title="t", run={"x": float("nan")}, gate={}, metrics={}, y_test=np.zeros(0), scores_test={})
    assert metrics_document(r)["run"]["x"] is None


def test_the_candidates_table_marks_the_champion_and_metrics_json_keeps_it(report, figs, tmp_path):
    import dataclasses

    cands = {"name": "plain <XGBoost>", "metric": "auc", "margin": 0.003, "reason": "simpler & as good",
             "candidates": [
                 {"name": "plain <XGBoost>", "champion": True, "valid_auc": 0.781, "valid_ks": 0.42,
                  "test_auc": 0.775, "test_ks": 0.41},
                 {"name": "paper", "champion": False, "valid_auc": 0.7825, "valid_ks": 0.43, "test_auc": 0.77,
                  "test_ks": 0.40}]}
    r = dataclasses.replace(report, candidates=cands)
    page = render_html(r, figs)
    table = re.search(r"<h2>Candidates</h2>(.*?)</table>", page, re.S).group(1)
    assert "simpler &amp; as good" in table and "by auc (simplicity margin 0.003)" in table
    champ_row = re.search(r"<tr><th>plain &lt;XGBoost&gt;</th>(.*?)</tr>", table).group(1)
    assert "champion" in champ_row and "0.7810" in champ_row and "0.4100" in champ_row
    other_row = re.search(r"<tr><th>paper</th>(.*?)</tr>", table).group(1)
    assert "champion" not in other_row and "0.7825" in other_row
    _, json_path = write_report(tmp_path, r, figs)
    assert json.loads(json_path.read_text())["candidates"]["candidates"][0]["champion"] is True
    assert "<h2>Candidates</h2>" not in render_html(report, figs)


def test_the_tuning_trials_are_listed_best_first(report, figs):
    import dataclasses

    trials = [{"number": i, "auc": 0.70 + 0.01 * (i % 5), "best_iteration": 10 + i, "seconds": 0.1,
               "max_depth": 2 + i % 4, "learning_rate": 0.05} for i in range(12)]
    cands = {"name": "m", "metric": "auc", "margin": 0.0, "reason": "r", "candidates": [],
             "tuning": {"plain_static": {"trials": trials, "stopped_by": "trials", "best_auc": 0.74}}}
    page = render_html(dataclasses.replace(report, candidates=cands), figs)
    section = page[page.index("<h3>Tuning: plain_static</h3>"):]
    assert "12 trials (stopped by trials), best validation AUC 0.7400" in section
    rows = re.findall(r"<tr><td>(\d+)</td><td>([0-9.]+)</td>", section.split("</table>")[0])
    assert len(rows) == 10 and float(rows[0][1]) == pytest.approx(0.74)
    assert [float(a) for _, a in rows] == sorted((float(a) for _, a in rows), reverse=True)
