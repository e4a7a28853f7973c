"""The training job's champion: chosen and calibrated on validation, every candidate evaluated on test.

:func:`evaluate_candidates` brings (part, label, every candidate's probability) of the validation and test rows
to the driver and applies the Spark-free rule of :mod:`credspark.models.champion`; the other functions say what
the bundle and the report hold for the chosen candidate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from credspark.config import Config
from credspark.errors import ConfigError, InputError
from credspark.models.calibration import Calibrator, fit_calibrator, margin_from_pd
from credspark.models.champion import CANDIDATES, Candidate, Selection, choose_champion
from credspark.pipelines._train_data import PART_COL, PART_TEST, PART_VALID
from credspark.pipelines.candidates import _PD_BASE, score_col

__all__ = ["Champion", "evaluate_candidates", "champion_model", "champion_report", "report_models"]


@dataclass(frozen=True)
class Champion:
    """The chosen candidate and how every candidate did.

    Attributes:
        key: The champion's candidate key.
        name: Its name in metrics, report and ``metrics.json``.
        selection: The rule's outcome (validation metrics, reason).
        table: One row per candidate: ``name``, ``champion``, validation and test AUC and KS (uncalibrated
            probabilities; a strictly increasing calibration leaves both unchanged).
    """

    key: str
    name: str
    selection: Selection
    table: list[dict[str, Any]] = field(default_factory=list)

    @property
    def reason(self) -> str:
        """Why the champion won (one sentence)."""
        return self.selection.reason

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (manifest metadata, metrics.json, run summary)."""
        return {"key": self.key, "name": self.name, **self.selection.to_dict(), "candidates": self.table}


def _candidate_table(parts: np.ndarray, y: np.ndarray, raw: Mapping[str, np.ndarray], champion: str
                     ) -> list[dict[str, Any]]:
    from credspark.metrics import ks_statistic, roc_auc

    rows = []
    for key, s in raw.items():
        row: dict[str, Any] = {"key": key, "name": CANDIDATES[key].name, "champion": key == champion}
        for part in (PART_VALID, PART_TEST):
            m = parts == part
            row[f"{part}_auc"] = roc_auc(y[m], s[m])
            row[f"{part}_ks"] = ks_statistic(y[m], s[m])
        rows.append(row)
    return rows


def evaluate_candidates(
    scored: DataFrame, counts: Mapping[str, Mapping[str, int]], candidates: Sequence[Candidate], cfg: Config
) -> tuple[Any, Calibrator, Champion]:
    """Choose the champion on the validation part, calibrate it there, and evaluate every model on test.

    Brings (part, label, every probability) of the validation and test rows to the driver. The metrics are
    keyed by name and ordered for the report's table: the calibrated champion, the best other candidate (the
    table's difference column compares these two; with one candidate, the baseline), the other candidates,
    the uncalibrated champion (unless ``train.calibration`` is ``none``), then the plain baseline.

    Returns:
        ``(evaluation, calibration map of the champion, champion)``.

    Raises:
        ConfigError: Too many rows for the driver, or a bad ``train.champion_*`` value.
        InputError: The calibration cannot be fitted on the validation part.
    """
    from credspark.evaluation import BASELINE_NAME, evaluate

    tc = cfg.train
    n_eval = sum(counts[p]["0"] + counts[p]["1"] for p in (PART_VALID, PART_TEST))
    if n_eval > tc.max_eval_rows:
        raise ConfigError(f"{n_eval} validation + test rows exceed train.max_eval_rows={tc.max_eval_rows}")
    cols = [score_col(c.key) for c in candidates]
    # Only labels and probabilities reach the driver; the metrics do not depend on row order.
    pdf = (scored.where(F.col(PART_COL).isin(PART_VALID, PART_TEST)).select(PART_COL, "label", *cols, _PD_BASE)
           .toPandas())
    parts, y = pdf[PART_COL].to_numpy(), pdf["label"].to_numpy().astype(np.int64)
    raw = {c.key: pdf[score_col(c.key)].to_numpy(dtype=np.float64) for c in candidates}
    try:
        selection = choose_champion(parts, y, raw, tc.champion_metric, tc.champion_margin, PART_VALID)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    key = selection.champion
    champion = Champion(key, CANDIDATES[key].name, selection, _candidate_table(parts, y, raw, key))
    is_valid = parts == PART_VALID
    try:
        cal = fit_calibrator(tc.calibration, margin_from_pd(raw[key][is_valid]), y[is_valid])
    except ValueError as exc:
        raise InputError(f"train.calibration={tc.calibration!r} on the {PART_VALID} part: {exc}") from exc
    others = sorted((k for k in raw if k != key), key=lambda k: -selection.valid[k])
    baseline = pdf[_PD_BASE].to_numpy(dtype=np.float64)
    scores = {champion.name: cal.pd_from_raw_pd(raw[key])}
    scores |= {CANDIDATES[k].name: raw[k] for k in others} if others else {BASELINE_NAME: baseline}
    if cal.method != "none":
        scores[f"{champion.name}, uncalibrated"] = raw[key]
    scores[BASELINE_NAME] = baseline
    return evaluate(parts, y, scores), cal, champion


def champion_model(champion: Champion, paper: Any, trees: Mapping[str, Any], embedder: Any,
                   use_raw_static: bool) -> tuple[Any, Any, bool]:
    """What the bundle holds for the champion: ``(embedder or None, classifier, use_raw_static)``."""
    if CANDIDATES[champion.key].needs_embedder:
        return embedder, paper, use_raw_static
    return None, trees[champion.key], True


def champion_report(champion: Champion, trees: Mapping[str, Any]) -> dict[str, Any]:
    """The report's and metrics.json's ``candidates`` entry: the selection, every candidate, and the tuning trials."""
    tuning = {k: m.tuning_.to_dict() for k, m in trees.items() if getattr(m, "tuning_", None) is not None}
    return champion.to_dict() | {"tuning": tuning}


def report_models(paper: Any, trees: Mapping[str, Any], baseline: Any, baseline_name: str
                  ) -> tuple[dict[str, Any], dict[str, int], dict[str, dict[str, float]]]:
    """Boosting histories, best rounds and gain importances of every fitted model, by name (for the report)."""
    models = ({CANDIDATES["paper"].name: paper} if paper is not None else {}) | {
        CANDIDATES[k].name: m for k, m in trees.items()}
    histories = {n: m.evals_result_ for n, m in models.items()} | {baseline_name: baseline.evals_result}
    best = {n: int(m.best_iteration_) for n, m in models.items()} | {baseline_name: int(baseline.best_iteration)}
    gain = {f"{n} (total gain)": {k: float(v) for k, v in m.booster_.get_score(importance_type="total_gain").items()}
            for n, m in models.items()}
    gain[f"{baseline_name} (total gain)"] = {
        k: float(v) for k, v in baseline.booster().get_score(importance_type="total_gain").items()}
    return histories, best, gain
