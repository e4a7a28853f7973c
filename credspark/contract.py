"""The input contract: the four input tables, their columns and types, and the validation rules.

See docs/data-contract.md for the human-readable version of the same contract.
"""

from __future__ import annotations

from pyspark.sql import types as T

__all__ = [
    "CUSTOMERS",
    "TRANSACTIONS",
    "STATEMENTS",
    "OUTCOMES",
    "SCHEMAS",
    "TXN_TYPES",
    "SEX_CODES",
    "EDUCATION_CODES",
    "MARITAL_CODES",
    "DELINQUENCY_RANGE",
]

#: Transaction types; ``amount`` is always >= 0, the type carries the direction.
TXN_TYPES = ("purchase", "payment", "cash_advance", "fee", "refund", "interest")
#: UCI codes: 1 = male, 2 = female.
SEX_CODES = (1, 2)
#: UCI codes: 1 = graduate school, 2 = university, 3 = high school, 4 = other (0, 5, 6 map to 4).
EDUCATION_CODES = (1, 2, 3, 4)
#: UCI codes: 1 = married, 2 = single, 3 = other (0 maps to 3).
MARITAL_CODES = (1, 2, 3)
#: UCI's PAY_x scale: -2 no consumption, -1 paid in full, 0 revolving, 1..9 months overdue.
DELINQUENCY_RANGE = (-2, 9)

CUSTOMERS = T.StructType([
    T.StructField("customer_id", T.LongType(), False),
    T.StructField("birth_year", T.IntegerType(), True),
    T.StructField("sex", T.IntegerType(), True),
    T.StructField("education", T.IntegerType(), True),
    T.StructField("marital_status", T.IntegerType(), True),
    T.StructField("region", T.StringType(), True),
    T.StructField("income", T.DoubleType(), True),
    T.StructField("open_date", T.DateType(), True),
])

TRANSACTIONS = T.StructType([
    T.StructField("txn_id", T.StringType(), False),
    T.StructField("customer_id", T.LongType(), False),
    T.StructField("txn_ts", T.TimestampType(), False),
    T.StructField("amount", T.DoubleType(), False),
    T.StructField("txn_type", T.StringType(), False),
    T.StructField("merchant_category", T.StringType(), True),
])

STATEMENTS = T.StructType([
    T.StructField("customer_id", T.LongType(), False),
    T.StructField("statement_month", T.DateType(), False),  # first day of the month
    T.StructField("credit_limit", T.DoubleType(), False),
    T.StructField("bill_amount", T.DoubleType(), False),  # may be negative (credit balance)
    T.StructField("paid_amount", T.DoubleType(), False),
    T.StructField("min_due", T.DoubleType(), True),
    T.StructField("delinquency", T.IntegerType(), False),
])

OUTCOMES = T.StructType([
    T.StructField("customer_id", T.LongType(), False),
    T.StructField("default_date", T.DateType(), False),
])

SCHEMAS = {
    "customers": CUSTOMERS,
    "transactions": TRANSACTIONS,
    "statements": STATEMENTS,
    "outcomes": OUTCOMES,
}
