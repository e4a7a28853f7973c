"""Running the local-cluster scripts as subprocesses, with failures that can be read from a CI log.

A local-cluster session cannot share the test suite's JVM, so each script in this folder runs as its own
process. When one fails, the useful part of its stderr is rarely the last few kB (a Java stack trace fills
them), and what happened on the executors is in their own log files. :func:`run_script` keeps the full
stderr in ``WORK_DIR/stderr.txt`` and raises with the readable lines only (Java frames dropped);
:func:`dump_executor_logs` prints the tails of the executors' logs into the script's stderr.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def readable(text: str, limit: int = 8000) -> str:
    """``text`` without Java stack frames (``\\tat ...``, ``... N more``), its last ``limit`` characters."""
    keep = [
        ln for ln in text.splitlines()
        if not ln.lstrip().startswith("at ") and not (ln.strip().startswith("...") and ln.strip().endswith("more"))
    ]  # fmt: skip
    return "\n".join(keep)[-limit:]


def run_script(script: Path, work_dir: Path, timeout_s: int) -> dict:
    """Run ``python SCRIPT WORK_DIR`` from the repository root; return the JSON object on its last stdout line."""
    work_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p))
    proc = subprocess.run([sys.executable, str(script), str(work_dir)], capture_output=True, text=True,
                          timeout=timeout_s, cwd=str(REPO), env=env, check=False)  # fmt: skip
    (work_dir / "stderr.txt").write_text(proc.stderr)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise AssertionError(
            f"{script.name} failed (exit {proc.returncode}); full stderr in {work_dir / 'stderr.txt'}; "
            f"readable tail:\n{readable(proc.stderr)}"
        )
    return json.loads(lines[-1])


def dump_executor_logs(spark, max_lines: int = 60) -> None:
    """Print the tail of every executor's stderr of this application (local-cluster keeps them on disk)."""
    try:
        import pyspark

        app_id = spark.sparkContext.applicationId
        home = Path(os.environ.get("SPARK_HOME") or Path(pyspark.__file__).parent)
        logs = sorted((home / "work" / app_id).glob("*/stderr"))
    except Exception as e:  # noqa: BLE001 - diagnostics must never hide the original error
        print(f"[harness] could not list executor logs: {e}", file=sys.stderr)
        return
    for log in logs:
        try:
            tail = readable(log.read_text(errors="replace"), limit=20000).splitlines()[-max_lines:]
        except OSError as e:
            tail = [f"(unreadable: {e})"]
        print(f"----- executor log {log} (last {len(tail)} readable lines) -----", file=sys.stderr)
        print("\n".join(tail), file=sys.stderr, flush=True)


def wait_for_executors(spark, n: int, timeout_s: float = 180.0) -> int:
    """Wait until ``n`` executors have registered (local-cluster starts them after the session is up).

    Returns the number registered when it returns: ``n``, or fewer if ``timeout_s`` passed first (the caller's
    assertion then shows how many came up).
    """
    import time

    deadline = time.monotonic() + timeout_s
    while True:
        registered = spark.sparkContext._jsc.sc().getExecutorMemoryStatus().size() - 1  # minus the driver
        if registered >= n or time.monotonic() > deadline:
            return registered
        time.sleep(0.5)
