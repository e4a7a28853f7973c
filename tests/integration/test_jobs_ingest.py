import datetime as dt
import json

import pytest
from pyspark.sql import functions as F

from credspark.config import config_from_dict
from credspark.contract import OBSERVED_THROUGH_PROPERTY, SOURCE_PROPERTY
from credspark.errors import MissingDataError, RejectThresholdError
from credspark.io.tables import append_table, get_properties, read_table, table_ref
from credspark.pipelines.validate import outcomes_observed_through, validate_inputs
from credspark.runner import Run
from credspark.sources.uci import UCI_COLUMNS
from jobs import generate_portfolio, ingest_uci

pytestmark = pytest.mark.spark


def _cfg(wh, **validation):
    return config_from_dict({"warehouse": {"path": str(wh)}, "validation": validation})


def _run(module, argv):
    with pytest.raises(SystemExit) as e:
        module.main(argv)
    return e.value.code


def _summary(wh):
    (path,) = sorted((wh / "_runs").glob("*.json"))
    return json.loads(path.read_text())


def test_generate_portfolio_job_writes_the_four_tables_and_a_summary(spark, warehouse):
    code = _run(generate_portfolio, ["--customers", "300", "--months", "8", "--default-rate", "0.1", "--seed", "3",
                                     "--end-month", "2025-06", "--warehouse", str(warehouse),
                                     "--set", "generate.partitions=2"])
    assert code == 0
    s = _summary(warehouse)
    assert s["status"] == "ok" and s["job"] == "generate_portfolio"
    assert s["details"]["generator"]["customers"] == 300 and s["details"]["generator"]["seed"] == 3
    assert s["counts"]["customers"] == 300 and all(s["counts"][n] > 0 for n in ("statements", "transactions",
                                                                                "outcomes"))
    cfg = _cfg(warehouse)
    props = get_properties(spark, table_ref(cfg, "outcomes"))
    assert props[SOURCE_PROPERTY] == "generator" and props[OBSERVED_THROUGH_PROPERTY] == "2025-06-30"

    # the generated portfolio is clean under the contract; events after a mid-window as-of are excluded
    summary = Run(job="t", run_id="r1", started_at="")
    clean = validate_inputs(spark, cfg, dt.date(2025, 3, 31), "r1", summary)
    v = summary.counts["validation"]
    assert set(v) == {"customers", "statements", "transactions", "outcomes"}
    assert {name: st["rows"] for name, st in v.items()} == {n: s["counts"][n] for n in v}
    assert all(st["rejected"] == 0 for st in v.values())
    assert v["statements"]["after_as_of"] > 0 and v["transactions"]["after_as_of"] > 0
    assert clean["statements"].agg(F.max("statement_month")).first()[0] == dt.date(2025, 3, 1)


def test_ingest_uci_job_loads_the_real_file(spark, warehouse, uci_csv):
    assert _run(ingest_uci, ["--input", str(uci_csv), "--warehouse", str(warehouse)]) == 0
    s = _summary(warehouse)
    assert s["counts"]["customers"] == 30000 and s["counts"]["statements"] == 180000
    assert s["counts"]["uci_positives"] == 6636 and s["counts"]["uci_rows_with_unparseable_values"] == 0
    assert s["counts"]["mapped_codes"] == {"sex": 0, "education": 345, "marital_status": 54}
    assert "transactions" in s["details"]["absent_tables"]
    cfg = _cfg(warehouse)
    observed = outcomes_observed_through(spark, cfg)
    assert observed == dt.date(2005, 10, 31)
    # the label as of 2005-09-30, 1-month horizon: defaults in (D, E], E = 2005-10-31 (a month-end stays a
    # month-end, see docs/data-contract.md), and the horizon has ended: E <= observed_through
    as_of = dt.date(2005, 9, 30)
    outcomes = read_table(spark, table_ref(cfg, "outcomes"))
    horizon_end = dt.date(2005, 10, 31)
    assert horizon_end <= observed
    positives = outcomes.where((F.col("default_date") > F.lit(as_of)) & (F.col("default_date") <= F.lit(horizon_end)))
    assert positives.select("customer_id").distinct().count() == 6636
    st = read_table(spark, table_ref(cfg, "statements"))
    months = sorted(r[0] for r in st.select("statement_month").distinct().collect())
    assert months == [dt.date(2005, m, 1) for m in range(4, 10)]
    # customer 1 of the file: PAY_0 = 2 and BILL_AMT1 = 3913 in September, PAY_6 = -2 in April
    c1 = {r.statement_month.month: (r.delinquency, r.bill_amount, r.paid_amount, r.credit_limit)
          for r in st.where("customer_id = 1").collect()}
    assert c1[9] == (2, 3913.0, 0.0, 20000.0) and c1[8] == (2, 3102.0, 689.0, 20000.0) and c1[4][0] == -2


def test_missing_column_exits_4_with_a_one_line_reason(warehouse, tmp_path, capsys):
    cols = [c for c in UCI_COLUMNS if c != "BILL_AMT2"]
    path = tmp_path / "broken.csv"
    path.write_text(",".join(cols) + "\n" + ",".join(["1"] * len(cols)) + "\n")
    assert _run(ingest_uci, ["--input", str(path), "--warehouse", str(warehouse)]) == 4
    failed = [line for line in capsys.readouterr().err.splitlines() if "FAILED" in line]
    assert failed == ["ingest_uci: FAILED (4): uci.BILL_AMT2: required column missing"]
    assert _summary(warehouse)["exit_code"] == 4


def test_validate_inputs_writes_rejects_counts_and_enforces_the_threshold(spark, warehouse):
    cfg = _cfg(warehouse, max_reject_fraction=0.5)
    d = dt.date
    append_table(spark.createDataFrame(
        [(1, 1980, 1, 2, 1, "north", 100.0, d(2020, 1, 1)), (2, 1990, 2, 0, 1, None, None, None),
         (3, 1985, 1, 1, 2, None, None, None)],
        "customer_id long, birth_year int, sex int, education int, marital_status int, region string, "
        "income double, open_date date"), table_ref(cfg, "customers"))
    append_table(spark.createDataFrame(
        [(1, d(2025, 1, 1), 1000.0, 10.0, 0.0, None, 0), (1, d(2025, 2, 1), 0.0, 10.0, 0.0, None, 0),
         (2, d(2025, 1, 1), 500.0, 10.0, 0.0, None, 1), (2, d(2025, 7, 1), 500.0, 10.0, 0.0, None, 1)],
        "customer_id long, statement_month date, credit_limit double, bill_amount double, paid_amount double, "
        "min_due double, delinquency int"), table_ref(cfg, "statements"))
    summary = Run(job="t", run_id="r1", started_at="")
    clean = validate_inputs(spark, cfg, dt.date(2025, 6, 30), "r1", summary)

    assert set(clean) == {"customers", "statements"}
    assert summary.details["inputs"] == {"customers": "present", "transactions": "absent",
                                         "statements": "present", "outcomes": "absent"}
    v = summary.counts["validation"]
    assert v["customers"]["clean"] == 3 and v["customers"]["mapped"]["education"] == 1  # no history: kept
    assert (v["statements"]["clean"], v["statements"]["rejected"], v["statements"]["after_as_of"]) == (2, 1, 1)
    assert v["statements"]["reject_reasons"] == {"statements.credit_limit: must be > 0": 1}
    rejects = read_table(spark, table_ref(cfg, "statements_rejects")).collect()
    assert [(r.rule, r.run_id, r.as_of_date) for r in rejects] == [("positive", "r1", dt.date(2025, 6, 30))]

    strict = _cfg(warehouse, max_reject_fraction=0.2)
    with pytest.raises(RejectThresholdError, match=r"table 'statements': 33\.33% of rows rejected \(1 of 3\)"):
        validate_inputs(spark, strict, dt.date(2025, 6, 30), "r2", Run(job="t", run_id="r2", started_at=""))
    runs = sorted(r.run_id for r in read_table(spark, table_ref(cfg, "statements_rejects")).collect())
    assert runs == ["r1", "r2"]  # written before failing, so they can be inspected

    with pytest.raises(MissingDataError, match="customers"):
        validate_inputs(spark, _cfg(warehouse / "empty"), dt.date(2025, 6, 30), "r3",
                        Run(job="t", run_id="r3", started_at=""))
