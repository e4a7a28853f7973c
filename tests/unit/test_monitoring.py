import numpy as np
import pytest

from credspark.metrics import psi
from credspark.monitoring import (
    MISSING,
    bin_count_columns,
    bin_counts,
    bin_index,
    counts_from_row,
    drift_level,
    inner_edges,
    psi_from_shares,
    reference_distribution,
    worst_level,
)


def test_psi_from_shares_matches_metrics_psi_on_the_same_bins():
    rng = np.random.default_rng(0)
    expected, actual = rng.normal(size=5000), rng.normal(0.3, 1.2, size=3000)
    probs = np.linspace(0, 1, 11)[1:-1]
    edges = inner_edges(np.quantile(expected, probs), expected.min())
    e_counts = np.bincount(bin_index(expected, edges), minlength=len(edges) + 1)
    a_counts = np.bincount(bin_index(actual, edges), minlength=len(edges) + 1)
    assert psi_from_shares(e_counts, a_counts) == pytest.approx(psi(expected, actual, bins=10), rel=1e-12)
    assert psi_from_shares(e_counts, e_counts) == 0.0


def test_empty_bins_give_a_large_finite_psi():
    value = psi_from_shares([0.5, 0.5, 0.0], [0.0, 0.5, 0.5])
    assert np.isfinite(value) and value > 1.0


def test_inner_edges_merge_ties_and_drop_the_minimum():
    assert inner_edges([1.0, 1.0, 2.0, None, 3.0], 1.0) == [2.0, 3.0]


def test_reference_distribution_accepts_inner_or_full_edges():
    assert reference_distribution({"edges": [0, 1, 2, 3], "shares": [0.2, 0.3, 0.5]}) == ([1.0, 2.0], [0.2, 0.3, 0.5])
    assert reference_distribution({"edges": [1, 2], "shares": [0.2, 0.3, 0.5]}) == ([1.0, 2.0], [0.2, 0.3, 0.5])
    for bad in ({"edges": [1, 2, 3, 4, 5], "shares": [1, 1]}, {"edges": [2, 1], "shares": [1, 1, 1]},
                {"edges": [1], "shares": [1, -1]}, {"shares": [1]}):
        with pytest.raises(ValueError):
            reference_distribution(bad)


def test_levels():
    assert [drift_level(v, 0.1, 0.25) for v in (0.05, 0.1, 0.3, None, float("nan"))] == [
        "ok", "warn", "fail", "not_available", "not_available"]
    assert worst_level(["ok", "not_available", "warn"]) == "warn"
    assert worst_level([]) == "not_available"
    with pytest.raises(ValueError):
        psi_from_shares([1, 2], [1, 2, 3])


def test_bin_index_puts_values_on_an_edge_above_it_and_null_and_nan_in_no_bin():
    values = [0.0, 1.0, 1.5, 2.0, 2.0, 3.5, None, float("nan")]
    assert bin_index(values, [1.0, 2.0, 3.0]).tolist() == [0, 1, 1, 2, 2, 3, MISSING, MISSING]
    assert bin_counts(values, [1.0, 2.0, 3.0]) == ([1, 2, 2, 1], 2)
    assert bin_counts([None, 5.0], []) == ([1], 1)


@pytest.mark.spark
@pytest.mark.parametrize("edges", [[1.0, 2.0, 3.0], [], [-0.5, 0.0, 0.25, 4.0]])
def test_the_spark_column_twin_bins_exactly_as_numpy(spark, edges):
    from pyspark.sql import functions as F

    rng = np.random.default_rng(3)
    values = [*rng.normal(1.5, 1.5, size=200).round(1).tolist(), *edges, None, float("nan"), float("inf"),
              float("-inf")]
    df = spark.createDataFrame([(v,) for v in values], "x double")
    row = df.agg(*bin_count_columns("x", F.col("x"), edges)).first()
    counts, missing = bin_counts(values, edges)
    assert counts_from_row(row, "x", len(edges) + 1) == counts
    assert row["x__missing"] == missing == 2
    assert sum(counts) == len(values) - 2
