"""credspark on Apache Airflow 3: nightly features + scoring, monthly retraining, a features/scoring backfill.

Every task is one credspark job run with ``spark-submit`` (``SparkSubmitOperator`` from
apache-airflow-providers-apache-spark) through :class:`CredsparkJobOperator`, which maps the job's exit code
to an Airflow outcome and pushes the path of the job's run summary to XCom:

============  ==========================================  ========================================
exit code     meaning (credspark/errors.py)               Airflow outcome
============  ==========================================  ========================================
0             success                                     success; XCom ``return_value`` = summary
1             unexpected failure (crashed cluster, bug)   failed, retried (``retries``)
2             bad command line or configuration           failed, not retried
3             scoring: drift beyond score.psi_fail        failed, not retried (scores are written)
4             input missing or breaking the contract      failed, retried (late data may arrive)
5             training: the quality gate refused          failed, not retried (``current`` kept)
============  ==========================================  ========================================

Settings come from the environment of the Airflow workers (read when the DAG file is parsed):

- ``CREDSPARK_HOME``: the credspark checkout or installed copy holding ``jobs/`` (default: two folders above
  this file).
- ``CREDSPARK_WAREHOUSE``: the warehouse URI every job gets as ``--warehouse`` (default: ``$CREDSPARK_HOME/warehouse``).
- ``CREDSPARK_ENV``: ``--env`` overlay (``conf/env/<name>.yaml``), e.g. ``cluster``; empty = none.
- ``CREDSPARK_BIN``: folder with the ``spark-submit`` and ``python`` of the environment credspark is
  installed in (put first on ``PATH`` of the job; empty = ``PATH`` as it is).
- ``CREDSPARK_SPARK_CONN``: the Airflow Spark connection (master, deploy mode); default ``spark_default``.
- ``CREDSPARK_JARS_DIR``: folder with the Delta Lake JARs (``make jars``), passed as ``--jars``; when unset,
  ``CREDSPARK_SPARK_PACKAGES`` (default ``io.delta:delta-spark_4.2_2.13:4.4.0``) goes to ``--packages``.
  Either way the jobs get ``--set spark.delta_jars=provided``: under spark-submit the driver's JVM is already
  running when the job builds its session, so the JARs must come on the command line.
- ``CREDSPARK_SETS``: extra ``--set key=value`` overrides for every job, separated by ``;``.

See docs/platform.md for adapting it (cluster masters, MLflow tracking, the scoring model).
"""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path
from typing import Any

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk import DAG, Param, task
from airflow.sdk.exceptions import AirflowException, AirflowFailException

HOME = Path(os.environ.get("CREDSPARK_HOME") or Path(__file__).resolve().parents[2])
WAREHOUSE = os.environ.get("CREDSPARK_WAREHOUSE") or str(HOME / "warehouse")
ENV = os.environ.get("CREDSPARK_ENV", "")
BIN = os.environ.get("CREDSPARK_BIN", "")
SPARK_CONN = os.environ.get("CREDSPARK_SPARK_CONN", "spark_default")
SETS = [s for s in os.environ.get("CREDSPARK_SETS", "").split(";") if s.strip()]
JARS_DIR = os.environ.get("CREDSPARK_JARS_DIR", "")
PACKAGES = os.environ.get("CREDSPARK_SPARK_PACKAGES", "io.delta:delta-spark_4.2_2.13:4.4.0")

#: Exit codes (credspark/errors.py) that a retry cannot fix.
NOT_RETRIED = {2: "bad configuration", 3: "drift beyond score.psi_fail", 5: "quality gate refused the model"}
#: The job runner logs this line with the path of the run summary it wrote.
_SUMMARY_LINE = re.compile(r"run summary: (\S+\.json)\s*$")

#: The last month end before the run's logical date: the as-of date the nightly runs use (features are
#: built for month ends); a run's ``as_of`` param overrides it.
AS_OF = "{{ params.as_of or (logical_date.replace(day=1) - macros.timedelta(days=1)).strftime('%Y-%m-%d') }}"


def month_end(index: int) -> dt.date:
    """The last day of month ``index`` (``year * 12 + month - 1``)."""
    nxt = index + 1
    return dt.date(nxt // 12, nxt % 12 + 1, 1) - dt.timedelta(days=1)


def month_index(day: dt.date) -> int:
    """``year * 12 + month - 1`` of a date."""
    return day.year * 12 + day.month - 1


def _job_env() -> dict[str, str]:
    env = {"PYTHONUNBUFFERED": "1"}
    if BIN:
        env["PATH"] = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
        # The driver and the executors' Python: the environment credspark is installed in.
        env["PYSPARK_PYTHON"] = env["PYSPARK_DRIVER_PYTHON"] = str(Path(BIN) / "python")
    for key in ("CREDSPARK_JARS_DIR", "CREDSPARK_CONF_DIR", "MLFLOW_TRACKING_URI", "PYTHONPATH"):
        if os.environ.get(key):
            env[key] = os.environ[key]
    return env


def job_args(*args: str) -> list[str]:
    """A job's arguments plus the ones every job gets (warehouse, env overlay, overrides)."""
    out = [*args, "--warehouse", WAREHOUSE, "--set", "spark.delta_jars=provided"]
    if ENV:
        out += ["--env", ENV]
    for s in SETS:
        out += ["--set", s.strip()]
    return out


class CredsparkJobOperator(SparkSubmitOperator):
    """``spark-submit jobs/<job>.py``: exit codes mapped to Airflow outcomes, run summary path to XCom.

    Args:
        job: The job's file name under ``jobs/`` without ``.py`` (``build_features``, ``score_portfolio``, ``train``).
        **kwargs: SparkSubmitOperator arguments (``application_args``, ``conf``, ``retries``, ...).
    """

    def __init__(self, *, job: str, **kwargs: Any) -> None:
        kwargs.setdefault("application", str(HOME / "jobs" / f"{job}.py"))
        kwargs.setdefault("conn_id", SPARK_CONN)
        kwargs.setdefault("name", f"credspark-{job}")
        kwargs.setdefault("env_vars", _job_env())
        jars = sorted(str(p) for p in Path(JARS_DIR).glob("*.jar")) if JARS_DIR else []
        if jars:
            kwargs.setdefault("jars", ",".join(jars))
        else:
            kwargs.setdefault("packages", PACKAGES)
        super().__init__(**kwargs)
        self.job = job

    def _tap(self, lines: Any) -> Any:
        """Pass spark-submit's output through, remembering the run summary path the job runner logs."""
        for line in lines:
            m = _SUMMARY_LINE.search(str(line).strip())
            if m:
                self._summary = m.group(1)
            yield line

    def execute(self, context: Any) -> str | None:
        """Run the job; return (XCom) the run summary path; raise by exit code (see the module docstring)."""
        self._summary = None
        # The hook reads spark-submit's merged stdout/stderr in _process_spark_submit_log: read it through _tap.
        hook = self._hook = self._get_hook()
        process_log = hook._process_spark_submit_log
        hook._process_spark_submit_log = lambda itr: process_log(self._tap(itr))
        error: Exception | None = None
        try:
            super().execute(context)
            code = 0
        except Exception as e:  # the provider raises its AirflowException; the process says which exit code
            proc = getattr(hook, "_submit_sp", None)
            code = proc.returncode if proc is not None and proc.returncode is not None else None
            if code is None:
                raise
            error = e
        summary = self._summary
        ti = context["ti"]
        ti.xcom_push(key="exit_code", value=code)
        ti.xcom_push(key="run_summary", value=summary)
        if code == 0:
            return summary
        if code in NOT_RETRIED:
            raise AirflowFailException(f"credspark {self.job}: exit {code} ({NOT_RETRIED[code]}); run summary "
                                       f"{summary}") from error
        raise AirflowException(f"credspark {self.job}: exit {code}; run summary {summary}") from error


DEFAULT_ARGS = {"owner": "credspark", "retries": 2, "retry_delay": dt.timedelta(minutes=10)}

with DAG(
    dag_id="credspark_nightly",
    description="Features of the last month end, then scoring with the current model",
    schedule="0 2 * * *",
    start_date=dt.datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    params={"as_of": Param(None, type=["null", "string"], format="date", description="as-of date (a month end)")},
    tags=["credspark"],
) as nightly:
    features = CredsparkJobOperator(task_id="build_features", job="build_features",
                                    application_args=job_args("--as-of", AS_OF))
    score = CredsparkJobOperator(task_id="score_portfolio", job="score_portfolio",
                                 application_args=job_args("--score-date", AS_OF))
    features >> score

with DAG(
    dag_id="credspark_monthly_training",
    description="Labelled features of the month end one label horizon back, then training (gate, publish)",
    schedule="0 4 2 * *",
    start_date=dt.datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    params={
        "as_of": Param(None, type=["null", "string"], format="date",
                       description="training as-of date (a month end whose labels are complete)"),
        "horizon_months": Param(12, type="integer", minimum=1, description="features.horizon_months"),
    },
    tags=["credspark"],
) as monthly:

    @task
    def training_as_of(params: dict[str, Any] | None = None, logical_date: Any = None) -> str:
        """The month end ``horizon_months`` before the last closed month (its labels are complete)."""
        if params and params.get("as_of"):
            return str(params["as_of"])
        last_closed = month_index(logical_date.date()) - 1
        return month_end(last_closed - int(params["horizon_months"])).isoformat()

    as_of = training_as_of()
    pulled = "{{ ti.xcom_pull(task_ids='training_as_of') }}"
    train_features = CredsparkJobOperator(task_id="build_features", job="build_features",
                                          application_args=job_args("--as-of", pulled))
    # A gate refusal (exit 5) is final for the month: a retry would train the same model again.
    train = CredsparkJobOperator(task_id="train", job="train", application_args=job_args("--as-of", pulled),
                                 retries=1)
    as_of >> train_features
    train_features >> train

with DAG(
    dag_id="credspark_backfill",
    description="Features of every month end in a date range, then scoring of each",
    schedule=None,
    start_date=dt.datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    params={
        "date_from": Param("2025-01-31", type="string", format="date", description="first month end"),
        "date_to": Param("2025-12-31", type="string", format="date", description="last month end"),
        "score": Param(True, type="boolean", description="score every month end after building its features"),
    },
    tags=["credspark"],
) as backfill:

    @task
    def month_ends(params: dict[str, Any] | None = None) -> list[list[str]]:
        """``--score-date`` arguments of every month end in the range (none when scoring is off)."""
        start, end = dt.date.fromisoformat(params["date_from"]), dt.date.fromisoformat(params["date_to"])
        days = [month_end(i) for i in range(month_index(start), month_index(end) + 1)]
        out = [d for d in days if start <= d <= end]
        return [job_args("--score-date", d.isoformat()) for d in out] if params["score"] else []

    backfill_features = CredsparkJobOperator(
        task_id="build_features", job="build_features",
        application_args=job_args("--from", "{{ params.date_from }}", "--to", "{{ params.date_to }}",
                                  "--every", "month"))
    # One scoring run per month end, in date order (drift is measured against the previous score date).
    backfill_scores = CredsparkJobOperator.partial(task_id="score_portfolio", job="score_portfolio",
                                                   max_active_tis_per_dag=1).expand(application_args=month_ends())
    backfill_features >> backfill_scores
