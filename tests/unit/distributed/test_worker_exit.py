"""The torchrun worker's exit hook: leaves with os._exit after Python is done, keeping the exit status."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def _run(body: str) -> subprocess.CompletedProcess:
    code = textwrap.dedent(
        """
        import atexit, sys
        sys.path.insert(0, {repo!r})
        from credspark.distributed.launchers import _exit_without_native_teardown
        _exit_without_native_teardown()
        # registered after the hook, so it runs before it (atexit is last-in, first-out)
        atexit.register(lambda: print("earlier atexit ran", flush=True))
        """
    ).format(repo=str(REPO)) + textwrap.dedent(body)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)


def test_a_finished_worker_exits_0_with_its_output_flushed():
    proc = _run("""
        print("result written", end="")  # no newline: only an explicit flush gets it out before os._exit
    """)
    assert proc.returncode == 0, proc.stderr
    assert "result written" in proc.stdout and "earlier atexit ran" in proc.stdout


def test_an_uncaught_exception_still_exits_1_with_its_traceback():
    proc = _run("""
        raise RuntimeError("worker broke")
    """)
    assert proc.returncode == 1
    assert "RuntimeError: worker broke" in proc.stderr
