"""The README's cluster recipe, run as written (examples/cluster/submit.sh) on a standalone cluster of two
single-core workers: generate -> features -> train (TorchDistributor ranks and the XGBoost barrier stage
across both executors) -> score."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.standalone.cluster import standalone_cluster

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "examples" / "cluster" / "submit.sh"
TIMEOUT_S = 2400

#: Tiny sizes so the chain runs in minutes on two cores; two workers for every distributed stage.
SETTINGS = [
    "generate.customers=400", "generate.default_rate=0.15", "generate.txn_per_month=3", "generate.partitions=2",
    "spark.shuffle_partitions=2", "distributed.num_workers=2", "xgb.num_workers=2",
    "resnet_lstm.epochs=1", "resnet_lstm.batch_size=64", "resnet_lstm.embedding_dim=6", "resnet_lstm.filters=[4,8]",
    "resnet_lstm.lstm_hidden=4", "actgan.epochs=1", "actgan.batch_size=64", "actgan.noise_dim=8",
    "actgan.generator_dims=[16]", "actgan.discriminator_dims=[16]", "actgan.n_critic=1",
    "xgb.n_estimators=20", "xgb.early_stopping_rounds=5", "xgb.timeout_s=300", "distributed.timeout_s=600",
    "train.min_test_auc=0.0", "train.max_auc_below_baseline=1.0",
    "spark.conf.spark.databricks.delta.snapshotPartitions=2",
    # A one-epoch model's scores a year later drift far (PSI ~1.1 measured): the lane checks the plumbing.
    "score.psi_fail=100",
]  # fmt: skip


def test_the_readme_shows_the_recipe_the_lane_runs():
    readme = (REPO / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", readme, flags=re.S)
    assert SCRIPT.read_text() in blocks, "README's cluster section must show examples/cluster/submit.sh verbatim"


def _live_files(table: Path) -> list[Path]:
    """The data files of a Delta table's latest version (adds minus removes in its log)."""
    live: set[str] = set()
    for log in sorted((table / "_delta_log").glob("*.json")):
        for line in log.read_text().splitlines():
            action = json.loads(line)
            if "add" in action:
                live.add(action["add"]["path"])
            elif "remove" in action:
                live.discard(action["remove"]["path"])
    return [table / p for p in sorted(live)]


def _summaries(warehouse: Path) -> dict[str, dict]:
    out = {}
    for p in sorted((warehouse / "_runs").glob("*.json")):
        s = json.loads(p.read_text())
        out.setdefault(s["job"], []).append(s)
    return out


@pytest.fixture(scope="module")
def recipe(tmp_path_factory, wheel):
    root = tmp_path_factory.mktemp("standalone")
    warehouse = root / "warehouse"
    venv_bin = Path(sys.executable).parent
    env = dict(os.environ, MASTER="", WAREHOUSE=str(warehouse), WHEEL=str(wheel), SPARK_LOCAL_IP="127.0.0.1",
               PYSPARK_PYTHON=sys.executable, PATH=f"{venv_bin}{os.pathsep}{os.environ['PATH']}")  # fmt: skip
    if os.environ.get("CREDSPARK_JARS_DIR"):  # make exports the folder `make jars` filled
        env["DELTA_JARS"] = os.environ["CREDSPARK_JARS_DIR"]
    for var in ("PYTHONPATH", "PYSPARK_DRIVER_PYTHON", "SPARK_CONF_DIR", "CREDSPARK_CONF_DIR"):
        env.pop(var, None)
    args = [a for s in SETTINGS for a in ("--set", s)]
    with standalone_cluster(root / "cluster", workers=2, cores=1) as cluster:
        env["MASTER"] = cluster.master_url
        t0 = time.monotonic()
        # Its own process group: on a timeout the script, its spark-submit JVMs and their Python drivers go too.
        proc = subprocess.Popen([str(SCRIPT), *args], cwd=str(REPO), env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)  # fmt: skip
        try:
            out, err = proc.communicate(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            err += f"\n[standalone] the recipe did not finish within {TIMEOUT_S} s"
        proc = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
        seconds = time.monotonic() - t0
        (root / "recipe.stderr").write_text(proc.stderr)
        executors = {p.parent.parent.name: [] for p in cluster.executor_logs()}
        for p in cluster.executor_logs():
            executors[p.parent.parent.name].append(p)
    print(f"\n[standalone] recipe ran in {seconds:.0f} s (stderr in {root / 'recipe.stderr'})", file=sys.stderr)
    return {"proc": proc, "warehouse": warehouse, "seconds": seconds, "executors": executors,
            "summaries": _summaries(warehouse)}  # fmt: skip


def test_every_job_of_the_recipe_succeeds(recipe):
    proc = recipe["proc"]
    tail = "\n".join(ln for ln in proc.stderr.splitlines() if not ln.lstrip().startswith("at "))[-6000:]
    assert proc.returncode == 0, tail
    summaries = recipe["summaries"]
    assert {job: [s["exit_code"] for s in runs] for job, runs in summaries.items()} == {
        "generate_portfolio": [0], "build_features": [0, 0], "train": [0], "score_portfolio": [0]}


def test_the_tables_and_the_model_are_in_the_warehouse(recipe):
    wh = recipe["warehouse"]
    for table in ("customers", "transactions", "statements", "outcomes", "features", "scores", "score_runs"):
        assert (wh / table / "_delta_log").is_dir(), table
    assert list((wh / "models" / "credspark").glob("*/manifest.json"))


def test_every_customer_with_features_is_scored_once(recipe):
    wh = recipe["warehouse"]
    scores = pa.concat_tables(pq.read_table(str(p), columns=["customer_id", "pd"]) for p in _live_files(wh / "scores"))
    ids = scores.column("customer_id").to_pylist()
    (score_run,) = recipe["summaries"]["score_portfolio"]
    assert len(ids) == len(set(ids)) == score_run["counts"]["scored"] > 100
    assert all(0.0 < p < 1.0 for p in scores.column("pd").to_pylist())


_BARRIER_SYNC = re.compile(r"BarrierTaskContext: Task \d+ from Stage (\d+)\(Attempt \d+\) finished global sync")


def test_training_crossed_both_executors(recipe):
    (train,) = recipe["summaries"]["train"]
    assert "torch_distributor, 2 worker(s)" in train["details"]["deep"]["backend"]
    # The train job is the fourth application; with two single-core workers a barrier stage of two tasks
    # runs one task on each executor, and both log their side of every barrier stage's sync.
    app = sorted(recipe["executors"])[3]
    logs = recipe["executors"][app]
    assert len(logs) == 2
    stages = [set(_BARRIER_SYNC.findall(p.read_text(errors="replace"))) for p in logs]
    assert stages[0] == stages[1] and len(stages[0]) >= 2, stages  # ACTGAN and ResNet-LSTM ranks at least


def test_the_lane_stays_within_its_time_limit(recipe):
    assert recipe["seconds"] < TIMEOUT_S
