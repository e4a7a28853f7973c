"""The training report: one self-contained HTML page (plots embedded as base64 PNG) plus a metrics JSON.

:class:`TrainingReport` gathers plain numbers (no Spark objects); :func:`report_figures` draws the plots,
:func:`render_html` lays them out with the candidates (validation and test, the champion marked), the metrics
table (the published model against the second model listed), the quality gate's decision, the data and the
configuration. Every text from data or config is HTML-escaped.
"""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from credspark.reporting import curves, plots

__all__ = ["TrainingReport", "report_figures", "render_html", "metrics_document", "write_report", "METRIC_ROWS"]

#: Rows of the metrics table: (key in credit_report, label, higher is better).
METRIC_ROWS: tuple[tuple[str, str, bool], ...] = (
    ("auc", "AUC", True),
    ("ks", "KS", True),
    ("recall", "recall (at the validation threshold)", True),
    ("precision", "precision", True),
    ("f1", "F1", True),
    ("brier", "Brier score", False),
    ("log_loss", "log loss", False),
    ("threshold", "threshold (best F1 on validation)", None),
    ("n", "test rows", None),
    ("positive_rate", "default rate", None),
)


@dataclass
class TrainingReport:
    """Everything the report shows (plain Python and numpy).

    Attributes:
        title: Page title.
        run: Run facts: run_id, model name, version, as-of dates, bundle path, ...
        gate: Quality-gate decision: ``passed`` (bool), ``reasons`` (list), the limits.
        metrics: ``{model name: credit_report dict}`` on the test part; the first is the published model, and the
            table's difference column compares it with the second.
        y_test: Test labels.
        scores_test: ``{model name: test probabilities}`` (same keys as ``metrics``).
        data: Counts per part and class, synthetic rows, FeatureSpec summary.
        config: Configuration sections shown verbatim.
        gan_history: ACTGAN records (iteration or epoch, g_loss, d_loss, wasserstein), or None.
        resnet_history: ResNet-LSTM ``train_loss`` / ``valid_auc`` per epoch, or None.
        xgb_histories: ``{model name: evals_result}``.
        xgb_best: ``{model name: best round}``.
        importances: ``{title: {feature: gain}}``.
        real_vs_generated: ``{column: (real minority values, generated values)}``, or None.
        notes: Free-text remarks (e.g. which training backend ran).
        candidates: The champion selection (``credspark.pipelines._train_champion.Champion.to_dict()``: ``name``,
            ``metric``, ``margin``, ``reason`` and one ``candidates`` row per candidate with validation and test
            AUC and KS), or None.
    """

    title: str
    run: dict[str, Any]
    gate: dict[str, Any]
    metrics: dict[str, dict[str, Any]]
    y_test: np.ndarray
    scores_test: dict[str, np.ndarray]
    data: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    gan_history: Sequence[Mapping[str, float]] | None = None
    resnet_history: Mapping[str, Sequence[float]] | None = None
    xgb_histories: dict[str, Any] = field(default_factory=dict)
    xgb_best: dict[str, int] = field(default_factory=dict)
    importances: dict[str, dict[str, float]] = field(default_factory=dict)
    real_vs_generated: dict[str, tuple[np.ndarray, np.ndarray]] | None = None
    notes: list[str] = field(default_factory=list)
    candidates: dict[str, Any] | None = None


def report_figures(r: TrainingReport) -> dict[str, bytes]:
    """Draw the report's figures.

    Args:
        r: The report content.

    Returns:
        ``{figure name: PNG bytes}`` in display order; parts without data (no GAN history, ...) are left out.
    """
    y = np.asarray(r.y_test)
    figs: dict[str, bytes] = {}
    figs["roc"] = plots.roc_png({k: curves.roc_curve(y, s) for k, s in r.scores_test.items()},
                                {k: r.metrics[k]["auc"] for k in r.scores_test})
    figs["ks"] = plots.ks_png({k: curves.ks_curve(y, s) for k, s in r.scores_test.items()})
    figs["score_distribution"] = plots.score_hist_png(y, r.scores_test)
    figs["calibration"] = plots.calibration_png({k: r.metrics[k]["calibration"] for k in r.scores_test})
    figs["precision_recall"] = plots.threshold_png({k: curves.threshold_curves(y, s) for k, s in r.scores_test.items()},
                                                   {k: r.metrics[k]["threshold"] for k in r.scores_test})
    if r.gan_history:
        figs["actgan"] = plots.gan_png(r.gan_history)
    if r.real_vs_generated:
        figs["real_vs_generated"] = plots.distributions_png(r.real_vs_generated)
    if r.resnet_history and r.resnet_history.get("train_loss"):
        figs["resnet_lstm"] = plots.resnet_png(r.resnet_history)
    if r.xgb_histories:
        figs["xgboost"] = plots.xgb_png(r.xgb_histories, r.xgb_best)
    for i, (title, imp) in enumerate(r.importances.items()):
        figs[f"importance_{i}"] = plots.importance_png(imp, title)
    return figs


_CAPTIONS = {
    "roc": "ROC curves on the test part.",
    "ks": "KS: cumulative shares of defaults and non-defaults flagged; the bar marks the largest gap.",
    "score_distribution": "Predicted probabilities by true class on the test part.",
    "calibration": "Calibration on the test part (marker size = share of rows in the bin).",
    "precision_recall": "Precision, recall and F1 against the threshold; dashed: the threshold chosen on validation.",
    "actgan": "ACTGAN training: generator and critic losses, and the critic's Wasserstein estimate.",
    "real_vs_generated": "Real minority rows of the training part against the rows ACTGAN generated.",
    "resnet_lstm": "ResNet-LSTM: training loss and validation AUC per epoch.",
    "xgboost": "XGBoost evaluation per boosting round (the focal model stops on the validation focal loss).",
}


def _fmt(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return html.escape(str(v))
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.4f}"
    return html.escape(str(v))


def _metrics_table(metrics: Mapping[str, Mapping[str, Any]]) -> str:
    names = list(metrics)
    head = "".join(f"<th>{html.escape(n)}</th>" for n in names)
    extra = "<th>difference (first - second)</th>" if len(names) >= 2 else ""
    rows = []
    for key, label, higher in METRIC_ROWS:
        cells = "".join(f"<td>{_fmt(metrics[n].get(key))}</td>" for n in names)
        diff = ""
        if len(names) >= 2 and higher is not None:
            a, b = metrics[names[0]].get(key), metrics[names[1]].get(key)
            if isinstance(a, (int, float)) and isinstance(b, (int, float)):
                d = float(a) - float(b)
                good = (d >= 0) == higher
                diff = f'<td class="{"good" if good else "bad"}">{d:+.4f}</td>'
        elif len(names) >= 2:
            diff = "<td></td>"
        rows.append(f"<tr><th>{html.escape(label)}</th>{cells}{diff}</tr>")
    return f'<table class="metrics"><tr><th>metric</th>{head}{extra}</tr>{"".join(rows)}</table>'


def _candidates_table(c: Mapping[str, Any] | None) -> str:
    """Every candidate side by side on validation and test, the champion marked, and why it won."""
    if not c:
        return ""
    cols = ("valid_auc", "valid_ks", "test_auc", "test_ks")
    head = "".join(f"<th>{html.escape(k.replace('_', ' '))}</th>" for k in cols)
    rows = []
    for r in c.get("candidates", []):
        mark = "champion" if r.get("champion") else ""
        cells = "".join(f"<td>{_fmt(r.get(k))}</td>" for k in cols)
        rows.append(f'<tr><th>{html.escape(str(r.get("name")))}</th><td>{mark}</td>{cells}</tr>')
    tuning = []
    for key, t in (c.get("tuning") or {}).items():
        trials = sorted(t.get("trials", []), key=lambda r: -(r.get("auc") or 0.0))[:10]
        names = [k for k in (trials[0] if trials else {}) if k not in ("number", "auc", "best_iteration", "seconds")]
        head_t = "".join(f"<th>{html.escape(n)}</th>" for n in ["trial", "valid auc", "rounds", *names])
        body = "".join("<tr>" + "".join(f"<td>{_fmt(r.get(k))}</td>" for k in ["number", "auc", "best_iteration",
                                                                              *names]) + "</tr>" for r in trials)
        tuning.append(f"<h3>Tuning: {html.escape(str(key))}</h3><p>{len(t.get('trials', []))} trials (stopped by "
                      f"{html.escape(str(t.get('stopped_by')))}), best validation AUC {_fmt(t.get('best_auc'))}; the "
                      f"ten best:</p><table class=\"metrics\"><tr>{head_t}</tr>{body}</table>")
    reason = (f"<p>Chosen on the validation part by {html.escape(str(c.get('metric')))} "
              f"(simplicity margin {html.escape(str(c.get('margin')))}): {html.escape(str(c.get('reason')))}.</p>")
    return (f'{reason}<table class="metrics"><tr><th>candidate</th><th></th>{head}</tr>{"".join(rows)}</table>'
            + "".join(tuning))


def _kv_table(d: Mapping[str, Any]) -> str:
    rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{_value_html(v)}</td></tr>" for k, v in d.items())
    return f'<table class="kv">{rows}</table>'


def _value_html(v: Any) -> str:
    if isinstance(v, Mapping):
        return _kv_table(v)
    if isinstance(v, (list, tuple)) and v and all(isinstance(x, Mapping) for x in v):
        return "<br>".join(html.escape(json.dumps(x, default=str)) for x in v)
    if isinstance(v, (list, tuple)):
        return html.escape(", ".join(str(x) for x in v))
    return _fmt(v)


def _calibration_tables(metrics: Mapping[str, Mapping[str, Any]]) -> str:
    out = []
    for name, m in metrics.items():
        rows = "".join(
            f"<tr><td>{r['lower']:.1f} - {r['upper']:.1f}</td><td>{r['count']:,}</td>"
            f"<td>{r['mean_predicted']:.4f}</td><td>{r['observed_rate']:.4f}</td></tr>"
            for r in m.get("calibration", [])
        )
        out.append(f"<h3>{html.escape(name)}</h3><table class=\"metrics\"><tr><th>bin</th><th>rows</th>"
                   f"<th>mean predicted</th><th>observed rate</th></tr>{rows}</table>")
    return "".join(out)


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1200px;
color:#222;padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0}th,td{border:1px solid #ddd;padding:3px 8px;text-align:left;
vertical-align:top;font-size:.9em}table.metrics td{text-align:right}
.good{color:#17702f}.bad{color:#a8201a}.banner{padding:.6em 1em;border-radius:4px;font-weight:600}
.pass{background:#e3f4e6;border:1px solid #9ccfa6}.fail{background:#fbe4e2;border:1px solid #e5a29c}
figure{display:inline-block;margin:.5em 1em .5em 0;vertical-align:top}figcaption{font-size:.85em;color:#555;
max-width:640px}img{max-width:100%}
"""


def render_html(r: TrainingReport, figures: Mapping[str, bytes] | None = None) -> str:
    """The whole report as one HTML string (no external resources).

    Args:
        r: The report content.
        figures: Pre-drawn figures (:func:`report_figures`); None draws them.

    Returns:
        HTML text.
    """
    figs = report_figures(r) if figures is None else figures
    importance_titles = list(r.importances)

    def fig(name: str) -> str:
        if name not in figs:
            return ""
        caption = _CAPTIONS.get(name)
        if name.startswith("importance_"):
            caption = f"Feature importance: {importance_titles[int(name.split('_')[1])]}."
        data = base64.b64encode(figs[name]).decode("ascii")
        return (f'<figure><img alt="{html.escape(name)}" src="data:image/png;base64,{data}">'
                f"<figcaption>{html.escape(caption or name)}</figcaption></figure>")

    passed = bool(r.gate.get("passed"))
    verdict = "passed: published as current" if passed else "FAILED: stored, not published as current"
    reasons = "".join(f"<li>{html.escape(str(x))}</li>" for x in r.gate.get("reasons", []))
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in r.notes)
    parts = [
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">",
        f"<title>{html.escape(r.title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(r.title)}</h1>",
        f'<p class="banner {"pass" if passed else "fail"}">Quality gate {html.escape(verdict)}</p>',
        f"<ul>{reasons}</ul>" if reasons else "",
        "<h2>Candidates</h2>" if r.candidates else "", _candidates_table(r.candidates),
        "<h2>Metrics on the test part</h2>", _metrics_table(r.metrics),
        "<h2>Discrimination</h2>", fig("roc"), fig("ks"),
        "<h2>Scores and thresholds</h2>", fig("score_distribution"), fig("precision_recall"),
        "<h2>Calibration</h2>", fig("calibration"), _calibration_tables(r.metrics),
        "<h2>Training</h2>", fig("actgan"), fig("real_vs_generated"), fig("resnet_lstm"), fig("xgboost"),
        "<h2>Feature importance</h2>", *[fig(n) for n in figs if n.startswith("importance_")],
        "<h2>Run</h2>", _kv_table(r.run),
        "<h2>Data</h2>", _kv_table(r.data),
        "<h2>Configuration</h2>", _kv_table(r.config),
        f"<h2>Notes</h2><ul>{notes}</ul>" if notes else "",
        "</body></html>",
    ]
    return "\n".join(p for p in parts if p)


def _json_safe(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, Mapping):
        return {str(k): _json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_safe(x) for x in v]
    if isinstance(v, np.generic):
        return _json_safe(v.item())
    return v


def metrics_document(r: TrainingReport) -> dict[str, Any]:
    """The report's numbers as a JSON-safe dict (metrics.json): run, gate, metrics, data, best rounds, curves.

    ``curves`` holds the training curves the report plots: ``resnet_lstm`` (``{series: per-epoch values}``),
    ``actgan`` (one record per epoch) and ``xgb`` (``{model name: evals_result}``).
    """
    return _json_safe({
        "run": r.run,
        "gate": r.gate,
        "metrics": r.metrics,
        "data": r.data,
        "xgb_best_iteration": r.xgb_best,
        "notes": r.notes,
        "curves": {"resnet_lstm": dict(r.resnet_history or {}), "actgan": list(r.gan_history or []),
                   "xgb": r.xgb_histories},
        "candidates": r.candidates,
    })


def write_report(
    directory: str | Path, r: TrainingReport, figures: Mapping[str, bytes] | None = None
) -> tuple[Path, Path]:
    """Write ``report.html`` and ``metrics.json`` into ``directory``.

    Args:
        directory: Existing folder (the bundle's version folder).
        r: The report content.
        figures: Pre-drawn figures; None draws them.

    Returns:
        The two paths.
    """
    d = Path(directory)
    html_path, json_path = d / "report.html", d / "metrics.json"
    html_path.write_text(render_html(r, figures), encoding="utf-8")
    json_path.write_text(json.dumps(metrics_document(r), indent=2, sort_keys=True, allow_nan=False), encoding="utf-8")
    return html_path, json_path
