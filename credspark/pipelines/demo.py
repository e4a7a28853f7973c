"""What ``make demo`` runs: the job steps on a generated portfolio, and a short summary of where things are."""

from __future__ import annotations

import json
from typing import Any

from credspark.job_requests import DemoRequest

__all__ = ["DEMO_SETTINGS", "champion_line", "demo_argv", "print_demo_summary"]

#: The demo's dates: features for a training date (its 12-month label horizon has ended inside the
#: generated window) and for the scoring date (the window's last month end, labels unknown).
DEMO_SETTINGS = {"customers": 20000, "train_as_of": "2024-12-31", "score_date": "2025-12-31"}


def demo_argv(request: DemoRequest) -> list[tuple[str, list[str]]]:
    """The (job name, arguments) of each demo step, in order.

    Args:
        request: The warehouse, the portfolio size and whether to train and score.

    Returns:
        ``[(job name, argv), ...]``.
    """
    common = ["--warehouse", request.warehouse, "--env", "demo"]
    steps = [
        ("generate_portfolio", [*common, "--customers", str(request.customers)]),
        ("build_features", [*common, "--as-of", DEMO_SETTINGS["train_as_of"]]),
        ("build_features", [*common, "--as-of", DEMO_SETTINGS["score_date"]]),
    ]
    if request.train:
        steps += [
            ("train", [*common, "--as-of", DEMO_SETTINGS["train_as_of"]]),
            ("score_portfolio", [*common, "--score-date", DEMO_SETTINGS["score_date"]]),
        ]
    return steps


def print_demo_summary(warehouse: str) -> None:
    """Print where the demo's tables, run summaries, model bundle and report are (any warehouse), and its champion."""
    from credspark.io import warehouse as wh
    from credspark.io.model_store import current_version, model_dir

    print("\ncredspark demo finished. Outputs:")
    for name in ("customers", "transactions", "statements", "outcomes", "features", "scores", "score_runs"):
        table = wh.child(warehouse, name)
        if wh.exists(wh.join(table, "_delta_log")):
            print(f"  table {name:<13} {table}")
    runs_dir = wh.child(warehouse, "_runs")
    runs = [f for f in wh.list_files(runs_dir) if f.endswith(".json")]
    print(f"  run summaries      {runs_dir} ({len(runs)} runs)")
    for name in wh.list_dirs(wh.child(warehouse, "models")):
        version = current_version(warehouse, name)
        if version is None:
            continue
        bundle = model_dir(warehouse, name, version)
        print(f"  model bundle       {bundle}")
        for report in (f for f in wh.list_files(bundle) if f.endswith(".html")):
            print(f"  training report    {wh.join(bundle, report)}")
        line = champion_line(bundle)
        if line:
            print(f"  champion           {line}")


def champion_line(bundle: Any) -> str | None:
    """One line naming a published bundle's champion, its test AUC against the baseline's, and why it won.

    Args:
        bundle: A bundle location (a folder or a warehouse URI) with ``metrics.json``.

    Returns:
        The line, or None when the bundle has no ``metrics.json`` or it lists no candidates.
    """
    from credspark.io import warehouse as wh

    path = wh.join(bundle, "metrics.json")
    if not wh.is_file(path):
        return None
    doc = json.loads(wh.read_bytes(path))
    champ = doc.get("candidates")
    if not champ:
        return None
    gate = doc.get("gate") or {}
    return (f"{champ['name']}: test AUC {gate.get('test_auc', float('nan')):.4f} (plain XGBoost baseline "
            f"{gate.get('baseline_auc', float('nan')):.4f}); {champ['reason']}")
