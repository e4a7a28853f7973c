"""The S3 lane (``make test-s3``): a real S3-compatible server, moto's standalone server on 127.0.0.1.

The server runs from its own venv (``make venv-s3``; ``CREDSPARK_MOTO_PYTHON`` names its interpreter) on a
free port, started once per test session and stopped at the end. The tests reach it through pyarrow (the
project's own S3 client) and Spark's s3a connector (``make jars-s3a``); credentials come from the
environment, as a user's would.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUCKET = "bank-risk"
ACCESS_KEY, SECRET_KEY, REGION = "credspark-test", "credspark-test-secret", "us-east-1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _moto_python() -> str:
    py = os.environ.get("CREDSPARK_MOTO_PYTHON") or str(REPO / ".venv-s3" / "bin" / "python")
    if not os.access(py, os.X_OK):
        pytest.fail(f"moto's server venv not found at {py}: run `make venv-s3` (or set CREDSPARK_MOTO_PYTHON)")
    return py


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory):
    """``http://127.0.0.1:<port>`` of a running moto S3 server, with AWS credentials in the environment."""
    port = _free_port()
    log = tmp_path_factory.mktemp("moto") / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([_moto_python(), "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path_factory.getbasetemp())
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2).read()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"moto server did not start on {endpoint}: {log.read_text()[-2000:]}")
            time.sleep(0.3)
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION",
                                            "AWS_DEFAULT_REGION", "AWS_EC2_METADATA_DISABLED")}
    os.environ |= {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_REGION": REGION,
                   "AWS_DEFAULT_REGION": REGION, "AWS_EC2_METADATA_DISABLED": "true"}
    try:
        yield endpoint
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def s3a_settings(endpoint: str) -> dict[str, str]:
    """The Spark settings a user gives for an S3-compatible endpoint (credentials come from the environment)."""
    return {
        "spark.hadoop.fs.s3a.endpoint": endpoint,
        "spark.hadoop.fs.s3a.endpoint.region": REGION,
        "spark.hadoop.fs.s3a.path.style.access": "true",
        "spark.hadoop.fs.s3a.connection.ssl.enabled": "false",
    }


@pytest.fixture(scope="session")
def s3(s3_endpoint):
    """The project's S3 client configured like Spark's, and the test bucket (created once)."""
    from pyarrow import fs as pafs

    from credspark.io import warehouse as wh

    wh.configure_s3(s3a_settings(s3_endpoint))
    pafs.S3FileSystem(**wh.s3_options(), allow_bucket_creation=True).create_dir(BUCKET)
    fs, _ = wh.filesystem(f"s3a://{BUCKET}/")
    return fs


def list_bucket(fs, prefix: str) -> list[str]:
    """Every object key under ``<bucket>/<prefix>`` (through pyarrow, the way a user would list it)."""
    from pyarrow import fs as pafs

    infos = fs.get_file_info(pafs.FileSelector(f"{BUCKET}/{prefix}".rstrip("/"), recursive=True,
                                               allow_not_found=True))
    return sorted(i.path[len(BUCKET) + 1:] for i in infos if i.type == pafs.FileType.File)
