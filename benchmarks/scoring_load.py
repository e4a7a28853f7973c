"""Load benchmark of the nightly scoring job: N generated customers, the job's default configuration, time
and peak memory. A benchmark, not a test (the 5,000,000-row run takes the better part of an hour on 2 cores).

    python benchmarks/scoring_load.py                   # 5,000,000 customers
    python benchmarks/scoring_load.py --rows 200000     # a quick run

What it does (the pieces come from ``benchmarks/scoring.py``):

1. publishes the paper-sized bundle (``publish_bench_bundle``: ResNet-LSTM library defaults, 300-tree focal
   XGBoost) as ``models/bench``;
2. synthesises the features partition of N customers directly in Spark with the feature job's FeatureSpec
   (``write_features``; not timed as part of the job);
3. runs the scoring job exactly as ``spark-submit jobs/score_portfolio.py`` would (``jobs.score_portfolio.main``
   with its own config: ``conf/score_portfolio.yaml`` + defaults; only ``--warehouse``, ``--score-date`` and
   ``score.model_name`` given), in this process, so one session serves the synthesis and the job;
4. samples the memory of this process and every descendant (the JVM, Spark's Python workers) every 0.2 s:
   peak of the driver's Python process, of the JVM, of the largest Python worker, and of all of them together.

"Without running out of memory" = the job exits 0 (a JVM OutOfMemoryError or a worker killed by the kernel
fails it) and the peaks stay below the machine's memory. The last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from scoring import DAY, MODEL_NAME, ProcessMonitor, bench_spec, publish_bench_bundle, write_features  # noqa: E402


class TotalMemoryMonitor(ProcessMonitor):
    """ProcessMonitor plus the peaks of this process and of the summed resident memory of it and its descendants."""

    def __init__(self, interval: float = 0.2) -> None:
        super().__init__(interval)
        self.total_peak = self.driver_peak = 0

    def _sample(self, first: bool = False) -> None:
        import psutil

        super()._sample(first)
        me = psutil.Process(os.getpid())
        total = me.memory_info().rss
        # Sampled, not ru_maxrss: this process also trained the benchmark bundle before the job ran.
        self.driver_peak = max(self.driver_peak, total)
        for p in me.children(recursive=True):
            try:
                total += p.memory_info().rss
            except psutil.Error:
                continue
        self.total_peak = max(self.total_peak, total)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=5_000_000, help="customers to score (default 5,000,000)")
    p.add_argument(
        "--partitions",
        type=int,
        default=None,
        help="files of the synthetic features partition (default: one per 100,000 rows, at least 4)",
    )
    p.add_argument("--work-dir", default=None, help="warehouse folder (default: a new temporary folder)")
    args = p.parse_args(argv)

    import psutil

    from credspark.config import load_config
    from credspark.io.spark import build_session
    from jobs import score_portfolio

    wh = args.work_dir or tempfile.mkdtemp(prefix="bench-scoring-load-")
    job_argv = ["--score-date", DAY.isoformat(), "--warehouse", wh, "--set", f"score.model_name={MODEL_NAME}"]
    cfg = load_config("score_portfolio", score_portfolio.parse(job_argv)[0])
    result: dict = {"rows": args.rows, "warehouse": wh, "cpu_count": os.cpu_count(),
                    "machine_memory_mb": round(psutil.virtual_memory().total / 2**20),
                    "load_avg_start": [round(x, 2) for x in os.getloadavg()],
                    "config": {"master": cfg.spark.master, "driver_memory": cfg.spark.driver_memory,
                               "arrow_batch_size": cfg.score.arrow_batch_size or cfg.spark.arrow_batch_size,
                               "model_batch_size": cfg.score.model_batch_size,
                               "torch_threads": cfg.score.torch_threads}}  # fmt: skip
    spec = bench_spec()
    t = time.perf_counter()
    publish_bench_bundle(wh, spec)
    result["bundle_s"] = round(time.perf_counter() - t, 1)
    print(f"bundle published in {result['bundle_s']} s", file=sys.stderr, flush=True)

    spark = build_session(cfg.spark, "score_portfolio", wh)  # the session the job's own build_session returns
    partitions = args.partitions or max(4, args.rows // 100_000)
    result["features_write_s"] = round(write_features(spark, cfg, spec, args.rows, partitions), 1)
    print(f"{args.rows} feature rows written in {result['features_write_s']} s", file=sys.stderr, flush=True)

    with TotalMemoryMonitor() as mem:
        t = time.perf_counter()
        try:
            score_portfolio.main(job_argv)
            code = 0
        except SystemExit as e:
            code = int(e.code or 0)
        seconds = time.perf_counter() - t
    runs = sorted((Path(wh) / "_runs").glob("score_portfolio-*.json"), key=lambda q: q.stat().st_mtime_ns)
    summary = json.loads(runs[-1].read_text()) if runs else {}
    scored = summary.get("counts", {}).get("scored", 0)
    stage = summary.get("durations_s", {}).get("score_and_write")
    result["job"] = {
        "exit_code": code, "reason": summary.get("reason"), "scored": scored, "seconds": round(seconds, 1),
        "rows_per_s": round(scored / seconds) if seconds else None,
        "score_and_write_s": stage, "durations_s": summary.get("durations_s"),
        "peak_driver_python_mb": round(mem.driver_peak / 2**20),
        "peak_jvm_mb": round(mem.jvm_peak / 2**20), "peak_python_worker_mb": round(mem.worker_peak / 2**20),
        "python_workers_seen": len(mem.workers_seen), "peak_total_mb": round(mem.total_peak / 2**20),
        "worker_cpu_s": round(mem.cpu_seconds("worker"), 1), "jvm_cpu_s": round(mem.cpu_seconds("jvm"), 1),
    }  # fmt: skip
    result["no_out_of_memory"] = code == 0 and scored == args.rows
    result["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    spark.stop()
    return result


if __name__ == "__main__":
    out = main()
    print(json.dumps(out, sort_keys=True, default=str))
    sys.exit(0 if out["no_out_of_memory"] else 1)
