"""A Spark standalone cluster on 127.0.0.1 for the tests: one master and single-core workers, each a
``spark-class`` process of pyspark's own Spark, stopped (with everything they started) on exit."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyspark

SPARK_HOME = Path(pyspark.__file__).resolve().parent


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Standalone:
    """A started cluster: its master URL and each worker's work folder (executor logs live there)."""

    master_url: str
    worker_dirs: list[Path]
    logs: list[Path]

    def executor_logs(self) -> list[Path]:
        """Every executor's stderr under the workers' work folders."""
        return sorted(p for d in self.worker_dirs for p in d.glob("app-*/*/stderr"))


def _wait_for_line(log: Path, text: str, proc: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if log.exists() and text in log.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            raise RuntimeError(f"{log.name}: process ended (exit {proc.returncode}):\n{log.read_text()[-3000:]}")
        time.sleep(0.3)
    raise TimeoutError(f"{log.name}: no '{text}' within {timeout_s:.0f} s:\n{log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM the process group (spark-class and its JVM), SIGKILL what is left after 10 s."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


@contextlib.contextmanager
def standalone_cluster(root: Path, workers: int = 2, cores: int = 1, memory: str = "2g") -> Iterator[Standalone]:
    """Start a master and ``workers`` workers of ``cores`` cores each, bound to 127.0.0.1; stop them on exit.

    Args:
        root: Folder for the daemons' logs and the workers' work folders.
        workers: Number of workers. Defaults to 2.
        cores: Cores each worker offers. Defaults to 1.
        memory: Memory each worker offers. Defaults to "2g".

    Yields:
        The cluster.
    """
    root.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, SPARK_LOCAL_IP="127.0.0.1", SPARK_HOME=str(SPARK_HOME), SPARK_NO_DAEMONIZE="1")
    env.pop("SPARK_CONF_DIR", None)
    spark_class = str(SPARK_HOME / "bin" / "spark-class")
    procs: list[subprocess.Popen] = []
    logs: list[Path] = []

    def start(name: str, args: list[str]) -> subprocess.Popen:
        log = root / f"{name}.log"
        logs.append(log)
        with open(log, "wb") as fh:
            proc = subprocess.Popen([spark_class, *args], stdout=fh, stderr=subprocess.STDOUT, env=env,
                                    cwd=str(root), start_new_session=True)  # fmt: skip
        procs.append(proc)
        return proc

    try:
        port = free_port()
        master = start("master", ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port),
                                  "--webui-port", str(free_port())])  # fmt: skip
        _wait_for_line(logs[0], "I have been elected leader", master, 120)
        url = f"spark://127.0.0.1:{port}"
        dirs = []
        for i in range(workers):
            d = root / f"worker-{i}"
            d.mkdir(exist_ok=True)
            dirs.append(d)
            w = start(f"worker-{i}", ["org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1",
                                      "--cores", str(cores), "--memory", memory, "--work-dir", str(d),
                                      "--webui-port", str(free_port()), url])  # fmt: skip
            _wait_for_line(logs[-1], "Successfully registered with master", w, 120)
        yield Standalone(master_url=url, worker_dirs=dirs, logs=logs)
    finally:
        for proc in reversed(procs):
            _stop(proc)
