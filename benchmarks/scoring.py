"""Benchmark of the nightly scoring job: Spark end to end vs the in-process limit, same bundle, same rows.

    python benchmarks/scoring.py                      # 1,000,000 customers (several minutes)
    python benchmarks/scoring.py --rows 20000         # quick smoke run

What it does:

1. publishes a paper-sized bundle with random-ish weights: ResNetLSTM with the library defaults (ResNet
   filters 16/32/64/128, BiLSTM 64 per direction, embedding 32) trained for 1 epoch on 512 synthetic rows,
   and a 300-tree focal XGBoost (depth 4) on its embeddings with random labels;
2. synthesises the features partition directly in Spark with the real feature job's FeatureSpec (42 static
   columns when every source exists, 12 channels, T = 12): random values, not the generator + feature job
   (which would measure the feature job, not scoring), written as a Delta partition with the spec properties;
3. (a) runs the scoring job body (``score_portfolio``: verify, score, write, monitor) on ``local[cores]``;
   rows/s are given for the scoring + write stage and for the whole body;
4. (b) in the same process: the same bundle scores the first ``--inprocess-rows`` rows of the same partition
   (as pandas) in one Python thread, with model batches of 10,000 (the issue's definition) and 1,000 (the
   job's default); the limit is that rate times the cores Spark used. The process is tuned as a worker is
   (``tune_scoring_process``) and embeds as the workers do (the folded network); a third run at batch 1,000
   uses the eager network instead, and ``pd_folded_vs_eager`` compares the two runs' scores row by row;
5. peak resident memory per Python worker and of the JVM, and their CPU seconds (sampled every 0.2 s;
   only this process's descendants). Rows per CPU second are also given: on a loaded machine they compare
   Spark with the in-process limit where wall-clock rates cannot.

The last line of stdout is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)

DAY = dt.date(2025, 12, 31)
MODEL_NAME = "bench"


def bench_spec():
    """The feature job's FeatureSpec when customers, transactions and statements all exist."""
    from credspark.features.sequences import SUPPORTED_CHANNELS
    from credspark.features.static import static_features
    from credspark.models.spec import FeatureSpec

    statics, _ = static_features(("customers", "transactions", "statements"), (1, 3, 6, 12))
    return FeatureSpec(static=tuple(statics), channels=tuple(SUPPORTED_CHANNELS), T=12, version="1")


def synthetic_arrays(spec, n: int, seed: int):
    """Random static/dynamic/mask arrays in the spec's layout (categoricals take valid codes)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    static = rng.normal(size=(n, spec.n_static)).astype(np.float32)
    for j, f in enumerate(spec.static):
        if f.kind == "categorical":
            static[:, j] = rng.choice(np.asarray(f.categories), size=n)
    dynamic = rng.normal(size=(n, spec.T, spec.C)).astype(np.float32)
    mask = np.ones((n, spec.T), dtype=np.uint8)
    mask[: n // 5, : spec.T // 3] = 0
    return static, dynamic, mask


def publish_bench_bundle(warehouse: str, spec, trees: int = 300) -> Path:
    """Paper-sized ResNetLSTM (library defaults, 1 epoch) + 300-tree focal XGBoost; published as current."""
    import numpy as np
    import torch

    from credspark.io.model_store import model_dir, set_current
    from credspark.models.bundle import save_bundle
    from credspark.models.focal_xgb import FocalXGBClassifier
    from credspark.models.resnet_lstm import ResNetLSTM

    torch.set_num_threads(1)
    static, dynamic, mask = synthetic_arrays(spec, 2000, seed=0)
    rng = np.random.default_rng(1)
    y = (static[:, 7] + dynamic[:, -1, 0] + rng.normal(size=2000) > 1.5).astype(int)
    emb = ResNetLSTM(spec=spec, epochs=1, batch_size=256, random_state=0)
    emb.fit(static[:512], dynamic[:512], mask[:512], y[:512])
    X = emb.embed(static, dynamic, mask)
    names = [f"emb_{i}" for i in range(X.shape[1])]
    clf = FocalXGBClassifier(n_estimators=trees, max_depth=4, random_state=0, n_jobs=1, min_child_weight=0.0,
                             feature_names=names).fit(X, rng.integers(0, 2, size=2000))
    target = model_dir(warehouse, MODEL_NAME, "bench-v1")
    save_bundle(target, spec=spec, embedder=emb, classifier=clf, metadata={"benchmark": True},
                created_at="2026-01-01T00:00:00+00:00")
    set_current(warehouse, MODEL_NAME, "bench-v1")
    return target


def write_features(spark, cfg, spec, rows: int, partitions: int) -> float:
    """Synthesise ``rows`` feature rows in Spark (no Python per row) and write them as the DAY partition."""
    from pyspark.sql import functions as F

    from credspark.features.spec import feature_table_properties
    from credspark.io.tables import overwrite_partitions, set_properties, table_ref

    t = time.perf_counter()
    cols = [F.col("id").alias("customer_id"), F.lit(DAY).alias("as_of_date")]
    for j, f in enumerate(spec.static):
        if f.kind == "categorical":
            cats = list(f.categories)
            idx = (F.rand(100 + j) * len(cats)).cast("int")
            value = F.element_at(F.array(*[F.lit(c) for c in cats]), idx + 1)
            cols.append(value.cast("int").alias(f.name))
        elif f.kind in ("integer", "binary"):
            cols.append((F.rand(100 + j) * 60).cast("int").alias(f.name))
        else:
            cols.append(F.randn(100 + j).alias(f.name))
    n_seq = spec.T * spec.C
    cols.append(F.array(*[F.randn(1000 + k).cast("float") for k in range(n_seq)]).alias("seq"))
    first = F.when(F.col("id") % 5 == 0, F.lit(spec.T // 3)).otherwise(F.lit(0))
    cols.append(F.array(*[F.when(F.lit(t) >= first, 1).otherwise(0).cast("tinyint") for t in range(spec.T)])
                .alias("seq_mask"))
    cols += [F.lit(None).cast("int").alias("label"), F.lit(spec.version).alias("feature_version")]
    df = spark.range(0, rows, 1, partitions).select(*cols)
    ref = table_ref(cfg, cfg.tables.features)
    overwrite_partitions(df, ref, "as_of_date", [DAY])
    set_properties(spark, ref, feature_table_properties(spec, absent_sources=(), left_out={}, horizon_months=12))
    return time.perf_counter() - t


class ProcessMonitor:
    """Samples this process's descendants (the JVM and Spark's Python workers) in a background thread.

    Only descendants are looked at, so other Spark applications on the machine do not count. Records the peak
    resident memory of any one Python worker and of the JVM, and the CPU seconds both used while running
    (from each process's last sample, minus what it had used at the start).
    """

    def __init__(self, interval: float = 0.2) -> None:
        self.interval, self.worker_peak, self.jvm_peak, self.workers_seen = interval, 0, 0, set()
        self._cpu: dict[int, tuple[str, float]] = {}
        self._base: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self, first: bool = False) -> None:
        import psutil

        for p in psutil.Process(os.getpid()).children(recursive=True):
            try:
                cmd = " ".join(p.cmdline())
                rss = p.memory_info().rss
                cpu = sum(p.cpu_times()[:2])
            except psutil.Error:
                continue
            kind = "worker" if "pyspark" in cmd and "java" not in cmd else ("jvm" if "java" in cmd else "other")
            if first:
                self._base[p.pid] = cpu
            self._cpu[p.pid] = (kind, cpu)
            if kind == "worker":
                self.workers_seen.add(p.pid)
                self.worker_peak = max(self.worker_peak, rss)
            elif kind == "jvm":
                self.jvm_peak = max(self.jvm_peak, rss)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def cpu_seconds(self, kind: str) -> float:
        """CPU seconds used by processes of one kind (``worker`` or ``jvm``) while monitored."""
        return sum(c - self._base.get(pid, 0.0) for pid, (k, c) in self._cpu.items() if k == kind)

    def __enter__(self) -> ProcessMonitor:
        self._sample(first=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


def inprocess_rate(bundle_dir: Path, spec, pdf, batch: int, threads: int, contribs: str = "approx",
                   embed: str = "scoring") -> dict:
    """Rows/s (wall and per CPU second) of score_frame in this process with ``threads`` torch threads.

    ``embed="scoring"`` is what the Spark workers run (the folded network); ``"eager"`` swaps in the
    bundle's eager ``embed`` (the path before the folding) for comparison in the same process. Both run after
    :func:`tune_scoring_process`, as a worker does.
    """
    import torch

    from credspark.models.bundle import load_bundle
    from credspark.scoring.partition import ScoreParams, ScoringModel, score_frame, tune_scoring_process

    tune_scoring_process()
    torch.set_num_threads(threads)
    model = ScoringModel(load_bundle(bundle_dir, expected_spec=spec), xgb_threads=threads)
    if embed == "eager":
        model._embed, model._embed_takes_batch = model.bundle.embedder.embed, True
    params = ScoreParams(digest="bench", spec=spec.to_dict(), model_batch_size=batch, reason_contribs=contribs)
    score_frame(pdf.iloc[: min(len(pdf), 2 * batch)], model, params)  # warm-up (allocator, oneDNN kernels)
    r0, c0, t = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.process_time(), time.perf_counter()
    out = score_frame(pdf, model, params)
    secs, cpu = time.perf_counter() - t, time.process_time() - c0
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - r0
    return {"batch": batch, "threads": threads, "contribs": contribs, "embed": embed, "rows": len(pdf),
            "seconds": round(secs, 2), "rows_per_s": round(len(pdf) / secs), "rows_per_cpu_s": round(len(pdf) / cpu),
            "minor_faults_per_row": round(faults / len(pdf), 2), "_pd": out["pd"].to_numpy()}


def component_times(bundle_dir: Path, spec, pdf, batch: int, threads: int) -> dict:
    """Seconds per 10,000 rows of each step at one batch size: arrays, embedding (eager and as scored), XGBoost."""
    import torch
    import xgboost as xgb

    from credspark.models.bundle import load_bundle
    from credspark.models.inputs import arrays_from_frame

    torch.set_num_threads(threads)
    b = load_bundle(bundle_dir, expected_spec=spec)
    n = len(pdf)
    out = {"arrays": 0.0, "embed_eager": 0.0, "embed": 0.0, "xgb_predict": 0.0, "xgb_contribs_approx": 0.0,
           "xgb_contribs": 0.0}
    folded = b.embedder.inference_embedder()  # what scoring runs
    for f in (b.embedder.embed, folded):  # warm-up
        f(*arrays_from_frame(pdf.iloc[:batch], spec), batch_size=batch)
    for start in range(0, n, batch):
        chunk = pdf.iloc[start : start + batch]
        t = [time.perf_counter()]
        s, d, m = arrays_from_frame(chunk, spec)
        t.append(time.perf_counter())
        b.embedder.embed(s, d, m, batch_size=len(chunk))
        t.append(time.perf_counter())
        e = folded(s, d, m, batch_size=len(chunk))
        t.append(time.perf_counter())
        dm = xgb.DMatrix(e, nthread=threads, feature_names=b.feature_names)
        b.classifier.booster_.set_param({"nthread": threads})
        b.classifier.booster_.predict(dm, output_margin=True)
        t.append(time.perf_counter())
        b.classifier.booster_.predict(dm, pred_contribs=True, approx_contribs=True)
        t.append(time.perf_counter())
        b.classifier.booster_.predict(dm, pred_contribs=True)
        t.append(time.perf_counter())
        for k, t0, t1 in zip(out, t, t[1:]):
            out[k] += t1 - t0
    scale = 10_000 / n
    return {"batch": batch, "threads": threads, **{f"{k}_s_per_10k": round(v * scale, 3) for k, v in out.items()},
            "activation_mb_per_conv_map": round(batch * 128 * b.embedder.preprocessor_.n_static_out_ * 4 / 2**20, 1)}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1_000_000, help="customers to score (default 1,000,000)")
    p.add_argument("--cores", type=int, default=2, help="Spark local[N] cores (default 2)")
    p.add_argument("--partitions", type=int, default=None, help="files of the features partition (default 4*cores)")
    p.add_argument("--inprocess-rows", type=int, default=100_000, help="rows for the in-process measures")
    p.add_argument("--model-batch", type=int, default=None, help="score.model_batch_size for Spark (default config)")
    p.add_argument("--work-dir", default=None, help="warehouse folder (default: a temp folder)")
    p.add_argument("--skip-components", action="store_true", help="skip the per-step timing study")
    args = p.parse_args(argv)

    import numpy as np
    from pyspark.sql import functions as F

    from credspark.config import config_from_dict
    from credspark.io.spark import build_session
    from credspark.io.tables import read_table, table_ref
    from credspark.job_requests import ScoreRequest
    from credspark.pipelines.score import score_portfolio
    from credspark.runner import Run

    wh = args.work_dir or tempfile.mkdtemp(prefix="bench-scoring-")
    score = {"model_name": MODEL_NAME}
    if args.model_batch:
        score["model_batch_size"] = args.model_batch
    cfg = config_from_dict({
        "warehouse": {"path": wh},
        "spark": {"master": f"local[{args.cores}]", "shuffle_partitions": 2 * args.cores, "driver_memory": "4g",
                  "conf": {"spark.databricks.delta.snapshotPartitions": str(args.cores)}},
        "score": score,
    })  # fmt: skip
    result: dict = {"rows": args.rows, "cores": args.cores, "cpu_count": os.cpu_count(),
                    "load_avg_start": [round(x, 2) for x in os.getloadavg()], "warehouse": wh}
    spec = bench_spec()
    t = time.perf_counter()
    bundle_dir = publish_bench_bundle(wh, spec)
    result["bundle_s"] = round(time.perf_counter() - t, 1)
    print(f"bundle published in {result['bundle_s']} s", file=sys.stderr, flush=True)

    spark = build_session(cfg.spark, "bench-scoring", wh)
    secs = write_features(spark, cfg, spec, args.rows, args.partitions or 4 * args.cores)
    result["features_write_s"] = round(secs, 1)
    print(f"{args.rows} feature rows written in {result['features_write_s']} s", file=sys.stderr, flush=True)

    # (a) the Spark job body, end to end.
    summary = Run(job="score_portfolio", run_id="bench-scoring-run", started_at="2026-01-01T00:00:00+00:00")
    with ProcessMonitor() as mem:
        t = time.perf_counter()
        code = score_portfolio(spark, cfg, ScoreRequest(score_date=DAY), summary).exit_code
        total = time.perf_counter() - t
    scored = summary.counts.get("scored", 0)
    stage = summary.durations_s.get("score_and_write", float("nan"))
    result["spark"] = {
        "exit_code": code, "scored": scored, "body_s": round(total, 1), "score_and_write_s": stage,
        "durations_s": summary.durations_s, "rows_per_s_score_and_write": round(scored / stage),
        "rows_per_s_end_to_end": round(scored / total), "model_batch_size": cfg.score.model_batch_size,
        "arrow_batch_size": cfg.spark.arrow_batch_size, "torch_threads_per_worker": cfg.score.torch_threads,
        "python_workers_seen": len(mem.workers_seen), "peak_worker_rss_mb": round(mem.worker_peak / 2**20),
        "peak_jvm_rss_mb": round(mem.jvm_peak / 2**20), "worker_cpu_s": round(mem.cpu_seconds("worker"), 1),
        "jvm_cpu_s": round(mem.cpu_seconds("jvm"), 1),
        "rows_per_worker_cpu_s": round(scored / max(mem.cpu_seconds("worker"), 1e-9)),
    }  # fmt: skip
    print(f"spark: {result['spark']}", file=sys.stderr, flush=True)

    # (b) the in-process limit on the same rows of the same partition.
    n_in = min(args.rows, args.inprocess_rows)
    features = read_table(spark, table_ref(cfg, cfg.tables.features)).where(F.col("as_of_date") == F.lit(DAY))
    pdf = features.orderBy("customer_id").limit(n_in).toPandas()
    spark.stop()
    runs = [inprocess_rate(bundle_dir, spec, pdf, 10_000, 1), inprocess_rate(bundle_dir, spec, pdf, 1_000, 1),
            inprocess_rate(bundle_dir, spec, pdf, 1_000, 1, embed="eager")]
    if not args.skip_components:
        runs.append(inprocess_rate(bundle_dir, spec, pdf, 10_000, args.cores))
        runs.append(inprocess_rate(bundle_dir, spec, pdf, 1_000, args.cores))
        runs.append(inprocess_rate(bundle_dir, spec, pdf, 1_000, 1, contribs="exact"))
    # Scores of the folded network (what the workers run) against the eager one, same rows.
    gap = np.abs(runs[1]["_pd"] - runs[2]["_pd"])
    result["pd_folded_vs_eager"] = {"rows": int(gap.size), "max_abs_diff": float(gap.max()),
                                    "rows_over_1e-6": int((gap > 1e-6).sum())}
    for r in runs:
        del r["_pd"]
    result["inprocess"] = runs
    if not args.skip_components:
        sample = pdf.iloc[: min(len(pdf), 40_000)]
        result["components"] = [component_times(bundle_dir, spec, sample, b, th)
                                for b in (1_000, 10_000) for th in (1, args.cores)]
    limit_10k = runs[0]["rows_per_s"] * args.cores
    limit_1k = runs[1]["rows_per_s"] * args.cores
    spark_rate = result["spark"]["rows_per_s_score_and_write"]
    result["inprocess_limit_rows_per_s_batch10k"] = limit_10k
    result["inprocess_limit_rows_per_s_batch1k"] = limit_1k
    result["ratio_spark_to_limit_batch10k"] = round(spark_rate / limit_10k, 3)
    result["ratio_spark_to_limit_batch1k"] = round(spark_rate / limit_1k, 3)
    result["target_ratio_0_8_met"] = spark_rate >= 0.8 * limit_10k
    # Load-independent view: model CPU per row in Spark's workers vs in this process (same batch size).
    same = next(r for r in runs
                if r["batch"] == cfg.score.model_batch_size and r["threads"] == 1 and r["embed"] == "scoring")
    result["cpu_efficiency_workers_vs_inprocess"] = round(result["spark"]["rows_per_worker_cpu_s"]
                                                          / same["rows_per_cpu_s"], 3)
    result["seconds_per_million"] = round(1e6 / result["spark"]["rows_per_s_end_to_end"], 1)
    result["target_1m_in_120s_met"] = result["seconds_per_million"] <= 120
    result["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    return result


if __name__ == "__main__":
    print(json.dumps(main(), sort_keys=True))
