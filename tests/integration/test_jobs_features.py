import datetime as dt
import json

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from credspark.config import config_from_dict
from credspark.contract import TRANSACTIONS
from credspark.features.sequences import STATEMENT_CHANNELS, SUPPORTED_CHANNELS
from credspark.features.spec import spec_from_table
from credspark.io.tables import append_table, get_properties, read_table, table_ref
from credspark.pipelines.features import build_feature_frames
from credspark.pipelines.validate import validate_inputs
from credspark.runner import Run
from jobs import build_features, generate_portfolio, ingest_uci

pytestmark = pytest.mark.spark


def _run(module, argv):
    with pytest.raises(SystemExit) as e:
        module.main(argv)
    return e.value.code


def _summaries(wh, job):
    return [json.loads(p.read_text()) for p in sorted((wh / "_runs").glob(f"{job}-*.json"))]


def test_build_features_job_on_a_generated_portfolio(spark, warehouse):
    wh = str(warehouse)
    assert _run(generate_portfolio, ["--customers", "200", "--months", "14", "--end-month", "2025-12",
                                     "--warehouse", wh, "--set", "generate.partitions=2"]) == 0
    code = _run(build_features, ["--from", "2025-11-30", "--to", "2025-12-31", "--every", "month",
                                 "--warehouse", wh])
    (s,) = _summaries(warehouse, "build_features")
    assert code == 0, s["reason"]
    assert s["status"] == "ok" and s["params"]["as_of_dates"] == ["2025-11-30", "2025-12-31"]
    assert s["details"]["channels"] == list(SUPPORTED_CHANNELS) and s["details"]["absent_sources"] == []
    assert s["details"]["observed_through"] == "2025-12-31"
    assert set(s["counts"]["validation"]) == {"customers", "transactions", "statements", "outcomes"}

    cfg = config_from_dict({"warehouse": {"path": wh}})
    ref = table_ref(cfg, "features")
    table = read_table(spark, ref)
    props = get_properties(spark, ref)
    assert props["credspark.T"] == "12" and props["credspark.channels"] == ",".join(SUPPORTED_CHANNELS)
    assert props["credspark.feature_version"] == "2" and props["credspark.absent_sources"] == ""
    spec = spec_from_table(table.schema, props)
    assert {"age", "sex", "credit_limit", "spend_3m", "util_max_6m", "util_trend_12m"} <= set(spec.static_names)
    assert {"paid_prev_bill_3m", "months_since_delinquency_12m", "pay_ratio_trend_6m", "bill_std_6m",
            "cash_advance_share_3m", "fee_share_12m"} <= set(spec.static_names)

    per_date = s["details"]["per_as_of_date"]
    for day in ("2025-11-30", "2025-12-31"):
        n = table.where(F.col("as_of_date") == dt.date.fromisoformat(day)).count()
        assert n == per_date[day]["rows"] and 0 < n <= 200
        # a 12-month horizon has not ended by 2025-12-31: only known defaults are labelled (1), no 0 labels
        assert per_date[day]["labelled"] == per_date[day]["positives"]
    shapes = table.select(F.size("seq").alias("s"), F.size("seq_mask").alias("m")).distinct().collect()
    assert [(r.s, r.m) for r in shapes] == [(12 * 12, 12)]
    # customers already in default at the as-of date are not in the population
    defaulted = read_table(spark, table_ref(cfg, "outcomes")).where(F.col("default_date") <= dt.date(2025, 12, 31))
    assert table.where(F.col("as_of_date") == dt.date(2025, 12, 31)).join(defaulted, "customer_id").count() == 0

    assert s["details"]["validation_scope"] == {"transactions": "all rows", "statements": "all rows"}

    # The next run reads and validates only the source rows of the months it computes: a late purchase in
    # closed October and a broken December row (negative amount) landed; the monthly table holds the rest.
    txns = table_ref(cfg, "transactions")
    cust = table.agg(F.min("customer_id")).first()[0]
    append_table(spark.createDataFrame([
        ("late-oct", cust, dt.datetime(2025, 10, 20, 9), 321.0, "purchase", "travel"),
        ("bad-dec", cust, dt.datetime(2025, 12, 5, 9), -5.0, "purchase", "travel"),
    ], TRANSACTIONS), txns)
    assert _run(build_features, ["--as-of", "2025-12-31", "--warehouse", wh]) == 0
    s2 = _summaries(warehouse, "build_features")[-1]
    assert s2["details"]["monthly_activity"]["recomputed"].keys() == {"2025-10"}
    assert s2["details"]["validation_scope"] == {"transactions": "txn_ts >= 2025-10-01",
                                                 "statements": "statement_month >= 2025-10-01"}
    scoped = s2["counts"]["validation"]["transactions"]
    assert scoped["rejected"] == 1 and scoped["rows"] < s["counts"]["validation"]["transactions"]["rows"] / 3
    # the rows equal a from-scratch build over every validated row
    every = validate_inputs(spark, cfg, dt.date(2025, 12, 31), "check", Run(job="t", run_id="check", started_at=""))
    dec = dt.date(2025, 12, 31)
    scratch = build_feature_frames(every, [dec], cfg, observed_through=dec).features
    written = read_table(spark, ref).where(F.col("as_of_date") == dec).select(*scratch.columns)
    assert_df_equality(written, scratch, ignore_row_order=True, ignore_nullable=True)

    # a bad as-of date is a configuration error (exit 2) with a one-line reason
    assert _run(build_features, ["--as-of", "2025-12-30", "--warehouse", wh]) == 2


@pytest.mark.slow
def test_uci_features_reproduce_the_file_target(spark, warehouse, uci_csv):
    wh = str(warehouse)
    assert _run(ingest_uci, ["--input", str(uci_csv), "--warehouse", wh]) == 0
    code = _run(build_features, ["--as-of", "2005-09-30", "--set", "features.T=6",
                                 "--set", "features.horizon_months=1", "--warehouse", wh])
    (s,) = _summaries(warehouse, "build_features")
    assert code == 0, s["reason"]
    assert s["counts"]["rows"] == 30000 and s["counts"]["positives"] == 6636 and s["counts"]["labelled"] == 30000
    assert s["details"]["absent_sources"] == ["transactions"]
    assert "spend_1m" in s["details"]["left_out"]["transactions"]
    assert s["details"]["observed_through_source"] == "outcomes property"

    cfg = config_from_dict({"warehouse": {"path": wh}})
    ref = table_ref(cfg, "features")
    props = get_properties(spark, ref)
    assert props["credspark.T"] == "6" and props["credspark.channels"] == ",".join(STATEMENT_CHANNELS)
    assert props["credspark.absent_sources"] == "transactions"
    table = read_table(spark, ref)
    spec = spec_from_table(table.schema, props)
    assert {"credit_limit", "sex", "education", "marital_status", "age"} <= set(spec.static_names)
    # the six statement months are all observed; the as-of month is the last
    row = table.where(F.col("customer_id") == 1).first()
    assert row.seq_mask == [1] * 6 and len(row.seq) == 6 * 4 and row.label == 1
    assert row.credit_limit == 20000.0 and row.age == 24 and row.sex == 2
    assert row.seq[-4:-1] == [2.0, 3913.0, 0.0]  # September: PAY_0, BILL_AMT1, PAY_AMT1
    assert row.seq[-1] == pytest.approx(3913.0 / 20000.0)
