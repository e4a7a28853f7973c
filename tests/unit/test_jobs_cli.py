"""The job files' command lines: --help and flag checks need only the standard library."""

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest

from credspark.errors import ConfigError
from credspark.job_requests import FeaturesRequest, ScoreRequest, TrainRequest

REPO = Path(__file__).resolve().parents[2]
JOBS = ["build_features", "train", "score_portfolio", "generate_portfolio", "ingest_uci", "ingest_table", "demo",
        "maintain_tables"]


def _bare_python(args, tmp_path):
    """Run python with -S and a bare environment: no site-packages (no pyspark, yaml, numpy), only the repo."""
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-S", *args], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=60)


def test_the_bare_python_really_lacks_the_stack(tmp_path):
    proc = _bare_python(["-c", "import pyspark"], tmp_path)
    assert proc.returncode != 0 and "ModuleNotFoundError" in proc.stderr
    proc = _bare_python(["-c", "import yaml"], tmp_path)
    assert proc.returncode != 0 and "ModuleNotFoundError" in proc.stderr


@pytest.mark.parametrize("job", JOBS)
def test_help_works_with_only_the_standard_library_and_lists_the_exit_codes(job, tmp_path):
    proc = _bare_python([str(REPO / "jobs" / f"{job}.py"), "--help"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    text = " ".join(proc.stdout.split())
    assert text.startswith(f"usage: {job}")
    assert "exit codes: 0 ok" in text and "3 score_portfolio: drift" in text and "5 train: the model failed" in text


@pytest.mark.parametrize(
    "job, argv, message",
    [
        ("build_features", ["--as-of", "2025-12-30"], "as-of dates are month ends"),
        ("build_features", ["--as-of", "2025-12-31", "--from", "2025-01-31"], "either --as-of or --from/--to"),
        ("build_features", ["--as-of", "2025-12-31", "--rebuild-monthly", "2025-06..2025-12"], "only closed months"),
        ("train", ["--as-of", "2025-13-01"], "not an ISO date"),
        ("score_portfolio", ["--score-date", "31/12/2025"], "--score-date '31/12/2025'"),
        ("demo", ["--customers", "0"], "--customers must be >= 1"),
    ],
)
def test_bad_dates_exit_2_before_anything_heavy_is_imported(job, argv, message, tmp_path):
    proc = _bare_python([str(REPO / "jobs" / f"{job}.py"), *argv], tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert f"{job}: error: " in proc.stderr and message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_requests_are_frozen_sorted_and_checked():
    req = FeaturesRequest.from_flags(date_from="2025-10-31", date_to="2025-12-31")
    assert req.as_of_dates == (dt.date(2025, 10, 31), dt.date(2025, 11, 30), dt.date(2025, 12, 31))
    with pytest.raises(AttributeError):
        req.as_of_dates = ()  # type: ignore[misc]
    assert TrainRequest.from_flags("2025-12-31,2025-10-31").as_of_dates == (dt.date(2025, 10, 31),
                                                                            dt.date(2025, 12, 31))
    assert ScoreRequest.from_flags("2025-12-31", None, True) == ScoreRequest(dt.date(2025, 12, 31), None, True)
    with pytest.raises(ConfigError, match="required"):
        ScoreRequest.from_flags(None)
    with pytest.raises(ConfigError, match="month ends"):
        FeaturesRequest((dt.date(2025, 12, 30),))


def test_the_demo_request_decides_the_demo_steps():
    from credspark.job_requests import DemoRequest
    from credspark.pipelines.demo import demo_argv

    full = demo_argv(DemoRequest("/tmp/wh", 500))
    assert [name for name, _ in full] == ["generate_portfolio", "build_features", "build_features", "train",
                                          "score_portfolio"]
    assert full[0][1] == ["--warehouse", "/tmp/wh", "--env", "demo", "--customers", "500"]
    assert [name for name, _ in demo_argv(DemoRequest("/tmp/wh", 500, train=False))][-1] == "build_features"
    with pytest.raises(ConfigError, match="--customers"):
        DemoRequest("/tmp/wh", 0)
