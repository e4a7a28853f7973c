"""A torchrun worker whose launcher dies stops its agent and exits (real processes: wrapper -> agent -> worker)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from credspark.distributed.launchers import ORPHAN_EXIT, WorkerError, _launcher_death, _parent_of

REPO = Path(__file__).resolve().parents[3]

# The three levels of TorchDistributor's chain, as small Python programs. Each writes its pid to a file.
WORKER = """
import os, sys, time
sys.path.insert(0, {repo!r})
from credspark.distributed.launchers import _exit_when_orphaned
_exit_when_orphaned(poll_s=0.1)
open({out!r} + "/worker.pid", "w").write(str(os.getpid()))
time.sleep(120)   # "training" that would go on for minutes
open({out!r} + "/worker.finished", "w").write("the orphan kept going")
"""
AGENT = """
import os, subprocess, sys
open({out!r} + "/agent.pid", "w").write(str(os.getpid()))
worker = subprocess.Popen([sys.executable, "-c", {worker!r}])
code = worker.wait()
open({out!r} + "/worker.status", "w").write(str(code))
"""
WRAPPER = """
import os, subprocess, sys, time
agent = subprocess.Popen([sys.executable, "-c", {agent!r}])
agent.wait()
"""


def _wait_for(path: Path, timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text():
            return path.read_text()
        time.sleep(0.05)
    raise AssertionError(f"{path} did not appear within {timeout} s")


def _alive(pid: int) -> bool:
    """Running (a zombie, ended but not yet reaped, counts as gone)."""
    try:
        os.kill(pid, 0)
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (ProcessLookupError, FileNotFoundError):
        return False
    except OSError:
        return True
    return stat[stat.rfind(")") + 2 :].split()[0] != "Z"


@pytest.fixture
def chain(tmp_path):
    fmt = {"repo": str(REPO), "out": str(tmp_path)}
    worker = textwrap.dedent(WORKER).format(**fmt)
    agent = textwrap.dedent(AGENT).format(worker=worker, **fmt)
    wrapper = subprocess.Popen([sys.executable, "-c", textwrap.dedent(WRAPPER).format(agent=agent)])
    agent_pid = int(_wait_for(tmp_path / "agent.pid"))
    worker_pid = int(_wait_for(tmp_path / "worker.pid"))
    yield wrapper, agent_pid, worker_pid, tmp_path
    for pid in (wrapper.pid, agent_pid, worker_pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    wrapper.wait()


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_killing_the_wrapper_stops_the_worker_and_its_agent(chain):
    wrapper, agent_pid, worker_pid, out = chain
    assert _parent_of(worker_pid) == agent_pid and _parent_of(agent_pid) == wrapper.pid
    os.kill(wrapper.pid, signal.SIGKILL)
    wrapper.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (_alive(worker_pid) or _alive(agent_pid)):
        time.sleep(0.05)
    assert not _alive(worker_pid), "the worker kept running after its wrapper was killed"
    assert not _alive(agent_pid), "the agent kept running after its wrapper was killed"
    assert not (out / "worker.finished").exists()


def test_killing_the_agent_stops_the_worker(chain):
    wrapper, agent_pid, worker_pid, out = chain
    os.kill(agent_pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(worker_pid):
        time.sleep(0.05)
    assert not _alive(worker_pid)
    assert not (out / "worker.finished").exists()
    assert wrapper.wait(timeout=10) == 0  # the wrapper saw its agent end (killed): nothing else left


def test_a_worker_under_a_living_chain_is_left_alone(chain):
    wrapper, agent_pid, worker_pid, out = chain
    time.sleep(1.0)  # ten checks
    assert _alive(worker_pid) and _alive(agent_pid) and wrapper.poll() is None


def test_a_killed_torchrun_process_gives_a_readable_error():
    java = ("py4j.protocol.Py4JJavaError: An error occurred while calling o123.collect.\n"
            "org.apache.spark.api.python.PythonException: Traceback (most recent call last):\n"
            '  File "distributor.py", line 1, in _execute_command\n'
            "RuntimeError: Command ['python', '-m', 'pyspark.ml.torch.torch_run_process_wrapper'] failed with "
            "return code -9. The last 100 lines of output are shown below:\n\tat org.apache.spark.Foo(Foo.scala:1)")
    err = _launcher_death(java)
    assert isinstance(err, WorkerError) and err.error_type == "LauncherDied" and err.rank == -1
    assert "killed by signal 9 (SIGKILL)" in str(err) and "Py4J" not in str(err)
    assert "exit status 1" in str(_launcher_death("failed with return code 1."))
    assert _launcher_death("some other failure") is None
    assert ORPHAN_EXIT == 143
