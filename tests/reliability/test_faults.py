"""Faults and concurrency on real Spark processes, run as ONE subprocess: see tests/cluster/reliability_cluster.py.

The subprocess owns its JVMs (its own driver and a second driver), so this module does not use the suite's
``spark`` fixture. As root, the script runs without CAP_DAC_OVERRIDE (root would otherwise ignore the
read-only warehouse of the permission check) and, in a private mount namespace, with the scores table on a
16 MiB tmpfs that the disk-full check fills; where neither is possible those two checks are skipped, saying why.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cluster.harness import readable

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "tests" / "cluster" / "reliability_cluster.py"
DROP = "cap_dac_override,cap_dac_read_search,cap_fowner"


def _works(cmd: list[str]) -> bool:
    try:
        return subprocess.run(cmd, capture_output=True, timeout=30, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def command(work_dir: Path) -> list[str]:
    """The script's command line, wrapped (as root) to enforce permissions and to mount the small tmpfs."""
    cmd = [sys.executable, str(SCRIPT), str(work_dir)]
    if os.geteuid() != 0:
        return cmd  # permissions apply already; no tmpfs without root
    inner = shlex.join(cmd)
    if shutil.which("capsh") and _works(["capsh", f"--drop={DROP}", "--", "-c", "true"]):
        inner = f"capsh --drop={DROP} -- -c {shlex.quote('exec ' + inner)}"
    scores = work_dir / "warehouse" / "scores"
    scores.mkdir(parents=True, exist_ok=True)
    if shutil.which("unshare") and _works(["unshare", "--mount", "--propagation", "private", "true"]):
        mount = f"mount -t tmpfs -o size=16m credspark-reliability {shlex.quote(str(scores))} 2>/dev/null"
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c", f"{mount}; exec {inner}"]
    return ["sh", "-c", f"exec {inner}"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    work = tmp_path_factory.mktemp("reliability_cluster")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p))
    # stderr goes to WORK_DIR/stderr.txt, which the script reads to see the task failures Spark logged.
    with open(work / "stderr.txt", "w") as err:
        proc = subprocess.run(
            command(work),
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            timeout=1500,
            cwd=str(REPO),
            env=env,
            check=False,
        )
    stderr = (work / "stderr.txt").read_text(errors="replace")
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise AssertionError(
            f"reliability_cluster.py failed (exit {proc.returncode}); full stderr in "
            f"{work / 'stderr.txt'}; readable tail:\n{readable(stderr)}"
        )
    return json.loads(lines[-1])


def test_baseline_scoring_run(run):
    assert run["baseline"]["code"] == 0 and run["baseline"]["rows"] == 400


def test_a_python_worker_killed_while_scoring_is_retried_with_identical_output(run):
    wk = run["worker_kill"]
    assert wk["killed"] is not None, "no busy Python worker was seen to kill"
    assert wk["code"] == 0
    assert wk["new_run"] and len(wk["run_ids"]) == 1  # the new run's complete rows, one run id
    assert wk["task_failures_seen"] >= 1, "the kill must hit a running task (Spark logs the crashed worker)"
    assert wk["identical"], "the output of the disturbed run must equal the undisturbed run's"


def test_two_runs_for_the_same_date_at_once_leave_one_complete_partition(run):
    sd = run["same_date"]
    assert sd["overlap_s"] > 0  # the second driver's run was still going when this one finished
    # Both succeed (the loser of the commit race retries), or the loser gives up with exit 1.
    assert sd["codes"] in ([0, 0], [0, 1])
    assert sd["identical"] and len(sd["run_ids"]) == 1
    assert sd["holds_last_committer"], "the partition must hold the rows of the run that committed last"
    assert sd["commits"] == sd["recorded_runs"] == sd["codes"].count(0)  # one commit and one record per success


def test_a_backfill_and_a_nightly_run_on_other_partitions_at_once_lose_and_duplicate_nothing(run):
    f = run["features"]
    assert f["sequential"] == 0
    assert f["codes"] == [0, 0], "both the backfill and the nightly run must succeed"
    assert f["overlap_s"] > 0
    assert f["dates"] == ["2025-06-30", "2025-07-31", "2025-08-31", "2025-09-30", "2025-10-31", "2025-11-30"]
    assert f["duplicates"] == 0
    assert all(f["identical"].values()) and len(f["identical"]) == 6, f["identical"]
    assert f["untouched_partition_same_files"]


def test_a_read_only_warehouse_fails_with_the_cause_and_writes_nothing(run):
    p = run["permission"]
    if "skipped" in p:
        pytest.skip(p["skipped"])
    assert p["code"] == 1
    assert "Permission denied" in p["reason"] and "scores" in p["reason"], p["reason"]
    assert p["same_version"] and p["intact"]


def test_a_full_disk_fails_with_the_cause_and_writes_nothing(run):
    d = run["disk_full"]
    if "skipped" in d:
        pytest.skip(d["skipped"])
    assert d["code"] == 1
    assert "No space left on device" in d["reason"], d["reason"]
    assert d["same_version"] and d["intact"]


def test_a_driver_killed_mid_write_leaves_the_previous_version_and_a_rerun_completes(run):
    k = run["driver_kill"]
    assert k["killed_while_writing"], "the second driver was not caught writing"
    assert k["same_version"] and k["intact"], k
    assert k["orphan_files"] > 0 and k["orphans_referenced"] == 0  # its files exist but no version uses them
    r = run["rerun_after_kill"]
    assert r["code"] == 0 and r["identical"] and r["run_ids"] == 1 and r["orphans_referenced"] == 0
