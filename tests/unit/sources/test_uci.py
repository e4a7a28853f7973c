import datetime as dt

import pytest
from chispa import assert_df_equality

from credspark.errors import ContractError
from credspark.io.tables import read_csv
from credspark.sources.uci import (
    UCI_COLUMNS,
    detect_layout,
    uci_customers,
    uci_dates,
    uci_outcomes,
    uci_statements,
    uci_wide,
)

KAGGLE = list(UCI_COLUMNS)
ORIGINAL = [c if c != "default.payment.next.month" else "default payment next month" for c in UCI_COLUMNS]
GENERIC = [""] + [f"X{j}" for j in range(1, 24)] + ["Y"]
AS_OF = dt.date(2005, 9, 30)


def test_calendar_of_the_file():
    d = uci_dates(AS_OF)
    assert d.months == tuple(dt.date(2005, m, 1) for m in (9, 8, 7, 6, 5, 4))
    assert d.default_date == dt.date(2005, 10, 15)
    assert d.observed_through == dt.date(2005, 10, 31)


def test_layouts_are_detected_from_the_header():
    expected = {c: i for i, c in enumerate(UCI_COLUMNS)}
    assert detect_layout([KAGGLE]) == expected
    assert detect_layout([GENERIC, ORIGINAL]) == expected  # the .xls export: X1..X23, Y then the names
    assert detect_layout([GENERIC, ["1"] * 25]) == expected  # generic header only
    shuffled = ["PAY_1" if c == "PAY_0" else c for c in reversed(KAGGLE)]  # PAY_1 is accepted for PAY_0
    assert detect_layout([shuffled])["PAY_0"] == len(KAGGLE) - 1 - KAGGLE.index("PAY_0")


def test_a_missing_or_unknown_header_names_the_column():
    with pytest.raises(ContractError, match=r"^uci\.BILL_AMT2: required column missing$"):
        detect_layout([[c for c in KAGGLE if c != "BILL_AMT2"]])
    with pytest.raises(ContractError, match=r"^uci\.X7 \(PAY_2\): required column missing$"):
        detect_layout([[c for c in GENERIC if c != "X7"]])
    with pytest.raises(ContractError, match="unrecognised header"):
        detect_layout([["a", "b"], ["1", "2"]])


@pytest.mark.spark
def test_one_customer_maps_onto_the_contract(spark, tmp_path):
    values = [7, "1e+05", 2, 5, 0, 30, 2, 1, 0, -1, -2, 0, 100, 200, 300, 400, 500, -600,
              11, 12, 13, 14, 15, 16, 1]
    path = tmp_path / "uci.csv"
    path.write_bytes(("\r\n".join([",".join(f'"{c}"' for c in KAGGLE), ",".join(map(str, values))])).encode())
    raw = read_csv(spark, path, header=False)
    wide = uci_wide(raw, detect_layout([list(r) for r in raw.limit(2).collect()]))
    assert wide.count() == 1  # the header row is dropped

    assert_df_equality(uci_customers(wide, AS_OF), spark.createDataFrame(
        [(7, 1975, 2, 4, 3, None, None, None)],
        "customer_id long, birth_year int, sex int, education int, marital_status int, region string, "
        "income double, open_date date"), ignore_nullable=True)
    months = [dt.date(2005, m, 1) for m in (9, 8, 7, 6, 5, 4)]
    pay, bill, paid = [2, 1, 0, -1, -2, 0], [100, 200, 300, 400, 500, -600], [11, 12, 13, 14, 15, 16]
    assert_df_equality(uci_statements(wide, AS_OF), spark.createDataFrame(
        [(7, months[k], 100000.0, float(bill[k]), float(paid[k]), None, pay[k]) for k in range(6)],
        "customer_id long, statement_month date, credit_limit double, bill_amount double, paid_amount double, "
        "min_due double, delinquency int"), ignore_nullable=True, ignore_row_order=True)
    assert_df_equality(uci_outcomes(wide, AS_OF), spark.createDataFrame(
        [(7, dt.date(2005, 10, 15))], "customer_id long, default_date date"), ignore_nullable=True)
