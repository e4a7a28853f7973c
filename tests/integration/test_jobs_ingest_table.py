"""Bring your own data: the UCI file as an application data set through ingest_table -> build_features ->
train (static-only: every candidate, the paper one with the ResNet-LSTM's static branch) -> score_portfolio,
then train and score again with the paper candidate alone (its bundle carries a static-only embedder)."""

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

    # oversample_ratio 0.4 (above the training part's 243/877): the ACTGAN generates rows here
    train_argv = [*common, "--as-of", AS_OF.isoformat(), "--set", "train.tuning_trials=0",
                  *[a for kv in TINY_TRAIN_SETTINGS for a in ("--set", kv)],
                  "--set", "distributed.oversample_ratio=0.4"]
    assert _run(train_job, train_argv) == 0, _summary(wh, "train").get("reason")
    t = _summary(wh, "train")
    # the paper candidate runs on static-only features: ACTGAN rows, the ResNet-LSTM's static branch, focal XGBoost
    assert t["counts"]["generated_rows"] > 0 and {"actgan", "resnet_lstm"} <= set(t["details"]["deep"]["timings_s"])
    champion = t["details"]["champion"]
    assert {r["key"] for r in champion["candidates"]} == {"paper", "plain_static", "focal_static"}
    paper = next(r for r in champion["candidates"] if r["key"] == "paper")
    assert paper["valid_auc"] > 0.55 and paper["test_auc"] > 0.55  # it learned something from the attributes
    assert "focal XGBoost on ResNet-LSTM" in t["details"]["metrics"]
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

    # The paper candidate alone: its bundle (a ResNet-LSTM without a sequence branch + focal XGBoost) is
    # published and the scoring job embeds the static features with it.
    assert _run(train_job, [*train_argv, "--set", "train.candidates=[paper]"]) == 0, _summary(wh, "train").get("reason")
    t = _summary(wh, "train")
    assert t["details"]["champion"]["key"] == "paper"
    bundle = Path(t["details"]["bundle"])
    meta = json.loads(next(bundle.rglob("resnet_lstm.json")).read_text())
    assert meta["module_kwargs"]["n_channels"] == 0 and meta["spec"]["T"] == 0
    assert _run(score_portfolio, [*common, "--score-date", AS_OF.isoformat()]) == 0
    scored = _summary(wh, "score_portfolio")
    assert scored["details"]["model_version"] == t["details"]["version"]
    scores = read_table(spark, table_ref(cfg, "scores")).where(f"model_version = '{t['details']['version']}'")
    assert scores.count() == ROWS and scores.where("pd IS NULL").count() == 0
    reasons = {r.reason_1 for r in scores.select("reason_1").distinct().collect()}
    assert reasons - {None} and reasons <= set(f["details"]["static_features"]) | set(encoding) | {None}
