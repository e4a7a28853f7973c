"""Faults and concurrency on real processes: the scoring and feature jobs under killed workers, a killed driver,
a second driver racing this one, a read-only warehouse and a full disk. One session, every check.

Run as a subprocess by ``tests/reliability/test_faults.py`` (its own JVM, and the test may run it without the
capability that lets root ignore file permissions, and with the scores table on a small tmpfs). Prints
progress to stderr and one JSON object with the findings as the last line of stdout; the test asserts on it.

Two drivers: this process (``local[2,4]``: two cores, a failed task retried up to 4 times as on a cluster)
and a *second driver*, this same file run with ``--second-driver``: its own JVM (``local[2]``), reading job
command lines as JSON on stdin and answering with the exit code, so the two can run jobs at the same time.
Checks, in order (the second driver is killed last):

1. baseline: the scoring job for D1 (exit 0);
2. a Python worker SIGKILLed while it scores: exit 0 and exactly the baseline's rows (Spark re-ran the task);
3. both drivers score D1 at once: the partition holds exactly one run's complete rows (the last committer's);
4. a feature backfill (second driver) and a nightly feature run (here) at once, on different partitions:
   both succeed and every partition equals what a sequential build wrote;
5. the scores table read-only (permission denied): exit 1 with the cause in the reason; nothing committed;
6. the scores table's file system full: exit 1 with the cause; nothing committed (only with the tmpfs);
7. the second driver SIGKILLed while it writes D1's files: no commit (the table stays at its version and
   rows); its files are orphans no version references; a re-run here completes with the same rows.

Usage: ``python tests/cluster/reliability_cluster.py WORK_DIR``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)

MASTER = "local[2,4]"
D1 = dt.date(2025, 12, 31)
ROWS = 400
CONF = {"spark.databricks.delta.snapshotPartitions": "2"}
# Every scoring run uses the same batches (same input files, same config): the docs promise identical rows.
# One-row model batches make a task last a second or more, so a worker can be killed in the middle of one.
SCORE_SETTINGS = ["--set", "score.model_name=m", "--set", "score.arrow_batch_size=100",
                  "--set", "score.model_batch_size=1"]  # fmt: skip
FEATURE_SETTINGS = ["--set", "features.T=6", "--set", "features.windows=[1,3]"]


def _log(msg: str) -> None:
    print(f"[reliability_cluster] {msg}", file=sys.stderr, flush=True)


def _job(name: str, argv: list[str]) -> int:
    """Run a job's main() in this process (it reuses this process's session); its exit code."""
    import importlib

    try:
        importlib.import_module(f"jobs.{name}").main(argv)
    except SystemExit as e:
        return int(e.code or 0)
    return 0


# ------------------------------------------------------------------------------------------ second driver
def second_driver(warehouse: str) -> None:
    """Read ``{"job": ..., "argv": [...]}`` lines on stdin, run each job, answer ``{"code": ...}`` on stdout."""
    from credspark.config import SparkConfig
    from credspark.io.spark import build_session

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    spark = build_session(
        SparkConfig(master="local[2]", shuffle_partitions=4, driver_memory="1g", ui_enabled=False, conf=CONF),
        "second-driver", warehouse,
    )
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        started = time.time()
        code = _job(cmd["job"], cmd["argv"])
        print(json.dumps({"code": code, "started": started, "finished": time.time()}), flush=True)
    spark.stop()


class SecondDriver:
    """The other driver process: its own JVM, commands over a pipe."""

    def __init__(self, work_dir: Path, warehouse: Path) -> None:
        self.log = open(work_dir / "second_driver.stderr.txt", "w")  # noqa: SIM115 - closed in stop()
        # A new session (process group): killing the group kills its JVM and Python workers too.
        self.proc = subprocess.Popen([sys.executable, __file__, "--second-driver", str(warehouse)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True,
                                     start_new_session=True, cwd=str(REPO))  # fmt: skip

    def wait_ready(self) -> None:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the second driver died at start (see second_driver.stderr.txt)")

    def send(self, job: str, argv: list[str]) -> None:
        self.proc.stdin.write(json.dumps({"job": job, "argv": argv}) + "\n")
        self.proc.stdin.flush()

    def result(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the second driver died (see second_driver.stderr.txt)")
        return json.loads(line)

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=60)
        self.log.close()


# ------------------------------------------------------------------------------------------------ helpers
def _scores(spark, wh: Path):
    """D1's rows (values without run_id, sorted) and the run ids found in the partition."""
    from pyspark.sql import functions as F

    pdf = (
        spark.read.format("delta")
        .load(str(wh / "scores"))
        .where(F.col("score_date") == F.lit(D1))
        .toPandas()
        .sort_values("customer_id")
        .reset_index(drop=True)
    )
    return pdf.drop(columns=["run_id"]), sorted(set(pdf["run_id"]))


def _version(spark, path: Path) -> int:
    from delta.tables import DeltaTable

    return int(DeltaTable.forPath(spark, str(path)).history(1).first()["version"])


def _data_files(table: Path) -> set[str]:
    return {str(p) for p in table.rglob("*.parquet") if "_delta_log" not in p.parts}


def _referenced(spark, table: Path) -> set[str]:
    return {f.removeprefix("file:") for f in spark.read.format("delta").load(str(table)).inputFiles()}


def _last_summary(wh: Path, job: str) -> dict:
    paths = sorted((wh / "_runs").glob(f"{job}-*.json"), key=lambda p: p.stat().st_mtime_ns)
    return json.loads(paths[-1].read_text())


def _stderr_size(work_dir: Path) -> int | None:
    """Size of this process's stderr file (``WORK_DIR/stderr.txt``, where the test sends it), or None."""
    path = work_dir / "stderr.txt"
    return path.stat().st_size if path.exists() else None


def _stderr_since(work_dir: Path, offset: int | None) -> str:
    if offset is None:
        return ""
    sys.stderr.flush()
    with open(work_dir / "stderr.txt", errors="replace") as fh:
        fh.seek(offset)
        return fh.read()


def _permissions_enforced(work_dir: Path) -> bool:
    """False when this process ignores file permissions (root with CAP_DAC_OVERRIDE)."""
    probe = work_dir / "perm_probe"
    probe.mkdir(exist_ok=True)
    probe.chmod(0o500)
    try:
        (probe / "x").write_text("x")
        return False
    except PermissionError:
        return True
    finally:
        probe.chmod(0o700)


class WorkerKiller(threading.Thread):
    """SIGKILLs the first scoring worker of this driver's JVM seen busy (CPU time rising) 2 polls running.

    Scoring workers are told apart by their memory (torch and the model loaded: hundreds of MB; Spark's other
    Python workers stay small), and sustained work is a task: a reused worker's short clean-up after its
    task is not, and killing it then only makes Spark start another worker.
    """

    def __init__(self, jvm_pid: int, min_rss_mb: int = 200) -> None:
        super().__init__(daemon=True)
        self.jvm_pid, self.min_rss = jvm_pid, min_rss_mb * 2**20
        self.stop, self.killed = threading.Event(), None

    def run(self) -> None:
        import psutil

        seen: dict[int, float] = {}
        busy: dict[int, int] = {}
        while not self.stop.wait(0.05):
            try:
                procs = psutil.Process(self.jvm_pid).children(recursive=True)
            except psutil.Error:
                return
            for p in procs:
                try:
                    parent = p.parent()
                    # Forked workers are the children of the pyspark daemon (same command line).
                    if parent is None or "pyspark.daemon" not in " ".join(parent.cmdline()):
                        continue
                    cpu, rss = sum(p.cpu_times()[:2]), p.memory_info().rss
                except psutil.Error:
                    continue
                # Any CPU at all (clock ticks are 10 ms): on a loaded machine a busy worker may get 20 % of a core.
                rising = p.pid in seen and cpu - seen[p.pid] > 0.005
                busy[p.pid] = busy.get(p.pid, 0) + 1 if rising else 0
                seen[p.pid] = cpu
                if busy[p.pid] >= 2 and rss >= self.min_rss:
                    p.send_signal(signal.SIGKILL)
                    self.killed = {
                        "pid": p.pid,
                        "cpu_s": round(cpu, 2),
                        "rss_mb": round(rss / 2**20),
                        "at": time.time(),
                    }
                    return


def _jvm_pid(exclude: int) -> int:
    import psutil

    for p in psutil.Process().children():
        if p.pid != exclude and "java" in " ".join(p.cmdline()):
            return p.pid
    raise RuntimeError("no JVM child process found")


# ------------------------------------------------------------------------------------------------- checks
def _write_feature_inputs(spark, whf: Path) -> None:
    """A small, clean portfolio written straight into the input tables (the generator job costs more)."""
    from credspark.config import config_from_dict
    from credspark.contract import CUSTOMERS, OBSERVED_THROUGH_PROPERTY, OUTCOMES, STATEMENTS, TRANSACTIONS, TXN_TYPES
    from credspark.io.tables import overwrite_table, set_properties, table_ref

    cfg = config_from_dict({"warehouse": {"path": str(whf)}})
    utc, ids = dt.UTC, range(1, 41)
    months = [dt.date(2025, m, 1) for m in range(1, 12)]
    customers = [
        (
            c,
            1960 + c % 40,
            1 + c % 2,
            1 + c % 4,
            1 + c % 3,
            "north",
            1000.0 * c,
            dt.date(2024, 1 + c % 12, 1) if c % 5 else None,
        )
        for c in ids
    ]
    statements = [
        (c, m, 5000.0, float((c * 37 + i * 11) % 4000), float((c * 13 + i * 7) % 900), 25.0, (c + i) % 4 - 1)
        for c in ids
        for i, m in enumerate(months)
        if not (c % 7 == 0 and i < 4)
    ]
    transactions = [
        (
            f"{c}-{i}-{k}",
            c,
            dt.datetime(m.year, m.month, 3 + 9 * k, tzinfo=utc),
            float(10 + (c * k + i) % 300),
            TXN_TYPES[(c + k + i) % len(TXN_TYPES)],
            None,
        )
        for c in ids
        for i, m in enumerate(months)
        for k in range(2)
    ]
    outcomes = [(c, dt.date(2025, 9, 15)) for c in (3, 11, 29)]
    for name, rows, schema in (
        ("customers", customers, CUSTOMERS),
        ("statements", statements, STATEMENTS),
        ("transactions", transactions, TRANSACTIONS),
        ("outcomes", outcomes, OUTCOMES),
    ):
        overwrite_table(spark.createDataFrame(rows, schema), table_ref(cfg, name))
    set_properties(spark, table_ref(cfg, "outcomes"), {OBSERVED_THROUGH_PROPERTY: "2025-11-30"})


def _features_snapshot(spark, table: Path):
    """Every partition's rows as sorted pandas frames, keyed by as-of date."""
    pdf = spark.read.format("delta").load(str(table)).toPandas()
    return {d: g.sort_values("customer_id").reset_index(drop=True) for d, g in pdf.groupby("as_of_date")}


def _same_frames(a, b) -> bool:
    import numpy as np
    import pandas as pd

    if list(a.columns) != list(b.columns) or len(a) != len(b):
        return False
    for c in a.columns:
        x, y = a[c], b[c]
        if c in ("seq", "seq_mask"):
            if not np.allclose(np.stack(x.to_numpy()), np.stack(y.to_numpy()), rtol=1e-6):
                return False
        elif pd.api.types.is_float_dtype(x):
            if not np.allclose(x.to_numpy(), y.to_numpy(), rtol=1e-9, equal_nan=True):
                return False
        elif not x.equals(y):
            return False
    return True


def main(work_dir: str) -> dict:
    from credspark.config import SparkConfig, config_from_dict
    from credspark.io.spark import build_session
    from tests.cluster.harness import dump_executor_logs
    from tests.fixtures_models import feature_frame, publish_tiny_bundle, tiny_spec, write_feature_partition

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    work = Path(work_dir).resolve()
    wh, whf = work / "warehouse", work / "features_wh"
    scores = wh / "scores"
    scores.mkdir(parents=True, exist_ok=True)  # a tmpfs mount point when the test prepared one
    out: dict = {"tmpfs": os.path.ismount(scores), "permissions_enforced": _permissions_enforced(work)}
    t0 = time.perf_counter()
    second = SecondDriver(work, wh)
    spark = build_session(
        SparkConfig(master=MASTER, shuffle_partitions=4, driver_memory="1g", ui_enabled=False, conf=CONF),
        "reliability", str(wh),
    )
    out["session_s"] = round(time.perf_counter() - t0, 1)
    score = ["--score-date", D1.isoformat(), "--warehouse", str(wh), *SCORE_SETTINGS]
    try:
        cfg = config_from_dict({"warehouse": {"path": str(wh)}})
        spec = tiny_spec()
        write_feature_partition(spark, cfg, feature_frame(spec, ROWS, seed=11, as_of=D1, first_id=5000), spec)
        publish_tiny_bundle(wh, "m", "v1", spec, feature_frame(spec, 300, seed=1))
        second.wait_ready()
        _log(f"set up in {time.perf_counter() - t0:.1f} s")

        # 1. Baseline.
        t = time.perf_counter()
        out["baseline"] = {"code": _job("score_portfolio", score)}
        base, base_ids = _scores(spark, wh)
        out["baseline"].update(rows=len(base), s=round(time.perf_counter() - t, 1))
        _log(f"baseline: {out['baseline']}")

        # 2. A Python worker killed while it scores: Spark re-runs the task. Our stderr (a file the test gives
        # us) shows whether the kill hit a running task; if it did not, the step is repeated (at most 3 tries).
        t = time.perf_counter()
        jvm = _jvm_pid(exclude=second.proc.pid)
        attempt, crashed = 0, 0
        while attempt < 3 and not crashed:
            attempt += 1
            mark = _stderr_size(work)
            killer = WorkerKiller(jvm)
            killer.start()
            code = _job("score_portfolio", score)
            killer.stop.set()
            crashed = _stderr_since(work, mark).count("Python worker exited unexpectedly")
            if mark is None:  # stderr is not a file we can read: no way to tell, one try
                break
        after, ids = _scores(spark, wh)
        out["worker_kill"] = {
            "code": code,
            "killed": killer.killed,
            "identical": bool(after.equals(base)),
            "run_ids": ids,
            "new_run": ids != base_ids,
            "attempts": attempt,
            "task_failures_seen": crashed,
            "s": round(time.perf_counter() - t, 1),
        }
        _log(f"worker kill: {out['worker_kill']}")

        # 3. Two drivers score the same date at once.
        from pyspark.sql import functions as F

        before = _version(spark, scores)
        t = time.perf_counter()
        second.send("score_portfolio", score)
        here = _job("score_portfolio", score)
        there = second.result()
        after, ids = _scores(spark, wh)
        runs = (
            spark.read.format("delta")
            .load(str(wh / "score_runs"))
            .where(F.col("scores_version") > before)
            .select("run_id", "scores_version")
            .collect()
        )
        last = max(runs, key=lambda r: r["scores_version"])["run_id"] if runs else None
        out["same_date"] = {
            "codes": sorted([here, there["code"]]),
            "identical": bool(after.equals(base)),
            "run_ids": ids,
            "recorded_runs": len(runs),
            "holds_last_committer": ids == [last],
            "overlap_s": round(min(time.time(), there["finished"]) - there["started"], 1),
            "commits": _version(spark, scores) - before,
            "s": round(time.perf_counter() - t, 1),
        }
        _log(f"same date: {out['same_date']}")

        # 4. A feature backfill and a nightly feature run at once, on different partitions.
        t = time.perf_counter()
        _write_feature_inputs(spark, whf)
        feats = ["--warehouse", str(whf), *FEATURE_SETTINGS]
        out["features"] = {"sequential": _job("build_features", ["--from", "2025-06-30", "--to", "2025-11-30", *feats])}
        reference = _features_snapshot(spark, whf / "features")
        untouched = _data_files(whf / "features" / "as_of_date=2025-10-31")
        second.send("build_features", ["--from", "2025-06-30", "--to", "2025-09-30", *feats])
        nightly = _job("build_features", ["--as-of", "2025-11-30", *feats])
        backfill = second.result()
        now = _features_snapshot(spark, whf / "features")
        out["features"].update(
            codes=[backfill["code"], nightly],
            dates=sorted(str(d) for d in now),
            identical={str(d): _same_frames(now[d], reference[d]) for d in reference if d in now},
            duplicates=sum(int(g["customer_id"].duplicated().sum()) for g in now.values()),
            rows={str(d): len(g) for d, g in now.items()},
            overlap_s=round(min(time.time(), backfill["finished"]) - backfill["started"], 1),
            untouched_partition_same_files=_data_files(whf / "features" / "as_of_date=2025-10-31") == untouched,
            s=round(time.perf_counter() - t, 1),
        )
        _log(f"features: {out['features']}")

        # 5. Permission denied on the scores table.
        before, (rows_before, ids_before) = _version(spark, scores), _scores(spark, wh)
        if out["permissions_enforced"]:
            dirs = [scores, *[d for d in scores.rglob("*") if d.is_dir()]]
            for d in dirs:
                d.chmod(0o555)
            try:
                code = _job("score_portfolio", score)
            finally:
                for d in dirs:
                    d.chmod(0o755)
            rows, ids = _scores(spark, wh)
            out["permission"] = {
                "code": code,
                "reason": _last_summary(wh, "score_portfolio")["reason"],
                "same_version": _version(spark, scores) == before,
                "intact": bool(rows.equals(rows_before)) and ids == ids_before,
            }
        else:
            out["permission"] = {"skipped": "this process ignores file permissions (root with CAP_DAC_OVERRIDE)"}
        _log(f"permission: {out['permission']}")

        # 6. The scores table's file system full.
        if out["tmpfs"]:
            filler = scores / "_filler"
            st = os.statvfs(scores)
            with open(filler, "wb") as fh:
                try:
                    fh.write(b"\0" * (st.f_bavail * st.f_frsize))
                    fh.flush()
                except OSError:
                    pass  # the last block may not fit; the disk is full either way
            try:
                code = _job("score_portfolio", score)
            finally:
                filler.unlink()
            rows, ids = _scores(spark, wh)
            out["disk_full"] = {
                "code": code,
                "reason": _last_summary(wh, "score_portfolio")["reason"],
                "same_version": _version(spark, scores) == before,
                "intact": bool(rows.equals(rows_before)) and ids == ids_before,
            }
        else:
            out["disk_full"] = {"skipped": "the scores table is not on a small tmpfs (needs root to mount one)"}
        _log(f"disk full: {out['disk_full']}")

        # 7. The second driver killed while it writes D1's files; then a re-run here.
        before, (rows_before, ids_before) = _version(spark, scores), _scores(spark, wh)
        files_before = _data_files(scores)
        second.send("score_portfolio", score)
        deadline, new = time.monotonic() + 300, set()
        while time.monotonic() < deadline and not new:
            new = _data_files(scores) - files_before
            time.sleep(0.01)
        second.kill()
        rows, ids = _scores(spark, wh)
        orphans = _data_files(scores) - files_before
        out["driver_kill"] = {
            "killed_while_writing": bool(new),
            "same_version": _version(spark, scores) == before,
            "intact": bool(rows.equals(rows_before)) and ids == ids_before,
            "orphan_files": len(orphans),
            "orphans_referenced": len(orphans & _referenced(spark, scores)),
        }
        code = _job("score_portfolio", score)
        rows, ids = _scores(spark, wh)
        out["rerun_after_kill"] = {
            "code": code,
            "identical": bool(rows.equals(base)),
            "run_ids": len(ids),
            "orphans_referenced": len(orphans & _referenced(spark, scores)),
        }
        _log(f"driver kill: {out['driver_kill']}, re-run: {out['rerun_after_kill']}")
    except BaseException:
        dump_executor_logs(spark)
        if second.proc.poll() is None:
            second.kill()
        raise
    finally:
        spark.stop()
    out["total_s"] = round(time.perf_counter() - t0, 1)
    return out


if __name__ == "__main__":
    if sys.argv[1] == "--second-driver":
        second_driver(sys.argv[2])
    else:
        result = main(sys.argv[1])
        print(json.dumps(result, sort_keys=True, default=str))
