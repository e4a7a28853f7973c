"""The standalone-cluster lane (`make test-cluster`): a real master and workers, jobs sent with spark-submit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def wheel(tmp_path_factory) -> Path:
    """The credspark wheel built from this checkout (what `make dist` builds), in a folder of its own."""
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out),
                    str(REPO)], check=True, cwd=str(REPO))  # fmt: skip
    (found,) = out.glob("credspark-*.whl")
    return found
