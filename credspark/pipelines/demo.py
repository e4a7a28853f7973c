"""What ``make demo`` runs: the job steps on a generated portfolio, and a short summary of where things are."""

from __future__ import annotations

from pathlib import Path

__all__ = ["DEMO_SETTINGS", "demo_argv", "print_demo_summary"]

#: The demo's dates: features for a training date (its 12-month label horizon has ended inside the
#: generated window) and for the scoring date (the window's last month end, labels unknown).
DEMO_SETTINGS = {"customers": 20000, "train_as_of": "2024-12-31", "score_date": "2025-12-31"}


def demo_argv(warehouse: str, customers: int, *, train: bool = True) -> list[tuple[str, list[str]]]:
    """The (job name, arguments) of each demo step, in order."""
    common = ["--warehouse", warehouse, "--env", "demo"]
    steps = [
        ("generate_portfolio", [*common, "--customers", str(customers)]),
        ("build_features", [*common, "--as-of", DEMO_SETTINGS["train_as_of"]]),
        ("build_features", [*common, "--as-of", DEMO_SETTINGS["score_date"]]),
    ]
    if train:
        steps += [
            ("train", [*common, "--as-of", DEMO_SETTINGS["train_as_of"]]),
            ("score_portfolio", [*common, "--score-date", DEMO_SETTINGS["score_date"]]),
        ]
    return steps


def print_demo_summary(warehouse: str) -> None:
    """Print where the demo's tables, run summaries, model bundle and report are."""
    wh = Path(warehouse).resolve()
    print("\ncredspark demo finished. Outputs:")
    for name in ("customers", "transactions", "statements", "outcomes", "features", "scores", "score_runs"):
        if (wh / name / "_delta_log").is_dir():
            print(f"  table {name:<13} {wh / name}")
    runs = sorted((wh / "_runs").glob("*.json"))
    print(f"  run summaries      {wh / '_runs'} ({len(runs)} runs)")
    models = wh / "models"
    for current in sorted(models.glob("*/current")) if models.is_dir() else []:
        bundle = current.parent / current.read_text().strip()
        print(f"  model bundle       {bundle}")
        for report in sorted(bundle.glob("*.html")):
            print(f"  training report    {report}")
