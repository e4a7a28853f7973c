"""The Airflow DAGs (examples/airflow/credspark_dag.py) in Apache Airflow 3: they import, and the nightly DAG
runs end to end with ``dag.test()``: real spark-submit runs of the feature and scoring jobs on local[2]
against a tiny generated portfolio (run with the main venv's spark-submit and python).

Run by ``make test-airflow`` in .venv-airflow (never by ``make test``).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("airflow")
REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "examples" / "airflow"
MAIN_PY = Path(os.environ["CREDSPARK_BIN"]) / "python"


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))  # AIRFLOW__CORE__LOAD_EXAMPLES=False


@pytest.fixture(scope="module")
def airflow_db():
    t = time.perf_counter()
    subprocess.run([str(Path(sys.executable).with_name("airflow")), "db", "migrate"], check=True,
                   capture_output=True, text=True, timeout=600)
    print(f"airflow db migrate: {time.perf_counter() - t:.1f} s", file=sys.stderr)


def test_the_dags_import_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == {"credspark_nightly", "credspark_monthly_training", "credspark_backfill"}
    score = dagbag.dags["credspark_nightly"].get_task("score_portfolio")
    assert score.application.endswith("jobs/score_portfolio.py") and "delta-spark_4.2_2.13-4.4.0.jar" in score.jars


def test_scoring_waits_for_the_features_and_every_task_retries(dagbag):
    nightly = dagbag.dags["credspark_nightly"]
    assert nightly.get_task("score_portfolio").upstream_task_ids == {"build_features"}
    monthly = dagbag.dags["credspark_monthly_training"]
    assert monthly.get_task("train").upstream_task_ids == {"build_features"}
    assert monthly.get_task("build_features").upstream_task_ids == {"training_as_of"}
    backfill = dagbag.dags["credspark_backfill"]
    assert backfill.get_task("score_portfolio").upstream_task_ids == {"build_features", "month_ends"}
    for dag in (nightly, monthly, backfill):
        for t in dag.tasks:
            assert t.retries >= 1, (dag.dag_id, t.task_id)


def test_exit_codes_map_to_airflow_outcomes():
    sys.path.insert(0, str(DAGS))
    import credspark_dag as m

    # credspark/errors.py: 2 config, 3 drift, 5 gate are final; 1 and 4 may be fixed by a retry.
    assert set(m.NOT_RETRIED) == {2, 3, 5}
    assert m.month_end(m.month_index(dt.date(2024, 2, 10))) == dt.date(2024, 2, 29)


def test_the_nightly_dag_runs_end_to_end(dagbag, airflow_db):
    from airflow.utils.state import DagRunState

    wh = os.environ["CREDSPARK_WAREHOUSE"]
    t = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    prep = subprocess.run([str(MAIN_PY), str(REPO / "tests" / "airflow" / "prepare_portfolio.py"), wh], env=env,
                          capture_output=True, text=True, timeout=900)
    assert prep.returncode == 0, prep.stderr[-4000:]
    print(f"prepare portfolio: {time.perf_counter() - t:.1f} s", file=sys.stderr)

    t = time.perf_counter()
    dag = dagbag.dags["credspark_nightly"]
    for task in dag.tasks:  # a failure fails the test at once instead of waiting for the 10-minute retry
        task.retries = 0
    # Logical date in January 2026: the as-of date is the last month end, 2025-12-31.
    dr = dag.test(logical_date=dt.datetime(2026, 1, 5, 2, 0, tzinfo=dt.UTC))
    print(f"nightly dag.test(): {time.perf_counter() - t:.1f} s", file=sys.stderr)
    assert dr.state == DagRunState.SUCCESS, [(ti.task_id, ti.state) for ti in dr.get_task_instances()]
    assert {ti.task_id: ti.state for ti in dr.get_task_instances()} == {
        "build_features": "success", "score_portfolio": "success"}

    paths = {ti.task_id: ti.xcom_pull(task_ids=ti.task_id) for ti in dr.get_task_instances()}
    summaries = {k: json.loads(Path(v).read_text()) for k, v in paths.items()}
    assert summaries["build_features"]["job"] == "build_features"
    assert summaries["build_features"]["params"]["as_of_dates"] == ["2025-12-31"]
    score = summaries["score_portfolio"]
    assert score["status"] == "ok" and score["params"]["score_date"] == "2025-12-31"
    assert score["details"]["model_version"] == "tiny" and score["counts"]["scored"] > 100
    assert Path(paths["score_portfolio"]).parent == Path(wh) / "_runs"
