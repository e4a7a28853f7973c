"""Bring your own data: the UCI file as an application data set through ingest_table -> build_features ->
train (static-only: tree-only candidates) -> score_portfolio."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from pathlib import Path

import pytest
from fixtures_models import TINY_TRAIN_SETTINGS

from credspark.config import config_from_dict
from credspark.contract import OBSERVED_THROUGH_PROPERTY
from credspark.io.tables import get_properties, read_table, table_ref
from jobs import build_features, ingest_table, score_portfolio
from jobs import train as train_job

pytestmark = pytest.mark.spark

REPO = Path(__file__).resolve().parents[2]
AS_OF = dt.date(2005, 9, 30)
ROWS = 2000


def _run(module, argv):
    with pytest.raises(SystemExit) as e:
        module.main(argv)
    return int(e.value.code or 0)


def _summary(wh: Path, job: str) -> dict:
    paths = sorted((wh / "_runs").glob(f"{job}-*.json"), key=lambda p: p.stat().st_mtime_ns)
    return json.loads(paths[-1].read_text())


@pytest.fixture(scope="module")
def application(tmp_path_factory, uci_csv):
    """The first ROWS customers of the UCI file, one of them with an unknown education code and a bad age."""
    folder = tmp_path_factory.mktemp("byod")
    lines = uci_csv.read_text().splitlines()[: ROWS + 1]
    header = [h.strip('"') for h in lines[0].split(",")]
    cells = lines[1].split(",")
    cells[header.index("EDUCATION")], cells[header.index("AGE")] = "7", "abc"
    lines[1] = ",".join(cells)
    path = folder / "app.csv"
    path.write_text("\n".join(lines) + "\n")
    return folder / "warehouse", path


def test_an_application_data_set_runs_through_ingest_features_train_and_score(spark, application):
    wh, csv = application
    rows = [line.split(",") for line in csv.read_text().splitlines()[1:]]
    unknown_education = sum(r[3] not in ("1", "2", "3", "4") for r in rows)
    assert unknown_education >= 1  # the planted 7, and the file's own 0, 5 and 6
    marriage = Counter(r[4] for r in rows)  # 2: 1128, 1: 838, 3: 29, 0: 5 in the first 2000 rows
    # marriage declared without categories: training fits them (the two commonest), the rest score as other
    common = ["--env", "uci_application", "--warehouse", str(wh), "--set", "attributes.marriage.categories=[]",
              "--set", "attributes.marriage.max_categories=2"]
    assert _run(ingest_table, [*common, "--input", str(csv), "--format", "csv", "--mapping",
                               str(REPO / "conf" / "mappings" / "uci_application.yaml")]) == 0
    s = _summary(wh, "ingest_table")
    assert s["counts"]["customers"] == ROWS and s["counts"]["unparseable"] == {"age_years": 1}
    cfg = config_from_dict({"warehouse": {"path": str(wh)}})
    assert get_properties(spark, table_ref(cfg, "outcomes"))[OBSERVED_THROUGH_PROPERTY] == "2005-10-31"
    positives = read_table(spark, table_ref(cfg, "outcomes")).count()

    assert _run(build_features, [*common, "--as-of", AS_OF.isoformat()]) == 0
    f = _summary(wh, "build_features")
    assert f["counts"]["rows"] == ROWS and f["counts"]["positives"] == positives
    assert f["counts"]["validation"]["customers"]["mapped"]["education_level"] == unknown_education
    assert f["details"]["channels"] == [] and f["details"]["T"] == 0
    # categorical attributes stay text in the features table; training fits (here: confirms) their encoding
    assert f["details"]["categorical_attributes"] == ["gender", "education_level", "marriage"]
    assert "pay_0" in f["details"]["static_features"] and "gender" not in f["details"]["static_features"]

    train_argv = [*common, "--as-of", AS_OF.isoformat(), "--set", "train.tuning_trials=0",
                  *[a for kv in TINY_TRAIN_SETTINGS for a in ("--set", kv)]]
    assert _run(train_job, train_argv) == 0, _summary(wh, "train").get("reason")
    t = _summary(wh, "train")
    assert "paper" in t["details"]["skipped_candidates"]
    champion = t["details"]["champion"]
    assert champion["key"] in ("plain_static", "focal_static")
    assert {r["key"] for r in champion["candidates"]} == {"plain_static", "focal_static"}
    assert t["details"]["metrics"][champion["name"]]["auc"] > 0.65
    encoding = t["details"]["category_encoding"]
    assert encoding["education_level"]["categories"] == ["1", "2", "3", "4"]  # the declared list, in its order
    assert encoding["gender"] == {"categories": ["1", "2"], "other_rows": 0, "declared_without_rows": []}
    assert encoding["marriage"]["categories"] == [c for c, _ in marriage.most_common(2)] == ["2", "1"]
    assert 0 < encoding["marriage"]["other_rows"] <= marriage["3"] + marriage["0"]  # those in the training part

    assert _run(score_portfolio, [*common, "--score-date", AS_OF.isoformat()]) == 0
    scores = read_table(spark, table_ref(cfg, "scores"))
    assert scores.count() == ROWS
    # unseen at scoring = mapped to 'other' by the contract when the features were built
    mapped = f["counts"]["validation"]["customers"]["mapped"]
    scored = _summary(wh, "score_portfolio")
    assert scored["counts"]["unseen_categories"] == {"gender": mapped["gender"],
                                                     "education_level": mapped["education_level"],
                                                     "marriage": marriage["3"] + marriage["0"]}
    assert "marriage" not in mapped  # no declared list: the contract keeps the text
    # PSI checks every declared attribute, the categorical ones over their categories
    declared = set(f["details"]["static_features"]) & {"limit_bal", "age_years", "pay_0", "bill_amt6"}
    psi = scored["details"]["monitoring"]["psi"]["features"]
    assert declared | {"gender", "education_level", "marriage"} <= set(psi)
    assert psi["education_level"]["value"] == pytest.approx(0.0, abs=0.05)  # training rows vs all of them
    reasons = {r.reason_1 for r in scores.select("reason_1").distinct().collect()}
    # reason codes name a categorical attribute, never one of its 0/1 features
    assert reasons and reasons <= set(f["details"]["static_features"]) | set(encoding) | {None}
