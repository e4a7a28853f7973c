import datetime as dt

import pytest
from chispa import assert_df_equality

from credspark.config import config_from_dict
from credspark.errors import ConfigError, MissingDataError
from credspark.io.tables import (
    get_properties,
    overwrite_partitions,
    read_table,
    safe_child,
    set_properties,
    table_ref,
    table_version,
)

pytestmark = pytest.mark.spark


def _cfg(wh):
    return config_from_dict({"warehouse": {"path": str(wh)}})


def test_table_names_cannot_escape_or_inject(warehouse):
    cfg = _cfg(warehouse)
    for bad in ["../x", "a/b", "x; DROP TABLE y", "", "a b", "`x`"]:
        with pytest.raises(ConfigError):
            table_ref(cfg, bad)
    with pytest.raises(ConfigError):
        safe_child(warehouse, "..", "etc")
    assert table_ref(cfg, "features").path == str((warehouse / "features").resolve())


def test_overwrite_partitions_replaces_only_those(spark, warehouse):
    ref = table_ref(_cfg(warehouse), "t")
    d1, d2, d3 = dt.date(2025, 1, 31), dt.date(2025, 2, 28), dt.date(2025, 3, 31)
    first = spark.createDataFrame([(1, d1, 1.0), (2, d2, 2.0), (3, d3, 3.0)], "id int, as_of_date date, v double")
    overwrite_partitions(first, ref, "as_of_date", [d1, d2, d3])
    assert table_version(spark, ref) == 0
    again = spark.createDataFrame([(20, d2, 20.0)], "id int, as_of_date date, v double")
    overwrite_partitions(again, ref, "as_of_date", [d2])
    expected = spark.createDataFrame([(1, d1, 1.0), (3, d3, 3.0), (20, d2, 20.0)], "id int, as_of_date date, v double")
    assert_df_equality(read_table(spark, ref), expected, ignore_row_order=True, ignore_nullable=True)
    assert table_version(spark, ref) == 1


def test_overwrite_partitions_refuses_rows_outside_predicate(spark, warehouse):
    ref = table_ref(_cfg(warehouse), "t")
    d1, d2 = dt.date(2025, 1, 31), dt.date(2025, 2, 28)
    base = spark.createDataFrame([(1, d1), (2, d2)], "id int, as_of_date date")
    overwrite_partitions(base, ref, "as_of_date", [d1, d2])
    stray = spark.createDataFrame([(9, d1)], "id int, as_of_date date")
    with pytest.raises(Exception, match="(?i)replaceWhere|does not conform|predicate"):  # noqa: B017
        overwrite_partitions(stray, ref, "as_of_date", [d2])
    # the failed write changed nothing
    assert sorted(r.id for r in read_table(spark, ref).collect()) == [1, 2]


def test_properties_round_trip_and_quote_safely(spark, warehouse):
    ref = table_ref(_cfg(warehouse), "p")
    overwrite_partitions(spark.createDataFrame([(1, 1)], "id int, k int"), ref, "k", [1])
    set_properties(spark, ref, {"credspark.T": 12, "credspark.note": "it's ok"})
    props = get_properties(spark, ref)
    assert props["credspark.T"] == "12" and props["credspark.note"] == "it's ok"
    with pytest.raises(ConfigError):
        set_properties(spark, ref, {"bad key')": 1})


def test_missing_table_is_named(spark, warehouse):
    with pytest.raises(MissingDataError, match="nope"):
        read_table(spark, table_ref(_cfg(warehouse), "nope"))
    with pytest.raises(MissingDataError, match="nope"):
        table_version(spark, table_ref(_cfg(warehouse), "nope"))


def test_a_path_holding_a_spark_variable_is_refused_before_it_reaches_sql(spark, tmp_path):
    # Spark substitutes ${name} in SQL text, inside a quoted path too: ALTER TABLE would name another table.
    ref = table_ref(config_from_dict({"warehouse": {"path": str(tmp_path / "${spark.app.name}")}}), "t")
    with pytest.raises(ConfigError, match=r"holds '\$\{'"):
        set_properties(spark, ref, {"credspark.k": "v"})
