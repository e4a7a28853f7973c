import datetime as dt

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from credspark.config import GenerateConfig
from credspark.contract import SCHEMAS, TXN_TYPES
from credspark.errors import ConfigError
from credspark.sources.generator import generate_tables, month_starts, plan_generation, window_start

pytestmark = pytest.mark.spark


def test_window_calendar():
    assert window_start("2025-12", 24) == dt.date(2024, 1, 1)
    assert window_start("2025-03", 3) == dt.date(2025, 1, 1)
    starts = month_starts("2024-03", 2)  # Feb 2024 (leap year) and March
    assert [b - a for a, b in zip(starts, starts[1:])] == [29 * 86400, 31 * 86400]
    assert starts[0] == int(dt.datetime(2024, 2, 1, tzinfo=dt.UTC).timestamp())


def test_bad_settings_are_config_errors():
    for bad in (dict(customers=0), dict(default_rate=0.0), dict(default_rate=0.7), dict(end_month="2025-13"),
                dict(months=0)):
        with pytest.raises(ConfigError):
            plan_generation(GenerateConfig(**bad))


def test_same_seed_same_tables_whatever_the_partitioning(spark):
    plan = plan_generation(GenerateConfig(customers=150, months=8, end_month="2025-06", seed=5, default_rate=0.1))
    assert plan.start == dt.date(2024, 11, 1) and plan.observed_through == dt.date(2025, 6, 30)
    one = generate_tables(spark, plan, partitions=1)
    three = generate_tables(spark, plan, partitions=3)
    assert set(one) == {"customers", "statements", "transactions", "outcomes"}
    for name in one:
        assert [(f.name, f.dataType) for f in one[name].schema] == [(f.name, f.dataType) for f in SCHEMAS[name]]
        assert_df_equality(one[name], three[name], ignore_row_order=True)
    # the window and the contract's encodings come out right
    months = sorted(r[0] for r in one["statements"].select("statement_month").distinct().collect())
    assert months == [dt.date(2024, 11, 1), dt.date(2024, 12, 1)] + [dt.date(2025, m, 1) for m in range(1, 7)]
    t = one["transactions"].agg(
        F.count("*").alias("n"), F.countDistinct("txn_id").alias("ids"), F.min("txn_ts").alias("lo"),
        F.max("txn_ts").alias("hi"), F.collect_set("txn_type").alias("types"),
        F.min(F.length("txn_id")).alias("idlen")).first()
    assert t.n == t.ids > 150
    assert dt.datetime(2024, 11, 1) <= t.lo and t.hi < dt.datetime(2025, 7, 1)
    assert set(t.types) <= set(TXN_TYPES) and {"purchase", "payment"} <= set(t.types)
    sample = one["transactions"].where("customer_id = 1").orderBy("txn_id").first()
    assert sample.txn_id.startswith("1-2024") and len(sample.txn_id.split("-")[2]) == 3
