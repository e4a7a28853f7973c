"""The monthly_activity table: incremental feature builds equal from-scratch ones, late data is recomputed."""

import datetime as dt

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from credspark.config import GenerateConfig, config_from_dict
from credspark.contract import TRANSACTIONS
from credspark.errors import ConfigError
from credspark.features.monthly import CHANGE_DATA_FEED
from credspark.io.tables import append_table, overwrite_table, read_table, set_properties, table_ref
from credspark.job_requests import FeaturesRequest
from credspark.pipelines.features import build_feature_frames, lookback_start
from credspark.pipelines.monthly import source_versions, update_monthly_activity
from credspark.sources.generator import generate_tables, plan_generation

pytestmark = pytest.mark.spark

NOV, DEC = dt.date(2025, 11, 30), dt.date(2025, 12, 31)
# A lookback (4 months) shorter than the history (8 months), so older months are folded into the bucket row.
FEATURES = {"T": 4, "windows": [1, 3], "horizon_months": 1, "version": "t"}


@pytest.fixture(scope="module")
def portfolio(spark, tmp_path_factory):
    """A small seeded portfolio (40 customers x 8 months) as Delta tables with the change data feed on."""
    wh = tmp_path_factory.mktemp("monthly_wh")
    cfg = config_from_dict({"warehouse": {"path": str(wh)}, "features": FEATURES})
    plan = plan_generation(GenerateConfig(customers=40, months=8, end_month="2025-12", partitions=2))
    for name, df in generate_tables(spark, plan).items():
        ref = table_ref(cfg, name)
        overwrite_table(df, ref)
        set_properties(spark, ref, {CHANGE_DATA_FEED: "true"})
    return cfg


def _inputs(spark, cfg):
    return {n: read_table(spark, table_ref(cfg, n)) for n in ("customers", "transactions", "statements", "outcomes")}


def _incremental(spark, cfg, dates, run_id, rebuild=None):
    versions = source_versions(spark, cfg)
    inputs = _inputs(spark, cfg)
    monthly = update_monthly_activity(spark, cfg, inputs, dates, versions, run_id=run_id, rebuild=rebuild,
                                      lookback_start_month=lookback_start(dates, cfg.features))
    frames = build_feature_frames(inputs, dates, cfg, observed_through=DEC, monthly=monthly.rows)
    return frames.features, monthly.plan.summary()


def _from_scratch(spark, cfg, dates):
    return build_feature_frames(_inputs(spark, cfg), dates, cfg, observed_through=DEC).features


def test_incremental_builds_equal_from_scratch_builds_including_after_late_data(spark, portfolio):
    cfg = portfolio
    txns = read_table(spark, table_ref(cfg, "transactions"))
    cust = txns.where(F.month("txn_ts") == 8).agg(F.min("customer_id")).first()[0]  # active in August
    # the first run stores every closed month of the history; the as-of month is open (computed, not stored)
    got, s1 = _incremental(spark, cfg, [NOV], "r1")
    assert s1["computed"] == [f"2025-{m:02d}" for m in range(5, 11)] and s1["recomputed"] == {}
    assert s1["open_month"] == "2025-11" and s1["reused"] == 0
    assert_df_equality(got, _from_scratch(spark, cfg, [NOV]), ignore_row_order=True)
    seq_before = got.where(F.col("customer_id") == cust).first().seq

    # a late purchase lands in closed August; the next run (a two-date backfill) recomputes exactly August,
    # stores November (closed now), reuses the other months and leaves December open
    late = spark.createDataFrame(
        [("late-1", cust, dt.datetime(2025, 8, 20, 9), 1234.5, "purchase", "travel")], TRANSACTIONS)
    append_table(late, table_ref(cfg, "transactions"))
    got, s2 = _incremental(spark, cfg, [NOV, DEC], "r2")
    assert s2["computed"] == ["2025-11"] and list(s2["recomputed"]) == ["2025-08"]
    assert s2["recomputed"]["2025-08"].startswith("late data: transactions changed in versions")
    assert s2["reused"] == 5 and s2["open_month"] == "2025-12"
    assert_df_equality(got, _from_scratch(spark, cfg, [NOV, DEC]), ignore_row_order=True)
    seq_after = got.where((F.col("customer_id") == cust) & (F.col("as_of_date") == NOV)).first().seq
    assert seq_after != seq_before  # August is inside November's sequence: the late row reached it
    stored = read_table(spark, table_ref(cfg, cfg.tables.monthly_activity))
    assert sorted(r[0] for r in stored.select("month").distinct().collect()) == list(range(2025 * 12 + 4,
                                                                                            2025 * 12 + 11))

    # --rebuild-monthly forces months whatever the recorded state; nothing else changed, so the rest is reused
    forced = FeaturesRequest((DEC,), (dt.date(2025, 6, 1), dt.date(2025, 7, 1))).rebuild_months
    _, s3 = _incremental(spark, cfg, [DEC], "r3", rebuild=forced)
    assert s3["recomputed"] == {"2025-06": "forced by --rebuild-monthly", "2025-07": "forced by --rebuild-monthly"}
    assert s3["computed"] == [] and s3["reused"] == 5 and s3["open_month"] == "2025-12"


def test_rebuild_monthly_flag_is_checked_before_spark_starts():
    req = FeaturesRequest.from_flags(as_of="2025-12-31", rebuild_monthly="2025-03..2025-05")
    assert req.rebuild_monthly == (dt.date(2025, 3, 1), dt.date(2025, 5, 1))
    assert req.rebuild_months == (2025 * 12 + 2, 2025 * 12 + 4)
    assert FeaturesRequest.from_flags(as_of="2025-12-31").rebuild_monthly is None
    for bad, match in (("2025-03", "FROM..TO"), ("2025-05..2025-03", "after TO"), ("2025-13..2025-14", "YYYY-MM"),
                       ("2025-11..2025-12", "closed months")):
        with pytest.raises(ConfigError, match=match):
            FeaturesRequest.from_flags(as_of="2025-12-31", rebuild_monthly=bad)
