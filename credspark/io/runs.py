"""Run summaries: one JSON file per job run under ``<warehouse>/_runs/``, written atomically (any warehouse)."""

from __future__ import annotations

import json
import platform
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from credspark.io import warehouse

__all__ = ["RunSummary", "new_run_id", "write_summary", "versions"]


def new_run_id(job: str, stamp: str) -> str:
    """A unique, sortable run id: ``<job>-<stamp>-<8 hex>``."""
    return f"{job}-{stamp}-{uuid.uuid4().hex[:8]}"


def versions() -> dict[str, str]:
    """Versions of the components that decide a run's results."""
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("credspark", "pyspark", "delta-spark", "torch", "xgboost", "numpy", "pandas", "pyarrow"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


@dataclass
class RunSummary:
    """What a job did: counts, durations, status; written at the end (``credspark.runner.Run`` records it)."""

    job: str
    run_id: str
    started_at: str
    params: dict[str, Any] = field(default_factory=dict)
    counts: dict[str, Any] = field(default_factory=dict)
    durations_s: dict[str, float] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    status: str = "running"
    reason: str | None = None
    exit_code: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict."""
        return {
            "job": self.job,
            "run_id": self.run_id,
            "started_at": self.started_at,
            "status": self.status,
            "exit_code": self.exit_code,
            "reason": self.reason,
            "params": self.params,
            "counts": self.counts,
            "durations_s": self.durations_s,
            "details": self.details,
            "versions": versions(),
        }


def write_summary(summary: RunSummary, runs_dir: str | Path) -> str | Path:
    """Write the summary as ``<runs_dir>/<run_id>.json`` in one atomic replace (never half-written).

    Args:
        summary: The run summary.
        runs_dir: The folder of run summaries (a local path or a warehouse URI).

    Returns:
        Where the summary was written.
    """
    final = warehouse.join(runs_dir, f"{summary.run_id}.json")
    data = json.dumps(summary.to_dict(), indent=2, sort_keys=True, default=str).encode("utf-8")
    warehouse.write_atomic(final, data)
    return final
