"""Recovery time: scoring and distributed training with one worker killed mid-way, against undisturbed runs.

    python benchmarks/recovery.py                       # 200,000 customers, 2 training workers
    python benchmarks/recovery.py --rows 20000 --train-rows 3000 --epochs 4    # a quick run

Both in one Spark session (``local[2,4]``: 2 cores, a failed task retried up to 4 times, as on a cluster):

1. **Scoring** (``jobs/score_portfolio.py``'s ``main()``, the job's own config, the paper-sized bundle of
   ``benchmarks/scoring.py``): an undisturbed run, then the same date again while a thread SIGKILLs the first
   busy Spark Python worker holding the model, once half the undisturbed time has passed. Spark re-runs the
   task; the job still exits 0. Ratio = disturbed wall time / undisturbed wall time; ``rows_identical`` says
   whether both runs committed exactly the same rows (every column but ``run_id``; compared by time travel).
2. **Training** (``launch(train_resnet_lstm_worker, backend="torch_distributor")``, 2 workers): an
   undisturbed run of ``--epochs`` epochs, then a run in a fresh checkpoint folder whose rank 1 training
   process is SIGKILLed once half of the epochs are checkpointed; the run fails (``WorkerDied``) and is
   re-run, resuming from the last checkpoint. Ratio = (failed run + resumed run) / undisturbed run;
   ``training_model_identical`` says whether the resumed model's parameters equal the undisturbed one's.

The last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import emit_json  # noqa: E402
from scoring import DAY, MODEL_NAME, bench_spec, publish_bench_bundle, write_features  # noqa: E402

MASTER = "local[2,4]"


class _Killer(threading.Thread):
    """SIGKILLs one process chosen by ``pick()`` once ``ready()`` holds (polled every 0.05 s)."""

    def __init__(self, ready, pick) -> None:
        super().__init__(daemon=True)
        self.ready, self.pick = ready, pick
        self.stop, self.killed = threading.Event(), None

    def run(self) -> None:
        while not self.stop.wait(0.05):
            try:
                if not self.ready():
                    continue
            except (OSError, ValueError):  # a checkpoint being written right now
                continue
            p = self.pick()
            if p is not None:
                p.send_signal(signal.SIGKILL)
                self.killed = {"pid": p.pid, "at": time.time()}
                return


def _busy_scoring_worker(state: dict, min_rss: int = 200 * 2**20):
    """A forked Spark Python worker holding the model (large) whose CPU time rose over the last poll."""
    import psutil

    for p in psutil.Process(os.getpid()).children(recursive=True):
        try:
            parent = p.parent()
            if parent is None or "pyspark.daemon" not in " ".join(parent.cmdline()):
                continue
            cpu, rss = sum(p.cpu_times()[:2]), p.memory_info().rss
        except psutil.Error:
            continue
        rising = p.pid in state and cpu - state[p.pid] > 0.005
        state[p.pid] = cpu
        if rising and rss >= min_rss:
            return p
    return None


def _rank_process(rank: str):
    """The torchrun training process of ``rank`` (not its agent or wrapper), a descendant of this process."""
    import psutil

    for p in psutil.Process(os.getpid()).children(recursive=True):
        try:
            cmd, env = " ".join(p.cmdline()), p.environ()
        except psutil.Error:
            continue
        if env.get("RANK") == rank and "torch.distributed.run" not in cmd and "torch_run_process_wrapper" not in cmd \
                and "python" in p.name():
            return p
    return None


def _score(job_argv: list[str]) -> tuple[int, float]:
    from jobs import score_portfolio

    t = time.perf_counter()
    try:
        score_portfolio.main(job_argv)
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    return code, time.perf_counter() - t


def scoring_recovery(spark, cfg, job_argv: list[str]) -> dict:
    """Undisturbed and disturbed scoring runs of the same date; their times and whether the rows agree."""
    from credspark.io.tables import read_table_version, table_ref, table_version

    ref = table_ref(cfg, cfg.tables.scores)
    code0, base = _score(job_argv)
    v0 = table_version(spark, ref)
    print(f"scoring undisturbed: exit {code0} in {base:.1f} s", file=sys.stderr, flush=True)
    started, state = time.perf_counter(), {}
    killer = _Killer(lambda: time.perf_counter() - started > base / 2, lambda: _busy_scoring_worker(state))
    killer.start()
    code1, disturbed = _score(job_argv)
    killer.stop.set()
    v1 = table_version(spark, ref)
    print(f"scoring with a killed worker: exit {code1} in {disturbed:.1f} s, killed {killer.killed}", file=sys.stderr,
          flush=True)
    a, b = (read_table_version(spark, ref, v).drop("run_id") for v in (v0, v1))
    identical = v1 > v0 and a.count() == b.count() and a.exceptAll(b).isEmpty() and b.exceptAll(a).isEmpty()
    return {"undisturbed_s": round(base, 1), "disturbed_s": round(disturbed, 1), "exit_codes": [code0, code1],
            "worker_killed": killer.killed is not None, "rows_identical": bool(identical),
            "ratio": round(disturbed / base, 3)}


#: A small ResNet-LSTM: the benchmark measures recovery, not the model (an epoch takes seconds).
TRAIN_PARAMS = {"embedding_dim": 8, "filters": (8, 16), "lstm_hidden": 8, "lr": 1e-3}


def training_recovery(spark, cfg, work: Path, rows: int, epochs: int) -> dict:
    """An undisturbed 2-worker run, then a killed-and-resumed one; their times and whether the models agree."""
    from pyspark.sql import functions as F

    from credspark.distributed._checkpoint import latest_checkpoint
    from credspark.distributed.feeds import feed_columns, get_feed
    from credspark.distributed.launchers import WorkerError, launch
    from credspark.distributed.train_fns import WorkerOptions, train_resnet_lstm_worker
    from credspark.io.tables import read_table, table_ref

    spec = bench_spec()
    # The scoring benchmark's feature rows with a drawn label: recovery time does not depend on what is learnt.
    rows_df = (read_table(spark, table_ref(cfg, cfg.tables.features)).limit(rows)
               .withColumn("label", (F.rand(3) < 0.2).cast("int")).select(*feed_columns(spec)))
    feed = get_feed("arrow")(rows_df, spec=spec, work_dir=str(work), name="train", num_workers=2, seed=7,
                             batch_size=64)  # fmt: skip

    def options(name: str) -> WorkerOptions:
        return WorkerOptions(epochs=epochs, batch_size=64, seed=0, checkpoint_dir=str(work / name / "ckpt"),
                             output_dir=str(work / name / "model"), fit_sample_rows=10_000, torch_threads=1)

    def run(opts):
        t = time.perf_counter()
        out = launch(train_resnet_lstm_worker, backend="torch_distributor", num_workers=2, timeout_s=1800,
                     args=(feed, None, TRAIN_PARAMS, opts))
        return out, time.perf_counter() - t

    straight, base = run(options("straight"))
    print(f"training undisturbed: {base:.1f} s", file=sys.stderr, flush=True)
    opts = options("killed")
    half = max(0, epochs // 2 - 1)

    def ready() -> bool:
        ckpt = latest_checkpoint(opts.checkpoint_dir)
        return ckpt is not None and ckpt.epoch >= half

    killer = _Killer(ready, lambda: _rank_process("1"))
    killer.start()
    t = time.perf_counter()
    error = None
    try:
        run(opts)
    except WorkerError as e:
        error = e.error_type
    finally:
        killer.stop.set()
    failed = time.perf_counter() - t
    print(f"training with a killed rank: failed ({error}) after {failed:.1f} s", file=sys.stderr, flush=True)
    resumed, again = run(opts)
    print(f"training resumed at epoch {resumed['start_epoch']}: {again:.1f} s", file=sys.stderr, flush=True)
    feed.cleanup()
    return {"undisturbed_s": round(base, 1), "failed_run_s": round(failed, 1), "resumed_run_s": round(again, 1),
            "worker_killed": killer.killed is not None, "error": error, "resumed_at_epoch": resumed["start_epoch"],
            "model_identical": resumed["hashes"] == straight["hashes"],
            "ratio": round((failed + again) / base, 3)}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=200_000, help="customers scored (default 200,000)")
    p.add_argument("--train-rows", type=int, default=6000, help="training rows (default 6,000)")
    p.add_argument("--epochs", type=int, default=6, help="training epochs (default 6)")
    p.add_argument("--work-dir", default=None, help="warehouse folder (default: a new temporary folder)")
    args = p.parse_args(argv)

    from credspark.config import load_config
    from credspark.io.spark import build_session
    from jobs import score_portfolio

    wh = args.work_dir or tempfile.mkdtemp(prefix="bench-recovery-")
    job_argv = ["--score-date", DAY.isoformat(), "--warehouse", wh, "--set", f"score.model_name={MODEL_NAME}",
                "--set", f"spark.master={MASTER}"]
    cfg = load_config("score_portfolio", score_portfolio.parse(job_argv)[0])
    result: dict = {"rows": args.rows, "train_rows": args.train_rows, "epochs": args.epochs, "master": MASTER,
                    "load_avg_start": [round(x, 2) for x in os.getloadavg()]}
    spec = bench_spec()
    publish_bench_bundle(wh, spec)
    spark = build_session(cfg.spark, "score_portfolio", wh)  # the session the job's own build_session returns
    write_features(spark, cfg, spec, args.rows, max(4, args.rows // 100_000))
    try:
        result["scoring"] = scoring_recovery(spark, cfg, job_argv)
        result["training"] = training_recovery(spark, cfg, Path(wh) / "_train", args.train_rows, args.epochs)
    finally:
        spark.stop()
    result["scoring_recovery_ratio"] = result["scoring"]["ratio"]
    result["training_recovery_ratio"] = result["training"]["ratio"]
    result["rows_identical"] = result["scoring"]["rows_identical"]
    result["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    return result


if __name__ == "__main__":
    out = main()
    emit_json(out)
    ok = out["rows_identical"] and out["scoring"]["exit_codes"] == [0, 0] and out["training"]["worker_killed"]
    sys.exit(0 if ok else 1)
