"""The UCI "default of credit card clients" data (Taiwan, 2005) mapped onto the input contract.

Accepted layouts (detected from the header, see :func:`detect_layout`):

- Kaggle ``UCI_Credit_Card.csv``: ``ID, LIMIT_BAL, SEX, EDUCATION, MARRIAGE, AGE, PAY_0, PAY_2..PAY_6,
  BILL_AMT1..6, PAY_AMT1..6, default.payment.next.month``;
- the original UCI header (``default payment next month``; ``PAY_1`` is accepted for ``PAY_0``);
- the original file's generic header ``X1..X23, Y`` (with or without the named row below it), ID first.

Alignment (the MANIFEST beside the data describes the columns). With ``as_of`` = 2005-09-30, month ``k`` =
1..6 is September (k=1) back to April (k=6); for each customer and month ``k`` one statement row:

- ``statement_month`` = the first day of month ``k``; ``delinquency`` = ``PAY_0`` for k=1, ``PAY_k`` for
  k=2..6 (the repayment status recorded in that month);
- ``bill_amount`` = ``BILL_AMTk`` (the bill statement of month ``k``);
- ``paid_amount`` = ``PAY_AMTk`` (the amount paid *during* month ``k``, i.e. mostly toward the previous
  month's bill). This is the contract's meaning of ``paid_amount``: what was paid in the statement's month,
  so every value of a statement row is known when that month ends (no look-ahead), and it matches the
  generator, whose payment transactions of month M sum to the paid_amount of month M;
- ``credit_limit`` = ``LIMIT_BAL`` (only the current limit is known; used for every month);
  ``min_due`` = null (not in the data).

Customers: ``birth_year`` = as-of year - ``AGE``; ``sex`` = ``SEX``; ``education`` = ``EDUCATION`` with the
undocumented 0, 5, 6 mapped to 4 (other); ``marital_status`` = ``MARRIAGE`` with 0 mapped to 3 (other);
``region``, ``income`` and ``open_date`` are null (unknown: the data has no account age).

Outcomes: the target is default on the October 2005 payment; a customer with target 1 gets one outcome
dated the 15th of the month after the as-of month (2005-10-15), so the label as of 2005-09-30 with a
1-month horizon, (2005-09-30, 2005-10-31], is the file's target. The outcomes are complete through the last
day of that month (2005-10-31): the ingest records it as the outcomes table property
``credspark.observed_through``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from credspark.contract import map_unknown_codes
from credspark.errors import ContractError

__all__ = [
    "UCI_COLUMNS",
    "MONTHS",
    "UciDates",
    "uci_dates",
    "detect_layout",
    "uci_wide",
    "uci_customers",
    "uci_statements",
    "uci_outcomes",
]

#: Months of history in the file (k = 1 is the as-of month, k = 6 five months earlier).
MONTHS = 6
_PAY = ("PAY_0", "PAY_2", "PAY_3", "PAY_4", "PAY_5", "PAY_6")
_BILL = tuple(f"BILL_AMT{k}" for k in range(1, MONTHS + 1))
_PAID = tuple(f"PAY_AMT{k}" for k in range(1, MONTHS + 1))
_TARGET = "default.payment.next.month"
#: Canonical column names (the Kaggle layout's), in file order.
UCI_COLUMNS = ("ID", "LIMIT_BAL", "SEX", "EDUCATION", "MARRIAGE", "AGE", *_PAY, *_BILL, *_PAID, _TARGET)
_SYNONYMS = {"pay_1": "pay_0", "default_payment_next_month": _TARGET.replace(".", "_"),
             "default": _TARGET.replace(".", "_"), "target": _TARGET.replace(".", "_")}
_TABLE = "uci"


def _norm(text: object) -> str:
    s = re.sub(r"[^a-z0-9]+", "_", str(text or "").strip().lower()).strip("_")
    return _SYNONYMS.get(s, s)


@dataclass(frozen=True)
class UciDates:
    """The calendar the file implies for an as-of date (2005-09-30 in the real data)."""

    months: tuple[dt.date, ...]  # first day of month k = 1..6 (as-of month first)
    default_date: dt.date
    observed_through: dt.date


def _add_months(d: dt.date, n: int) -> dt.date:
    idx = d.year * 12 + d.month - 1 + n
    return dt.date(idx // 12, idx % 12 + 1, 1)


def uci_dates(as_of: dt.date) -> UciDates:
    """Statement months, default date and outcome observation end for an as-of date.

    Args:
        as_of: The as-of date whose 1-month-horizon label is the file's target (the month of ``PAY_0``).

    Returns:
        Months k=1..6, the default date (15th of the next month) and the last day of the next month.
    """
    first = dt.date(as_of.year, as_of.month, 1)
    nxt = _add_months(first, 1)
    return UciDates(
        months=tuple(_add_months(first, -(k - 1)) for k in range(1, MONTHS + 1)),
        default_date=dt.date(nxt.year, nxt.month, 15),
        observed_through=_add_months(first, 2) - dt.timedelta(days=1),
    )


def detect_layout(header_rows: Sequence[Sequence[object]]) -> dict[str, int]:
    """Find each canonical column's position from the file's first rows.

    Args:
        header_rows: The first one or two rows of the file, as read without a header.

    Returns:
        Canonical name (``UCI_COLUMNS``) -> 0-based column position.

    Raises:
        ContractError: no recognisable header, or a column is missing (named in the error).
    """
    rows = [[_norm(v) for v in row] for row in header_rows]
    named = next((r for r in rows if "limit_bal" in r), None)
    if named is not None:
        out = {}
        for canon in UCI_COLUMNS:
            key = _norm(canon)
            if key not in named:
                raise ContractError(_TABLE, canon, "required column missing")
            out[canon] = named.index(key)
        return out
    generic = next((r for r in rows if "x1" in r), None)
    if generic is None:
        raise ContractError(_TABLE, None, "unrecognised header",
                            "expected the UCI column names (ID, LIMIT_BAL, ..., PAY_0, ...) or X1..X23, Y")
    out = {}
    for j, canon in enumerate(UCI_COLUMNS[1:-1], start=1):
        if f"x{j}" not in generic:
            raise ContractError(_TABLE, f"X{j} ({canon})", "required column missing")
        out[canon] = generic.index(f"x{j}")
    if "y" not in generic:
        raise ContractError(_TABLE, f"Y ({_TARGET})", "required column missing")
    out[_TARGET] = generic.index("y")
    if "id" in generic:
        out["ID"] = generic.index("id")
    elif generic[0] in ("", "_c0") and 0 not in out.values():
        out["ID"] = 0
    else:
        raise ContractError(_TABLE, "ID", "required column missing")
    return out


def _num(c: Column, kind: str) -> Column:
    """A numeric value from text such as ``20000``, ``-2`` or R's ``1e+05`` (null when not a number)."""
    d = F.trim(c).try_cast("double")
    return d if kind == "double" else d.try_cast(kind)


def uci_wide(raw: DataFrame, layout: dict[str, int]) -> DataFrame:
    """One typed row per customer from the raw (all-string, header-less) CSV rows.

    Header rows, whose ``ID`` is not a number, are dropped.

    Args:
        raw: The CSV read without a header (columns ``_c0``, ``_c1``, ...).
        layout: From :func:`detect_layout`.

    Returns:
        Columns ``id, limit_bal, sex, education, marriage, age, pay_1..6, bill_1..6, paid_1..6, target``
        where suffix k is month k (k = 1 the as-of month).
    """
    cols = raw.columns

    def pick(canon: str, kind: str) -> Column:
        return _num(F.col(cols[layout[canon]]), kind)

    sel = [pick("ID", "long").alias("id"), pick("LIMIT_BAL", "double").alias("limit_bal"),
           pick("SEX", "int").alias("sex"), pick("EDUCATION", "int").alias("education"),
           pick("MARRIAGE", "int").alias("marriage"), pick("AGE", "int").alias("age")]
    sel += [pick(c, "int").alias(f"pay_{k}") for k, c in enumerate(_PAY, start=1)]
    sel += [pick(c, "double").alias(f"bill_{k}") for k, c in enumerate(_BILL, start=1)]
    sel += [pick(c, "double").alias(f"paid_{k}") for k, c in enumerate(_PAID, start=1)]
    sel += [pick(_TARGET, "int").alias("target")]
    return raw.select(*sel).where(F.col("id").isNotNull())


def uci_customers(wide: DataFrame, as_of: dt.date) -> DataFrame:
    """The customers table (contract schema); codes outside the code sets mapped to 'other'."""
    df = wide.select(
        F.col("id").alias("customer_id"),
        (F.lit(as_of.year) - F.col("age")).cast("int").alias("birth_year"),
        "sex", "education", F.col("marriage").alias("marital_status"),
        F.lit(None).cast("string").alias("region"),
        F.lit(None).cast("double").alias("income"),
        F.lit(None).cast("date").alias("open_date"),
    )
    return map_unknown_codes(df)


def uci_statements(wide: DataFrame, as_of: dt.date) -> DataFrame:
    """The statements table (contract schema): six rows per customer, months as in the module docstring."""
    months = uci_dates(as_of).months
    per_month = F.array(*[
        F.struct(F.lit(months[k - 1]).alias("statement_month"), F.col(f"bill_{k}").alias("bill_amount"),
                 F.col(f"paid_{k}").alias("paid_amount"), F.col(f"pay_{k}").alias("delinquency"))
        for k in range(1, MONTHS + 1)
    ])
    return wide.select(F.col("id").alias("customer_id"), F.col("limit_bal"), F.explode(per_month).alias("m")).select(
        "customer_id", F.col("m.statement_month").alias("statement_month"),
        F.col("limit_bal").alias("credit_limit"), F.col("m.bill_amount").alias("bill_amount"),
        F.col("m.paid_amount").alias("paid_amount"), F.lit(None).cast("double").alias("min_due"),
        F.col("m.delinquency").alias("delinquency"),
    )


def uci_outcomes(wide: DataFrame, as_of: dt.date) -> DataFrame:
    """The outcomes table (contract schema): one default, on the 15th of the next month, per target = 1."""
    return wide.where(F.col("target") == 1).select(
        F.col("id").alias("customer_id"), F.lit(uci_dates(as_of).default_date).alias("default_date"))
