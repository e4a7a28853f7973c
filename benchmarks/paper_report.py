"""The Markdown report and plots of ``benchmarks/paper.py``, built only from the records in its log.

A cell with no record says "not run"; every mean ± std says over how many seeds it was taken. The
generated text goes between ``<!-- paper:begin -->`` and ``<!-- paper:end -->`` in the report's
"Generated results" section (:func:`_common.write_section`), so the hand-written discussion beside it
survives a rebuild.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from _common import fmt_mean_std, mean_std, write_section
from paper_fidelity import HIST_COLUMNS

SECTION = "The paper's experiments on the UCI data"
MARKER = "paper"
NOT_RUN = "not run"

OVERSAMPLER_LABELS = {"none": "none", "smote": "SMOTE", "adasyn": "ADASYN", "borderline": "BorderlineSMOTE",
                      "cgan": "CGAN", "actgan": "ACTGAN", "ctgan": "CTGAN (ctgan pkg)"}  # fmt: skip
CLASSIFIER_LABELS = {"svm": "SVM (Nystroem RBF + linear SVM)", "lr": "logistic regression", "dt": "decision tree",
                     "knn": "KNN"}  # fmt: skip
ABLATION_LABELS = {"none": "no attention", "spatial": "spatial only", "temporal": "temporal only",
                   "both": "both (paper's model)", "both_no_gan": "both, without ACTGAN"}  # fmt: skip
BASELINE_LABELS = {"rnn_rf": "RNN-RF", "adaboost": "AdaBoost", "smoteboost": "SMOTEBoost", "rusboost": "RUSBoost",
                   "cusboost": "CUSBoost", "cnn": "CNN", "lstm": "LSTM", "xgb": "XGBoost (plain)"}  # fmt: skip
METRICS = ("auc", "f1", "recall", "ks")
CLASSIFIERS = tuple(CLASSIFIER_LABELS)


# ------------------------------------------------------------------------------------------- helpers
class Index:
    """Records by ``(part, method)`` -> ``{seed: record}``."""

    def __init__(self, records: Sequence[dict[str, Any]]) -> None:
        self.by: dict[tuple[int, str], dict[int, dict[str, Any]]] = defaultdict(dict)
        for rec in records:
            self.by[(rec["part"], rec["method"])][rec["seed"]] = rec

    def seeds(self, part: int, method: str) -> list[int]:
        """Seeds with a record."""
        return sorted(self.by.get((part, method), {}))

    def values(self, part: int, method: str, path: Sequence[str]) -> dict[int, float]:
        """``{seed: value}`` of ``result[path[0]][path[1]]...`` over the unit's records."""
        out = {}
        for seed, rec in self.by.get((part, method), {}).items():
            v: Any = rec["result"]
            for key in path:
                v = v[key]
            out[seed] = float(v)
        return out

    def timing(self, part: int, method: str, key: str = "total") -> dict[int, dict[str, float]]:
        """``{seed: {"wall_s", "cpu_s"}}`` of one timing entry."""
        return {s: r["timing"][key] for s, r in self.by.get((part, method), {}).items() if key in r["timing"]}


def cell(values: dict[int, float], digits: int = 3) -> str:
    """``mean ± std`` over the seeds present, or "not run"."""
    return fmt_mean_std(list(values.values()), digits) if values else NOT_RUN


def seeds_str(seeds: Sequence[int]) -> str:
    """``0,1,2`` or "-"."""
    return ",".join(map(str, seeds)) if seeds else "-"


def paired(a: dict[int, float], b: dict[int, float], digits: int = 4) -> str:
    """Mean ± std over common seeds of ``a - b`` (paired by seed), with the count."""
    common = sorted(set(a) & set(b))
    if not common:
        return NOT_RUN
    diffs = [a[s] - b[s] for s in common]
    return f"{fmt_mean_std(diffs, digits)} (n={len(common)})"


def stat(values: dict[int, float]) -> dict[str, float | int]:
    """``{"mean", "std", "n"}`` for the JSON summary."""
    mean, std = mean_std(list(values.values()))
    return {"mean": round(mean, 5), "std": round(std, 5), "n": len(values)} if values else {"n": 0}


def secs(timings: dict[int, dict[str, float]]) -> str:
    """Mean wall / CPU seconds per seed."""
    if not timings:
        return NOT_RUN
    wall = np.mean([t["wall_s"] for t in timings.values()])
    cpu = np.mean([t["cpu_s"] for t in timings.values()])
    return f"{wall:.0f} / {cpu:.0f}"


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _bars(ax: Any, labels: Sequence[str], series: dict[str, list[dict[int, float]]], ylabel: str) -> None:
    """Grouped bars: one group per label, one bar per series, height = mean, error bar = std over seeds."""
    width = 0.8 / max(1, len(series))
    x = np.arange(len(labels))
    for i, (name, vals) in enumerate(series.items()):
        means = [np.mean(list(v.values())) if v else np.nan for v in vals]
        stds = [np.std(list(v.values()), ddof=1) if len(v) > 1 else 0.0 for v in vals]
        ax.bar(x + (i - (len(series) - 1) / 2) * width, means, width, yerr=stds, label=name, capsize=2)
    ax.set_xticks(x)
    ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)


def _ylim_from(ax: Any, values: list[float], pad: float = 0.02) -> None:
    finite = [v for v in values if np.isfinite(v)]
    if finite:
        ax.set_ylim(max(0.0, min(finite) - pad), min(1.0, max(finite) + pad))


# ------------------------------------------------------------------------------------------- parts
def part1(ix: Index, img: Path, rel: str, summary: dict[str, Any]) -> list[str]:
    """Oversamplers x classifiers."""
    lines = ["### 1. Oversamplers (paper Tables 3-4)", ""]
    lines += [
        "Each oversampler brings the training part to minority/majority 0.4 (SMOTE family on standardised "
        "columns, mapped back; the GANs generate label-1 rows), then each classifier is fitted on the "
        "23 raw columns (standardised for SVM, LR, KNN). Test-part metrics; F1 and recall at the "
        "validation-F1 threshold. Time = oversampling, mean wall / CPU s per seed.",
        "",
    ]
    part_sum: dict[str, Any] = {}
    for clf in ("svm", "lr", "dt", "knn"):
        lines += [f"**{CLASSIFIER_LABELS[clf]}**", "", "| oversampler | seeds | AUC | F1 | recall | KS | time s |",
                  "|---|---|---|---|---|---|---|"]  # fmt: skip
        for m, label in OVERSAMPLER_LABELS.items():
            vals = {k: ix.values(1, m, (clf, k)) for k in METRICS}
            part_sum.setdefault(m, {})[clf] = {k: stat(v) for k, v in vals.items()}
            lines.append(f"| {label} | {seeds_str(ix.seeds(1, m))} | " + " | ".join(cell(vals[k]) for k in METRICS)
                         + f" | {secs(ix.timing(1, m, 'oversample'))} |")  # fmt: skip
        lines.append("")
    lines += ["Paired difference to no oversampling (same seed), test AUC:", "",
              "| oversampler | " + " | ".join(CLASSIFIER_LABELS[c] for c in CLASSIFIERS) + " |",
              "|---|" + "---|" * len(CLASSIFIERS)]  # fmt: skip
    for m, label in OVERSAMPLER_LABELS.items():
        if m == "none":
            continue
        row = [paired(ix.values(1, m, (c, "auc")), ix.values(1, "none", (c, "auc"))) for c in CLASSIFIERS]
        lines.append(f"| {label} | " + " | ".join(row) + " |")
    lines.append("")
    for metric in ("auc", "ks"):
        lines += [f"Paired difference, ACTGAN minus each other oversampler (same seed), test {metric.upper()}:", "",
                  "| ACTGAN minus | " + " | ".join(CLASSIFIER_LABELS[c] for c in CLASSIFIERS) + " |",
                  "|---|" + "---|" * len(CLASSIFIERS)]  # fmt: skip
        for m, label in OVERSAMPLER_LABELS.items():
            if m in ("none", "actgan"):
                continue
            row = [paired(ix.values(1, "actgan", (c, metric)), ix.values(1, m, (c, metric))) for c in CLASSIFIERS]
            lines.append(f"| {label} | " + " | ".join(row) + " |")
        lines.append("")
    summary["oversampling"] = part_sum
    if img is not None and any(ix.seeds(1, m) for m in OVERSAMPLER_LABELS):
        plt = _plt()
        fig, axes = plt.subplots(2, 4, figsize=(16, 7))
        for j, clf in enumerate(CLASSIFIERS):
            for i, metric in enumerate(("auc", "f1")):
                vals = [ix.values(1, m, (clf, metric)) for m in OVERSAMPLER_LABELS]
                _bars(axes[i, j], list(OVERSAMPLER_LABELS.values()), {metric: vals}, metric.upper())
                _ylim_from(axes[i, j], [v for d in vals for v in d.values()], 0.03)
                axes[i, j].set_title(f"{CLASSIFIER_LABELS[clf]}: {metric.upper()}", fontsize=9)
                axes[i, j].get_legend() and axes[i, j].get_legend().remove()
        fig.suptitle("Test AUC / F1 by oversampler (mean, error bar = std over seeds)")
        fig.tight_layout()
        fig.savefig(img / "oversamplers.png", dpi=90)
        plt.close(fig)
        lines += [f"![oversamplers]({rel}/oversamplers.png)", ""]
    return lines


def part2(ix: Index, img: Path, rel: str, summary: dict[str, Any]) -> list[str]:
    """Fidelity of the GAN rows."""
    from paper_fidelity import RAW_COLUMNS

    gans = ("actgan", "cgan", "ctgan")
    lines = ["### 2. Synthetic data fidelity", "",
             "Generated label-1 rows (as many as the real minority of the training part) against the real "
             "minority of the training part: column shapes (1 - KS for continuous, 1 - total variation for "
             "categorical columns; 1 = identical marginals), correlation similarity (mean over column pairs of "
             "1 - |r_real - r_gen|/2), detection (3-fold AUC of gradient-boosted trees telling real from "
             "generated; 0.5 = indistinguishable), scaled W1 (mean per-column Wasserstein-1 / real std). "
             "TSTR: plain XGBoost trained on a fully synthetic training set with the real class counts, "
             "early-stopped on the real validation part, AUC on the real test part; TRTR is the same model "
             "on the real training part. Time = GAN fit, mean wall / CPU s per seed.", "",
             "| GAN | seeds | shape (cont.) | shape (cat.) | correlation | detection AUC | scaled W1 | TSTR AUC "
             "| TRTR AUC | fit time s |", "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    part_sum: dict[str, Any] = {}
    keys = {"shape (cont.)": ("shape_continuous",), "shape (cat.)": ("shape_categorical",),
            "correlation": ("correlation_similarity",), "detection AUC": ("detection", "auc"),
            "scaled W1": ("scaled_w1",), "TSTR AUC": ("tstr_auc",), "TRTR AUC": ("trtr_auc",)}  # fmt: skip
    for g in gans:
        vals = {k: ix.values(2, g, p) for k, p in keys.items()}
        part_sum[g] = {p[-1] if p[-1] != "auc" else "detection_auc": stat(vals[k]) for k, p in keys.items()}
        lines.append(f"| {OVERSAMPLER_LABELS[g]} | {seeds_str(ix.seeds(2, g))} | "
                     + " | ".join(cell(v) for v in vals.values()) + f" | {secs(ix.timing(2, g, 'fit'))} |")  # fmt: skip
    lines += ["", "Paired difference, ACTGAN minus CGAN (same seed; for detection AUC and scaled W1 lower is "
              "better):", ""]  # fmt: skip
    lines += [f"- {k}: {paired(ix.values(2, 'actgan', p), ix.values(2, 'cgan', p))}" for k, p in keys.items()
              if k != "TRTR AUC"]  # fmt: skip
    lines.append("")
    summary["fidelity"] = part_sum
    if img is not None and any(ix.seeds(2, g) for g in gans):
        plt = _plt()
        fig, ax = plt.subplots(figsize=(14, 4))
        series = {OVERSAMPLER_LABELS[g]: [ix.values(2, g, ("column_shapes", c)) for c in RAW_COLUMNS] for g in gans}
        _bars(ax, list(RAW_COLUMNS), series, "1 - KS / 1 - TV")
        ax.set_ylim(0, 1)
        ax.legend(fontsize=8)
        ax.set_title("Per-column shape score of generated minority rows (mean over seeds)")
        fig.tight_layout()
        fig.savefig(img / "fidelity_columns.png", dpi=90)
        plt.close(fig)
        lines += [f"![per-column fidelity]({rel}/fidelity_columns.png)", ""]
    return lines


def _smooth(x: Sequence[float], k: int) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    if len(x) < k or k <= 1:
        return x
    return np.convolve(x, np.ones(k) / k, mode="valid")


def part3(ix: Index, img: Path, rel: str, summary: dict[str, Any]) -> list[str]:
    """Training curves and histograms."""
    lines = ["### 3. Training behaviour (paper Figures 5-6)", ""]
    seeds = sorted(set(ix.seeds(3, "actgan")) & set(ix.seeds(3, "cgan")))
    if not seeds:
        return lines + [f"ACTGAN vs CGAN curves: {NOT_RUN} (needs both GANs on one seed).", ""]
    final = {g: {s: ix.by[(3, g)][s]["result"]["probe_w1"][-1] for s in ix.seeds(3, g)} for g in ("actgan", "cgan")}
    summary["training"] = {g: {"final_probe_w1": stat(v)} for g, v in final.items()}
    if img is None:
        return lines + [
            f"Final per-column W1: ACTGAN {cell(final['actgan'])}, CGAN {cell(final['cgan'])} (plots off).",
            "",
        ]
    seed = seeds[0]
    rec = {g: ix.by[(3, g)][seed]["result"] for g in ("actgan", "cgan")}
    plt = _plt()
    fig, axes = plt.subplots(2, 2, figsize=(13, 8))
    for ax, g in zip(axes[0], ("actgan", "cgan")):
        it = rec[g]["per_iteration"]
        k = max(1, rec[g]["iterations_per_epoch"])
        for key in ("g_loss", "d_loss"):
            ax.plot(_smooth(it[key], k), label=f"{key} (moving mean over {k} it. = 1 epoch)")
        ax.set_title(f"{OVERSAMPLER_LABELS[g]} losses per iteration (seed {seed})", fontsize=10)
        ax.set_xlabel("iteration")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    ax = axes[1, 0]
    for g, label in (("actgan", "ACTGAN critic: E[D(real)] - E[D(fake)] (W estimate)"),
                     ("cgan", "CGAN: mean logit(real) - logit(fake)")):  # fmt: skip
        it = rec[g]["per_iteration"]
        ax.plot(np.linspace(0, 1, len(_smooth(it["wasserstein"], rec[g]["iterations_per_epoch"]))),
                _smooth(it["wasserstein"], rec[g]["iterations_per_epoch"]), label=label)  # fmt: skip
    ax.set_xlabel("share of training")
    ax.set_title("Discriminator's real-fake gap (not the same quantity for the two GANs)", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    ax = axes[1, 1]
    for g in ("actgan", "cgan"):
        curves = [ix.by[(3, g)][s]["result"]["probe_w1"] for s in ix.seeds(3, g)]
        n = min(len(c) for c in curves)
        arr = np.array([c[:n] for c in curves])
        x = np.arange(1, n + 1)
        ax.plot(x, arr.mean(axis=0), label=f"{OVERSAMPLER_LABELS[g]} ({len(curves)} seed(s))")
        if len(curves) > 1:
            ax.fill_between(x, arr.min(axis=0), arr.max(axis=0), alpha=0.2)
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean per-column W1 / std")
    ax.set_title("Generated minority vs real minority after each epoch (lower is closer)", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(img / "training_curves.png", dpi=90)
    plt.close(fig)

    hist_gans = [g for g in ("actgan", "cgan", "ctgan") if seed in ix.seeds(3, g)]
    hists = {g: ix.by[(3, g)][seed]["result"]["histograms"] for g in hist_gans}
    cols = [c for c in HIST_COLUMNS if c in hists[hist_gans[0]]]  # the log stores them sorted by name
    fig, axes = plt.subplots(2, 3, figsize=(14, 7))
    for ax, col in zip(axes.flat, cols):
        h0 = hists[hist_gans[0]][col]
        edges = np.asarray(h0["edges"])
        ax.stairs(h0["real"], edges, fill=True, alpha=0.3, color="grey", label="real minority")
        for g in hist_gans:
            ax.stairs(hists[g][col]["synth"], edges, label=OVERSAMPLER_LABELS[g])
        ax.set_title(col, fontsize=10)
        ax.legend(fontsize=7)
    fig.suptitle(f"Real vs generated minority rows (seed {seed}; the outer bins hold everything beyond them)")
    fig.tight_layout()
    fig.savefig(img / "histograms.png", dpi=90)
    plt.close(fig)

    lines += [
        "Top: generator and discriminator losses per iteration (ACTGAN: WGAN-GP critic loss with the "
        "auxiliary classifier term; CGAN: BCE). Bottom left: the discriminator's real-fake gap; for ACTGAN "
        "this is the critic's Wasserstein estimate, for CGAN a logit gap, so only their trends compare. "
        "Bottom right: a distance both GANs share, the mean per-column Wasserstein-1 distance (in real "
        "standard deviations) between 2,000 generated minority rows and the real minority, after every epoch "
        f"(band = min..max over seeds). Final value: ACTGAN {cell(final['actgan'])}, CGAN {cell(final['cgan'])}.",
        "",
        f"![training curves]({rel}/training_curves.png)",
        "",
        f"![histograms]({rel}/histograms.png)",
        "",
    ]
    return lines


def part4(ix: Index, img: Path, rel: str, summary: dict[str, Any]) -> list[str]:
    """Attention ablation."""
    lines = ["### 4. Ablation (paper Table 5)", "",
             "ACTGAN 0.4 oversampling (the rows of part 1, same seed), ResNet-LSTM with the attention modules "
             "switched as named, early-stopped on validation AUC, then focal XGBoost on its embedding (the "
             "paper's pipeline and the training job's default) or on embedding + raw columns. The last row "
             "leaves out ACTGAN. Time = whole unit, mean wall / CPU s per seed.", "",
             "| variant | seeds | emb -> focal AUC | F1 | recall | KS | emb + raw -> focal AUC | KS | head AUC "
             "| best epoch | time s |", "|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    part_sum: dict[str, Any] = {}
    for v, label in ABLATION_LABELS.items():
        emb = {k: ix.values(4, v, ("emb_focal", k)) for k in METRICS}
        both = {k: ix.values(4, v, ("emb_raw_focal", k)) for k in ("auc", "ks")}
        head = ix.values(4, v, ("head", "auc"))
        best = ix.values(4, v, ("info", "best_epoch"))
        part_sum[v] = {"emb_focal": {k: stat(x) for k, x in emb.items()},
                       "emb_raw_focal": {k: stat(x) for k, x in both.items()}, "head_auc": stat(head)}  # fmt: skip
        lines.append(f"| {label} | {seeds_str(ix.seeds(4, v))} | " + " | ".join(cell(emb[k]) for k in METRICS)
                     + f" | {cell(both['auc'])} | {cell(both['ks'])} | {cell(head)} | {cell(best, 1)} | "
                     f"{secs(ix.timing(4, v))} |")  # fmt: skip
    lines += ["", "Paired difference to no attention (same seed), emb -> focal XGBoost:", ""]
    base = {k: ix.values(4, "none", ("emb_focal", k)) for k in ("auc", "ks", "f1")}
    for v in ("spatial", "temporal", "both"):
        diffs = [f"{k.upper()} {paired(ix.values(4, v, ('emb_focal', k)), base[k])}" for k in ("auc", "ks", "f1")]
        lines.append(f"- {ABLATION_LABELS[v]}: " + ", ".join(diffs))
    lines.append("")
    summary["ablation"] = part_sum
    if img is not None and any(ix.seeds(4, v) for v in ABLATION_LABELS):
        plt = _plt()
        fig, axes = plt.subplots(1, 2, figsize=(12, 4))
        labels = list(ABLATION_LABELS.values())
        for ax, metric in zip(axes, ("auc", "ks")):
            pairs = (("emb -> focal", "emb_focal"), ("emb + raw -> focal", "emb_raw_focal"))
            series = {name: [ix.values(4, v, (key, metric)) for v in ABLATION_LABELS] for name, key in pairs}
            _bars(ax, labels, series, metric.upper())
            _ylim_from(ax, [x for vals in series.values() for d in vals for x in d.values()], 0.02)
            ax.legend(fontsize=8)
            ax.set_title(f"Ablation: test {metric.upper()}")
        fig.tight_layout()
        fig.savefig(img / "ablation.png", dpi=90)
        plt.close(fig)
        lines += [f"![ablation]({rel}/ablation.png)", ""]
    return lines


def part5(ix: Index, img: Path, rel: str, summary: dict[str, Any]) -> list[str]:
    """Baselines and ours."""
    lines = ["### 5. Baselines (paper Table 6)", "",
             "All baselines are trained on the real training part (the boosting methods do their own "
             "resampling). \"Ours\" is part 4's \"both\" unit (ACTGAN 0.4 + ResNet-LSTM + focal XGBoost). "
             "Time = fit and scoring, mean wall / CPU s per seed.", "",
             "| model | seeds | recall | F1 | AUC | KS | time s |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    order = ("recall", "f1", "auc", "ks")
    rows: list[tuple[str, dict[str, dict[int, float]], list[int], str]] = []
    for m, label in BASELINE_LABELS.items():
        rows.append((label, {k: ix.values(5, m, ("metrics", k)) for k in order}, ix.seeds(5, m), secs(ix.timing(5, m))))
    for label, v, key in (("**ours**: ACTGAN + ResNet-LSTM -> focal XGBoost", "both", "emb_focal"),
                          ("ours, emb + raw -> focal XGBoost", "both", "emb_raw_focal"),
                          ("ours without ACTGAN (emb -> focal)", "both_no_gan", "emb_focal")):  # fmt: skip
        rows.append((label, {k: ix.values(4, v, (key, k)) for k in order}, ix.seeds(4, v), secs(ix.timing(4, v))))
    part_sum: dict[str, Any] = {}
    for label, vals, seeds, t in rows:
        part_sum[label.replace("*", "")] = {k: stat(x) for k, x in vals.items()}
        lines.append(f"| {label} | {seeds_str(seeds)} | " + " | ".join(cell(vals[k]) for k in order) + f" | {t} |")
    ours = ix.values(4, "both", ("emb_focal", "auc"))
    lines += ["", "Paired AUC difference, ours minus baseline (same seed):", ""]
    lines += [f"- {label}: {paired(ours, ix.values(5, m, ('metrics', 'auc')))}" for m, label in BASELINE_LABELS.items()]
    lines.append("")
    summary["baselines"] = part_sum
    if img is not None and any(seeds for _, _, seeds, _ in rows):
        plt = _plt()
        fig, axes = plt.subplots(1, 4, figsize=(18, 4.5))
        names = [r[0].replace("*", "").replace("ours: ", "ours ") for r in rows]
        for ax, metric in zip(axes, order):
            vals = [r[1][metric] for r in rows]
            _bars(ax, names, {metric: vals}, metric.upper())
            _ylim_from(ax, [x for d in vals for x in d.values()], 0.03)
            ax.set_title(f"test {metric.upper()}")
            ax.get_legend() and ax.get_legend().remove()
        fig.tight_layout()
        fig.savefig(img / "baselines.png", dpi=90)
        plt.close(fig)
        lines += [f"![baselines]({rel}/baselines.png)", ""]
    return lines


# ----------------------------------------------------------------------------------------------- main
def write_report(
    records: Sequence[dict[str, Any]], meta: dict[str, Any], out: Path, img: Path | None
) -> dict[str, Any]:
    """Write the generated section of ``out`` and the plots under ``img`` (None: no plots); return the summary."""
    import os

    rel = ""
    if img is not None:
        img.mkdir(parents=True, exist_ok=True)
        rel = os.path.relpath(img, out.parent)
    ix = Index(records)
    summary: dict[str, Any] = {}
    units = defaultdict(set)
    for rec in records:
        units[rec["part"]].add(rec["seed"])
    lines = [
        f"Rebuilt by `{meta['command']}` on {time.strftime('%Y-%m-%d %H:%M %Z')} from `{meta['log']}` "
        f"({len(records)} finished units; data {meta['data']}, {meta['rows']} rows"
        f"{', QUICK sizes' if meta['quick'] else ''}; {meta['threads']} torch/xgboost thread(s)). "
        "Mean ± sample std over the seeds listed per row; a cell with no finished run says "
        f'"{NOT_RUN}". Seeds with at least one record per part: '
        + "; ".join(f"part {p}: {seeds_str(sorted(units.get(p, ())))}" for p in range(1, 6))
        + ". Times are wall / CPU seconds on a shared 2-core machine (wall inflated by other jobs; CPU at "
        "one thread is the better measure of cost).",
        "",
    ]
    for fn in (part1, part2, part3, part4, part5):
        lines += fn(ix, img, rel, summary)
    lines += ["### Settings (budgets)", "", "```", *(f"{k}: {v}" for k, v in meta["config"].items()), "```"]
    write_section(out, SECTION, "\n".join(lines), marker=MARKER)
    return summary
