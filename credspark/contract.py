"""The input contract: the four input tables, their columns and types, and the validation rules.

See docs/data-contract.md for the human-readable version of the same contract.

Validation is a set of pure DataFrame functions; the pipeline (``credspark.pipelines.validate.validate_inputs``)
counts and writes. What happens to a row, in order:

1. the table lacks a required column, or a column has a type that cannot be cast to the contract's:
   the run FAILS (:class:`~credspark.errors.ContractError` naming table, column and rule);
2. the row's event date (``txn_ts``, ``statement_month``, ``default_date``, ``open_date``) is null, cannot be
   cast or lies before 1970: REJECT (it cannot be placed in time);
3. the event lies after the run's as-of date: EXCLUDED (not validated further, not a reject: it is simply not
   yet known at the as-of date, so a backfill sees the same rejects whatever arrived later);
4. any other required value is null, or a value cannot be cast (a cast never silently yields null), or a
   value breaks a rule (NaN/infinite amounts, negative amounts, non-positive limit, unknown transaction type,
   delinquency outside -2..9): REJECT with ``rule`` and ``reason``;
5. duplicates of the table's key among the remaining rows: the first by a deterministic order is kept, the
   others REJECTED as ``unique``;
6. declared attributes (config ``attributes``; extra columns of ``customers`` or columns of the optional
   ``attributes`` snapshot table) follow their declaration: a value that cannot be cast is REJECTED
   (``castable``); a null, NaN/infinite or out-of-bounds value is REJECTED (``not_null``, ``finite``,
   ``range``) under the ``reject`` missing policy and MAPPED to null under ``null``; a categorical value
   outside the declared categories is MAPPED to ``other`` (no declared categories: kept as text);
7. profile codes outside the code sets are MAPPED (education -> 4, marital status -> 3, sex -> null;
   implausible birth years and bad incomes -> null) and the statement month to its first day; mapped rows
   are flagged so the pipeline can count them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from credspark.config import OTHER_CATEGORY, AttributeConfig
from credspark.errors import ContractError

__all__ = [
    "CUSTOMERS",
    "TRANSACTIONS",
    "STATEMENTS",
    "OUTCOMES",
    "ATTRIBUTES",
    "SCHEMAS",
    "INPUT_SCHEMAS",
    "attribute_type",
    "table_schema",
    "TXN_TYPES",
    "SEX_CODES",
    "EDUCATION_CODES",
    "MARITAL_CODES",
    "DELINQUENCY_RANGE",
    "MIN_EVENT_DATE",
    "MIN_BIRTH_YEAR",
    "REQUIRED_TABLES",
    "EVENT_TABLES",
    "UNIQUE_KEYS",
    "EVENT_COLUMNS",
    "MAPPED_COLUMNS",
    "OBSERVED_THROUGH_PROPERTY",
    "SOURCE_PROPERTY",
    "REJECTS_SCHEMA",
    "STATUS_CLEAN",
    "STATUS_REJECTED",
    "STATUS_AFTER_AS_OF",
    "check_schema",
    "tag_rows",
    "clean_rows",
    "rejected_rows",
    "validate",
    "tag_counts",
    "with_run_info",
    "unknown_code_flags",
    "map_unknown_codes",
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
#: Events dated before this are rejected (a default/epoch date, not a real event).
MIN_EVENT_DATE = dt.date(1970, 1, 1)
#: Birth years before this (or after the as-of year) are implausible and mapped to null.
MIN_BIRTH_YEAR = 1900
#: Largest magnitude of a money amount the contract accepts. Far above any real balance or transaction, and
#: small enough that a month's sums, ratios (a bill over a limit of at least MIN_CREDIT_LIMIT) and the float32
#: sequences stay finite: two 1e308 purchases summed to inf, and a 1e39 bill became inf in float32.
MAX_AMOUNT = 1e12
#: Smallest credit limit accepted (currency units): a positive limit like 1e-300 made utilisation infinite.
MIN_CREDIT_LIMIT = 1.0

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

#: The key columns of the optional ``attributes`` table; its other columns are the declared attributes it holds.
ATTRIBUTES = T.StructType([
    T.StructField("customer_id", T.LongType(), False),
    T.StructField("snapshot_date", T.DateType(), False),
])

SCHEMAS = {
    "customers": CUSTOMERS,
    "transactions": TRANSACTIONS,
    "statements": STATEMENTS,
    "outcomes": OUTCOMES,
}
#: Every input table, the optional attribute snapshots included (their columns beyond the key are declared).
INPUT_SCHEMAS = {**SCHEMAS, "attributes": ATTRIBUTES}

#: Tables a source must have; a source has transactions, statements or both (outcomes are optional).
REQUIRED_TABLES = ("customers",)
EVENT_TABLES = ("transactions", "statements")
#: Key of each table: among valid rows, duplicates of the key beyond the first are rejected.
UNIQUE_KEYS = {
    "customers": ("customer_id",),
    "transactions": ("txn_id",),
    "statements": ("customer_id", "statement_month"),
    "outcomes": ("customer_id", "default_date"),
    "attributes": ("customer_id", "snapshot_date"),
}
#: The column that places a row in time.
EVENT_COLUMNS = {
    "customers": "open_date",
    "transactions": "txn_ts",
    "statements": "statement_month",
    "outcomes": "default_date",
    "attributes": "snapshot_date",
}
#: Values the validation maps rather than rejects, per table (counted by the pipeline).
MAPPED_COLUMNS = {
    "customers": ("sex", "education", "marital_status", "birth_year", "income"),
    "transactions": (),
    "statements": ("statement_month",),
    "outcomes": (),
    "attributes": (),
}

#: Outcomes table property: the last date the outcomes are complete for (ISO date); see docs/data-contract.md.
OBSERVED_THROUGH_PROPERTY = "credspark.observed_through"
#: Outcomes table property naming the loader that wrote the inputs (``generator``, ``uci`` or ``flat``).
SOURCE_PROPERTY = "credspark.source"

#: The ``<table>_rejects`` tables: the original row as JSON, why it was rejected, and by which run.
REJECTS_SCHEMA = T.StructType([
    T.StructField("record", T.StringType(), True),
    T.StructField("reason", T.StringType(), True),
    T.StructField("rule", T.StringType(), True),
    T.StructField("run_id", T.StringType(), True),
    T.StructField("as_of_date", T.DateType(), True),
])

STATUS_CLEAN, STATUS_REJECTED, STATUS_AFTER_AS_OF = "clean", "rejected", "after_as_of"

# Private columns of a tagged frame.
_RECORD, _RULE, _REASON, _EXCLUDED = "_record", "_rule", "_reason", "_after_as_of"
_MAPPED = "_mapped_"

_NUMERIC = (T.ByteType, T.ShortType, T.IntegerType, T.LongType, T.FloatType, T.DoubleType, T.DecimalType)
_INTEGRAL = (T.ByteType, T.ShortType, T.IntegerType, T.LongType)
_DATETIME = (T.DateType, T.TimestampType, T.TimestampNTZType)
_INF = float("inf")


def _col(name: str) -> Column:
    """A column by its exact name (quoted, so dots and spaces in source names are not parsed)."""
    return F.col("`" + name.replace("`", "``") + "`")


def _castable(src: T.DataType, dst: T.DataType) -> bool:
    """Whether a column of type ``src`` may be cast, value by value, to the contract type ``dst``.

    Numbers come from numbers only (a string amount means a broken export, not a value to parse); dates and
    timestamps from dates, timestamps or ISO strings; strings from strings, integers, dates and timestamps.
    """
    if isinstance(src, T.NullType) or src == dst:
        return True
    if isinstance(dst, _NUMERIC):
        return isinstance(src, _NUMERIC)
    if isinstance(dst, _DATETIME):
        return isinstance(src, (*_DATETIME, T.StringType))
    if isinstance(dst, T.StringType):
        return isinstance(src, (T.StringType, *_INTEGRAL, *_DATETIME))
    return False


Attributes = Mapping[str, AttributeConfig]


def attribute_type(attribute: AttributeConfig) -> T.DataType:
    """The contract type of a declared attribute: double (numeric) or string (categorical)."""
    return T.DoubleType() if attribute.kind == "numeric" else T.StringType()


def table_schema(table: str, attributes: Attributes | None = None) -> T.StructType:
    """A table's contract schema with the declared attributes it holds appended (nullable, in the given order).

    Raises:
        ValueError: An unknown table.
        ContractError: An attribute has the name of one of the table's contract columns.
    """
    if table not in INPUT_SCHEMAS:
        raise ValueError(f"unknown input table {table!r} (known: {', '.join(INPUT_SCHEMAS)})")
    base = INPUT_SCHEMAS[table]
    if not attributes:
        return base
    names = {f.name for f in base.fields}
    for name in attributes:
        if name in names:
            raise ContractError(table, name, "a declared attribute cannot have the name of a contract column")
    return T.StructType([*base.fields, *(T.StructField(n, attribute_type(a), True) for n, a in attributes.items())])


_contract = table_schema


def _source_fields(schema: T.StructType) -> dict[str, T.StructField]:
    """Source fields by lower-cased name (Spark resolves column names case-insensitively)."""
    return {f.name.lower(): f for f in schema.fields}


def check_schema(schema: T.StructType, table: str, attributes: Attributes | None = None) -> tuple[str, ...]:
    """Check a source schema against the contract before touching any data.

    Args:
        schema: The source DataFrame's schema.
        table: Contract table name (``customers``, ``transactions``, ``statements``, ``outcomes``,
            ``attributes``).
        attributes: The declared attributes the table holds (each a required column). Defaults to None.

    Returns:
        The nullable contract columns the source lacks (they are filled with nulls).

    Raises:
        ContractError: a required (non-nullable) column is missing, or a column's type cannot be cast to the
            contract's type; the message names table, column and rule.
    """
    src = _source_fields(schema)
    missing_optional = []
    declared = set(attributes or ())
    for f in _contract(table, attributes).fields:
        s = src.get(f.name.lower())
        if s is None:
            if f.name in declared:
                raise ContractError(table, f.name, "declared attribute missing")
            if not f.nullable:
                raise ContractError(table, f.name, "required column missing")
            missing_optional.append(f.name)
        elif not _castable(s.dataType, f.dataType):
            raise ContractError(table, f.name,
                                f"type {s.dataType.simpleString()} cannot be cast to {f.dataType.simpleString()}")
    return tuple(missing_optional)


def _cast(orig: Column, src: T.DataType, dst: T.DataType) -> tuple[Column, Column]:
    """The cast value and a flag that is true where a non-null value did not survive the cast exactly."""
    if src == dst:
        return orig, F.lit(False)
    casted = orig.try_cast(dst)
    failed = orig.isNotNull() & casted.isNull()
    if isinstance(dst, _INTEGRAL) and isinstance(src, (T.FloatType, T.DoubleType, T.DecimalType)):
        # 1.5 -> 1 would be a silent change of value: a fractional value is a failed cast.
        failed = failed | (casted.cast("double") != orig.cast("double"))
    return casted, F.coalesce(failed, F.lit(False))


class _Checks:
    """Ordered (condition, rule, reason) triples; the first true condition decides a row's rule."""

    def __init__(self, table: str) -> None:
        self.table = table
        self.items: list[tuple[Column, str, str]] = []

    def add(self, cond: Column, rule: str, column: str, text: str) -> None:
        self.items.append((F.coalesce(cond, F.lit(False)), rule, f"{self.table}.{column}: {text}"))

    def rule(self) -> Column:
        return F.coalesce(*[F.when(c, F.lit(r)) for c, r, _ in self.items], F.lit(None).cast("string"))

    def reason(self) -> Column:
        return F.coalesce(*[F.when(c, F.lit(t)) for c, _, t in self.items], F.lit(None).cast("string"))

    def any(self) -> Column:
        return F.coalesce(*[F.when(c, F.lit(True)) for c, _, _ in self.items], F.lit(False))


def _not_finite(c: Column) -> Column:
    return F.isnan(c) | (F.abs(c) == F.lit(_INF))


def _presence_checks(checks: _Checks, fields: list[T.StructField], failed: dict[str, str]) -> None:
    """not_null for required columns, castable for every column present."""
    for f in fields:
        if not f.nullable:
            checks.add(_col("_orig_" + f.name).isNull(), "not_null", f.name, "null")
        if f.name in failed:
            checks.add(F.col(failed[f.name]), "castable", f.name,
                       f"value cannot be cast to {f.dataType.simpleString()}")


def _value_checks(table: str, checks: _Checks) -> None:
    """The value rules of each table (after types and nulls are known to be fine)."""
    c = F.col
    if table == "transactions":
        checks.add(_not_finite(c("amount")), "finite", "amount", "NaN or infinite")
        checks.add(c("amount") < 0, "non_negative", "amount", "negative (amounts are >= 0; txn_type has the sign)")
        checks.add(~c("txn_type").isin(*TXN_TYPES), "known_code", "txn_type",
                   f"unknown transaction type (known: {', '.join(TXN_TYPES)})")
        checks.add(c("amount") > MAX_AMOUNT, "range", "amount", f"above {MAX_AMOUNT:g}")
    elif table == "statements":
        for name in ("credit_limit", "bill_amount", "paid_amount", "min_due"):
            checks.add(_not_finite(c(name)), "finite", name, "NaN or infinite")
        checks.add(c("credit_limit") <= 0, "positive", "credit_limit", "must be > 0")
        checks.add(c("paid_amount") < 0, "non_negative", "paid_amount", "negative")
        checks.add(c("min_due") < 0, "non_negative", "min_due", "negative")
        lo, hi = DELINQUENCY_RANGE
        checks.add(~c("delinquency").between(lo, hi), "range", "delinquency", f"outside {lo}..{hi}")
        checks.add(c("credit_limit") < MIN_CREDIT_LIMIT, "range", "credit_limit", f"below {MIN_CREDIT_LIMIT:g}")
        for name in ("credit_limit", "bill_amount", "paid_amount", "min_due"):
            checks.add(F.abs(c(name)) > MAX_AMOUNT, "range", name, f"magnitude above {MAX_AMOUNT:g}")


def _attribute_problem(name: str, a: AttributeConfig) -> list[tuple[Column, str, str]]:
    """(condition, rule, text) of what the missing policy covers: null, NaN/infinite, outside the bounds."""
    c = F.col(name)
    out = [(c.isNull(), "not_null", "null")]
    if a.kind == "numeric":
        out.append((_not_finite(c), "finite", "NaN or infinite"))
        if a.lower is not None:
            out.append((c < a.lower, "range", f"below {a.lower:g}"))
        if a.upper is not None:
            out.append((c > a.upper, "range", f"above {a.upper:g}"))
    return out


def _attribute_checks(checks: _Checks, attributes: Attributes) -> None:
    """Rejects under the ``reject`` missing policy (nulls, NaN/infinite, outside the bounds)."""
    for name, a in attributes.items():
        if a.missing == "reject":
            for cond, rule, text in _attribute_problem(name, a):
                checks.add(cond, rule, name, f"declared attribute {text}")


def _attribute_maps(attributes: Attributes) -> dict[str, tuple[Column, Column]]:
    """Per declared attribute: (flag where the value is mapped, the mapped value)."""
    out = {}
    for name, a in attributes.items():
        c = F.col(name)
        if a.kind == "categorical":
            if not a.categories:  # no declared list: the training job fits the categories (features.encoding)
                continue
            unknown = c.isNotNull() & ~c.isin(*a.categories)
            out[name] = (unknown, F.when(unknown, F.lit(OTHER_CATEGORY)).otherwise(c))
        elif a.missing == "null":
            bad = F.lit(False)
            for cond, _, _ in _attribute_problem(name, a)[1:]:
                bad = bad | F.coalesce(cond, F.lit(False))
            out[name] = (bad, F.when(~bad, c))
    return out


def _mapped(table: str, as_of: dt.date) -> dict[str, tuple[Column, Column]]:
    """Per mapped column: (flag where the value is mapped, the mapped value)."""
    c = F.col
    if table == "customers":
        flags = unknown_code_flags()
        born = c("birth_year")
        bad_born = born.isNotNull() & ~born.between(MIN_BIRTH_YEAR, as_of.year)
        inc = c("income")
        bad_inc = inc.isNotNull() & (_not_finite(inc) | (inc < 0))
        return {
            "sex": (flags["sex"], F.when(~flags["sex"], c("sex"))),
            "education": (flags["education"], F.when(flags["education"], F.lit(4)).otherwise(c("education"))),
            "marital_status": (flags["marital_status"],
                               F.when(flags["marital_status"], F.lit(3)).otherwise(c("marital_status"))),
            "birth_year": (bad_born, F.when(~bad_born, born)),
            "income": (bad_inc, F.when(~bad_inc, inc)),
        }
    if table == "statements":
        month = F.trunc(c("statement_month"), "month")
        return {"statement_month": (c("statement_month") != month, month)}
    return {}


def unknown_code_flags() -> dict[str, Column]:
    """True where sex, education or marital_status hold a non-null code outside their code set."""
    out = {}
    for name, codes in (("sex", SEX_CODES), ("education", EDUCATION_CODES), ("marital_status", MARITAL_CODES)):
        col = F.col(name)
        out[name] = F.coalesce(col.isNotNull() & ~col.isin(*codes), F.lit(False))
    return out


def map_unknown_codes(df: DataFrame) -> DataFrame:
    """Map codes outside the code sets: education -> 4 (other), marital_status -> 3 (other), sex -> null."""
    flags = unknown_code_flags()
    return (
        df.withColumn("sex", F.when(~flags["sex"], F.col("sex")))
        .withColumn("education", F.when(flags["education"], F.lit(4)).otherwise(F.col("education")))
        .withColumn("marital_status", F.when(flags["marital_status"], F.lit(3)).otherwise(F.col("marital_status")))
    )


def _after_as_of(table: str, as_of: dt.date) -> Column | None:
    """True where the row's event is not yet known at the end of the as-of date (None: never excluded)."""
    d = F.lit(as_of)
    if table == "transactions":
        return F.to_date(F.col("txn_ts")) > d
    if table == "statements":
        # A month's statement is complete when the month ends; mid-month as-of dates exclude it.
        return F.last_day(F.col("statement_month")) > d
    if table == "customers":
        return F.col("open_date") > d
    if table == "attributes":
        return F.col("snapshot_date") > d
    return None  # outcomes are labels: they look forward from the as-of date by design


def tag_rows(table: str, as_of: dt.date, attributes: Attributes | None = None) -> Callable[[DataFrame], DataFrame]:
    """Tag every row of a source table with its fate (use with ``df.transform``).

    Args:
        table: Contract table name.
        as_of: The run's as-of date; events after it are excluded, not rejected.
        attributes: The declared attributes this table holds (validated by rule 6 of the module doc; each
            a ``_mapped_<name>`` flag). Defaults to None.

    Returns:
        A function mapping the source frame to: the contract columns (cast and mapped), ``_record`` (the
        original row as JSON), ``_rule``/``_reason`` (null for rows that pass), ``_after_as_of`` and one
        ``_mapped_<column>`` flag per mapped column. Feed it to :func:`clean_rows`, :func:`rejected_rows`
        and :func:`tag_counts`.

    Raises:
        ContractError: (when applied) the source lacks a required column or has an uncastable type.
    """

    def _tag(df: DataFrame) -> DataFrame:
        attrs = dict(attributes or {})
        check_schema(df.schema, table, attrs)
        cast, failed = _cast_columns(df, table, attrs)
        tagged = _with_rules(cast, table, as_of, failed, attrs)
        tagged, flags = _with_maps(tagged, table, as_of, attrs)
        tagged = _with_duplicates(tagged, table, attrs)
        names = [f.name for f in _contract(table, attrs).fields]
        return tagged.select(*names, _RECORD, _RULE, _REASON, _EXCLUDED, *flags)

    return _tag


def _cast_columns(df: DataFrame, table: str, attributes: Attributes) -> tuple[DataFrame, dict[str, str]]:
    """The record, each contract column's original (``_orig_<c>``) and cast value, and cast-failure flags.

    Returns:
        The frame and, per column whose type differs from the contract's, the name of its failure flag.
    """
    src = _source_fields(df.schema)
    record = F.to_json(F.struct(*[_col(n) for n in df.columns]), {"ignoreNullFields": "false"})
    sel: list[Column] = [record.alias(_RECORD)]
    failed: dict[str, str] = {}
    for f in _contract(table, attributes).fields:
        s = src.get(f.name.lower())
        if s is None:  # an optional column the source lacks: null
            sel += [F.lit(None).cast(f.dataType).alias("_orig_" + f.name), F.lit(None).cast(f.dataType).alias(f.name)]
            continue
        value, bad = _cast(_col(s.name), s.dataType, f.dataType)
        sel += [_col(s.name).alias("_orig_" + f.name), value.alias(f.name)]
        if s.dataType != f.dataType:
            failed[f.name] = "_castfail_" + f.name
            sel.append(bad.alias(failed[f.name]))
    return df.select(*sel), failed


def _with_rules(cast: DataFrame, table: str, as_of: dt.date, failed: dict[str, str],
                attributes: Attributes) -> DataFrame:
    """Adds ``_after_as_of`` and the first broken rule (``_rule``, ``_reason``): steps 2-4 and 6 of the module doc."""
    fields = list(_contract(table, attributes).fields)
    event = EVENT_COLUMNS[table]
    # Step 2: can the row be placed in time?
    timing = _Checks(table)
    _presence_checks(timing, [f for f in fields if f.name == event], failed)
    if table != "customers":
        timing.add(F.col(event) < F.lit(MIN_EVENT_DATE), "range", event, f"before {MIN_EVENT_DATE.isoformat()}")
    # Step 3: not yet known at the as-of date -> excluded, and not checked further.
    after = _after_as_of(table, as_of)
    excluded = ~timing.any() & (F.coalesce(after, F.lit(False)) if after is not None else F.lit(False))
    # Step 4: everything else.
    other = _Checks(table)
    _presence_checks(other, [f for f in fields if f.name != event], failed)
    _value_checks(table, other)
    _attribute_checks(other, attributes)
    in_scope = ~F.col(_EXCLUDED)
    rule = F.coalesce(*[F.when(c, F.lit(r)) for c, r, _ in timing.items], F.when(in_scope, other.rule()))
    reason = F.coalesce(*[F.when(c, F.lit(t)) for c, _, t in timing.items], F.when(in_scope, other.reason()))
    return cast.withColumn(_EXCLUDED, excluded).withColumn(_RULE, rule).withColumn(_REASON, reason)


def _with_maps(tagged: DataFrame, table: str, as_of: dt.date, attributes: Attributes
               ) -> tuple[DataFrame, list[str]]:
    """Replaces the mapped columns' values and adds a ``_mapped_<column>`` flag for each (steps 6 and 7)."""
    maps = _mapped(table, as_of) | _attribute_maps(attributes)
    if not maps:
        return tagged, []
    out = tagged.select(
        *[c for c in tagged.columns if c not in maps],
        *[F.coalesce(flag, F.lit(False)).alias(_MAPPED + name) for name, (flag, _) in maps.items()],
        *[value.alias(name) for name, (_, value) in maps.items()],
    )
    return out, [_MAPPED + name for name in maps]


def _with_duplicates(tagged: DataFrame, table: str, attributes: Attributes) -> DataFrame:
    """Rejects duplicates of the table's key among the rows still in play (step 5).

    The first by a deterministic order is kept: the event date, then every other contract column, then the
    original values; rows equal in all of these give the same clean row whichever is kept. The JSON record
    is not used: ordering by it would build it for every row, when only rejects need it.
    """
    fields = list(_contract(table, attributes).fields)
    keys, event = UNIQUE_KEYS[table], EVENT_COLUMNS[table]
    in_play = F.col(_RULE).isNull() & ~F.col(_EXCLUDED)
    order = [F.col(event).asc_nulls_last()] + [
        F.col(f.name).asc_nulls_last() for f in fields if f.name not in keys and f.name != event
    ] + [F.col("_orig_" + f.name).asc_nulls_last() for f in fields]
    w = Window.partitionBy(in_play, *[F.col(k) for k in keys]).orderBy(*order)
    key_text = keys[0] if len(keys) == 1 else "(" + ", ".join(keys) + ")"
    return (
        tagged.withColumn("_dup", in_play & (F.row_number().over(w) > 1))
        .withColumn(_RULE, F.when(F.col("_dup"), F.lit("unique")).otherwise(F.col(_RULE)))
        .withColumn(_REASON, F.when(F.col("_dup"), F.lit(f"{table}.{key_text}: duplicate {key_text}"))
                    .otherwise(F.col(_REASON)))
    )


def clean_rows(tagged: DataFrame, table: str, attributes: Attributes | None = None) -> DataFrame:
    """The rows that passed, with exactly the contract's columns and types (declared attributes last)."""
    return tagged.where(F.col(_RULE).isNull() & ~F.col(_EXCLUDED)).select(
        *[F.col(f.name) for f in _contract(table, attributes).fields]
    )


def rejected_rows(tagged: DataFrame) -> DataFrame:
    """The rejected rows: ``record`` (original row as JSON), ``reason`` and ``rule``."""
    return tagged.where(F.col(_RULE).isNotNull()).select(
        F.col(_RECORD).alias("record"), F.col(_REASON).alias("reason"), F.col(_RULE).alias("rule")
    )


def validate(df: DataFrame, table: str, as_of: dt.date, attributes: Attributes | None = None
             ) -> tuple[DataFrame, DataFrame]:
    """Validate one source table (rows after the as-of date are dropped: neither clean nor rejected).

    Args:
        df: The source rows.
        table: Contract table name.
        as_of: The run's as-of date.
        attributes: The declared attributes the table holds. Defaults to None.

    Returns:
        ``(clean, rejects)``: clean rows with the contract's columns; rejects with record, reason, rule.
    """
    tagged = df.transform(tag_rows(table, as_of, attributes))
    return clean_rows(tagged, table, attributes), rejected_rows(tagged)


def tag_counts(tagged: DataFrame) -> DataFrame:
    """One row per (status, rule, reason) with its row count and, per mapped column, how many were mapped."""
    status = (F.when(F.col(_RULE).isNotNull(), F.lit(STATUS_REJECTED))
              .when(F.col(_EXCLUDED), F.lit(STATUS_AFTER_AS_OF)).otherwise(F.lit(STATUS_CLEAN)))
    flags = [c for c in tagged.columns if c.startswith(_MAPPED)]
    return tagged.groupBy(status.alias("status"), F.col(_RULE).alias("rule"), F.col(_REASON).alias("reason")).agg(
        F.count(F.lit(1)).alias("rows"),
        *[F.sum(F.col(c).cast("long")).alias("mapped_" + c[len(_MAPPED):]) for c in flags],
    )


def with_run_info(rejects: DataFrame, run_id: str, as_of: dt.date) -> DataFrame:
    """Rejected rows with the run that rejected them: the ``<table>_rejects`` schema (REJECTS_SCHEMA)."""
    return rejects.select(
        F.col("record"), F.col("reason"), F.col("rule"),
        F.lit(run_id).cast("string").alias("run_id"), F.lit(as_of).cast("date").alias("as_of_date"),
    )
