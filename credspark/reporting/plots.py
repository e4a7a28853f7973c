"""The report's figures as PNG bytes (matplotlib's object API: no pyplot, no global backend switch).

Every function takes plain numbers (curves from :mod:`credspark.reporting.curves`, histories, tables) and
returns the bytes of one PNG, so the report can embed them and tests can check them without Spark.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

__all__ = [
    "roc_png",
    "ks_png",
    "score_hist_png",
    "calibration_png",
    "threshold_png",
    "gan_png",
    "resnet_png",
    "xgb_png",
    "importance_png",
    "distributions_png",
]

_DPI = 96
_COLORS = ("#1f5fa8", "#d2691e", "#2e8b57", "#8b3a8b", "#777777")


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI, bbox_inches="tight")
    return buf.getvalue()


def _figure(w: float = 6.0, h: float = 4.0, ncols: int = 1, nrows: int = 1) -> tuple[Figure, Any]:
    fig = Figure(figsize=(w, h))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def roc_png(curves: Mapping[str, Mapping[str, np.ndarray]], aucs: Mapping[str, float]) -> bytes:
    """ROC curves of several models on one plot, AUC in the legend."""
    fig, ax = _figure(5.5, 5.0)
    a = ax[0, 0]
    for i, (name, c) in enumerate(curves.items()):
        a.plot(c["fpr"], c["tpr"], color=_COLORS[i % len(_COLORS)], label=f"{name} (AUC {aucs[name]:.4f})")
    a.plot([0, 1], [0, 1], ls=":", color="grey", lw=1)
    a.set(xlabel="false positive rate", ylabel="true positive rate (recall)", title="ROC, test part",
          xlim=(0, 1), ylim=(0, 1.01))
    a.legend(loc="lower right", fontsize=8)
    return _png(fig)


def ks_png(curves: Mapping[str, Mapping[str, Any]]) -> bytes:
    """KS curves: cumulative share of defaults and non-defaults flagged as the threshold falls."""
    fig, ax = _figure(5.5 * len(curves), 4.2, ncols=len(curves))
    for a, (name, c) in zip(ax[0], curves.items()):
        n = c["flagged"]
        a.plot(n, c["bad"], color=_COLORS[1], label="defaults (TPR)")
        a.plot(n, c["good"], color=_COLORS[0], label="non-defaults (FPR)")
        k = int(np.argmax(c["bad"] - c["good"]))
        a.vlines(n[k], c["good"][k], c["bad"][k], color="black", lw=2, label=f"KS {c['ks']:.4f}")
        a.set(xlabel="share of rows flagged (riskiest first)", ylabel="cumulative share flagged", title=f"KS, {name}",
              xlim=(0, 1), ylim=(0, 1.01))
        a.legend(loc="lower right", fontsize=8)
    return _png(fig)


def _span(values: np.ndarray) -> tuple[float, float]:
    """A plotting range around the values: [0, 1] unless they sit in a narrow band (then that band, padded)."""
    lo, hi = float(np.min(values)), float(np.max(values))
    if hi - lo >= 0.5:
        return 0.0, 1.0
    pad = max(0.02 * (hi - lo), 1e-3)
    return max(0.0, lo - pad), min(1.0, hi + pad)


def score_hist_png(y: np.ndarray, scores: Mapping[str, np.ndarray], bins: int = 40) -> bytes:
    """Score histograms by class (densities), one panel per model, over the range the scores span."""
    y = np.asarray(y)
    fig, ax = _figure(5.5 * len(scores), 4.0, ncols=len(scores))
    for a, (name, s) in zip(ax[0], scores.items()):
        s = np.asarray(s)
        edges = np.linspace(*_span(s), bins + 1)
        for cls, label, color in ((0, "non-default", _COLORS[0]), (1, "default", _COLORS[1])):
            a.hist(s[y == cls], bins=edges, density=True, alpha=0.55, color=color,
                   label=f"{label} (n={int((y == cls).sum())})")
        a.set(xlabel="predicted probability of default", ylabel="density", title=f"score distribution, {name}")
        a.legend(fontsize=8)
    return _png(fig)


def calibration_png(tables: Mapping[str, Sequence[Mapping[str, float]]]) -> bytes:
    """Reliability diagram: observed default rate against mean predicted probability per bin."""
    fig, ax = _figure(5.5, 5.0)
    a = ax[0, 0]
    a.plot([0, 1], [0, 1], ls=":", color="grey", lw=1, label="perfect calibration")
    for i, (name, rows) in enumerate(tables.items()):
        x = [r["mean_predicted"] for r in rows]
        yv = [r["observed_rate"] for r in rows]
        sizes = [max(8.0, 200.0 * r["count"] / max(1, sum(q["count"] for q in rows))) for r in rows]
        a.plot(x, yv, marker="o", color=_COLORS[i % len(_COLORS)], label=name)
        a.scatter(x, yv, s=sizes, color=_COLORS[i % len(_COLORS)], alpha=0.35)
    a.set(xlabel="mean predicted probability", ylabel="observed default rate", title="calibration, test part",
          xlim=(0, 1), ylim=(0, 1))
    a.legend(fontsize=8)
    return _png(fig)


def threshold_png(curves: Mapping[str, Mapping[str, np.ndarray]], thresholds: Mapping[str, float]) -> bytes:
    """Precision, recall and F1 against the threshold, the chosen (validation) threshold marked."""
    fig, ax = _figure(5.5 * len(curves), 4.0, ncols=len(curves))
    for a, (name, c) in zip(ax[0], curves.items()):
        a.plot(c["threshold"], c["precision"], color=_COLORS[0], label="precision")
        a.plot(c["threshold"], c["recall"], color=_COLORS[1], label="recall")
        a.plot(c["threshold"], c["f1"], color=_COLORS[2], label="F1")
        t = thresholds.get(name)
        if t is not None:
            a.axvline(t, color="black", ls="--", lw=1, label=f"threshold {t:.3f} (validation)")
        a.set(xlabel="threshold (score >= t flags a default)", ylabel="value", title=f"precision / recall, {name}",
              xlim=_span(np.asarray(c["threshold"])), ylim=(0, 1.01))
        a.legend(fontsize=8)
    return _png(fig)


def _smooth(v: np.ndarray, width: int) -> np.ndarray:
    if width <= 1 or v.size < width:
        return v
    return np.convolve(v, np.ones(width) / width, mode="valid")


def gan_png(history: Sequence[Mapping[str, float]]) -> bytes:
    """ACTGAN generator and critic losses, and the Wasserstein estimate (moving average when long).

    Records are per iteration (``iteration`` key, as ``ACTGAN.fit`` keeps them) or per epoch (``epoch`` key,
    as the distributed trainer keeps them).
    """
    step = "iteration" if history and "iteration" in history[0] else "epoch"
    it = np.asarray([r[step] for r in history], dtype=np.float64)
    width = max(1, len(history) // 50)
    fig, ax = _figure(11.0, 4.0, ncols=2)
    for key, color in (("g_loss", _COLORS[0]), ("d_loss", _COLORS[1])):
        v = _smooth(np.asarray([r[key] for r in history], dtype=np.float64), width)
        ax[0, 0].plot(it[width - 1 :][: v.size], v, color=color, marker="o" if v.size < 30 else None,
                      label=key.replace("_", " "))
    ax[0, 0].set(xlabel=step, ylabel="loss", title="ACTGAN losses")
    ax[0, 0].legend(fontsize=8)
    w = _smooth(np.asarray([r["wasserstein"] for r in history], dtype=np.float64), width)
    ax[0, 1].plot(it[width - 1 :][: w.size], w, color=_COLORS[2], marker="o" if w.size < 30 else None)
    ax[0, 1].set(xlabel=step, ylabel="E[critic(real)] - E[critic(fake)]", title="Wasserstein distance estimate")
    return _png(fig)


def resnet_png(history: Mapping[str, Sequence[float]]) -> bytes:
    """ResNet-LSTM training loss and validation AUC per epoch."""
    fig, ax = _figure(6.0, 4.0)
    a = ax[0, 0]
    loss = np.asarray(history.get("train_loss", []), dtype=np.float64)
    a.plot(np.arange(1, loss.size + 1), loss, marker="o", color=_COLORS[0], label="training loss")
    a.set(xlabel="epoch", ylabel="training loss", title="ResNet-LSTM training")
    auc = np.asarray([np.nan if v is None else v for v in history.get("valid_auc", [])], dtype=np.float64)
    if auc.size:
        b = a.twinx()
        b.plot(np.arange(1, auc.size + 1), auc, marker="s", color=_COLORS[1], label="validation AUC")
        b.set_ylabel("validation AUC")
        b.legend(loc="lower right", fontsize=8)
    a.legend(loc="upper right", fontsize=8)
    return _png(fig)


def xgb_png(histories: Mapping[str, Mapping[str, Mapping[str, Sequence[float]]]],
            best: Mapping[str, int]) -> bytes:
    """XGBoost evaluation metrics per round (train and validation), best round marked, one panel per model."""
    fig, ax = _figure(5.5 * len(histories), 4.0, ncols=len(histories))
    for a, (name, evals) in zip(ax[0], histories.items()):
        metric = ""
        for i, (part, metrics) in enumerate(evals.items()):
            for metric, values in metrics.items():
                a.plot(np.arange(len(values)), values, color=_COLORS[i % len(_COLORS)], label=f"{part} {metric}")
        if name in best:
            a.axvline(best[name], color="black", ls="--", lw=1, label=f"best round {best[name]}")
        a.set(xlabel="round", ylabel=metric, title=f"XGBoost, {name}")
        a.legend(fontsize=8)
    return _png(fig)


def importance_png(importance: Mapping[str, float], title: str, top: int = 20) -> bytes:
    """Horizontal bars of the ``top`` largest importances (total gain)."""
    items = sorted(importance.items(), key=lambda kv: kv[1], reverse=True)[:top]
    fig, ax = _figure(6.0, 0.8 + 0.28 * max(1, len(items)))
    a = ax[0, 0]
    if items:
        names, values = zip(*items)
        pos = np.arange(len(items))[::-1]
        a.barh(pos, values, color=_COLORS[0])
        a.set_yticks(pos, labels=list(names), fontsize=8)
    a.set(xlabel="total gain", title=title)
    return _png(fig)


def distributions_png(samples: Mapping[str, tuple[np.ndarray, np.ndarray]], bins: int = 30) -> bytes:
    """Real versus generated (ACTGAN) distributions of a few columns of the training part."""
    n = max(1, len(samples))
    ncols = min(3, n)
    nrows = (n + ncols - 1) // ncols
    fig, ax = _figure(4.2 * ncols, 3.2 * nrows, ncols=ncols, nrows=nrows)
    flat = ax.ravel()
    for a, (name, (real, fake)) in zip(flat, samples.items()):
        real = np.asarray(real, dtype=np.float64)
        fake = np.asarray(fake, dtype=np.float64)
        real, fake = real[np.isfinite(real)], fake[np.isfinite(fake)]
        both = np.r_[real, fake]
        if both.size == 0:
            a.set_title(f"{name}: no values")
            continue
        lo, hi = np.quantile(both, [0.005, 0.995])
        if hi <= lo:
            lo, hi = float(both.min()) - 0.5, float(both.max()) + 0.5
        edges = np.linspace(lo, hi, bins + 1)
        for v, label, color in ((real, "real defaults", _COLORS[0]), (fake, "generated", _COLORS[1])):
            a.hist(np.clip(v, lo, hi), bins=edges, density=True, alpha=0.55, color=color, label=f"{label} (n={v.size})")
        a.set_title(name, fontsize=10)
        a.legend(fontsize=7)
    for a in flat[len(samples):]:
        a.set_visible(False)
    fig.suptitle("real vs generated minority rows (training part)")
    return _png(fig)
