"""Running a job: config, session, one pipeline call, the run summary, a one-line failure reason, an exit code.

A job file parses its command line into :class:`~credspark.job_requests.JobOptions` and a frozen request, then
calls :func:`run_job` with its pipeline function. The pipeline takes ``(spark, cfg, request, run)``: it times
its stages and records what it has learnt so far on the :class:`Run` (kept in the summary when it fails) and
returns a frozen :class:`JobResult`.
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from credspark.errors import EXIT_FAILED, EXIT_OK, CredsparkError, jvm_root_cause
from credspark.job_requests import JobOptions, request_params

__all__ = ["Run", "JobResult", "Pipeline", "run_job", "failure_reason"]

log = logging.getLogger("credspark")


@dataclass(frozen=True)
class JobResult:
    """What a pipeline returns: its exit code and what it counted and found.

    Attributes:
        exit_code: 0 ok; see :mod:`credspark.errors` for the others.
        counts: Row counts (read-only).
        details: Everything else worth keeping in the run summary (read-only).
        reason: Why the exit code is not 0 (None when it is).
        run_id: The run that produced it.
    """

    exit_code: int = EXIT_OK
    counts: Mapping[str, Any] = field(default_factory=dict)
    details: Mapping[str, Any] = field(default_factory=dict)
    reason: str | None = None
    run_id: str = ""


@dataclass
class Run:
    """One run of a job as it goes: its identity, stage timings and what is known so far.

    A pipeline records counts and details here as it learns them, so a run that fails half-way still
    leaves them in its summary; :meth:`result` freezes them into the pipeline's :class:`JobResult`.

    Attributes:
        job: Job name.
        run_id: Unique, sortable run id (stamps commits, work folders and records).
        started_at: ISO time the run started (metadata only).
        counts: Row counts so far.
        details: Other findings so far.
        durations_s: Seconds per stage (:meth:`stage`).
    """

    job: str
    run_id: str
    started_at: str
    counts: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    durations_s: dict[str, float] = field(default_factory=dict)

    @classmethod
    def start(cls, job: str) -> Run:
        """A new run of ``job`` with a fresh run id, stamped with the wall-clock time (metadata only)."""
        from credspark.io.runs import new_run_id

        now = dt.datetime.now(dt.UTC)
        return cls(job=job, run_id=new_run_id(job, now.strftime("%Y%m%dT%H%M%SZ")),
                   started_at=now.isoformat(timespec="seconds"))

    def child(self, job: str, suffix: str) -> Run:
        """A run of another job's pipeline inside this one (id ``<run_id>-<suffix>``, same start time)."""
        return Run(job=job, run_id=f"{self.run_id}-{suffix}", started_at=self.started_at)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time a stage; its wall time adds to ``durations_s[name]``."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.durations_s[name] = round(self.durations_s.get(name, 0.0) + time.perf_counter() - t0, 3)

    def result(self, exit_code: int = EXIT_OK, reason: str | None = None) -> JobResult:
        """The frozen result of this run: the exit code and a copy of what was recorded."""
        return JobResult(exit_code=exit_code, counts=MappingProxyType(dict(self.counts)),
                         details=MappingProxyType(dict(self.details)), reason=reason, run_id=self.run_id)

    def summary(self, params: Mapping[str, Any], status: str, exit_code: int, reason: str | None) -> Any:
        """The :class:`credspark.io.runs.RunSummary` of this run."""
        from credspark.io.runs import RunSummary

        return RunSummary(job=self.job, run_id=self.run_id, started_at=self.started_at, params=dict(params),
                          counts=dict(self.counts), durations_s=dict(self.durations_s), details=dict(self.details),
                          status=status, reason=reason, exit_code=exit_code)


#: A job's pipeline: ``(spark, cfg, request, run) -> JobResult``.
Pipeline = Callable[[Any, Any, Any, Run], JobResult]


def _setup_logging() -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                            stream=sys.stderr)


def failure_reason(exc: BaseException) -> str:
    """One line saying why: ``Type: first line``, and for an error from the JVM what it was and its root cause.

    A Py4JJavaError's first line is only "An error occurred while calling o123.save."; what failed (the Java
    exception's message) is on the next line and why (e.g. "No space left on device", "Permission denied")
    in its root cause (:func:`credspark.errors.jvm_root_cause`, package kept).
    """
    text = str(exc).strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    reason = f"{type(exc).__name__}: {lines[0] if lines else ''}"
    is_jvm = type(exc).__name__ == "Py4JJavaError" or any(ln.startswith("Caused by: ") for ln in text.splitlines())
    if is_jvm:
        what = next((ln.lstrip(":").strip() for ln in lines[1:] if not ln.startswith(("at ", "..."))), "")
        for part in (what, jvm_root_cause(text, qualified=True) or ""):
            if part and part not in reason:
                reason += f" | {part}"
    return reason[:2000]


def run_job(
    job: str,
    pipeline: Pipeline,
    options: JobOptions,
    request: object,
    check: Callable[[Any, Any], object] | None = None,
) -> int:
    """Run one job and return its exit code (0 ok; see credspark.errors for the others).

    Args:
        job: Job name (selects ``conf/<job>.yaml``).
        pipeline: The pipeline function, called with ``(spark, cfg, request, run)``.
        options: Where the configuration comes from (``--env``, ``--set``, ``--warehouse``, ``--conf-dir``).
        request: The job's checked request.
        check: Checks that need the config as well as the request, called as ``check(cfg, request)`` before
            the session starts (a ConfigError it raises costs no JVM start). Defaults to none.

    Returns:
        The exit code. A one-line reason goes to stderr on failure; a JSON summary to ``<warehouse>/_runs``.
    """
    from credspark.config import load_config
    from credspark.io.runs import write_summary
    from credspark.io.tables import safe_child

    _setup_logging()
    try:
        cfg = load_config(job, options)
        if check is not None:
            check(cfg, request)
    except CredsparkError as e:
        print(f"{job}: error: {e}", file=sys.stderr)
        return e.exit_code
    run = Run.start(job)
    code, status, reason = EXIT_OK, "failed", None
    try:
        from credspark.io.spark import build_session

        with run.stage("session"):
            spark = build_session(cfg.spark, job, cfg.warehouse.path)
        with run.stage("total"):
            result = pipeline(spark, cfg, request, run)
        code, reason = result.exit_code, result.reason
        run.counts.update(result.counts)
        run.details.update(result.details)
        status = "ok" if code == EXIT_OK else "failed"
    except CredsparkError as e:
        code, reason = e.exit_code, str(e)
    except Exception as e:  # noqa: BLE001 - every failure must become a one-line reason and a summary
        code, reason = EXIT_FAILED, failure_reason(e)
        run.details["traceback"] = traceback.format_exc()
        log.debug("job %s failed", job, exc_info=True)
    summary = run.summary(request_params(options, request), status, code, reason)
    if cfg.tracking.mlflow_uri:  # MLflow (credspark.tracking): never fails the job, records itself in the summary
        from credspark.tracking import track_job_run

        track_job_run(cfg, summary)
    try:
        path = write_summary(summary, safe_child(cfg.warehouse.path, cfg.tables.runs))
        log.info("run summary: %s", path)
    except (OSError, CredsparkError) as e:  # the warehouse itself may be the problem (disk full, permissions)
        print(f"{job}: warning: could not write the run summary: {e}", file=sys.stderr)
    if code != EXIT_OK:
        print(f"{job}: FAILED ({code}): {reason}", file=sys.stderr)
    return code
