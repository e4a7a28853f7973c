import datetime as dt

import pytest
from chispa import assert_df_equality

from credspark.features.labels import default_events, horizon_end, with_labels

pytestmark = pytest.mark.spark


def test_horizon_end_is_a_month_end():
    assert horizon_end(dt.date(2025, 1, 31), 1) == dt.date(2025, 2, 28)
    assert horizon_end(dt.date(2025, 11, 30), 3) == dt.date(2026, 2, 28)
    assert horizon_end(dt.date(2024, 2, 29), 12) == dt.date(2025, 2, 28)


def test_labels_by_horizon(spark):
    d1, d2 = dt.date(2025, 1, 31), dt.date(2025, 2, 28)
    outcomes = spark.createDataFrame([
        (1, dt.date(2025, 3, 31)),  # d1+2m ends 2025-03-31 (inclusive): positive at d1 and d2
        (2, dt.date(2025, 4, 1)),  # just outside d1's horizon; inside d2's
        (3, dt.date(2025, 2, 10)),  # positive at d1, already defaulted at d2
        (4, dt.date(2025, 1, 31)),  # defaulted ON d1: already in default at both dates
    ], "customer_id bigint, default_date date")
    events = outcomes.transform(default_events([d1, d2], 2))
    population = spark.createDataFrame(
        [(c, d) for c in (1, 2, 3, 4, 5) for d in (d1, d2)], "customer_id bigint, as_of_date date")
    observed = dt.date(2025, 3, 31)  # d1's horizon (-> 2025-03-31) has ended, d2's (-> 2025-04-30) not
    got = population.transform(with_labels(events, 2, observed))
    expected = spark.createDataFrame([
        (1, d1, 1), (1, d2, 1),
        (2, d1, 0), (2, d2, 1),
        (3, d1, 1),
        (5, d1, 0), (5, d2, None),
    ], "customer_id bigint, as_of_date date, label int")
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)

    kept = population.transform(with_labels(events, 2, observed, exclude_defaulted=False))
    labels = {(r.customer_id, r.as_of_date): r.label for r in kept.collect()}
    assert labels[(3, d2)] is None and labels[(4, d1)] == 0 and len(labels) == 10


def test_labels_without_outcomes_or_observation_are_null(spark):
    d = dt.date(2025, 1, 31)
    population = spark.createDataFrame([(1, d)], "customer_id bigint, as_of_date date")
    assert population.transform(with_labels(None, 1, d)).first().label is None
    events = spark.createDataFrame([(9, dt.date(2025, 2, 1))], "customer_id bigint, default_date date").transform(
        default_events([d], 1))
    assert population.transform(with_labels(events, 1, None)).first().label is None
