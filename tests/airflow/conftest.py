"""The Airflow lane's environment (make test-airflow): set before Airflow or the DAG file is imported.

Airflow reads its configuration and the DAG file reads the CREDSPARK_* settings at import time, so they
are set here, at collection, for the whole session: a private AIRFLOW_HOME with a sqlite metadata database,
no example DAGs, the Spark connection ``spark_default`` = ``local[2]``, and the warehouse of the run.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
WORK = Path(tempfile.mkdtemp(prefix="credspark-airflow-"))

os.environ.update({
    "AIRFLOW_HOME": str(WORK / "airflow"),
    "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "examples" / "airflow"),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{WORK / 'airflow' / 'airflow.db'}",
    "AIRFLOW_CONN_SPARK_DEFAULT": json.dumps({"conn_type": "spark", "host": "local[2]"}),
    "CREDSPARK_HOME": str(REPO),
    "CREDSPARK_WAREHOUSE": str(WORK / "warehouse"),
    "CREDSPARK_SETS": "spark.conf.spark.databricks.delta.snapshotPartitions=2",
})
os.environ.setdefault("CREDSPARK_BIN", str(REPO / ".venv" / "bin"))
os.environ.setdefault("CREDSPARK_JARS_DIR", str(Path.home() / ".cache" / "credspark" / "jars" / "delta-4.4.0"))
(WORK / "airflow").mkdir(parents=True, exist_ok=True)


def pytest_sessionfinish(session, exitstatus):
    """Remove the lane's folder after a passing run (kept after a failure, for its logs and run summaries)."""
    import shutil

    if exitstatus == 0:
        shutil.rmtree(WORK, ignore_errors=True)
