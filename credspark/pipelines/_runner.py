"""What every job shares: config, session, run summary, one-line failure reason and exit code."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
import traceback
from collections.abc import Callable

from credspark.config import Config, common_parser, load_config
from credspark.errors import EXIT_FAILED, EXIT_OK, CredsparkError
from credspark.io.runs import RunSummary, new_run_id, write_summary
from credspark.io.tables import safe_child

__all__ = ["run_job", "JobBody", "failure_reason"]

log = logging.getLogger("credspark")

#: A job's library call: gets the session, config, parsed args and the run summary to fill in.
JobBody = Callable[[object, Config, argparse.Namespace, RunSummary], int | None]


def _setup_logging() -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                            stream=sys.stderr)


def failure_reason(exc: BaseException) -> str:
    """One line saying why: ``Type: first line``, and for an error from the JVM what it was and its root cause.

    A Py4JJavaError's first line is only "An error occurred while calling o123.save."; what failed (the Java
    exception's message) is on the next line and why (e.g. "No space left on device", "Permission denied")
    in the last top-level "Caused by:" line (indented ones belong to suppressed exceptions).
    """
    text = str(exc).strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    reason = f"{type(exc).__name__}: {lines[0] if lines else ''}"
    causes = [ln[len("Caused by: "):].strip() for ln in text.splitlines() if ln.startswith("Caused by: ")]
    if type(exc).__name__ == "Py4JJavaError" or causes:
        what = next((ln.lstrip(":").strip() for ln in lines[1:] if not ln.startswith(("at ", "..."))), "")
        for part in (what, causes[-1] if causes else ""):
            if part and part not in reason:
                reason += f" | {part}"
    return reason[:2000]


def run_job(
    job: str,
    body: JobBody,
    argv: list[str] | None = None,
    parser: argparse.ArgumentParser | None = None,
) -> int:
    """Run one job and return its exit code (0 ok; see credspark.errors for the others).

    Args:
        job: Job name (selects ``conf/<job>.yaml``).
        body: The pipeline function to call with ``(spark, cfg, args, summary)``; it may return an exit code.
        argv: Command-line arguments (None = sys.argv[1:]).
        parser: The job's parser (from ``common_parser``) with its own flags.

    Returns:
        The exit code. A one-line reason goes to stderr on failure; a JSON summary to ``<warehouse>/_runs``.
    """
    _setup_logging()
    try:
        args, cfg = load_config(job, argv, parser or common_parser(job))
    except CredsparkError as e:
        print(f"{job}: error: {e}", file=sys.stderr)
        return e.exit_code
    # Wall-clock time stamps the run's metadata only; what data to read comes from --as-of flags.
    now = dt.datetime.now(dt.UTC)
    summary = RunSummary(job=job, run_id=new_run_id(job, now.strftime("%Y%m%dT%H%M%SZ")),
                         started_at=now.isoformat(timespec="seconds"),
                         params={k: v for k, v in vars(args).items() if k != "overrides"} |
                         {"overrides": list(args.overrides)})
    code = EXIT_OK
    try:
        from credspark.io.spark import build_session

        with summary.stage("session"):
            spark = build_session(cfg.spark, job, cfg.warehouse.path)
        with summary.stage("total"):
            code = body(spark, cfg, args, summary) or EXIT_OK
        summary.status = "ok" if code == EXIT_OK else "failed"
    except CredsparkError as e:
        code, summary.status, summary.reason = e.exit_code, "failed", str(e)
    except Exception as e:  # noqa: BLE001 - every failure must become a one-line reason and a summary
        code, summary.status = EXIT_FAILED, "failed"
        summary.reason = failure_reason(e)
        summary.details["traceback"] = traceback.format_exc()
        log.debug("job %s failed", job, exc_info=True)
    summary.exit_code = code
    if cfg.tracking.mlflow_uri:  # MLflow (credspark.tracking): never fails the job, records itself in the summary
        from credspark.tracking import track_job_run

        track_job_run(cfg, summary)
    try:
        path = write_summary(summary, safe_child(cfg.warehouse.path, cfg.tables.runs))
        log.info("run summary: %s", path)
    except OSError as e:  # the warehouse itself may be the problem (disk full, permissions)
        print(f"{job}: warning: could not write the run summary: {e}", file=sys.stderr)
    if code != EXIT_OK:
        print(f"{job}: FAILED ({code}): {summary.reason}", file=sys.stderr)
    return code
