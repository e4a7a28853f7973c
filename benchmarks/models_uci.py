"""Model quality on the UCI credit-card data, with the paper's protocol (issue 3, section 8).

Protocol: 70/30 stratified train/test split, 20% of the training part (stratified) for validation, one
split per seed. Every model is fitted on the training part only; early stopping (XGBoost rounds,
ResNet-LSTM epochs) and the F1 threshold use the validation part; AUC, KS, F1 and recall (at the
validation threshold) are measured on the test part. ACTGAN is fitted on the training part and its
generated minority rows are appended to the training part only.

Variants (``--variants`` picks a subset):

- ``xgb_raw``: plain ``xgboost.XGBClassifier`` on the 23 raw columns;
- ``focal_raw``: :class:`FocalXGBClassifier` on the raw columns;
- ``rl_head``: the ResNet-LSTM's own classification head;
- ``rl_emb_focal``: ResNet-LSTM embedding -> focal XGBoost;
- ``rl_emb_raw_focal``: embedding plus raw columns -> focal XGBoost (the full pipeline);
- ``gan_*``: the same after ACTGAN oversampling of the training part to minority/majority = 0.4
  (``gan_focal_raw`` too, as a cheap check of what oversampling alone does to the trees).

Usage::

    .venv/bin/python benchmarks/models_uci.py --seeds 0,1,2,3,4 --out docs/results.md
    .venv/bin/python benchmarks/models_uci.py --quick --rows 2000          # smoke run
    .venv/bin/python benchmarks/models_uci.py --seeds 0 --valid-only --set resnet.lr=3e-4   # tuning

``--valid-only`` reports validation metrics and never scores the test part: use it (on seed 0) to choose
settings, then run all seeds with the settings fixed. The last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as a script: make _common importable
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # ... and credspark without an install

from _common import emit_json, fmt_mean_std, layered_config, mean_std, peak_rss_mb, timed, write_section  # noqa: E402
from _uci_arrays import DEFAULT_UCI_CSV, UciArrays, load_uci_arrays, paper_split  # noqa: E402

from credspark.metrics import (  # noqa: E402
    best_f1_threshold,
    brier_score,
    ks_statistic,
    precision_recall_f1,
    roc_auc,
)

LOG = logging.getLogger("benchmarks.models_uci")

SECTION = "Model quality on UCI"
MARKER = "models_uci"

BASE_VARIANTS = ("xgb_raw", "focal_raw")
DEEP_VARIANTS = ("rl_head", "rl_emb_focal", "rl_emb_raw_focal")
GAN_VARIANTS = ("gan_focal_raw",) + tuple(f"gan_{v}" for v in DEEP_VARIANTS)
EXTRA_VARIANTS = ("blend_head_focal_raw",)
ALL_VARIANTS = BASE_VARIANTS + DEEP_VARIANTS + GAN_VARIANTS + EXTRA_VARIANTS

LABELS = {
    "xgb_raw": "plain XGBoost, raw columns",
    "focal_raw": "focal XGBoost, raw columns",
    "rl_head": "ResNet-LSTM head",
    "rl_emb_focal": "ResNet-LSTM embedding -> focal XGBoost",
    "rl_emb_raw_focal": "embedding + raw -> focal XGBoost",
    "gan_focal_raw": "ACTGAN 0.4 + focal XGBoost, raw columns",
    "gan_rl_head": "ACTGAN 0.4 + ResNet-LSTM head",
    "gan_rl_emb_focal": "ACTGAN 0.4 + embedding -> focal XGBoost",
    "gan_rl_emb_raw_focal": "ACTGAN 0.4 + embedding + raw -> focal XGBoost (full pipeline)",
    "blend_head_focal_raw": "extra: log-odds blend of ResNet-LSTM head and focal XGBoost raw",
}

#: The one place the benchmark's settings live (``--quick`` and ``--set`` start from a copy).
DEFAULTS: dict[str, dict[str, Any]] = {
    "xgb": {  # plain XGBoost: a common fixed configuration, early stopping on validation AUC
        "n_estimators": 2000,
        "learning_rate": 0.03,
        "max_depth": 4,
        "min_child_weight": 1.0,
        "subsample": 0.8,
        "colsample_bytree": 0.8,
        "reg_lambda": 1.0,
        "early_stopping_rounds": 100,
    },
    "focal": {  # FocalXGBClassifier; early stopping on the validation focal loss
        "alpha": 0.25,
        "gamma": 1.0,
        "n_estimators": 2000,
        "learning_rate": 0.03,
        "max_depth": 4,
        "min_child_weight": 1.0,
        "subsample": 0.8,
        "colsample_bytree": 0.8,
        "reg_lambda": 1.0,
        "early_stopping_rounds": 100,
    },
    "resnet": {  # ResNetLSTM; early stopping on validation AUC
        "embedding_dim": 32,
        "lr": 1e-3,
        "epochs": 30,
        "patience": 5,
        "batch_size": 256,
        "dropout": 0.5,
        "loss": "bce",
    },
    "actgan": {  # ACTGAN, trained on the training part only; smaller than the class defaults (CPU budget)
        "epochs": 30,
        "batch_size": 500,
        "n_critic": 3,
        "generator_dims": (128, 128),
        "discriminator_dims": (128, 128),
        "ratio": 0.4,
    },
    "blend": {"head_weight": 0.3},  # extra variant; weight chosen on seed 0's validation part
}

QUICK = {
    "xgb": {"n_estimators": 30, "early_stopping_rounds": 10},
    "focal": {"n_estimators": 30, "early_stopping_rounds": 10},
    "resnet": {"epochs": 2, "patience": 1, "embedding_dim": 8, "filters": (4, 8), "lstm_hidden": 8},
    "actgan": {"epochs": 1, "batch_size": 256, "n_critic": 1, "generator_dims": (32,), "discriminator_dims": (32,)},
}


# ------------------------------------------------------------------------------------------ config
def build_config(quick: bool = False, overrides: Sequence[str] = ()) -> dict[str, dict[str, Any]]:
    """Settings: :data:`DEFAULTS`, then the ``--quick`` sizes, then ``--set section.key=value`` overrides.

    Args:
        quick: Apply :data:`QUICK` (tiny epochs and widths, for smoke runs).
        overrides: Strings ``section.key=value``; the value is a Python literal (``3e-4``, ``(16, 32)``,
            ``'focal'``) or, failing that, a plain string.

    Returns:
        A fresh nested dict.
    """
    return layered_config(DEFAULTS, QUICK, quick, overrides)


# ----------------------------------------------------------------------------------------- metrics
def score_metrics(y_valid: np.ndarray, p_valid: np.ndarray, y_eval: np.ndarray, p_eval: np.ndarray) -> dict[str, float]:
    """AUC, KS, Brier on the evaluated part; F1, precision and recall there at the validation F1 threshold.

    Args:
        y_valid: Validation labels (the threshold is chosen on them).
        p_valid: Validation scores.
        y_eval: Labels of the part to report (test, or validation with ``--valid-only``).
        p_eval: Scores of that part.

    Returns:
        ``auc``, ``ks``, ``f1``, ``recall``, ``precision``, ``brier``, ``threshold``, ``valid_auc``.
    """
    p_valid = np.asarray(p_valid, dtype=np.float64)
    p_eval = np.asarray(p_eval, dtype=np.float64)
    threshold = best_f1_threshold(y_valid, p_valid)
    prf = precision_recall_f1(y_eval, p_eval, threshold)
    return {
        "auc": roc_auc(y_eval, p_eval),
        "ks": ks_statistic(y_eval, p_eval),
        "f1": prf["f1"],
        "recall": prf["recall"],
        "precision": prf["precision"],
        "brier": brier_score(y_eval, np.clip(p_eval, 0.0, 1.0)),
        "threshold": threshold,
        "valid_auc": roc_auc(y_valid, p_valid),
    }


# ------------------------------------------------------------------------------------------ models
def fit_plain_xgb(
    X: np.ndarray, y: np.ndarray, X_valid: np.ndarray, y_valid: np.ndarray, cfg: dict[str, Any], seed: int, threads: int
) -> Callable[[np.ndarray], np.ndarray]:
    """Fit ``xgboost.XGBClassifier`` (early stopping on validation AUC); return ``X -> P(default)``."""
    from xgboost import XGBClassifier

    model = XGBClassifier(**cfg, eval_metric="auc", tree_method="hist", n_jobs=threads, random_state=seed, verbosity=0)
    model.fit(X, y, eval_set=[(X_valid, y_valid)], verbose=False)
    return lambda Z: model.predict_proba(Z)[:, 1]


def fit_focal_xgb(
    X: np.ndarray, y: np.ndarray, X_valid: np.ndarray, y_valid: np.ndarray, cfg: dict[str, Any], seed: int, threads: int
) -> Callable[[np.ndarray], np.ndarray]:
    """Fit :class:`FocalXGBClassifier` (early stopping on the validation focal loss); return ``X -> P``."""
    from credspark.models.focal_xgb import FocalXGBClassifier

    model = FocalXGBClassifier(**cfg, n_jobs=threads, random_state=seed)
    model.fit(X, y, eval_set=[(X_valid, y_valid)])
    return model.predict_proba


def fit_resnet_lstm(train: UciArrays, valid: UciArrays, cfg: dict[str, Any], seed: int, verbose: bool) -> Any:
    """Fit :class:`ResNetLSTM` on ``train`` with early stopping on ``valid``'s AUC."""
    from credspark.models.resnet_lstm import ResNetLSTM

    model = ResNetLSTM(spec=train.spec, random_state=seed, verbose=verbose, **cfg)
    return model.fit(
        train.static, train.dynamic, train.mask, train.y, valid=(valid.static, valid.dynamic, valid.mask, valid.y)
    )


def oversample_actgan(train: UciArrays, cfg: dict[str, Any], seed: int, verbose: bool) -> UciArrays:
    """Fit ACTGAN on the training part and append generated minority rows up to ``cfg['ratio']``."""
    from credspark.models.actgan import ACTGAN

    params = {k: v for k, v in cfg.items() if k != "ratio"}
    gan = ACTGAN(spec=train.spec, random_state=seed, verbose=verbose, log_every=10, **params)
    s, d, m, y = gan.oversample(train.static, train.dynamic, train.y, train.mask, ratio=float(cfg["ratio"]))
    n_new = len(y) - len(train.y)
    ids = np.concatenate([train.ids, -1 - np.arange(n_new)])  # negative ids mark generated rows
    return UciArrays(
        s.astype(np.float32), d.astype(np.float32), m.astype(np.uint8), y.astype(np.int64), ids, train.spec
    )


# ------------------------------------------------------------------------------------------- one seed
class SeedRun:
    """One seed of the protocol: the split, then every asked-for variant, with timings.

    Args:
        data: The full data set.
        seed: Seed of the split and of every model.
        cfg: Settings from :func:`build_config`.
        variants: Variant names to run.
        threads: Threads for torch and xgboost.
        valid_only: Report validation metrics and never score the test part.
        verbose: Log epochs of the neural models.
    """

    def __init__(
        self,
        data: UciArrays,
        seed: int,
        cfg: dict[str, dict[str, Any]],
        variants: Sequence[str],
        threads: int,
        valid_only: bool = False,
        verbose: bool = False,
    ) -> None:
        self.seed, self.cfg, self.variants, self.threads, self.verbose = seed, cfg, set(variants), threads, verbose
        tr, va, te = paper_split(data.y, seed)
        self.train, self.valid = data.take(tr), data.take(va)
        # With --valid-only the "evaluation" part is the validation part itself: the test rows are never read.
        self.test = self.valid if valid_only else data.take(te)
        self.metrics: dict[str, dict[str, float]] = {}
        self.timings: dict[str, dict[str, float]] = {}
        self.info: dict[str, Any] = {"n_train": len(tr), "n_valid": len(va), "n_test": len(te)}
        self.scores: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # variant -> (valid scores, test scores)

    def _record(self, name: str, predict: Callable[[Any], np.ndarray], valid_x: Any, test_x: Any) -> None:
        p_valid, p_test = predict(valid_x), predict(test_x)
        self.scores[name] = (p_valid, p_test)
        m = score_metrics(self.valid.y, p_valid, self.test.y, p_test)
        self.metrics[name] = m
        LOG.info("seed %d %-22s AUC %.4f KS %.4f F1 %.4f recall %.4f (valid AUC %.4f)",
                 self.seed, name, m["auc"], m["ks"], m["f1"], m["recall"], m["valid_auc"])  # fmt: skip

    def _trees(self, name: str, fit: Callable[..., Any], cfg: dict[str, Any], train_X: np.ndarray, train_y: np.ndarray,
               valid_X: np.ndarray, test_X: np.ndarray) -> None:  # fmt: skip
        with timed() as t:
            predict = fit(train_X, train_y, valid_X, self.valid.y, cfg, self.seed, self.threads)
            self._record(name, predict, valid_X, test_X)
        self.timings[name] = t.as_dict()

    def run(self) -> dict[str, Any]:
        """Run the variants; return ``{"metrics", "timings", "info"}``."""
        with timed() as total:
            self._run()
        self.timings["seed_total"] = total.as_dict()
        return {"metrics": self.metrics, "timings": self.timings, "info": self.info}

    def _run(self) -> None:
        train, valid, test = self.train, self.valid, self.test
        if "xgb_raw" in self.variants:
            self._trees("xgb_raw", fit_plain_xgb, self.cfg["xgb"], train.raw, train.y, valid.raw, test.raw)
        if "focal_raw" in self.variants:
            self._trees("focal_raw", fit_focal_xgb, self.cfg["focal"], train.raw, train.y, valid.raw, test.raw)
        if self.variants & {*DEEP_VARIANTS, "blend_head_focal_raw"}:
            self._deep("", train)
        if "blend_head_focal_raw" in self.variants:
            self._blend()
        if self.variants & set(GAN_VARIANTS):
            with timed() as t:
                augmented = oversample_actgan(train, self.cfg["actgan"], self.seed, self.verbose)
            self.timings["actgan_fit_sample"] = t.as_dict()
            self.info["n_generated"] = int(len(augmented.y) - len(train.y))
            self.info["train_positive_share_after_gan"] = float(augmented.y.mean())
            if "gan_focal_raw" in self.variants:
                self._trees("gan_focal_raw", fit_focal_xgb, self.cfg["focal"], augmented.raw, augmented.y,
                            valid.raw, test.raw)  # fmt: skip
            self._deep("gan_", augmented)

    def _blend(self) -> None:
        """Average of the head's and focal XGBoost's log-odds, weight ``cfg['blend']['head_weight']`` on the head."""
        if not {"rl_head", "focal_raw"} <= set(self.scores):
            raise SystemExit("blend_head_focal_raw needs the focal_raw variant too")
        w = float(self.cfg["blend"]["head_weight"])

        def blend(part: int) -> np.ndarray:
            z = w * _logit(self.scores["rl_head"][part]) + (1.0 - w) * _logit(self.scores["focal_raw"][part])
            return 1.0 / (1.0 + np.exp(-z))

        self._record("blend_head_focal_raw", blend, 0, 1)

    def _deep(self, prefix: str, train: UciArrays) -> None:
        """ResNet-LSTM on ``train`` (the plain or the oversampled training part), then its three variants."""
        wanted = {v for v in DEEP_VARIANTS if prefix + v in self.variants}
        if not prefix and "blend_head_focal_raw" in self.variants:
            wanted.add("rl_head")
        if not wanted:
            return
        valid, test = self.valid, self.test
        with timed() as t:
            rl = fit_resnet_lstm(train, valid, self.cfg["resnet"], self.seed, self.verbose)
        self.timings[prefix + "resnet_lstm_fit"] = t.as_dict()
        self.info[prefix + "resnet_lstm_epochs"] = len(rl.history_["train_loss"])
        self.info[prefix + "resnet_lstm_best_epoch"] = int(rl.best_epoch_)

        def head(part: UciArrays) -> np.ndarray:
            return rl.predict_proba(part.static, part.dynamic, part.mask)

        if "rl_head" in wanted:
            with timed() as t:
                self._record(prefix + "rl_head", head, valid, test)
            self.timings[prefix + "rl_head"] = t.as_dict()
        emb = {
            k: rl.embed(p.static, p.dynamic, p.mask) for k, p in (("train", train), ("valid", valid), ("test", test))
        }
        if "rl_emb_focal" in wanted:
            self._trees(prefix + "rl_emb_focal", fit_focal_xgb, self.cfg["focal"], emb["train"], train.y,
                        emb["valid"], emb["test"])  # fmt: skip
        if "rl_emb_raw_focal" in wanted:
            both = {k: np.hstack([emb[k], p.raw]) for k, p in (("train", train), ("valid", valid), ("test", test))}
            self._trees(prefix + "rl_emb_raw_focal", fit_focal_xgb, self.cfg["focal"], both["train"], train.y,
                        both["valid"], both["test"])  # fmt: skip


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-7, 1.0 - 1e-7)
    return np.log(p / (1.0 - p))


# -------------------------------------------------------------------------------------------- summary
METRICS = ("auc", "ks", "f1", "recall")


def summarise(runs: dict[int, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per variant: the seeds it ran on and mean/std/values of every metric."""
    out: dict[str, dict[str, Any]] = {}
    for name in ALL_VARIANTS:
        seeds = [s for s, r in runs.items() if name in r["metrics"]]
        if not seeds:
            continue
        entry: dict[str, Any] = {"seeds": seeds}
        for metric in (*METRICS, "precision", "brier", "valid_auc"):
            values = [runs[s]["metrics"][name][metric] for s in seeds]
            mean, std = mean_std(values)
            entry[metric] = {"mean": round(mean, 5), "std": round(std, 5), "values": [round(v, 5) for v in values]}
        out[name] = entry
    return out


def markdown(summary: dict[str, dict[str, Any]], runs: dict[int, dict[str, Any]], meta: dict[str, Any]) -> str:
    """The generated part of the results section: settings, the table, timings, and the gap to plain XGBoost."""
    part = "validation" if meta["valid_only"] else "test"
    lines = [
        f"Generated by `{meta['command']}` on {meta['finished']} ({meta['threads']} thread(s), "
        f"{meta['rows']} rows{', quick sizes' if meta['quick'] else ''}). Metrics on the **{part}** part, "
        "mean ± sample std over the seeds listed; F1 and recall at the threshold that maximises F1 on validation.",
        "",
        "| variant | seeds | AUC | KS | F1 | recall |",
        "|---|---|---|---|---|---|",
    ]
    for name, entry in summary.items():
        cells = [fmt_mean_std(entry[m]["values"]) for m in METRICS]
        seeds = ",".join(str(s) for s in entry["seeds"])
        lines.append(f"| {LABELS[name]} (`{name}`) | {seeds} | " + " | ".join(cells) + " |")
    lines += ["", "Wall / CPU seconds per seed (the machine was shared, so wall time is inflated):", ""]
    for seed, run in runs.items():
        tt = run["timings"]
        if "seed_total" not in tt:
            continue
        parts = [f"total {tt['seed_total']['wall_s']:.0f} s wall / {tt['seed_total']['cpu_s']:.0f} s CPU"]
        for key in ("resnet_lstm_fit", "actgan_fit_sample", "gan_resnet_lstm_fit"):
            if key in tt:
                parts.append(f"{key} {tt[key]['wall_s']:.0f}/{tt[key]['cpu_s']:.0f} s")
        lines.append(f"- seed {seed}: " + ", ".join(parts))
    if "xgb_raw" in summary:
        base = summary["xgb_raw"]
        lines += ["", "Difference to plain XGBoost, paired by seed (mean ± std of the per-seed difference):", ""]
        for name, entry in summary.items():
            if name == "xgb_raw":
                continue
            common = [s for s in entry["seeds"] if s in base["seeds"]]
            if not common:
                continue
            cells = []
            for metric in ("auc", "ks"):
                diffs = [runs[s]["metrics"][name][metric] - runs[s]["metrics"]["xgb_raw"][metric] for s in common]
                cells.append(f"{metric.upper()} {fmt_mean_std(diffs, 4)}")
            lines.append(f"- `{name}`: " + ", ".join(cells) + f" (seeds {','.join(map(str, common))})")
    lines += ["", "Settings:", "", "```", *(f"{k}: {v}" for k, v in meta["config"].items()), "```"]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------- main
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line arguments."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--seeds", default="0,1,2,3,4", help="comma-separated split/model seeds (default 0..4)")
    p.add_argument("--quick", action="store_true", help="tiny epochs and widths (smoke run)")
    p.add_argument("--data", default=str(DEFAULT_UCI_CSV), help="UCI CSV (default: the shared copy)")
    p.add_argument("--out", default=None, help=f"write the '{SECTION}' section of this Markdown file")
    p.add_argument("--threads", type=int, default=1, help="torch and xgboost threads (default 1)")
    p.add_argument(
        "--gan-seeds", default=None, help="run the ACTGAN variants only for these seeds (default: all of --seeds)"
    )
    p.add_argument("--rows", type=int, default=None, help="stratified subsample of this many rows first")
    p.add_argument(
        "--variants", default=",".join(ALL_VARIANTS), help="comma-separated subset of: " + ", ".join(ALL_VARIANTS)
    )
    p.add_argument("--valid-only", action="store_true", help="report validation metrics; never score the test part")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override a setting")
    p.add_argument(
        "--resume",
        default=None,
        metavar="LOG",
        help="reuse the per-seed results in the JSON last line of an earlier run's output (same settings);\n"
        "only the variants and seeds it lacks are run, then the table covers both",
    )
    p.add_argument("--verbose", action="store_true", help="log epochs of the neural models")
    return p.parse_args(argv)


def _subsample(data: UciArrays, rows: int | None) -> UciArrays:
    if rows is None or rows >= len(data.y):
        return data
    from sklearn.model_selection import train_test_split

    keep, _ = train_test_split(np.arange(len(data.y)), train_size=rows, stratify=data.y, random_state=0)
    return data.take(np.sort(keep))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; print progress to stderr and the JSON summary as the last stdout line."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    if not args.verbose:
        logging.getLogger("credspark").setLevel(logging.WARNING)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = sorted(set(variants) - set(ALL_VARIANTS))
    if unknown:
        raise SystemExit(f"unknown variants {unknown}; choose from {list(ALL_VARIANTS)}")
    import torch

    torch.set_num_threads(args.threads)
    cfg = build_config(args.quick, args.set)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    gan_seeds = seeds if args.gan_seeds is None else [int(s) for s in args.gan_seeds.split(",") if s.strip()]
    data = _subsample(load_uci_arrays(args.data), args.rows)
    LOG.info("data: %d rows, %.1f%% default; seeds %s; variants %s", len(data.y), 100 * data.y.mean(), seeds, variants)
    previous = load_previous(args.resume, cfg, len(data.y), args.valid_only) if args.resume else {}
    runs: dict[int, dict[str, Any]] = {}
    with timed() as total:
        for seed in seeds:
            # Slow ACTGAN variants can be limited to some seeds; the table lists the seeds of every row.
            done = set(previous.get(seed, {}).get("metrics", {}))
            todo = [v for v in variants if (seed in gan_seeds or v not in GAN_VARIANTS) and v not in done]
            run = SeedRun(data, seed, cfg, todo, args.threads, args.valid_only, args.verbose).run() if todo else None
            runs[seed] = merge_runs(previous.get(seed), run)
            LOG.info("seed %d done: %s", seed, runs[seed]["timings"]["seed_total"])
            if args.out:  # after every seed, so a long run that is stopped still leaves its finished seeds
                text = markdown(summarise(runs), runs, _meta(args, argv, len(data.y), cfg))
                write_section(args.out, SECTION, text, marker=MARKER)
    summary = summarise(runs)
    emit_json({
        "benchmark": "models_uci",
        "command": _meta(args, argv, len(data.y), cfg)["command"],
        "part": "validation" if args.valid_only else "test",
        "seeds": seeds,
        "rows": len(data.y),
        "quick": args.quick,
        "threads": args.threads,
        "config": _jsonable(cfg),
        "summary": summary,
        "per_seed": {str(s): r for s, r in runs.items()},
        "wall_s": round(total.wall, 1),
        "cpu_s": round(total.cpu, 1),
        "peak_rss_mb": peak_rss_mb(),
        "pid": os.getpid(),
    })  # fmt: skip
    return 0


def load_previous(path: str, cfg: dict[str, Any], rows: int, valid_only: bool) -> dict[int, dict[str, Any]]:
    """Per-seed results from the JSON last line of an earlier run's output, checked to use the same settings."""
    lines = [ln for ln in Path(path).read_text(encoding="utf-8").splitlines() if ln.startswith("{")]
    if not lines:
        raise SystemExit(f"--resume {path}: no JSON line found")
    prev = json.loads(lines[-1])
    if prev.get("benchmark") != "models_uci":
        raise SystemExit(f"--resume {path}: not a models_uci result")
    if prev["config"] != _jsonable(cfg) or prev["rows"] != rows or (prev["part"] == "validation") != valid_only:
        raise SystemExit(f"--resume {path}: settings, rows or evaluated part differ from this run")
    return {int(seed): run for seed, run in prev["per_seed"].items()}


def merge_runs(old: dict[str, Any] | None, new: dict[str, Any] | None) -> dict[str, Any]:
    """One seed's results from an earlier and a new run: metrics and info joined, seed times added up."""
    out: dict[str, Any] = {"metrics": {}, "timings": {}, "info": {}}
    for part in (old, new):
        if part is None:
            continue
        for key in ("metrics", "info"):
            out[key].update(part[key])
        for key, value in part["timings"].items():
            if key == "seed_total" and key in out["timings"]:
                value = {k: round(out["timings"][key][k] + value[k], 1) for k in value}
            out["timings"][key] = value
    return out


def _meta(args: argparse.Namespace, argv: Sequence[str] | None, rows: int, cfg: dict[str, Any]) -> dict[str, Any]:
    return {
        "command": "python benchmarks/models_uci.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "finished": time.strftime("%Y-%m-%d %H:%M %Z"),
        "threads": args.threads,
        "rows": rows,
        "quick": args.quick,
        "valid_only": args.valid_only,
        "config": cfg,
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


if __name__ == "__main__":
    sys.exit(main())
