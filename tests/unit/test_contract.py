import datetime as dt
import json

import pytest
from chispa import assert_df_equality
from pyspark.sql import types as T

from credspark.contract import (
    CUSTOMERS,
    SCHEMAS,
    STATEMENTS,
    TRANSACTIONS,
    check_schema,
    rejected_rows,
    tag_counts,
    tag_rows,
    validate,
    with_run_info,
)
from credspark.errors import ContractError

pytestmark = pytest.mark.spark

AS_OF = dt.date(2025, 6, 30)
TS = dt.datetime
D = dt.date
TXN_DDL = "txn_id string, customer_id long, txn_ts timestamp, amount double, txn_type string, merchant_category string"
STMT_DDL = ("customer_id long, statement_month date, credit_limit double, bill_amount double, paid_amount double, "
            "min_due double, delinquency int")
CUST_DDL = ("customer_id long, birth_year int, sex int, education int, marital_status int, region string, "
            "income double, open_date date")


def _validate(df, table, as_of=AS_OF):
    """validate() in one Spark job (the machine is small): tagged rows collected once, split locally."""
    tagged = df.transform(tag_rows(table, as_of))
    rows = tagged.collect()
    names = [f.name for f in SCHEMAS[table].fields]
    clean = [tuple(r[n] for n in names) for r in rows if r._rule is None and not r._after_as_of]
    rejects = [(r._record, r._reason, r._rule) for r in rows if r._rule is not None]
    spark = df.sparkSession
    return (spark.createDataFrame(clean, T.StructType([tagged.schema[n] for n in names])),
            spark.createDataFrame(rejects, "record string, reason string, rule string"))


def _eq(actual, expected):
    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)


def _reasons(rejects):
    return sorted((r.rule, r.reason) for r in rejects.collect())


# ------------------------------------------------------------------------------------ schema: fail fast


def test_missing_required_column_fails_naming_table_and_column():
    schema = T.StructType([f for f in TRANSACTIONS.fields if f.name != "amount"])
    with pytest.raises(ContractError) as e:
        check_schema(schema, "transactions")
    assert str(e.value) == "transactions.amount: required column missing"
    assert (e.value.table, e.value.column) == ("transactions", "amount")


def test_uncastable_type_fails_naming_table_column_and_rule():
    schema = T.StructType([T.StructField(f.name, T.StringType() if f.name == "amount" else f.dataType)
                           for f in TRANSACTIONS.fields])
    with pytest.raises(ContractError, match=r"^transactions\.amount: type string cannot be cast to double$"):
        check_schema(schema, "transactions")
    schema = T.StructType([T.StructField(f.name, T.BooleanType() if f.name == "delinquency" else f.dataType)
                           for f in STATEMENTS.fields])
    with pytest.raises(ContractError, match=r"statements\.delinquency: type boolean cannot be cast to int"):
        check_schema(schema, "statements")


def test_missing_optional_columns_are_reported_and_filled_with_nulls(spark):
    keep = [f for f in CUSTOMERS.fields if f.name not in ("region", "income")]
    assert check_schema(T.StructType(keep), "customers") == ("region", "income")
    df = spark.createDataFrame([(1, 1980, 1, 2, 1, D(2020, 1, 1))],
                               "customer_id long, birth_year int, sex int, education int, marital_status int, "
                               "open_date date")
    clean, rejects = validate(df, "customers", AS_OF)
    _eq(clean, spark.createDataFrame([(1, 1980, 1, 2, 1, None, None, D(2020, 1, 1))], CUST_DDL))
    assert rejects.count() == 0


# ------------------------------------------------------------------------------------------------ casts


def test_castable_types_are_cast_and_values_that_fail_the_cast_are_rejected(spark):
    df = spark.createDataFrame(
        [(1.0, 1980, "2020-01-05"), (2.5, 1981, "2020-01-05"), (3.0, 1982, "not a date")],
        "customer_id double, birth_year long, open_date string",
    )
    clean, rejects = _validate(df, "customers")
    _eq(clean, spark.createDataFrame([(1, 1980, None, None, None, None, None, D(2020, 1, 5))], CUST_DDL))
    assert _reasons(rejects) == [
        ("castable", "customers.customer_id: value cannot be cast to bigint"),
        ("castable", "customers.open_date: value cannot be cast to date"),
    ]
    # the reject keeps the original value, not a null
    records = sorted(json.loads(r.record)["customer_id"] for r in rejects.collect())
    assert records == [2.5, 3.0]


# ----------------------------------------------------------------------------------------------- nulls


def test_null_keys_are_rejected_with_the_column_named(spark):
    df = spark.createDataFrame([
        ("t1", 1, TS(2025, 5, 1), 10.0, "purchase", None),
        (None, 1, TS(2025, 5, 1), 10.0, "purchase", None),
        ("t3", None, TS(2025, 5, 1), 10.0, "purchase", None),
        ("t4", 1, None, 10.0, "purchase", None),
        ("t5", 1, TS(2025, 5, 1), None, "purchase", None),
    ], TXN_DDL)
    clean, rejects = _validate(df, "transactions")
    _eq(clean, spark.createDataFrame([("t1", 1, TS(2025, 5, 1), 10.0, "purchase", None)], TXN_DDL))
    assert _reasons(rejects) == [
        ("not_null", "transactions.amount: null"),
        ("not_null", "transactions.customer_id: null"),
        ("not_null", "transactions.txn_id: null"),
        ("not_null", "transactions.txn_ts: null"),
    ]


# ------------------------------------------------------------------------------------------ duplicates


def test_duplicate_txn_id_keeps_the_earliest_and_rejects_the_others(spark):
    df = spark.createDataFrame([
        ("t1", 1, TS(2025, 5, 3), 30.0, "purchase", "grocery"),
        ("t1", 1, TS(2025, 5, 1), 10.0, "purchase", "fuel"),
        ("t1", 1, TS(2025, 5, 1), 20.0, "purchase", "fuel"),
        ("t2", 1, TS(2025, 5, 2), 5.0, "fee", None),
    ], TXN_DDL)
    clean, rejects = _validate(df, "transactions")
    _eq(clean, spark.createDataFrame([
        ("t1", 1, TS(2025, 5, 1), 10.0, "purchase", "fuel"),
        ("t2", 1, TS(2025, 5, 2), 5.0, "fee", None),
    ], TXN_DDL))
    assert _reasons(rejects) == [("unique", "transactions.txn_id: duplicate txn_id")] * 2
    assert sorted(json.loads(r.record)["amount"] for r in rejects.collect()) == [20.0, 30.0]


def test_duplicate_statement_months_after_normalising_to_the_first_day(spark):
    df = spark.createDataFrame([
        (1, D(2025, 3, 1), 1000.0, 100.0, 50.0, 5.0, 0),
        (1, D(2025, 3, 15), 1000.0, 90.0, 50.0, 5.0, 0),   # same month: normalised, then a duplicate
        (1, D(2025, 4, 20), 1000.0, 80.0, 50.0, 5.0, 0),   # normalised to 2025-04-01 and kept
    ], STMT_DDL)
    tagged = df.transform(tag_rows("statements", AS_OF))
    clean = tagged.where("_rule IS NULL").select(*[f.name for f in STATEMENTS.fields])
    _eq(clean, spark.createDataFrame([
        (1, D(2025, 3, 1), 1000.0, 90.0, 50.0, 5.0, 0),
        (1, D(2025, 4, 1), 1000.0, 80.0, 50.0, 5.0, 0),
    ], STMT_DDL))
    assert _reasons(rejected_rows(tagged)) == [
        ("unique", "statements.(customer_id, statement_month): duplicate (customer_id, statement_month)")]
    counts = {r.status: r.mapped_statement_month for r in tag_counts(tagged).collect()}
    assert counts["clean"] == 2  # the kept mid-March row (smaller bill sorts first) and the April row


def test_duplicate_customer_id_keeps_one_deterministically(spark):
    df = spark.createDataFrame([
        (7, 1990, 1, 2, 1, "north", 100.0, D(2021, 1, 1)),
        (7, 1990, 1, 2, 1, "north", 100.0, D(2020, 1, 1)),
        (8, 1985, 2, 1, 2, "south", 200.0, None),
    ], CUST_DDL)
    clean, rejects = _validate(df, "customers")
    _eq(clean, spark.createDataFrame([
        (7, 1990, 1, 2, 1, "north", 100.0, D(2020, 1, 1)),
        (8, 1985, 2, 1, 2, "south", 200.0, None),
    ], CUST_DDL))
    assert _reasons(rejects) == [("unique", "customers.customer_id: duplicate customer_id")]


# --------------------------------------------------------------------------------------------- amounts


def test_nan_and_infinite_amounts_are_rejected(spark):
    df = spark.createDataFrame([
        ("t1", 1, TS(2025, 5, 1), float("nan"), "purchase", None),
        ("t2", 1, TS(2025, 5, 1), float("inf"), "purchase", None),
        ("t3", 1, TS(2025, 5, 1), 0.0, "purchase", None),
    ], TXN_DDL)
    clean, rejects = _validate(df, "transactions")
    assert [r.txn_id for r in clean.collect()] == ["t3"]
    assert _reasons(rejects) == [("finite", "transactions.amount: NaN or infinite")] * 2


def test_negative_amounts_are_rejected_where_the_contract_forbids_them(spark):
    txns = spark.createDataFrame([
        ("t1", 1, TS(2025, 5, 1), -5.0, "refund", None),
        ("t2", 1, TS(2025, 5, 1), 5.0, "refund", None),
    ], TXN_DDL)
    clean, rejects = _validate(txns, "transactions")
    assert [r.txn_id for r in clean.collect()] == ["t2"]
    assert [r.rule for r in rejects.collect()] == ["non_negative"]

    stmts = spark.createDataFrame([
        (1, D(2025, 1, 1), 1000.0, -20.0, 0.0, 0.0, -1),    # negative bill (credit balance): fine
        (2, D(2025, 1, 1), 0.0, 10.0, 0.0, 0.0, 0),         # limit must be > 0
        (3, D(2025, 1, 1), 1000.0, 10.0, -1.0, 0.0, 0),     # paid < 0
        (4, D(2025, 1, 1), 1000.0, 10.0, 1.0, -1.0, 0),     # min_due < 0
        (5, D(2025, 1, 1), 1000.0, 10.0, 1.0, None, 0),     # min_due unknown: fine
    ], STMT_DDL)
    clean, rejects = _validate(stmts, "statements")
    assert sorted(r.customer_id for r in clean.collect()) == [1, 5]
    assert _reasons(rejects) == [
        ("non_negative", "statements.min_due: negative"),
        ("non_negative", "statements.paid_amount: negative"),
        ("positive", "statements.credit_limit: must be > 0"),
    ]


# ------------------------------------------------------------------------------------------------ time


def test_events_after_the_as_of_date_are_excluded_not_rejected(spark):
    txns = spark.createDataFrame([
        ("t1", 1, TS(2025, 6, 30, 23, 59), 1.0, "purchase", None),   # on the as-of day: in
        ("t2", 1, TS(2025, 7, 1, 0, 0), 1.0, "purchase", None),      # the day after: out
        ("t3", 1, TS(2025, 7, 2), float("nan"), "purchase", None),   # after as-of: not even validated
    ], TXN_DDL)
    tagged = txns.transform(tag_rows("transactions", AS_OF))
    counts = {r.status: r.rows for r in tag_counts(tagged).collect()}
    assert counts == {"clean": 1, "after_as_of": 2}

    stmts = spark.createDataFrame([
        (1, D(2025, 5, 1), 1000.0, 1.0, 0.0, 0.0, 0),
        (1, D(2025, 6, 1), 1000.0, 1.0, 0.0, 0.0, 0),
    ], STMT_DDL)
    clean, rejects = _validate(stmts, "statements", dt.date(2025, 6, 15))  # June is not complete on the 15th
    assert [r.statement_month for r in clean.collect()] == [D(2025, 5, 1)]
    assert rejects.count() == 0

    custs = spark.createDataFrame([(1, None, None, None, None, None, None, D(2025, 7, 1)),
                                   (2, None, None, None, None, None, None, None)], CUST_DDL)
    clean, rejects = _validate(custs, "customers")
    assert [r.customer_id for r in clean.collect()] == [2]
    assert rejects.count() == 0


def test_outcomes_after_the_as_of_date_are_kept_and_duplicates_rejected(spark):
    df = spark.createDataFrame([(1, D(2025, 8, 1)), (1, D(2025, 8, 1)), (2, D(1969, 12, 31))],
                               "customer_id long, default_date date")
    clean, rejects = _validate(df, "outcomes")
    _eq(clean, spark.createDataFrame([(1, D(2025, 8, 1))], "customer_id long, default_date date"))
    assert _reasons(rejects) == [
        ("range", "outcomes.default_date: before 1970-01-01"),
        ("unique", "outcomes.(customer_id, default_date): duplicate (customer_id, default_date)"),
    ]


def test_statement_months_and_delinquency_out_of_range_are_rejected(spark):
    df = spark.createDataFrame([
        (1, D(1969, 12, 1), 1000.0, 1.0, 0.0, 0.0, 0),
        (2, D(2025, 1, 1), 1000.0, 1.0, 0.0, 0.0, 10),
        (3, D(2025, 1, 1), 1000.0, 1.0, 0.0, 0.0, -3),
        (4, D(2025, 1, 1), 1000.0, 1.0, 0.0, 0.0, 9),
    ], STMT_DDL)
    clean, rejects = _validate(df, "statements")
    assert [r.customer_id for r in clean.collect()] == [4]
    assert _reasons(rejects) == [
        ("range", "statements.delinquency: outside -2..9"),
        ("range", "statements.delinquency: outside -2..9"),
        ("range", "statements.statement_month: before 1970-01-01"),
    ]


# ------------------------------------------------------------------------------------------------ codes


def test_unknown_transaction_types_are_rejected(spark):
    df = spark.createDataFrame([
        ("t1", 1, TS(2025, 5, 1), 1.0, "purchase", "whatever free text"),
        ("t2", 1, TS(2025, 5, 1), 1.0, "chargeback", None),
        ("t3", 1, TS(2025, 5, 1), 1.0, "Purchase", None),
    ], TXN_DDL)
    clean, rejects = _validate(df, "transactions")
    assert [(r.txn_id, r.merchant_category) for r in clean.collect()] == [("t1", "whatever free text")]
    assert {r.rule for r in rejects.collect()} == {"known_code"}
    assert rejects.count() == 2


def test_unknown_profile_codes_are_mapped_and_counted(spark):
    df = spark.createDataFrame([
        (1, 1980, 1, 0, 0, None, 10.0, None),       # education 0 -> 4, marital 0 -> 3
        (2, 1980, 3, 6, 2, None, -1.0, None),       # sex 3 -> null, education 6 -> 4, income < 0 -> null
        (3, 1850, 2, 2, 1, None, float("nan"), None),  # birth year implausible, income NaN -> null
        (4, None, None, None, None, None, None, None),  # nulls stay null, not mapped
    ], CUST_DDL)
    tagged = df.transform(tag_rows("customers", AS_OF))
    clean = tagged.where("_rule IS NULL").select(*[f.name for f in CUSTOMERS.fields])
    _eq(clean, spark.createDataFrame([
        (1, 1980, 1, 4, 3, None, 10.0, None),
        (2, 1980, None, 4, 2, None, None, None),
        (3, None, 2, 2, 1, None, None, None),
        (4, None, None, None, None, None, None, None),
    ], CUST_DDL))
    (row,) = tag_counts(tagged).collect()
    assert (row.status, row.rows) == ("clean", 4)
    assert (row.mapped_sex, row.mapped_education, row.mapped_marital_status,
            row.mapped_birth_year, row.mapped_income) == (1, 2, 1, 1, 2)


# ---------------------------------------------------------------------------------------------- rejects


def test_rejects_carry_the_original_row_reason_rule_and_run(spark):
    df = spark.createDataFrame([("t1", 1, TS(2025, 5, 1), -1.0, "purchase", None)], TXN_DDL)
    _, rejects = validate(df, "transactions", AS_OF)
    out = with_run_info(rejects, "run-1", AS_OF)
    expected = spark.createDataFrame([(
        json.dumps({"txn_id": "t1", "customer_id": 1, "txn_ts": "2025-05-01T00:00:00.000Z", "amount": -1.0,
                    "txn_type": "purchase", "merchant_category": None}, separators=(",", ":")),
        "transactions.amount: negative (amounts are >= 0; txn_type has the sign)", "non_negative", "run-1",
        AS_OF)], "record string, reason string, rule string, run_id string, as_of_date date")
    _eq(out, expected)
