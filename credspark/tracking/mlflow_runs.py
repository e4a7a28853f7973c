"""Log a finished job run to MLflow: config, counts, stage times, metrics, training curves and artifacts.

:func:`track_job_run` is called by the job runner after the job body, before the run summary is written.
Every job's run gets the flattened config as params, its counts and stage durations as metrics, its tags
(job, credspark run id, status, exit code) and the run summary as an artifact. A training run that stored a
bundle adds, from the bundle's ``metrics.json``: the validation and test metrics of every model (the
candidate, its uncalibrated form, the plain XGBoost baseline), the per-epoch curves of the deep models and
the XGBoost rounds as metrics with steps, and ``report.html``, ``metrics.json`` and ``manifest.json`` as
artifacts; when the bundle was published, it is registered (:func:`credspark.tracking.registry.register_bundle`).

Tracking never fails a job: any error (mlflow not installed, the server down or refusing) becomes a warning
and ``summary.details["mlflow"] = {"status": "failed", "error": ...}``; the job's exit code and what it
wrote stay as they were. How long an unreachable server is tried is MLflow's own setting
(``MLFLOW_HTTP_REQUEST_MAX_RETRIES``, ``MLFLOW_HTTP_REQUEST_TIMEOUT``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import re
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from credspark.config import Config
from credspark.io import warehouse as wh
from credspark.io.runs import RunSummary

__all__ = ["track_job_run", "flatten_config", "metric_key", "training_metrics"]

log = logging.getLogger(__name__)

#: MLflow's limits per log_batch call and per param value.
_MAX_METRICS, _MAX_PARAMS, _MAX_PARAM_LEN = 1000, 100, 6000
#: Bundle files logged as artifacts of a training run (under ``bundle/``).
_BUNDLE_ARTIFACTS = ("report.html", "metrics.json", "manifest.json")


def _redact(uri: str | None) -> str | None:
    """A URI without user and password (they must not reach params or the run summary)."""
    if not uri:
        return uri
    parts = urlsplit(uri)
    if parts.username is None and parts.password is None:
        return uri
    host = parts.hostname or ""
    return urlunsplit(parts._replace(netloc=host + (f":{parts.port}" if parts.port else "")))


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, Mapping) and value:
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = value


def flatten_config(cfg: Config) -> dict[str, str]:
    """Every config key as ``section.key`` (nested maps dotted further) -> its value as text (null, JSON lists).

    URIs in the ``tracking`` section lose any user and password.
    """
    flat: dict[str, Any] = {}
    _flatten("", dataclasses.asdict(cfg), flat)
    for key in ("tracking.mlflow_uri", "tracking.registry_uri"):
        flat[key] = _redact(flat.get(key))
    return {k: _param_text(v) for k, v in flat.items()}


def _param_text(v: Any) -> str:
    text = "null" if v is None else json.dumps(v) if isinstance(v, (list, tuple, dict)) else str(v)
    return text[:_MAX_PARAM_LEN]


def metric_key(*parts: str) -> str:
    """A metric name from free text: each part lower-cased, runs of other characters than ``a-z0-9_.`` -> ``_``."""
    return "/".join(re.sub(r"[^a-z0-9_.]+", "_", p.lower()).strip("_") for p in parts)


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v) if math.isfinite(v) else None


def training_metrics(doc: Mapping[str, Any]) -> tuple[dict[str, float], list[tuple[str, int, float]]]:
    """Metrics of a training run from its ``metrics.json`` document.

    Args:
        doc: The parsed ``metrics.json`` (:func:`credspark.reporting.report.metrics_document`).

    Returns:
        ``(values, curves)``: ``{"test/<model>/<metric>": v, "valid/<model>/<metric>": v, "gate/passed": 0|1}``
        and ``[(name, step, value)]`` of ``curve/resnet_lstm/<series>``, ``curve/actgan/<field>`` (step = the
        record's epoch, else its position) and ``curve/xgb/<model>/<part>/<metric>`` (step = round).
    """
    values: dict[str, float] = {}
    for model, m in (doc.get("metrics") or {}).items():
        for k, v in m.items():
            if (x := _number(v)) is not None:
                values[metric_key("test", model, k)] = x
    for model, m in ((doc.get("data") or {}).get("validation") or {}).items():
        for k, v in m.items():
            if (x := _number(v)) is not None:
                values[metric_key("valid", model, k)] = x
    gate = doc.get("gate") or {}
    if "passed" in gate:
        values["gate/passed"] = float(bool(gate["passed"]))
    curves: list[tuple[str, int, float]] = []
    c = doc.get("curves") or {}
    for series, seq in (c.get("resnet_lstm") or {}).items():
        curves += [(metric_key("curve", "resnet_lstm", series), i, x) for i, v in enumerate(seq or [])
                   if (x := _number(v)) is not None]
    for i, rec in enumerate(c.get("actgan") or []):
        step = int(rec.get("epoch", i)) if _number(rec.get("epoch")) is not None else i
        curves += [(metric_key("curve", "actgan", k), step, x) for k, v in rec.items()
                   if k not in ("epoch", "iteration") and (x := _number(v)) is not None]
    for model, parts in (c.get("xgb") or {}).items():
        for part, metrics in (parts or {}).items():
            for name, seq in (metrics or {}).items():
                curves += [(metric_key("curve", "xgb", model, part, name), i, x) for i, v in enumerate(seq or [])
                           if (x := _number(v)) is not None]
    return values, curves


def _chunks(items: list[Any], n: int) -> Iterable[list[Any]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


def _run_numbers(summary: RunSummary) -> dict[str, float]:
    flat: dict[str, Any] = {}
    _flatten("", summary.counts, flat)
    out = {metric_key("count", *k.split(".")): x for k, v in flat.items() if (x := _number(v)) is not None}
    out |= {metric_key("duration_s", k): x for k, v in summary.durations_s.items() if (x := _number(v)) is not None}
    return out


def _log_run(cfg: Config, summary: RunSummary, record: dict[str, Any]) -> None:
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    tc = cfg.tracking
    client = MlflowClient(tracking_uri=tc.mlflow_uri, registry_uri=tc.registry_uri or tc.mlflow_uri)
    exp = client.get_experiment_by_name(tc.experiment_name)
    exp_id = exp.experiment_id if exp is not None else client.create_experiment(tc.experiment_name)
    tags = {"credspark.job": summary.job, "credspark.run_id": summary.run_id, "credspark.status": summary.status,
            "credspark.exit_code": str(summary.exit_code)}
    if summary.reason:
        tags["credspark.reason"] = summary.reason[:5000]
    if summary.details.get("version"):
        tags["credspark.model_version"] = str(summary.details["version"])
    run = client.create_run(exp_id, run_name=summary.run_id, tags=tags)
    rid = record["run_id"] = run.info.run_id
    record["experiment_id"] = exp_id
    try:
        params = flatten_config(cfg)
        job_params: dict[str, Any] = {}
        _flatten("", summary.params, job_params)
        params |= {f"job.{k}": _param_text(v) for k, v in job_params.items()}
        for chunk in _chunks([Param(k, v) for k, v in sorted(params.items())], _MAX_PARAMS):
            client.log_batch(rid, params=chunk)
        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, 0) for k, v in _run_numbers(summary).items()]
        bundle = summary.details.get("bundle") if summary.job == "train" else None
        with tempfile.TemporaryDirectory(prefix="credspark-mlflow-") as tmp:
            if bundle and wh.is_file(wh.join(bundle, "metrics.json")):  # any warehouse: local, s3a://, ...
                values, curves = training_metrics(json.loads(wh.read_bytes(wh.join(bundle, "metrics.json"))))
                metrics += [Metric(k, v, now, 0) for k, v in values.items()]
                metrics += [Metric(k, v, now, step) for k, step, v in curves]
                for name in _BUNDLE_ARTIFACTS:
                    if wh.is_file(wh.join(bundle, name)):
                        local = Path(tmp) / "bundle" / name
                        local.parent.mkdir(exist_ok=True)
                        local.write_bytes(wh.read_bytes(wh.join(bundle, name)))
                        client.log_artifact(rid, str(local), "bundle")
            for chunk in _chunks(metrics, _MAX_METRICS):
                client.log_batch(rid, metrics=chunk)
            record["metrics_logged"] = len(metrics)
            path = Path(tmp) / "run_summary.json"
            path.write_text(json.dumps(summary.to_dict(), indent=2, sort_keys=True, default=str), encoding="utf-8")
            client.log_artifact(rid, str(path))
        if bundle and summary.exit_code == 0 and tc.registered_model_name:
            # Exit 0 from the training job means the gate passed and 'current' moved to this bundle.
            from credspark.tracking.registry import register_bundle

            record["registered"] = register_bundle(tc, cfg.score, rid, bundle, str(summary.details.get("version")))
        client.set_terminated(rid, "FINISHED" if summary.exit_code == 0 else "FAILED")
    except BaseException:
        try:
            client.set_terminated(rid, "FAILED")
        except Exception:  # noqa: BLE001 - the server that broke the run may refuse this too
            log.debug("could not mark MLflow run %s as failed", rid, exc_info=True)
        raise


def track_job_run(cfg: Config, summary: RunSummary) -> dict[str, Any] | None:
    """Log a finished job run to MLflow when ``tracking.mlflow_uri`` is set; never raises.

    Args:
        cfg: The job's config.
        summary: The run summary, complete but for this step (status, exit code, counts, details).

    Returns:
        What was recorded in ``summary.details["mlflow"]`` (None when tracking is off): ``status`` ("ok" or
        "failed"), the MLflow ``run_id`` and ``experiment_id``, ``registered`` (model URI, name, version,
        alias) for a published bundle, or ``error``.
    """
    tc = cfg.tracking
    if not tc.mlflow_uri:
        return None
    record: dict[str, Any] = {"status": "ok", "tracking_uri": _redact(tc.mlflow_uri),
                              "experiment": tc.experiment_name}
    t0 = time.perf_counter()
    try:
        import mlflow  # noqa: F401
    except ImportError:
        record |= {"status": "failed", "error": "mlflow is not installed (pip install 'credspark[mlflow]')"}
    else:
        try:
            _log_run(cfg, summary, record)
        except Exception as e:  # noqa: BLE001 - tracking must never fail the job it reports on
            text = str(e).strip().splitlines()
            record |= {"status": "failed", "error": f"{type(e).__name__}: {text[0] if text else ''}"[:2000]}
    record["seconds"] = round(time.perf_counter() - t0, 3)
    if record["status"] != "ok":
        log.warning("MLflow tracking failed (the job's result is unaffected): %s", record["error"])
    summary.details["mlflow"] = record
    return record
