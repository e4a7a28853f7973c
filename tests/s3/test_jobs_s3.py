"""The jobs end to end with the warehouse on ``s3a://`` (moto's S3 server, Spark's s3a connector):
generate -> features -> train -> score through each job's ``main()``. Every table, the bundle, ``current`` and
the run summaries are found in the bucket and nothing of the warehouse on local disk; scoring loads the model
back from the bucket; a failed training run leaves no work folder behind."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest
from fixtures_models import TINY_TRAIN_SETTINGS

import jobs.build_features as build_features
import jobs.generate_portfolio as generate_portfolio
import jobs.score_portfolio as score_portfolio
import jobs.train as train_job
from credspark.faults import DEEP_FAIL_AT_EPOCH, DEEP_FAIL_RANK
from credspark.io import warehouse as wh
from tests.s3.conftest import BUCKET, list_bucket, s3a_settings

PREFIX = "credspark"
WAREHOUSE = f"s3a://{BUCKET}/{PREFIX}"
AS_OF = "2024-12-31"

#: Tiny, quick training (as tests/cluster/xgb_cluster.py), in local[2].
TRAIN_SETTINGS = [
    *TINY_TRAIN_SETTINGS,
    "xgb.num_workers=1",
]  # fmt: skip


def _run(module, argv: list[str]) -> int:
    try:
        module.main(argv)
    except SystemExit as e:
        return int(e.code or 0)
    return 0


def _local_s3a_folders(*roots: Path) -> list[Path]:
    """Anything named like a URI scheme folder ('s3a:') below the given folders (what Path(uri) would create)."""
    found = []
    for root in roots:
        for dirpath, dirnames, _ in os.walk(root):
            found += [Path(dirpath, d) for d in dirnames if d.endswith(":") or d.startswith("s3a:")]
    return found


def _ours(folder: Path) -> list[str]:
    """What credspark left in a temp folder (torch keeps caches of its own there, e.g. torchinductor_<user>)."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("credspark-"))


@pytest.fixture(scope="module")
def runs(s3, s3_endpoint, tmp_path_factory, monkeypatch_module):
    """Run the four jobs once; return their exit codes, the temp folder the driver used and the bucket listing."""
    cwd = tmp_path_factory.mktemp("cwd")
    scratch = tmp_path_factory.mktemp("tmp")
    monkeypatch_module.chdir(cwd)  # a job that wrote to Path("s3a://...") would create ./s3a:/ here
    monkeypatch_module.setattr(tempfile, "tempdir", str(scratch))  # the driver's private temp folders land here
    common = ["--warehouse", WAREHOUSE, "--set", "spark.master=local[2]", "--set", "spark.shuffle_partitions=4"]
    for k, v in s3a_settings(s3_endpoint).items():
        common += ["--set", f"spark.conf.{k}={v}"]
    train = [*common, "--as-of", AS_OF]
    for s in TRAIN_SETTINGS:
        train += ["--set", s]
    out = {"cwd": cwd, "scratch": scratch}
    out["generate"] = _run(generate_portfolio, [*common, "--customers", "600", "--months", "24", "--end-month",
                                                "2025-12", "--default-rate", "0.2", "--set", "generate.partitions=2"])
    out["features"] = _run(build_features, [*common, "--as-of", AS_OF, "--set", "features.T=6",
                                            "--set", "features.horizon_months=6"])
    out["train"] = _run(train_job, train)
    out["current_after_train"] = wh.read_bytes(f"{WAREHOUSE}/models/credspark/current").decode().strip()
    out["scratch_after_train"] = _ours(scratch)
    out["score"] = _run(score_portfolio, [*common, "--score-date", AS_OF])
    # A training run that fails in its deep step (an injected worker failure) removes its work folder.
    monkeypatch_module.setenv(DEEP_FAIL_AT_EPOCH, "0")
    monkeypatch_module.setenv(DEEP_FAIL_RANK, "0")
    out["failed_train"] = _run(train_job, train)
    monkeypatch_module.delenv(DEEP_FAIL_AT_EPOCH)
    monkeypatch_module.delenv(DEEP_FAIL_RANK)
    out["scratch_after_failure"] = _ours(scratch)
    out["keys"] = list_bucket(s3, PREFIX)
    return out


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def _summaries(keys: list[str], job: str) -> list[dict]:
    return [json.loads(wh.read_bytes(f"s3a://{BUCKET}/{k}"))
            for k in keys if k.startswith(f"{PREFIX}/_runs/{job}-") and k.endswith(".json")]


def test_every_job_succeeds_with_the_warehouse_on_s3a(runs):
    assert (runs["generate"], runs["features"], runs["train"], runs["score"]) == (0, 0, 0, 0), {
        job: [s.get("reason") for s in _summaries(runs["keys"], job)]
        for job in ("generate_portfolio", "build_features", "train", "score_portfolio")}


def test_tables_bundle_current_and_run_summaries_are_in_the_bucket(runs):
    keys = runs["keys"]
    tables = {k.split("/")[1] for k in keys if "/_delta_log/" in k}
    assert {"customers", "features", "scores", "score_runs", "train_splits"} <= tables, sorted(tables)
    version = runs["current_after_train"]
    bundle = f"{PREFIX}/models/credspark/{version}/"
    assert f"{PREFIX}/models/credspark/current" in keys
    assert {f"{bundle}manifest.json", f"{bundle}report.html", f"{bundle}metrics.json"} <= set(keys)
    manifest = json.loads(wh.read_bytes(f"s3a://{BUCKET}/{bundle}manifest.json"))
    assert manifest["files"] and all(f"{bundle}{name}" in keys for name in manifest["files"])
    for job in ("generate_portfolio", "build_features", "train", "score_portfolio"):
        done = _summaries(keys, job)
        assert done and done[0]["status"] == "ok" and done[0]["exit_code"] == 0, (job, done)
    assert _summaries(keys, "train")[0]["details"]["bundle"] == f"s3a://{BUCKET}/{bundle}".rstrip("/")


def test_scoring_loads_the_model_back_from_the_bucket(runs):
    (score,) = _summaries(runs["keys"], "score_portfolio")
    assert score["details"]["model_version"] == runs["current_after_train"]
    assert score["details"]["bundle_dir"] == f"{WAREHOUSE}/models/credspark/{runs['current_after_train']}"
    assert any(k.startswith(f"{PREFIX}/scores/score_date=") and k.endswith(".parquet") for k in runs["keys"])


def test_nothing_of_the_warehouse_lands_on_local_disk(runs):
    assert _local_s3a_folders(runs["cwd"], runs["scratch"], Path(tempfile.gettempdir())) == []
    assert not (runs["cwd"] / "spark-warehouse").exists() and not any(runs["cwd"].iterdir())
    assert runs["scratch_after_train"] == []  # the training run's driver-side work folder is gone


def test_a_failed_training_run_removes_its_work_folder_and_keeps_current(runs):
    assert runs["failed_train"] != 0
    failed = [s for s in _summaries(runs["keys"], "train") if s["status"] == "failed"]
    assert len(failed) == 1 and "injected" in (failed[0]["reason"] or "").lower(), failed
    assert runs["scratch_after_failure"] == []
    assert not [k for k in runs["keys"] if k.startswith(f"{PREFIX}/_work/")]
    assert wh.read_bytes(f"{WAREHOUSE}/models/credspark/current").decode().strip() == runs["current_after_train"]
