"""One session-scoped SparkSession for the whole suite (local[2], Delta, UTC)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

UCI_CSV = Path(os.environ.get("CREDSPARK_UCI_CSV", Path(__file__).resolve().parents[2] / "shared" / "data"
                              / "uci_taiwan" / "UCI_Credit_Card.csv"))


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    from credspark.config import SparkConfig
    from credspark.io.spark import build_session

    wh = tmp_path_factory.mktemp("spark_wh")
    cfg = SparkConfig(master="local[2]", shuffle_partitions=4, driver_memory="2g", ui_enabled=False)
    session = build_session(cfg, "tests", str(wh))
    yield session
    session.stop()


@pytest.fixture
def warehouse(tmp_path) -> Path:
    """A fresh, empty warehouse folder per test."""
    d = tmp_path / "warehouse"
    d.mkdir()
    return d


@pytest.fixture(scope="session")
def uci_csv() -> Path:
    if not UCI_CSV.exists():
        pytest.skip(f"UCI data not found at {UCI_CSV}")
    return UCI_CSV
