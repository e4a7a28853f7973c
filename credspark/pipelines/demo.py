"""What ``make demo`` runs: the job steps on a generated portfolio, and a short summary of where things are."""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["DEMO_SETTINGS", "champion_line", "demo_argv", "print_demo_summary"]

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
    """Print where the demo's tables, run summaries, model bundle and report are, and which champion it holds."""
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
        line = champion_line(bundle)
        if line:
            print(f"  champion           {line}")


def champion_line(bundle: Path) -> str | None:
    """One line naming a published bundle's champion, its test AUC against the baseline's, and why it won.

    Args:
        bundle: A bundle directory with ``metrics.json`` (None when it has none or lists no candidates).
    """
    path = bundle / "metrics.json"
    if not path.is_file():
        return None
    doc = json.loads(path.read_text())
    champ = doc.get("candidates")
    if not champ:
        return None
    gate = doc.get("gate") or {}
    return (f"{champ['name']}: test AUC {gate.get('test_auc', float('nan')):.4f} (plain XGBoost baseline "
            f"{gate.get('baseline_auc', float('nan')):.4f}); {champ['reason']}")
