"""Reproduce the paper's experiments on the UCI credit-card data (issue 7), resumably, with a report.

Protocol (every part): 70/30 stratified train/test split, 20% of the training part (stratified) for
validation, one split per seed (:func:`_uci_arrays.paper_split`). Models and oversamplers
are fitted on the training part only; generated rows are only ever added to the training part; early
stopping and the F1 threshold use the validation part; the test part is only scored.

Parts (``--parts``):

1. **Oversamplers** (paper Tables 3-4): none, SMOTE, ADASYN, BorderlineSMOTE (imbalanced-learn), CGAN and
   ACTGAN (credspark) and CTGAN (the ``ctgan`` package), each to minority/majority 0.4; classifiers SVM,
   logistic regression, decision tree, KNN; AUC, F1, recall, KS.
2. **Fidelity** of the ACTGAN / CGAN / CTGAN rows (:mod:`paper_fidelity`), and train-on-synthetic /
   test-on-real AUC.
3. **Training behaviour**: losses and critic estimates per iteration for ACTGAN vs CGAN, a per-epoch
   real-vs-generated distance, and real vs generated histograms of AGE, LIMIT_BAL, BILL_AMT1..4.
4. **Ablation** (paper Table 5): ACTGAN 0.4 -> ResNet-LSTM with no attention / spatial / temporal / both
   -> focal XGBoost (plus "both" without ACTGAN).
5. **Baselines** (paper Table 6): RNN-RF, AdaBoost, SMOTEBoost, RUSBoost, CUSBoost, CNN, LSTM, plain
   XGBoost, and ours (part 4's "both").

Parts 1-3 share one GAN fit per (GAN, seed). Every finished unit (part, method, seed) is appended to a
JSON-lines log at once; a rerun skips the units whose record has the same settings and data, and the
report is rebuilt from whatever is in the log (missing cells say "not run").

Usage::

    .venv/bin/python benchmarks/paper.py                              # everything, seeds 0..4 (hours)
    .venv/bin/python benchmarks/paper.py --seeds 0 --parts 1,5        # a subset; rerun to continue
    .venv/bin/python benchmarks/paper.py --report-only                # rebuild the report from the log
    .venv/bin/python benchmarks/paper.py --quick --rows 1500 --log /tmp/l.jsonl --out /tmp/r.md  # smoke

The last stdout line is one JSON object.
"""

from __future__ import annotations

import os

# Before numpy is imported: scikit-learn's BLAS / OpenMP pools and joblib at one thread (the machine is a
# shared 2-core box; --threads sets torch and xgboost). Only when run as a script, so that importing the
# module (the smoke test) leaves the environment of the importing process alone.
if __name__ == "__main__":
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "LOKY_MAX_CPU_COUNT"):
        os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Iterator, Sequence  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as a script: make the benchmark modules importable
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # ... and credspark without an install

import paper_fidelity as fid  # noqa: E402
from _common import emit_json, layered_config, peak_rss_mb, timed  # noqa: E402
from _uci_arrays import DEFAULT_UCI_CSV, UciArrays, load_uci_arrays, paper_split  # noqa: E402
from models_uci import DEFAULTS as UCI_DEFAULTS  # noqa: E402
from models_uci import _jsonable, _subsample, fit_focal_xgb, fit_plain_xgb, fit_resnet_lstm, score_metrics  # noqa: E402

from credspark.metrics import roc_auc  # noqa: E402

LOG = logging.getLogger("benchmarks.paper")
ROOT = Path(__file__).resolve().parents[1]

OVERSAMPLERS = ("none", "smote", "adasyn", "borderline", "cgan", "actgan", "ctgan")
GANS = ("cgan", "actgan", "ctgan")
CLASSIFIERS = ("svm", "lr", "dt", "knn")
ABLATIONS = ("none", "spatial", "temporal", "both", "both_no_gan")
BASELINES = ("rnn_rf", "adaboost", "smoteboost", "rusboost", "cusboost", "cnn", "lstm", "xgb")
PARTS = {1: "oversampling", 2: "fidelity", 3: "training", 4: "ablation", 5: "baselines"}

#: The one place the settings live (``--quick`` and ``--set`` start from a copy). The GAN and XGBoost
#: settings are models_uci's, so the ACTGAN rows and plain XGBoost here are the ones docs/results.md reports.
DEFAULTS: dict[str, dict[str, Any]] = {
    "ratio": {"minority_to_majority": 0.4},
    "smote": {"k_neighbors": 5},  # SMOTE / ADASYN / BorderlineSMOTE, on standardised columns
    "actgan": {k: v for k, v in UCI_DEFAULTS["actgan"].items() if k != "ratio"},
    "cgan": {
        "epochs": 30,
        "batch_size": 500,
        "n_critic": 1,
        "generator_dims": (128, 128),
        "discriminator_dims": (128, 128),
    },  # fmt: skip
    "ctgan": {"epochs": 30, "batch_size": 500, "dims": (128, 128)},
    "classifiers": {  # fixed a priori (nothing tuned); standardised columns for all but the tree
        "svm_nystroem_components": 300,  # RBF kernel approximated (Nystroem) + linear SVM: exact SVC is O(n^2)
        "svm_C": 1.0,
        "lr_C": 1.0,
        "dt_max_depth": 6,
        "dt_min_samples_leaf": 20,
        "knn_neighbors": 25,
    },
    "fidelity": {"probe_rows": 2000, "detection_folds": 3},
    "xgb": dict(UCI_DEFAULTS["xgb"]),
    "focal": dict(UCI_DEFAULTS["focal"]),
    "resnet": dict(UCI_DEFAULTS["resnet"]),
    "boost": {"n_estimators": 200, "learning_rate": 0.5, "max_depth": 2},  # all four boosters alike
    # SMOTEBoost / RUSBoost / CUSBoost: AdaBoost.M2 (pseudo-loss on tree probabilities), as in their papers
    "smoteboost": {"booster": "M2", "smote_ratio": 1.0, "k_neighbors": 5},
    "rusboost": {"booster": "M2", "rus_ratio": 1.0},
    "cusboost": {"booster": "M2", "n_clusters": 6, "keep_share": 0.5},
    "nets": {"lr": 1e-3, "epochs": 30, "patience": 5, "batch_size": 256},  # CNN, LSTM, RNN-RF's network
    "cnn": {"filters": (32, 64), "kernels": (8, 4), "hidden": 32},
    "lstm": {"hidden": 128},
    "rnn_rf": {"hidden": 32, "fused": 32, "rf_trees": 300, "rf_min_samples_leaf": 5},
}

QUICK: dict[str, dict[str, Any]] = {
    "actgan": {"epochs": 2, "batch_size": 128, "n_critic": 1, "generator_dims": (16,), "discriminator_dims": (16,)},
    "cgan": {"epochs": 2, "batch_size": 128, "generator_dims": (16,), "discriminator_dims": (16,)},
    "ctgan": {"epochs": 2, "batch_size": 100, "dims": (16,)},
    "classifiers": {"svm_nystroem_components": 20},
    "fidelity": {"probe_rows": 100, "detection_folds": 2},
    "xgb": {"n_estimators": 30, "early_stopping_rounds": 10},
    "focal": {"n_estimators": 30, "early_stopping_rounds": 10},
    "resnet": {"epochs": 2, "patience": 1, "embedding_dim": 8, "filters": (4, 8), "lstm_hidden": 8},
    "boost": {"n_estimators": 10},
    "nets": {"epochs": 2, "patience": 1},
    "lstm": {"hidden": 8},
    "rnn_rf": {"hidden": 8, "fused": 8, "rf_trees": 20},
}


# ------------------------------------------------------------------------------------------ config
def build_config(quick: bool = False, overrides: Sequence[str] = ()) -> dict[str, dict[str, Any]]:
    """Settings: :data:`DEFAULTS`, then :data:`QUICK` if asked, then ``--set section.key=value`` overrides."""
    return layered_config(DEFAULTS, QUICK, quick, overrides)


#: The config sections each unit depends on: a record is reused only if these are unchanged.
def unit_sections(part: int, method: str) -> tuple[str, ...]:
    """Config sections that decide the result of unit ``(part, method)``."""
    if part in (1, 2, 3):
        gan = (method,) if method in GANS else ("smote",) if method in ("smote", "adasyn", "borderline") else ()
        return ("ratio", "classifiers", "fidelity", "xgb", *gan)
    if part == 4:
        return ("ratio", "actgan", "resnet", "focal")
    sections = {"rnn_rf": ("nets", "rnn_rf"), "cnn": ("nets", "cnn"), "lstm": ("nets", "lstm"), "xgb": ("xgb",),
                "smoteboost": ("boost", "smoteboost"), "rusboost": ("boost", "rusboost"),
                "cusboost": ("boost", "cusboost")}  # fmt: skip
    return sections.get(method, ("boost",))


# ------------------------------------------------------------------------------------------ the log
class RunLog:
    """Append-only JSON-lines log of finished units; a unit counts as done only with identical settings.

    Args:
        path: The log file (created with its folder when the first record is written).
        cfg: The current settings.
        fingerprint: Identity of the data (rows and a hash of their values).
    """

    def __init__(self, path: str | Path, cfg: dict[str, Any], fingerprint: str) -> None:
        self.path, self.cfg, self.fingerprint = Path(path), cfg, fingerprint
        self.records: list[dict[str, Any]] = []
        if self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    self.records.append(json.loads(line))

    def settings(self, part: int, method: str) -> dict[str, Any]:
        """The settings a unit's record must carry to be reused."""
        return _jsonable({s: self.cfg[s] for s in unit_sections(part, method)})

    def find(self, part: int, method: str, seed: int) -> dict[str, Any] | None:
        """The latest record of the unit with the current settings and data, or None."""
        want = self.settings(part, method)
        for rec in reversed(self.records):
            if (rec["part"], rec["method"], rec["seed"]) == (part, method, seed):
                if rec["settings"] == want and rec["data"] == self.fingerprint:
                    return rec
        return None

    def current(self) -> list[dict[str, Any]]:
        """The latest matching record of every unit (what the report shows)."""
        seen: dict[tuple[int, str, int], dict[str, Any]] = {}
        for rec in self.records:
            key = (rec["part"], rec["method"], rec["seed"])
            if rec["data"] == self.fingerprint and rec["settings"] == self.settings(rec["part"], rec["method"]):
                seen[key] = rec
        return [seen[k] for k in sorted(seen)]

    def append(self, part: int, method: str, seed: int, result: dict[str, Any], timing: dict[str, Any]) -> None:
        """Write one unit's record (flushed, so a stopped run keeps it)."""
        rec = {
            "part": part,
            "method": method,
            "seed": seed,
            "settings": self.settings(part, method),
            "data": self.fingerprint,
            "result": _jsonable(result),
            "timing": timing,
            "finished": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(rec, sort_keys=True, allow_nan=False, default=_to_builtin) + "\n")
        self.records.append(json.loads(json.dumps(rec, allow_nan=False, default=_to_builtin)))


def _to_builtin(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def fingerprint(data: UciArrays) -> str:
    """Rows and a short hash of the raw values and labels."""
    h = hashlib.sha1(np.ascontiguousarray(data.raw, dtype=np.float64).tobytes())
    h.update(np.ascontiguousarray(data.y, dtype=np.int64).tobytes())
    return f"{len(data.y)}:{h.hexdigest()[:12]}"


# ----------------------------------------------------------------------------------------- metrics
def evaluate_scores(y_valid: np.ndarray, s_valid: np.ndarray, y_test: np.ndarray, s_test: np.ndarray) -> dict:
    """Test AUC and KS; test F1 / recall / precision at the threshold that maximises F1 on validation.

    Scores only need to rank (an SVM's decision values are fine).
    """
    metrics = score_metrics(y_valid, s_valid, y_test, s_test)  # its Brier score needs probabilities: left out
    return {k: metrics[k] for k in ("auc", "ks", "f1", "recall", "precision", "valid_auc")}


# ------------------------------------------------------------------------------------------- one seed
class SeedContext:
    """One seed's split and the shared pieces (oversampled training parts are cached on disk for part 4).

    Args:
        data: All rows.
        seed: Seed of the split and of every model.
        cfg: Settings.
        threads: torch / xgboost threads.
        workdir: Folder for the cached generated rows.
    """

    def __init__(self, data: UciArrays, seed: int, cfg: dict[str, Any], threads: int, workdir: Path) -> None:
        self.seed, self.cfg, self.threads, self.workdir = seed, cfg, threads, workdir
        tr, va, te = paper_split(data.y, seed)
        self.train, self.valid, self.test = data.take(tr), data.take(va), data.take(te)
        self.ratio = float(cfg["ratio"]["minority_to_majority"])

    # ---- metrics helper
    def scores(self, predict: Callable[[Any], np.ndarray], valid_x: Any, test_x: Any) -> dict[str, float]:
        """Score validation and test with ``predict`` and evaluate."""
        return evaluate_scores(self.valid.y, predict(valid_x), self.test.y, predict(test_x))

    # ---- oversampling
    def n_new(self) -> int:
        """Generated minority rows that bring the training part to the target ratio."""
        from credspark.models._gan_common import n_new_minority

        y = self.train.y
        return n_new_minority(int((y == 1).sum()), int((y == 0).sum()), self.ratio)

    def classic_oversample(self, method: str) -> UciArrays:
        """SMOTE / ADASYN / BorderlineSMOTE on standardised columns, back to the raw scale."""
        from imblearn.over_sampling import ADASYN, SMOTE, BorderlineSMOTE
        from sklearn.preprocessing import StandardScaler

        k = int(self.cfg["smote"]["k_neighbors"])
        if method == "adasyn":
            sampler = ADASYN(sampling_strategy=self.ratio, n_neighbors=k, random_state=self.seed)
        else:
            cls = SMOTE if method == "smote" else BorderlineSMOTE
            sampler = cls(sampling_strategy=self.ratio, k_neighbors=k, random_state=self.seed)
        scaler = StandardScaler().fit(self.train.raw)
        X, y = sampler.fit_resample(scaler.transform(self.train.raw), self.train.y)
        n = len(self.train.y)  # imbalanced-learn appends the new rows after the originals
        return fid.concat(self.train, fid.raw_to_arrays(scaler.inverse_transform(X[n:]), y[n:], self.train))

    def cache_path(self, gan: str, settings: dict[str, Any]) -> Path:
        """Where the generated rows of ``gan`` for this seed and settings are kept."""
        tag = hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]
        return self.workdir / f"{gan}_seed{self.seed}_{tag}.npz"

    def save_generated(self, path: Path, rows: UciArrays) -> None:
        """Keep generated rows for later parts (a cache: recomputed when missing)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, raw=rows.raw, y=rows.y)

    def load_generated(self, path: Path) -> UciArrays | None:
        """The cached generated rows, or None."""
        if not path.exists():
            return None
        with np.load(path) as z:
            return fid.raw_to_arrays(z["raw"], z["y"], self.train)

    # ---- classifiers of part 1
    def classifiers(self, train: UciArrays) -> Iterator[tuple[str, dict[str, float], dict[str, float]]]:
        """Fit SVM, LR, DT, KNN on ``train``'s raw columns; yield ``(name, metrics, timing)``."""
        from sklearn.kernel_approximation import Nystroem
        from sklearn.linear_model import LogisticRegression
        from sklearn.neighbors import KNeighborsClassifier
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
        from sklearn.svm import LinearSVC
        from sklearn.tree import DecisionTreeClassifier

        c = self.cfg["classifiers"]
        n_feat = train.raw.shape[1]
        models = {
            "svm": make_pipeline(
                StandardScaler(),
                Nystroem(gamma=1.0 / n_feat, n_components=int(c["svm_nystroem_components"]), random_state=self.seed),
                LinearSVC(C=float(c["svm_C"]), random_state=self.seed),
            ),
            "lr": make_pipeline(StandardScaler(), LogisticRegression(C=float(c["lr_C"]), max_iter=2000)),
            "dt": DecisionTreeClassifier(
                max_depth=int(c["dt_max_depth"]), min_samples_leaf=int(c["dt_min_samples_leaf"]), random_state=self.seed
            ),
            "knn": make_pipeline(StandardScaler(), KNeighborsClassifier(n_neighbors=int(c["knn_neighbors"]))),
        }
        for name in CLASSIFIERS:
            model = models[name]
            with timed() as t:
                model.fit(train.raw, train.y)
                if name == "svm":
                    predict = model.decision_function
                else:
                    predict = lambda X, m=model: m.predict_proba(X)[:, 1]  # noqa: E731
                metrics = self.scores(predict, self.valid.raw, self.test.raw)
            yield name, metrics, t.as_dict()

    def xgb_auc(self, train: UciArrays) -> float:
        """Test AUC of plain XGBoost trained on ``train`` (early stopping on the real validation part)."""
        predict = fit_plain_xgb(
            train.raw, train.y, self.valid.raw, self.valid.y, self.cfg["xgb"], self.seed, self.threads
        )
        return roc_auc(self.test.y, predict(self.test.raw))


# ---------------------------------------------------------------------------------------- parts 1-3
def run_oversampler(ctx: SeedContext, method: str, log: RunLog) -> None:
    """Part 1 for one oversampler (and parts 2-3 when it is a GAN); each record appended when done."""
    info: dict[str, Any] = {}
    with timed() as t_over:
        if method == "none":
            train = ctx.train
        elif method in GANS:
            train, gan_out = fit_gan(ctx, method, log)
            info.update(gan_out["info"])
        else:
            train = ctx.classic_oversample(method)
    timing: dict[str, Any] = {"oversample": t_over.as_dict()}
    info.update(n_train=len(train.y), n_generated=len(train.y) - len(ctx.train.y), positive_share=float(train.y.mean()))
    results: dict[str, Any] = {"info": info}
    for name, metrics, t in ctx.classifiers(train):
        results[name] = metrics
        timing[name] = t
        LOG.info("seed %d part 1 %-10s %-4s AUC %.4f F1 %.4f recall %.4f KS %.4f", ctx.seed, method, name,
                 metrics["auc"], metrics["f1"], metrics["recall"], metrics["ks"])  # fmt: skip
    timing["total"] = {k: round(sum(v[k] for v in timing.values()), 1) for k in ("wall_s", "cpu_s")}
    if method in GANS:
        # parts 2 and 3 first: their records were computed inside fit_gan
        log.append(2, method, ctx.seed, gan_out["fidelity"], gan_out["fidelity_timing"])
        log.append(3, method, ctx.seed, gan_out["training"], timing["oversample"])
    log.append(1, method, ctx.seed, results, timing)


def _gan_model(ctx: SeedContext, method: str) -> Any:
    cfg = ctx.cfg[method]
    if method == "ctgan":
        return fid.CtganOversampler(epochs=int(cfg["epochs"]), dims=cfg["dims"], batch_size=int(cfg["batch_size"]),
                                    seed=ctx.seed)  # fmt: skip
    from credspark.models.actgan import ACTGAN
    from credspark.models.cgan import CGAN

    cls = ACTGAN if method == "actgan" else CGAN
    gan = cls(spec=ctx.train.spec, random_state=ctx.seed, **cfg)
    minority = ctx.train.raw[ctx.train.y == 1]
    return fid.track_epochs(gan, minority, n_probe=int(ctx.cfg["fidelity"]["probe_rows"]))


def _sample(gan: Any, method: str, n: int, label: int, seed: int | None) -> np.ndarray:
    """``n`` generated raw rows of class ``label``; ``seed`` None = the model's own sampling seed."""
    if method == "ctgan":
        return gan.sample(n, label)
    s, d, _ = gan.sample(n, label=label, random_state=seed)
    return np.hstack([s, d.reshape(len(s), -1)]).astype(np.float64)


def fit_gan(ctx: SeedContext, method: str, log: RunLog) -> tuple[UciArrays, dict[str, Any]]:
    """Fit one GAN on the training part; return the oversampled part and the part 2 / part 3 results."""
    import joblib

    train, seed = ctx.train, ctx.seed
    gan = _gan_model(ctx, method)
    # ctgan's data transformer asks joblib for all cores; keep it on this one.
    with joblib.parallel_config(backend="sequential"), timed() as t_fit:
        if method == "ctgan":
            gan.fit(train)
        else:
            gan.fit(train.static, train.dynamic, train.y, train.mask)
    n_new = ctx.n_new()
    with joblib.parallel_config(backend="sequential"), timed() as t_gen:
        # The oversampling draw uses the model's own sampling seed, as ACTGAN.oversample (and models_uci) do.
        new_raw = _sample(gan, method, n_new, 1, None)
    generated = fid.raw_to_arrays(new_raw, np.ones(n_new, dtype=np.int64), train)
    ctx.save_generated(ctx.cache_path(method, log.settings(1, method)), generated)
    augmented = fid.concat(train, generated)

    # Part 2: a fresh synthetic training set of the real part's size and class counts (another draw).
    with joblib.parallel_config(backend="sequential"), timed() as t_fid:
        n1, n0 = int(train.y.sum()), int((train.y == 0).sum())
        syn1 = _sample(gan, method, n1, 1, seed + 1000)
        syn0 = _sample(gan, method, n0, 0, seed + 2000)
        real1 = train.raw[train.y == 1].astype(np.float64)
        shapes = fid.column_shapes(real1, syn1)
        syn = fid.raw_to_arrays(np.vstack([syn1, syn0]), np.r_[np.ones(n1), np.zeros(n0)].astype(np.int64), train)
        fidelity = {
            "column_shapes": shapes,
            "shape_continuous": float(np.mean([v for k, v in shapes.items() if k not in fid.CATEGORICAL])),
            "shape_categorical": float(np.mean([v for k, v in shapes.items() if k in fid.CATEGORICAL])),
            "correlation_similarity": fid.correlation_similarity(real1, syn1),
            "detection": fid.detection(real1, syn1, seed, int(ctx.cfg["fidelity"]["detection_folds"])),
            "scaled_w1": fid.scaled_w1(real1, syn1),
            "tstr_auc": ctx.xgb_auc(syn),
            "trtr_auc": ctx.xgb_auc(train),
            "n_synthetic": {"label1": n1, "label0": n0},
        }
    LOG.info("seed %d part 2 %-6s shapes %.3f/%.3f corr %.3f detection AUC %.3f TSTR %.4f (TRTR %.4f)", seed, method,
             fidelity["shape_continuous"], fidelity["shape_categorical"], fidelity["correlation_similarity"],
             fidelity["detection"]["auc"], fidelity["tstr_auc"], fidelity["trtr_auc"])  # fmt: skip

    # Part 3: training curves and histograms of the oversampling rows against the real minority.
    training: dict[str, Any] = {"histograms": fid.histograms(real1, new_raw)}
    if method == "ctgan":
        training["per_epoch"] = gan.history_
    else:
        hist = gan.history_
        training["per_iteration"] = {k: [round(r[k], 5) for r in hist] for k in ("g_loss", "d_loss", "wasserstein")}
        training["iterations_per_epoch"] = max(1, len(train.y) // gan.batch_size)
        training["probe_w1"] = [round(v, 5) for v in gan.probe_w1_]
    out = {
        "info": {"fit": t_fit.as_dict(), "generate": t_gen.as_dict()},
        "fidelity": fidelity,
        "fidelity_timing": {"fit": t_fit.as_dict(), "metrics": t_fid.as_dict()},
        "training": training,
    }
    return augmented, out


def gan_augmented(ctx: SeedContext, log: RunLog) -> UciArrays:
    """The ACTGAN-oversampled training part: from the cache, or by fitting ACTGAN again (same seed)."""
    cached = ctx.load_generated(ctx.cache_path("actgan", log.settings(1, "actgan")))
    if cached is not None:
        return fid.concat(ctx.train, cached)
    LOG.info("seed %d: no cached ACTGAN rows, fitting ACTGAN for part 4", ctx.seed)
    from credspark.models.actgan import ACTGAN

    gan = ACTGAN(spec=ctx.train.spec, random_state=ctx.seed, **ctx.cfg["actgan"])
    gan.fit(ctx.train.static, ctx.train.dynamic, ctx.train.y, ctx.train.mask)
    generated = fid.raw_to_arrays(_sample(gan, "actgan", ctx.n_new(), 1, None), np.ones(ctx.n_new(), int), ctx.train)
    ctx.save_generated(ctx.cache_path("actgan", log.settings(1, "actgan")), generated)
    return fid.concat(ctx.train, generated)


# ------------------------------------------------------------------------------------------- part 4
def run_ablation(ctx: SeedContext, variant: str, log: RunLog) -> None:
    """ResNet-LSTM with the attention switches of ``variant``, then focal XGBoost on its embedding."""
    spatial = variant in ("spatial", "both", "both_no_gan")
    temporal = variant in ("temporal", "both", "both_no_gan")
    timing: dict[str, Any] = {}
    with timed() as t:
        train = ctx.train if variant == "both_no_gan" else gan_augmented(ctx, log)
    timing["oversampled_rows"] = t.as_dict()
    cfg = dict(ctx.cfg["resnet"], spatial_attention=spatial, temporal_attention=temporal)
    with timed() as t:
        rl = fit_resnet_lstm(train, ctx.valid, cfg, ctx.seed, verbose=False)
    timing["resnet_lstm"] = t.as_dict()
    results: dict[str, Any] = {
        "info": {"epochs": len(rl.history_["train_loss"]), "best_epoch": int(rl.best_epoch_), "n_train": len(train.y)}
    }
    with timed() as t:
        results["head"] = ctx.scores(lambda p: rl.predict_proba(p.static, p.dynamic, p.mask), ctx.valid, ctx.test)
    timing["head"] = t.as_dict()
    emb = {
        k: rl.embed(p.static, p.dynamic, p.mask)
        for k, p in (("train", train), ("valid", ctx.valid), ("test", ctx.test))
    }
    raw = {"train": train.raw, "valid": ctx.valid.raw, "test": ctx.test.raw}
    for name, feats in (("emb_focal", emb), ("emb_raw_focal", {k: np.hstack([emb[k], raw[k]]) for k in emb})):
        with timed() as t:
            predict = fit_focal_xgb(feats["train"], train.y, feats["valid"], ctx.valid.y, ctx.cfg["focal"], ctx.seed,
                                    ctx.threads)  # fmt: skip
            results[name] = evaluate_scores(ctx.valid.y, predict(feats["valid"]), ctx.test.y, predict(feats["test"]))
        timing[name] = t.as_dict()
    timing["total"] = {k: round(sum(v[k] for v in timing.values()), 1) for k in ("wall_s", "cpu_s")}
    m = results["emb_raw_focal"]
    LOG.info("seed %d part 4 %-12s emb+raw->focal AUC %.4f F1 %.4f KS %.4f (head %.4f, emb %.4f)", ctx.seed, variant,
             m["auc"], m["f1"], m["ks"], results["head"]["auc"], results["emb_focal"]["auc"])  # fmt: skip
    log.append(4, variant, ctx.seed, results, timing)


def set_torch_threads(threads: int) -> None:
    """torch at ``threads`` intra-op threads (the process default would use every core)."""
    import torch

    torch.set_num_threads(threads)


# ------------------------------------------------------------------------------------------- part 5
def run_baseline(ctx: SeedContext, method: str, log: RunLog) -> None:
    """Fit one Table 6 baseline on the (real) training part and score it."""
    import paper_baselines as pb

    cfg, seed, train = ctx.cfg, ctx.seed, ctx.train
    info: dict[str, Any] = {}
    with timed() as t:
        if method == "xgb":
            predict = fit_plain_xgb(train.raw, train.y, ctx.valid.raw, ctx.valid.y, cfg["xgb"], seed, ctx.threads)
            metrics = ctx.scores(predict, ctx.valid.raw, ctx.test.raw)
        elif method in ("adaboost", "rusboost", "smoteboost", "cusboost"):
            model = _booster(method, cfg, seed).fit(train.raw, train.y)
            metrics = ctx.scores(lambda X: model.predict_proba(X)[..., -1] if method == "adaboost"
                                 else model.predict_proba(X), ctx.valid.raw, ctx.test.raw)  # fmt: skip
            info = {"rounds": len(model.estimators_)}
        else:
            net = pb.fit_network(_network_builder(method, cfg), train, ctx.valid, cfg["nets"], seed)
            info = {"epochs": len(net.history["train_loss"]), "best_epoch": net.best_epoch}
            if method == "rnn_rf":
                from sklearn.ensemble import RandomForestClassifier

                rf = RandomForestClassifier(n_estimators=int(cfg["rnn_rf"]["rf_trees"]), n_jobs=1, random_state=seed,
                                            min_samples_leaf=int(cfg["rnn_rf"]["rf_min_samples_leaf"]))  # fmt: skip
                rf.fit(net.encode(train), train.y)
                metrics = ctx.scores(lambda p: rf.predict_proba(net.encode(p))[:, 1], ctx.valid, ctx.test)
            else:
                metrics = ctx.scores(net.predict_proba, ctx.valid, ctx.test)
    LOG.info("seed %d part 5 %-10s AUC %.4f F1 %.4f recall %.4f KS %.4f", seed, method, metrics["auc"], metrics["f1"],
             metrics["recall"], metrics["ks"])  # fmt: skip
    log.append(5, method, seed, {"metrics": metrics, "info": info}, {"total": t.as_dict()})


def _booster(method: str, cfg: dict[str, Any], seed: int) -> Any:
    import paper_baselines as pb

    b = cfg["boost"]
    common = {"n_estimators": int(b["n_estimators"]), "learning_rate": float(b["learning_rate"]), "random_state": seed}
    if method in ("smoteboost", "rusboost", "cusboost"):
        extra = {k: v for k, v in cfg[method].items() if k != "booster"}
        sampler = {"smoteboost": "smote", "rusboost": "rus", "cusboost": "cluster"}[method]
        return pb.SampledBoostClassifier(sampler=sampler, max_depth=int(b["max_depth"]), **common, **extra)
    from sklearn.ensemble import AdaBoostClassifier
    from sklearn.tree import DecisionTreeClassifier

    return AdaBoostClassifier(estimator=DecisionTreeClassifier(max_depth=int(b["max_depth"])), **common)


def _network_builder(method: str, cfg: dict[str, Any]) -> Callable[[int, int, int], Any]:
    import paper_baselines as pb

    if method == "cnn":
        c = cfg["cnn"]
        return lambda s, T, C: pb.CNNNet(n_static=s, n_dynamic=T * C, filters=tuple(c["filters"]),
                                         kernels=tuple(c["kernels"]), hidden=int(c["hidden"]))  # fmt: skip
    if method == "lstm":
        return lambda s, T, C: pb.LSTMNet(n_static=s, n_channels=C, hidden=int(cfg["lstm"]["hidden"]))
    r = cfg["rnn_rf"]
    return lambda s, T, C: pb.RNNFusionNet(n_static=s, n_channels=C, hidden=int(r["hidden"]), fused=int(r["fused"]))


# ----------------------------------------------------------------------------------------------- plan
def plan(seeds: Sequence[int], parts: set[int]) -> list[tuple[int, int, str]]:
    """Units in run order ``(seed, part, method)``: per seed cheap ones first, so a stopped run has the most
    complete rows. GAN units stand for parts 1-3 (listed under part 1)."""
    out = []
    for seed in seeds:
        if parts & {1}:
            out += [(seed, 1, m) for m in ("none", "smote", "adasyn", "borderline")]
        if 5 in parts:
            out += [(seed, 5, m) for m in ("xgb", "adaboost", "rusboost", "cusboost", "smoteboost")]
        if parts & {1, 2, 3}:
            out += [(seed, 1, m) for m in ("cgan", "ctgan", "actgan")]
        if 5 in parts:
            out += [(seed, 5, m) for m in ("cnn", "lstm", "rnn_rf")]
        if 4 in parts:
            out += [(seed, 4, m) for m in ABLATIONS]
    return out


def is_done(log: RunLog, seed: int, part: int, method: str) -> bool:
    """A GAN unit is done when its part 1, 2 and 3 records all are."""
    if part == 1 and method in GANS:
        return all(log.find(p, method, seed) for p in (1, 2, 3))
    return log.find(part, method, seed) is not None


# ----------------------------------------------------------------------------------------------- main
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line arguments."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("data", nargs="?", default=str(DEFAULT_UCI_CSV), help="UCI CSV (default: the shared copy)")
    p.add_argument("--seeds", default="0,1,2,3,4", help="comma-separated seeds (default 0..4)")
    p.add_argument("--parts", default="1,2,3,4,5", help="comma-separated parts to run (default all)")
    p.add_argument("--log", default=str(ROOT / "docs" / "paper_runs.jsonl"), help="JSON-lines log of finished units")
    p.add_argument("--out", default=str(ROOT / "docs" / "results.md"),
                   help="the Markdown report; the generated block of its section is replaced, the rest kept")
    p.add_argument("--img", default=None, help="folder for the plots (default: img/paper next to --out)")
    p.add_argument("--workdir", default=str(ROOT / "warehouse" / "bench" / "paper"), help="cache of generated rows")
    p.add_argument("--threads", type=int, default=1, help="torch and xgboost threads (default 1)")
    p.add_argument("--rows", type=int, default=None, help="stratified subsample of this many rows first")
    p.add_argument("--quick", action="store_true", help="tiny epochs and widths (smoke run)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override a setting")
    p.add_argument("--report-only", action="store_true", help="run nothing; rebuild the report from the log")
    p.add_argument("--no-plots", action="store_true", help="tables only (no PNG files)")
    p.add_argument("--max-minutes", type=float, default=None, help="start no new unit after this many minutes")
    return p.parse_args(argv)


def _shown_path(path: str | Path) -> str:
    """``path`` relative to the repository when it is inside it (the report should not name a machine)."""
    p = Path(path).resolve()
    return str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(p)


def main(argv: Sequence[str] | None = None) -> int:
    """Run what is missing, rebuild the report, print the JSON summary as the last stdout line."""
    import paper_report

    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    for name in ("credspark", "rdt", "ctgan"):  # per-column chatter from the GAN packages
        logging.getLogger(name).setLevel(logging.WARNING)
    set_torch_threads(args.threads)
    cfg = build_config(args.quick, args.set)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    parts = {int(p) for p in args.parts.split(",") if p.strip()}
    if not parts <= set(PARTS):
        raise SystemExit(f"--parts: choose from {sorted(PARTS)}")
    data = _subsample(load_uci_arrays(args.data), args.rows)
    log = RunLog(args.log, cfg, fingerprint(data))
    command = "python benchmarks/paper.py " + " ".join(sys.argv[1:] if argv is None else argv)
    ran: list[str] = []
    start = time.monotonic()
    with timed() as total:
        if not args.report_only:
            contexts: dict[int, SeedContext] = {}
            for seed, part, method in plan(seeds, parts):
                if is_done(log, seed, part, method):
                    continue
                if args.max_minutes is not None and time.monotonic() - start > 60 * args.max_minutes:
                    LOG.info("--max-minutes reached; stopping before seed %d part %d %s", seed, part, method)
                    break
                ctx = contexts.get(seed) or contexts.setdefault(
                    seed, SeedContext(data, seed, cfg, args.threads, Path(args.workdir))
                )
                {1: run_oversampler, 4: run_ablation, 5: run_baseline}[part](ctx, method, log)
                ran.append(f"{seed}/{part}/{method}")
    meta = {"command": command, "threads": args.threads, "rows": len(data.y), "quick": args.quick, "config": cfg,
            "log": _shown_path(args.log), "data": log.fingerprint}  # fmt: skip
    img = Path(args.img) if args.img else Path(args.out).parent / "img" / "paper"
    summary = paper_report.write_report(log.current(), meta, Path(args.out), None if args.no_plots else img)
    emit_json({
        "benchmark": "paper",
        "command": command,
        "seeds_requested": seeds,
        "parts_requested": sorted(parts),
        "units_run": ran,
        "units_in_log": len(log.current()),
        "summary": summary,
        "report": str(args.out),
        "wall_s": round(total.wall, 1),
        "cpu_s": round(total.cpu, 1),
        "peak_rss_mb": peak_rss_mb(),
    })  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
