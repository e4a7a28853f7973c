import datetime as dt
import sys
import types

import pytest
from chispa import assert_approx_df_equality, assert_df_equality
from pyspark.sql import functions as F

from credspark.config import config_from_dict
from credspark.contract import CUSTOMERS, OUTCOMES, STATEMENTS, TRANSACTIONS
from credspark.dates import month_ends
from credspark.errors import ConfigError, MissingDataError
from credspark.features.sequences import TRANSACTION_CHANNELS
from credspark.features.spec import spec_from_table
from credspark.io.tables import get_properties, read_table, table_ref
from credspark.job_requests import FeaturesRequest
from credspark.pipelines.features import build_feature_frames, build_features
from credspark.runner import Run

pytestmark = pytest.mark.spark

D1, D2, D3 = dt.date(2025, 10, 31), dt.date(2025, 11, 30), dt.date(2025, 12, 31)
SMALL = {"T": 3, "windows": [1, 3], "horizon_months": 1, "behaviour": False, "version": "1",
         "channels": ["delinquency", "utilisation", "purchase_amount"]}


def ts(y, m, d, h=12):
    return dt.datetime(y, m, d, h)


def _cfg(warehouse=None, **features):
    data = {"features": {**SMALL, **features}}
    if warehouse is not None:
        data["warehouse"] = {"path": str(warehouse)}
    return config_from_dict(data)


CUSTOMER_ROWS = [
    (1, 1985, 1, 2, 1, "N", 4000.0, dt.date(2025, 10, 5)),
    (2, 1990, 2, 1, 2, "S", None, None),
    (3, 1970, 1, 3, 3, "S", 9000.0, dt.date(2025, 12, 2)),  # opens in December
    (4, 1960, 2, 1, 1, "N", 100.0, dt.date(2025, 1, 1)),  # defaulted in November
]
TXN_ROWS = [
    ("t1", 1, ts(2025, 10, 6), 100.0, "purchase", "food"),
    ("t2", 1, ts(2025, 12, 1), 50.0, "purchase", "food"),
    ("t3", 1, ts(2025, 12, 15), 80.0, "payment", None),
    ("t4", 2, ts(2025, 11, 3), 20.0, "cash_advance", None),
    ("t5", 3, ts(2025, 12, 3), 5.0, "purchase", None),
    ("t6", 4, ts(2025, 10, 3), 5.0, "purchase", None),
]
STMT_ROWS = [
    (1, dt.date(2025, 10, 1), 1000.0, 100.0, 0.0, 10.0, 0),
    (1, dt.date(2025, 11, 1), 1000.0, 100.0, 100.0, 10.0, 1),
    (1, dt.date(2025, 12, 1), 2000.0, 500.0, 100.0, 10.0, 2),
    (2, dt.date(2025, 11, 1), 500.0, 250.0, 250.0, 10.0, -1),
    (4, dt.date(2025, 10, 1), 100.0, 90.0, 0.0, 10.0, 3),
]
OUTCOME_ROWS = [(2, dt.date(2026, 1, 20)), (4, dt.date(2025, 11, 15))]


def _inputs(spark, customers=CUSTOMER_ROWS, transactions=TXN_ROWS, statements=STMT_ROWS, outcomes=OUTCOME_ROWS):
    out = {}
    for name, rows, schema in (("customers", customers, CUSTOMERS), ("transactions", transactions, TRANSACTIONS),
                               ("statements", statements, STATEMENTS), ("outcomes", outcomes, OUTCOMES)):
        if rows is not None:
            out[name] = spark.createDataFrame(rows, schema)
    return out


EXPECTED_SCHEMA = (
    "customer_id bigint, as_of_date date, age int, sex int, education int, marital_status int, income double, "
    "tenure_months int, credit_limit double, spend_1m double, spend_3m double, payments_1m double, "
    "payments_3m double, cash_advance_1m double, cash_advance_3m double, util_mean_1m double, "
    "util_mean_3m double, util_max_1m double, util_max_3m double, pay_ratio_1m double, pay_ratio_3m double, "
    "months_delinquent_1m int, months_delinquent_3m int, worst_delinquency_1m int, worst_delinquency_3m int, "
    "util_trend_3m double, seq array<float>, seq_mask array<tinyint>, label int, feature_version string"
)


def test_build_feature_frames_whole_table(spark):
    frames = build_feature_frames(_inputs(spark), [D3], _cfg(), observed_through=dt.date(2026, 1, 31))
    expected = spark.createDataFrame([
        # customer 1: opened in October; Oct/Nov/Dec statements; purchases in Oct and Dec
        (1, D3, 40, 1, 2, 1, 4000.0, 2, 2000.0, 50.0, 150.0, 80.0, 80.0, 0.0, 0.0, 0.25, 0.15, 0.25, 0.25,
         0.2, 200.0 / 700.0, 1, 2, 2, 2, 0.075,
         [0.0, 0.1, 100.0, 1.0, 0.1, 0.0, 2.0, 0.25, 50.0], [1, 1, 1], 0, "1"),
        # customer 2: no open date; first seen in November; defaults in January (inside the 1-month horizon)
        (2, D3, 35, 2, 1, 2, None, 1, 500.0, 0.0, 0.0, 0.0, 0.0, 0.0, 20.0, None, 0.5, None, 0.5,
         None, 1.0, None, 0, None, -1, None,
         [0.0, 0.0, 0.0, -1.0, 0.5, 0.0, 0.0, 0.0, 0.0], [0, 1, 1], 1, "1"),
        # customer 3: opened in December, transactions only
        (3, D3, 55, 1, 3, 3, 9000.0, 0, None, 5.0, 5.0, 0.0, 0.0, 0.0, 0.0, None, None, None, None,
         None, None, None, None, None, None, None,
         [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 5.0], [0, 0, 1], 0, "1"),
        # customer 4 defaulted before the as-of date: left out
    ], EXPECTED_SCHEMA)
    assert_approx_df_equality(frames.features, expected, 1e-6, ignore_row_order=True, ignore_nullable=True)
    assert frames.spec.channels == ("delinquency", "utilisation", "purchase_amount") and frames.spec.T == 3
    assert frames.absent_sources == () and frames.left_out == {}
    assert spec_from_table(frames.features.schema, frames.properties) == frames.spec


def test_point_in_time_later_events_change_nothing(spark):
    cfg = _cfg()
    base = build_feature_frames(_inputs(spark), [D2], cfg, observed_through=D3).features
    later = _inputs(
        spark,
        customers=CUSTOMER_ROWS + [(9, 1990, 1, 1, 1, None, None, dt.date(2025, 12, 1))],
        transactions=TXN_ROWS + [("x1", 1, ts(2025, 12, 1, 0), 1e6, "purchase", None),
                                 ("x2", 2, ts(2025, 12, 31), 1e6, "cash_advance", None),
                                 ("x3", 9, ts(2025, 12, 2), 1.0, "purchase", None)],
        statements=STMT_ROWS + [(2, dt.date(2025, 12, 1), 9e6, 9e6, 0.0, None, 9)],
    )
    again = build_feature_frames(later, [D2], cfg, observed_through=D3).features
    assert_df_equality(again, base, ignore_row_order=True)
    assert base.where(F.col("customer_id") == 2).first().spend_1m == 0.0  # the as-of month's own data is in
    assert base.where(F.col("customer_id") == 2).first().cash_advance_1m == 20.0


def test_point_in_time_holds_for_the_behaviour_group(spark):
    cfg = _cfg(behaviour=True, version="2")
    base = build_feature_frames(_inputs(spark), [D2], cfg, observed_through=D3)
    later = _inputs(
        spark,
        transactions=TXN_ROWS + [("x1", 1, ts(2025, 12, 1, 0), 1e6, "cash_advance", None),
                                 ("x2", 1, ts(2025, 12, 2), 1e3, "fee", None)],
        statements=STMT_ROWS + [(1, dt.date(2025, 12, 1), 9e6, 9e6, 0.0, None, 9)],
    )
    again = build_feature_frames(later, [D2], cfg, observed_through=D3).features
    assert_df_equality(again, base.features, ignore_row_order=True)
    assert {"paid_prev_bill_3m", "months_since_delinquency_1m", "fee_share_3m"} <= set(base.spec.static_names)
    row = base.features.where(F.col("customer_id") == 1).first()
    # November: paid 100 against October's bill 100; delinquent in November itself
    assert row.paid_prev_bill_3m == pytest.approx(1.0) and row.months_since_delinquency_3m == 0
    assert row.feature_version == "2"


def test_backfill_equals_single_dates(spark):
    cfg = _cfg()
    both = build_feature_frames(_inputs(spark), [D3, D2], cfg, observed_through=D3).features
    singles = [build_feature_frames(_inputs(spark), [d], cfg, observed_through=D3).features for d in (D2, D3)]
    assert_df_equality(both, singles[0].unionByName(singles[1]), ignore_row_order=True)
    counts = {r.as_of_date: r["count"] for r in both.groupBy("as_of_date").count().collect()}
    assert counts == {D2: 2, D3: 3}  # customer 3 is unknown at D2; customer 4 defaulted in November


def test_absent_source_left_out_and_recorded(spark):
    frames = build_feature_frames(_inputs(spark, transactions=None, customers=None), [D3], _cfg(channels=None),
                                  observed_through=None)
    cols = frames.features.columns
    assert not [c for c in cols if c.startswith(("spend", "payments", "cash_advance", "age", "sex"))]
    assert frames.spec.channels == ("delinquency", "bill_amount", "paid_amount", "utilisation")
    assert frames.absent_sources == ("customers", "transactions")
    assert frames.left_out["transactions"] == [
        "spend_1m", "spend_3m", "payments_1m", "payments_3m", "cash_advance_1m", "cash_advance_3m",
        *TRANSACTION_CHANNELS]
    assert frames.left_out["customers"] == ["age", "sex", "education", "marital_status", "income"]
    assert frames.properties["credspark.absent_sources"] == "customers,transactions"
    # observed_through defaults to the latest of outcome dates / statement month ends
    assert frames.observed_through == dt.date(2026, 1, 20)
    assert frames.features.count() == 2  # customers 1 and 2 (4 defaulted before)


def test_no_behaviour_source_is_an_input_error(spark):
    with pytest.raises(MissingDataError, match="neither"):
        build_feature_frames(_inputs(spark, transactions=None, statements=None), [D3], _cfg())
    with pytest.raises(ConfigError, match="month end"):
        build_feature_frames(_inputs(spark), [dt.date(2025, 12, 30)], _cfg())


def test_features_request_from_flags():
    req = FeaturesRequest.from_flags
    assert req(as_of="2025-12-31", date_from=None, date_to=None, every="month").as_of_dates == (D3,)
    got = req(as_of=None, date_from="2025-01-31", date_to="2025-12-31", every="month").as_of_dates
    assert len(got) == 12 and got[1] == dt.date(2025, 2, 28) and got[-1] == D3
    assert month_ends(D1, D1) == [D1]
    for bad in (dict(as_of="2025-12-30", date_from=None, date_to=None, every="month"),
                dict(as_of="2025-12-31", date_from="2025-01-31", date_to=None, every="month"),
                dict(as_of=None, date_from="2025-01-31", date_to=None, every="month"),
                dict(as_of=None, date_from="2025-12-31", date_to="2025-01-31", every="month"),
                dict(as_of="31/12/2025", date_from=None, date_to=None, every="month")):
        with pytest.raises(ConfigError):
            req(**bad)


# ------------------------------------------------------------------ the job body on real Delta tables


@pytest.fixture
def fake_inputs(monkeypatch, spark):
    """Stand in for credspark.pipelines.validate.validate_inputs (its own tests cover validation)."""
    seen = []

    def validate_inputs(spark_, cfg, as_of, run_id, run, *, events_from=None):
        # The inputs here are not warehouse tables: no source version, so no monthly plan can scope them.
        assert events_from is None
        seen.append(as_of)
        return _inputs(spark)

    monkeypatch.setitem(sys.modules, "credspark.pipelines.validate", types.SimpleNamespace(
        validate_inputs=validate_inputs, outcomes_observed_through=lambda spark_, cfg: D3 + dt.timedelta(days=31)))
    return seen


def _run(spark, cfg, **kw):
    run = Run(job="build_features", run_id="test-run", started_at="2026-01-01T00:00:00")
    result = build_features(spark, cfg, FeaturesRequest.from_flags(**kw), run)
    assert result.exit_code == 0
    return result


def _history(spark, ref):
    from delta.tables import DeltaTable

    return DeltaTable.forPath(spark, ref.path).history().orderBy("version").collect()


def test_rerun_is_idempotent_and_backfill_leaves_other_dates_untouched(spark, warehouse, fake_inputs):
    cfg = _cfg(warehouse)
    ref = table_ref(cfg, cfg.tables.features)
    s1 = _run(spark, cfg, as_of="2025-10-31")
    assert s1.counts["rows"] == 2 and s1.details["per_as_of_date"]["2025-10-31"]["rows"] == 2
    assert s1.details["observed_through"] == "2026-01-31" and s1.details["absent_sources"] == []
    table = read_table(spark, ref)
    d1_rows = table.where(F.col("as_of_date") == D1)
    d1_files = sorted(d1_rows.inputFiles())
    d1_before = d1_rows.collect()

    _run(spark, cfg, date_from="2025-11-30", date_to="2025-12-31")
    v_after_backfill = _history(spark, ref)[-1].version
    s3 = _run(spark, cfg, date_from="2025-11-30", date_to="2025-12-31")  # the same backfill again
    hist = _history(spark, ref)
    # one commit per backfill (the properties did not change, so no metadata commit either)
    assert hist[-1].version == v_after_backfill + 1
    assert hist[-1].operationParameters["predicate"].count("2025-") == 2
    assert fake_inputs == [D1, D3, D3]  # validation ran at the latest as-of date of each run

    table = read_table(spark, ref)
    counts = {r.as_of_date: r["count"] for r in table.groupBy("as_of_date").count().collect()}
    assert counts == {D1: 2, D2: 2, D3: 3}
    assert table.select("customer_id", "as_of_date").distinct().count() == 7  # no duplicates
    d1_rows = table.where(F.col("as_of_date") == D1)
    assert sorted(d1_rows.inputFiles()) == d1_files  # the partition's files were not rewritten
    assert d1_rows.collect() == d1_before
    assert s3.counts["rows"] == 5 and s3.details["write_mode"] == "partitions"

    props = get_properties(spark, ref)
    assert props["credspark.T"] == "3" and props["credspark.channels"] == "delinquency,utilisation,purchase_amount"
    assert props["credspark.feature_version"] == "1"
    assert spec_from_table(table.schema, props).static_names[:3] == ["age", "sex", "education"]


def test_a_different_feature_set_is_refused_unless_every_date_is_rebuilt(spark, warehouse, fake_inputs):
    _run(spark, _cfg(warehouse), as_of="2025-12-31")
    with pytest.raises(ConfigError, match="different feature set"):
        _run(spark, _cfg(warehouse, T=2), as_of="2025-11-30")
    s = _run(spark, _cfg(warehouse, T=2), as_of="2025-12-31")  # rebuilds every existing date: allowed
    assert s.details["write_mode"] == "table"
    ref = table_ref(_cfg(warehouse), "features")
    assert get_properties(spark, ref)["credspark.T"] == "2"
    assert len(read_table(spark, ref).first().seq_mask) == 2
