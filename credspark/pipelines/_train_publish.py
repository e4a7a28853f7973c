"""Publishing a trained model: the staged bundle, then the bundle, report.html and metrics.json.

The champion's bundle is staged first (:func:`stage_bundle`): written to a private local folder and read back,
so that the training job evaluates it through the scoring path (:mod:`._train_evaluate`). The published bundle
holds the same model files (checked by their hashes) with the evaluation in its metadata; ``current`` moves
only past the gate.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from credspark.config import Config
from credspark.evaluation import BASELINE_NAME, PART_TRAIN, Evaluation, calibration_note
from credspark.models.bundle import MANIFEST_FILE, BundleError, manifest_files
from credspark.models.calibration import Calibrator
from credspark.models.spec import FeatureSpec
from credspark.pipelines._train_data import KEY_COLS, PART_COL, SplitPlan, column_expr
from credspark.pipelines._train_steps import IMPUTATION_NOTE, DeepModels, Fitted
from credspark.runner import Run
from credspark.scoring.scorecard import ScorecardScale

__all__ = ["Outcome", "stage_bundle", "publish", "real_vs_generated"]


def _bundle_models(champ: Any, fitted: Fitted, trees: Mapping[str, Any], deep: DeepModels,
                   use_raw_static: bool) -> tuple[Any, Any, bool]:
    from credspark.pipelines._train_champion import champion_model

    return champion_model(champ, fitted.focal, trees, deep.embedder, use_raw_static)


def stage_bundle(spec: FeatureSpec, champ: Any, fitted: Fitted, trees: Mapping[str, Any], deep: DeepModels,
                 cal: Calibrator, cfg: Config, run: Run) -> dict[str, bytes]:
    """Write the champion's bundle into a private local folder and read its bytes back (the folder is removed).

    Args:
        spec: The FeatureSpec.
        champ: The champion (:class:`credspark.pipelines._train_champion.Champion`).
        fitted: The fitted focal XGBoost and baseline.
        trees: The fitted tree-only candidates.
        deep: The deep models (the embedder).
        cal: The champion's calibration map.
        cfg: The job config (``train.use_raw_static``).
        run: The run (its id goes into the staged metadata).

    Returns:
        The staged bundle's :data:`~credspark.scoring.partition.BundleFiles` (what the scoring path loads).
    """
    from credspark.models.bundle import save_bundle
    from credspark.scoring.partition import read_bundle_files

    embedder, classifier, use_raw_static = _bundle_models(champ, fitted, trees, deep, cfg.train.use_raw_static)
    tmp = Path(tempfile.mkdtemp(prefix="credspark-staged-"))
    try:
        folder = save_bundle(tmp / "bundle", spec=spec, embedder=embedder, classifier=classifier,
                             metadata={"run_id": run.run_id, "staged": True}, use_raw_static=use_raw_static,
                             calibration=cal, created_at=run.started_at)
        return read_bundle_files(folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _check_same_models(staged: Mapping[str, bytes], folder: Path) -> None:
    """Refuse a published bundle whose model files are not byte for byte the staged ones the job evaluated."""
    evaluated = manifest_files(staged[MANIFEST_FILE], "the staged bundle")
    written = manifest_files((folder / MANIFEST_FILE).read_bytes(), folder / MANIFEST_FILE)
    if written != evaluated:
        raise BundleError(f"{folder}: the model files differ from the staged bundle the training job evaluated "
                          f"({sorted(written)} vs {sorted(evaluated)})")


def _config_summary(cfg: Config) -> dict[str, Any]:
    return {"train": asdict(cfg.train), "xgb": asdict(cfg.xgb), "distributed": asdict(cfg.distributed),
            "actgan": asdict(cfg.actgan), "resnet_lstm": asdict(cfg.resnet_lstm)}


@dataclass
class Outcome:
    """Everything the publishing step writes."""

    plan: SplitPlan
    version: str
    spec: FeatureSpec
    counts: dict[str, dict[str, int]]
    deep: DeepModels
    fitted: Fitted
    ev: Evaluation
    cal: Calibrator
    gate: dict[str, Any]
    top: list[str]
    distributions: dict[str, Any]
    real_vs_generated: dict[str, tuple[np.ndarray, np.ndarray]] | None
    imputed: dict[str, dict[str, float]]
    champion: Any  # credspark.pipelines._train_champion.Champion
    trees: dict[str, Any]  # the fitted tree-only candidates


def _metadata(o: Outcome, classifier: Any, cfg: Config, run: Run) -> dict[str, Any]:
    """The bundle's ``metadata``: run, metrics and gate, training data and reference distributions, champion."""
    champ = o.champion
    return {
        "run_id": run.run_id,
        "version": o.version,
        "git_commit": os.environ.get("CREDSPARK_GIT_COMMIT"),
        "threshold": o.ev.metrics[champ.name]["threshold"],
        "metrics": {name: {k: v for k, v in m.items() if k != "calibration"} for name, m in o.ev.metrics.items()},
        "gate": o.gate,
        "training_data": {
            "as_of_dates": [d.isoformat() for d in o.plan.dates],
            "split": o.plan.to_dict(),
            "counts": o.counts,
            "generated_rows": int(o.deep.details.get("generated_rows", 0)),
            "feature_table": cfg.tables.features,
            # save_bundle sorts manifest keys, so the importance order is kept here explicitly.
            "distribution_order": [n for n in [*o.top, "score", "pd"] if n in o.distributions],
            "distributions": o.distributions,
            # The scale the "score" distribution was computed with; scoring compares only on the same scale.
            "score_scale": ScorecardScale.of(cfg.score).to_dict(),
        },
        "deep_backend": o.deep.backend,
        "xgb": {"best_iteration": classifier.best_iteration_, "num_workers": cfg.xgb.num_workers},
        "champion": champ.to_dict(),
        "preprocessing": {"deep_step_imputation": o.imputed, "note": IMPUTATION_NOTE},
    }


def _report(o: Outcome, target: Any, cfg: Config, run: Run) -> Any:
    """The training report (:class:`credspark.reporting.TrainingReport`) of the run, for ``report.html``."""
    from credspark.pipelines._train_champion import champion_report, report_models
    from credspark.reporting import TrainingReport

    tc, champ, spec = cfg.train, o.champion, o.spec
    histories, best_rounds, importances = report_models(o.fitted.focal, o.trees, o.fitted.baseline, BASELINE_NAME)
    return TrainingReport(
        title=f"credspark training run {o.version}",
        run={"model": tc.model_name, "version": o.version, "run_id": run.run_id,
             "as_of_dates": [d.isoformat() for d in o.plan.dates], "bundle": str(target),
             "started_at": run.started_at, "deep step": o.deep.backend,
             "stage seconds": dict(run.durations_s)},
        gate=o.gate,
        metrics=o.ev.metrics,
        y_test=o.ev.y_test,
        scores_test=o.ev.scores_test,
        data={"split": o.plan.to_dict(), "rows per part and label": o.counts,
              "generated rows": int(o.deep.details.get("generated_rows", 0)), "validation": o.ev.valid,
              "feature spec": {"static": spec.static_names, "channels": list(spec.channels), "T": spec.T,
                               "version": spec.version}},
        config=_config_summary(cfg),
        gan_history=o.deep.gan_history,
        resnet_history=o.deep.resnet_history,
        xgb_histories=histories,
        xgb_best=best_rounds,
        importances=importances,
        real_vs_generated=o.real_vs_generated,
        candidates=champion_report(champ, o.trees),
        notes=[f"champion: {champ.reason}", f"deep step: {o.deep.backend}", calibration_note(o.cal, o.ev, champ.name)]
        + ([f"{IMPUTATION_NOTE} Imputed: "
            + ", ".join(f"{k} = {v['value']:.4g} ({v['missing_share']:.1%} missing)" for k, v in o.imputed.items())]
           if o.imputed else []),
    )


def publish(o: Outcome, staged: Mapping[str, bytes], cfg: Config, run: Run) -> Any:
    """Write the bundle, report.html and metrics.json; move ``current`` only when the gate passed.

    Args:
        o: What the job produced.
        staged: The staged bundle's bytes (:func:`stage_bundle`): the published model files must equal them.
        cfg: The job config.
        run: The run.

    Returns:
        The bundle's location.

    Raises:
        BundleError: The written model files differ from the staged ones (nothing is uploaded to an object
            store; a local folder stays unpublished).
    """
    from credspark.io.model_store import model_dir, publish_bundle, set_current
    from credspark.models.bundle import save_bundle
    from credspark.reporting import write_report

    tc = cfg.train
    embedder, classifier, use_raw_static = _bundle_models(o.champion, o.fitted, o.trees, o.deep, tc.use_raw_static)
    target = model_dir(cfg.warehouse.path, tc.model_name, o.version)
    metadata = _metadata(o, classifier, cfg, run)
    report = _report(o, target, cfg, run)
    with publish_bundle(cfg.warehouse.path, tc.model_name, o.version) as folder:
        save_bundle(folder, spec=o.spec, embedder=embedder, classifier=classifier, metadata=metadata,
                    use_raw_static=use_raw_static, calibration=o.cal, created_at=run.started_at)
        _check_same_models(staged, Path(folder))
        write_report(folder, report)
    run.details["bundle"] = str(target)
    if o.gate["passed"]:
        set_current(cfg.warehouse.path, tc.model_name, o.version)
    return target


def _sample(df: DataFrame, cols: Mapping[str, Column], n: int, seed: int) -> dict[str, np.ndarray]:
    """Up to ``n`` rows of some columns, picked by a seeded hash of the row identity (deterministic)."""
    picked = (df.orderBy(F.xxhash64(*[F.col(c) for c in KEY_COLS], F.lit(seed))).limit(n)
              .select(*[c.alias(f"c{i}") for i, c in enumerate(cols.values())]).toPandas())
    return {name: picked[f"c{i}"].to_numpy(dtype=np.float64) for i, name in enumerate(cols)}


def real_vs_generated(rows: DataFrame, deep: DeepModels, spec: FeatureSpec, columns: Sequence[str],
                       tc: Any) -> dict[str, tuple[np.ndarray, np.ndarray]] | None:
    """Samples of real minority training rows and of generated rows for the report's distribution plots."""
    if deep.generated is None or not columns:
        return None
    exprs = {c: column_expr(c, spec) for c in columns}
    real_pos = rows.where((F.col(PART_COL) == PART_TRAIN) & (F.col("label") == 1))
    a = _sample(real_pos, exprs, tc.report_sample_rows, tc.seed)
    b = _sample(deep.generated, exprs, tc.report_sample_rows, tc.seed)
    return {c: (a[c], b[c]) for c in columns}
