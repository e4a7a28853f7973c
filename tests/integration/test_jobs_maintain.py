"""jobs/maintain_tables.py end to end: retention properties applied, VACUUM by each table's own retention."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import time
from pathlib import Path

import pytest

from credspark.config import config_from_dict
from credspark.io.tables import (
    get_properties,
    overwrite_partitions,
    overwrite_table,
    read_table_version,
    table_ref,
)
from jobs import maintain_tables

pytestmark = pytest.mark.spark

D1, D2 = dt.date(2025, 1, 31), dt.date(2025, 2, 28)
FILES = "delta.deletedFileRetentionDuration"


def _run(argv):
    with pytest.raises(SystemExit) as e:
        maintain_tables.main(argv)
    return int(e.value.code or 0)


def _summaries(wh: Path) -> list[dict]:
    paths = sorted((wh / "_runs").glob("maintain_tables-*.json"), key=lambda p: p.stat().st_mtime_ns)
    return [json.loads(p.read_text()) for p in paths]


def _files(path) -> dict[str, int]:
    root = Path(path)
    return {p.relative_to(root).as_posix(): p.stat().st_size for p in root.rglob("*")
            if p.is_file() and "_delta_log" not in p.parts and not p.name.startswith(".")}


def _orphan(folder: Path, like: Path) -> Path:
    """A killed write's leftover: a data file no commit references, last written two hours ago."""
    orphan = folder / "part-00001-0badc0de-0000-4000-8000-000000000001-c000.snappy.parquet"
    shutil.copyfile(like, orphan)
    os.utime(orphan, (time.time() - 7200, time.time() - 7200))
    return orphan


def _versions(spark, ref) -> dict[int, list]:
    return {v: sorted(tuple(r) for r in read_table_version(spark, ref, v).collect()) for v in (0, 1)}


def test_maintain_tables_vacuums_each_table_by_its_retention_and_a_dry_run_changes_nothing(spark, warehouse):
    # features is created with a 1-hour retention, score_runs with the default 7 days (the job brings it to 1 hour).
    hour = config_from_dict({"warehouse": {"path": str(warehouse)}, "retention": {"deleted_files": "1 hour"}})
    features = table_ref(hour, "features")
    runs = table_ref(config_from_dict({"warehouse": {"path": str(warehouse)}}), "score_runs")
    schema = "customer_id int, as_of_date date, x double"
    overwrite_partitions(spark.createDataFrame([(1, D1, 1.0), (2, D2, 2.0)], schema), features, "as_of_date", [D1, D2])
    overwrite_partitions(spark.createDataFrame([(3, D1, 3.0)], schema), features, "as_of_date", [D1])
    overwrite_table(spark.createDataFrame([("r0", 10)], "run_id string, n int"), runs)
    overwrite_table(spark.createDataFrame([("r1", 20)], "run_id string, n int"), runs)
    expected = {ref.name: _versions(spark, ref) for ref in (features, runs)}
    d1 = Path(features.path) / f"as_of_date={D1}"
    orphans = {"features": _orphan(d1, next(d1.glob("part-*.parquet"))),
               "score_runs": _orphan(Path(runs.path), next(Path(runs.path).glob("part-*.parquet")))}
    rel = {"features": f"as_of_date={D1}/{orphans['features'].name}", "score_runs": orphans["score_runs"].name}
    before = {ref.name: _files(ref.path) for ref in (features, runs)}
    common = ["--env", "ci", "--warehouse", str(warehouse), "--set", "retention.deleted_files=1 hour"]

    # Dry run: what VACUUM would delete now, by each table's current retention; nothing set, nothing deleted.
    assert _run([*common, "--dry-run"]) == 0
    s = _summaries(warehouse)[-1]
    assert s["status"] == "ok" and s["details"]["dry_run"] is True
    assert set(s["details"]["tables"]) == {"features", "score_runs"}
    f, r = s["details"]["tables"]["features"], s["details"]["tables"]["score_runs"]
    assert f["properties_to_set"] == {} and f["retention"] == "interval 1 hours"
    assert f["files"] == [rel["features"]] and f["bytes"] == before["features"][rel["features"]]
    assert r["properties_to_set"] == {FILES: "interval 1 hours"} and r["retention"] == "interval 7 days"
    assert r["files"] == []  # two hours old: younger than the 7 days score_runs has until the real run
    assert s["counts"] == {"tables": 2, "files_to_delete": 1, "bytes_to_delete": f["bytes"]}
    assert {ref.name: _files(ref.path) for ref in (features, runs)} == before
    assert get_properties(spark, runs)[FILES] == "interval 7 days"

    # The real run: score_runs gets the 1-hour retention, then VACUUM deletes the two-hour-old orphans only.
    assert _run(common) == 0
    s = _summaries(warehouse)[-1]
    assert s["status"] == "ok" and s["details"]["dry_run"] is False
    assert s["details"]["tables"]["features"]["properties_set"] == {}
    assert s["details"]["tables"]["score_runs"]["properties_set"] == {FILES: "interval 1 hours"}
    for name in ("features", "score_runs"):
        t = s["details"]["tables"][name]
        assert t["retention"] == "interval 1 hours"
        assert t["files"] == [rel[name]] and t["bytes"] == before[name][rel[name]]
        assert not orphans[name].exists()
    assert s["counts"] == {"tables": 2, "files_deleted": 2,
                           "bytes_deleted": sum(before[n][rel[n]] for n in ("features", "score_runs"))}
    for ref in (features, runs):
        assert _files(ref.path) == {f: n for f, n in before[ref.name].items() if f != rel[ref.name]}
        assert _versions(spark, ref) == expected[ref.name]  # both versions read as before

    # --table: only that table; its properties are up to date now, so a dry run lists by the new retention.
    planted = _orphan(Path(runs.path), next(Path(runs.path).glob("part-*.parquet")))
    assert _run([*common, "--dry-run", "--table", "score_runs"]) == 0
    t = _summaries(warehouse)[-1]["details"]["tables"]
    assert list(t) == ["score_runs"] and t["score_runs"]["properties_to_set"] == {}
    assert t["score_runs"]["files"] == [planted.name] and planted.exists()


def test_bad_retention_or_an_unknown_table_exits_2_before_spark_starts(warehouse, capsys):
    assert _run(["--warehouse", str(warehouse), "--set", "retention.deleted_files=7 fortnights"]) == 2
    err = capsys.readouterr().err
    assert "maintain_tables: error: config key 'retention.deleted_files': '7 fortnights' is not an interval" in err
    assert _run(["--warehouse", str(warehouse), "--table", "features; DROP TABLE x"]) == 2
    assert "is not a credspark table" in capsys.readouterr().err
    assert not (warehouse / "_runs").exists()  # no run started: a run writes its summary whatever its outcome
