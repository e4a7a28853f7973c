"""Publishing a trained model: the bundle, report.html and metrics.json; ``current`` moves only past the gate."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from credspark.config import Config
from credspark.evaluation import BASELINE_NAME, Evaluation, calibration_note
from credspark.models.calibration import Calibrator
from credspark.models.spec import FeatureSpec
from credspark.pipelines._train_data import SplitPlan
from credspark.pipelines._train_steps import IMPUTATION_NOTE, DeepModels, Fitted
from credspark.runner import Run
from credspark.scoring.scorecard import ScorecardScale

__all__ = ["Outcome", "publish"]


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
    champion: Any  # credspark.pipelines.candidates.Champion
    trees: dict[str, Any]  # the fitted tree-only candidates


def publish(o: Outcome, cfg: Config, run: Run) -> Any:
    """Write the bundle, report.html and metrics.json; move ``current`` only when the gate passed."""
    from credspark.io.model_store import model_dir, publish_bundle, set_current
    from credspark.models.bundle import save_bundle
    from credspark.pipelines.candidates import champion_model, champion_report, report_models
    from credspark.reporting import TrainingReport, write_report

    tc, focal, base = cfg.train, o.fitted.focal, o.fitted.baseline
    champ = o.champion  # what the bundle holds and what the report shows (credspark.pipelines.candidates)
    embedder, classifier, use_raw_static = champion_model(champ, focal, o.trees, o.deep.embedder, tc.use_raw_static)
    histories, best_rounds, importances = report_models(focal, o.trees, base, BASELINE_NAME)
    target = model_dir(cfg.warehouse.path, tc.model_name, o.version)
    n_generated = int(o.deep.details.get("generated_rows", 0))
    metadata = {
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
            "generated_rows": n_generated,
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
    spec = o.spec
    report = TrainingReport(
        title=f"credspark training run {o.version}",
        run={"model": tc.model_name, "version": o.version, "run_id": run.run_id,
             "as_of_dates": [d.isoformat() for d in o.plan.dates], "bundle": str(target),
             "started_at": run.started_at, "deep step": o.deep.backend,
             "stage seconds": dict(run.durations_s)},
        gate=o.gate,
        metrics=o.ev.metrics,
        y_test=o.ev.y_test,
        scores_test=o.ev.scores_test,
        data={"split": o.plan.to_dict(), "rows per part and label": o.counts, "generated rows": n_generated,
              "validation": o.ev.valid,
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
    with publish_bundle(cfg.warehouse.path, tc.model_name, o.version) as folder:
        save_bundle(folder, spec=o.spec, embedder=embedder, classifier=classifier, metadata=metadata,
                    use_raw_static=use_raw_static, calibration=o.cal, created_at=run.started_at)
        write_report(folder, report)
    run.details["bundle"] = str(target)
    if o.gate["passed"]:
        set_current(cfg.warehouse.path, tc.model_name, o.version)
    return target
