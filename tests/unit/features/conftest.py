"""Tiny inline input tables shaped like the contract (credspark.contract) for the feature tests."""

from __future__ import annotations

import pytest

from credspark.contract import CUSTOMERS, OUTCOMES, STATEMENTS, TRANSACTIONS


@pytest.fixture
def make_inputs(spark):
    """Build a dict of contract-shaped DataFrames from row tuples (None/absent key = absent table)."""

    def _make(customers=None, transactions=None, statements=None, outcomes=None):
        out = {}
        for name, rows, schema in (
            ("customers", customers, CUSTOMERS),
            ("transactions", transactions, TRANSACTIONS),
            ("statements", statements, STATEMENTS),
            ("outcomes", outcomes, OUTCOMES),
        ):
            if rows is not None:
                out[name] = spark.createDataFrame(rows, schema)
        return out

    return _make
