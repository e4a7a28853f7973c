"""The generator's Spark-free core, tested with numpy/pandas only."""

import dataclasses

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from credspark.sources import _simulate as sim
from credspark.sources.generator import month_starts


def _params(seed=7, months=24, rate=0.05, end="2025-12"):
    base = sim.SimParams(seed=seed, months=months, month_start_s=month_starts(end, months))
    intercept, _ = sim.calibrate_distress_intercept(base, rate)
    return dataclasses.replace(base, distress_intercept=intercept)


@pytest.fixture(scope="module")
def p24():
    return _params()


@pytest.fixture(scope="module")
def portfolio(p24):
    """3,000 customers x 24 months at a 5% default rate, as pandas frames."""
    s = sim.simulate(np.arange(1, 3001), p24)
    return {
        "sim": s,
        "customers": pd.DataFrame(sim.customers_columns(s)),
        "statements": pd.DataFrame(sim.statements_columns(s)),
        "outcomes": pd.DataFrame(sim.outcomes_columns(s)),
        "transactions": pd.DataFrame(sim.transactions_columns(s, p24)),
    }


def _frames(ids, p):
    s = sim.simulate(np.asarray(ids), p)
    return [pd.DataFrame(f(s)) for f in (sim.customers_columns, sim.statements_columns, sim.outcomes_columns)] + [
        pd.DataFrame(sim.transactions_columns(s, p))]


def _sorted(df):
    keys = [c for c in ("customer_id", "month", "seq") if c in df.columns]
    return df.sort_values(keys).reset_index(drop=True)


def test_a_customers_history_does_not_depend_on_its_batch(p24):
    whole = _frames(range(1, 301), p24)
    rng = np.random.default_rng(0)
    ids = rng.permutation(np.arange(1, 301))
    parts = [_frames(ids[:37], p24), _frames(ids[37:200], p24), _frames(ids[200:], p24)]
    for j, df in enumerate(whole):
        together = pd.concat([part[j] for part in parts], ignore_index=True)
        pd.testing.assert_frame_equal(_sorted(df), _sorted(together))


def test_partition_function_streams_arrow_batches_in_bounded_chunks(p24):
    batches = [pa.RecordBatch.from_pydict({"id": pa.array(np.arange(1, 2501), pa.int64())})]
    out = list(sim.transactions_partition(iter(batches), p24))
    assert len(out) == 3  # 2,500 customers in chunks of 1,000
    got = pa.Table.from_batches(out).to_pandas()
    expected = pd.DataFrame(sim.transactions_columns(sim.simulate(np.arange(1, 2501), p24), p24))
    pd.testing.assert_frame_equal(_sorted(got), _sorted(expected), check_dtype=False)


def test_another_seed_gives_another_portfolio(p24):
    a = sim.simulate(np.arange(1, 201), p24)
    b = sim.simulate(np.arange(1, 201), dataclasses.replace(p24, seed=8))
    assert not np.array_equal(a.bill, b.bill)
    assert not np.array_equal(a.birth_year, b.birth_year)


def test_split_cents_is_exact_positive_and_local():
    totals = np.array([1000, 3, 0, 12345], dtype=np.int64)
    n = np.array([4, 3, 0, 5])
    w = np.array([0.1, 5.0, 1.0, 0.01, 1.0, 1.0, 1.0, 2.0, 0.5, 0.5, 0.5, 9.0])
    parts = sim._split_cents(totals, n, w)
    assert parts.min() >= 1
    assert [parts[:4].sum(), parts[4:7].sum(), parts[7:].sum()] == [1000, 3, 12345]
    # the same group alone gives the same split
    np.testing.assert_array_equal(sim._split_cents(totals[3:], n[3:], w[7:]), parts[7:])


def test_default_rate_is_close_to_the_requested_rate():
    for rate, tol in ((0.05, 0.015), (0.15, 0.025)):
        p = _params(seed=11, rate=rate)
        s = sim.simulate(np.arange(1, 3001), p)
        assert abs((s.default_month >= 0).mean() - rate) < tol


def test_transactions_add_up_to_the_statements(portfolio):
    tx, st = portfolio["transactions"], portfolio["statements"].sort_values(["customer_id", "month"])
    assert (tx.amount >= 0.01).all()
    # payments of a customer-month equal the statement's paid amount
    pay = tx[tx.type_code == sim.TXN_TYPE_CODES["payment"]].groupby(["customer_id", "month"]).amount.sum()
    paid = st.set_index(["customer_id", "month"]).paid_amount
    np.testing.assert_allclose(pay.reindex(paid.index, fill_value=0.0), paid, atol=1e-6)
    # purchases + cash advances + fees + interest - refunds = the month's new charges
    sign = tx.type_code.map({0: 1, 1: 0, 2: 1, 3: 1, 4: -1, 5: 1})
    charges = (tx.amount * sign).groupby([tx.customer_id, tx.month]).sum()
    st = st.assign(prev=st.groupby("customer_id").bill_amount.shift(1)).dropna(subset=["prev"])
    expected = (st.bill_amount - st.prev + st.paid_amount).to_numpy()
    got = charges.reindex(pd.MultiIndex.from_frame(st[["customer_id", "month"]]), fill_value=0.0).to_numpy()
    np.testing.assert_allclose(got, expected, atol=0.011)
    # about txn_per_month transactions per active month
    per_month = tx.groupby(["customer_id", "month"]).size().mean()
    assert 8.0 < per_month < 12.0


def test_no_activity_in_or_after_the_default_month(portfolio):
    oc = portfolio["outcomes"].set_index("customer_id").month
    assert oc.index.is_unique
    for name in ("statements", "transactions"):
        df = portfolio[name].join(oc.rename("default_month"), on="customer_id", how="inner")
        assert len(df) and (df.month < df.default_month).all()
    # a defaulter's last statement is the month before the default, and shows 3+ months overdue
    st = portfolio["statements"]
    last = st[st.customer_id.isin(oc.index)].groupby("customer_id").agg(month=("month", "max"),
                                                                          d=("delinquency", "last"))
    assert (last.month == oc.reindex(last.index) - 1).all()
    assert (last.d >= 3).all()


def test_new_customers_have_shorter_histories(portfolio):
    cu, st = portfolio["customers"], portfolio["statements"]
    new = cu[cu.open_month >= 1].set_index("customer_id").open_month
    assert 0.1 < len(new) / len(cu) < 0.3
    first = st.groupby("customer_id").month.min().reindex(new.index)
    assert (first == new).all()


def test_delinquency_persists(portfolio):
    st = portfolio["statements"].sort_values(["customer_id", "month"])
    prev = st.groupby("customer_id").delinquency.shift(1)
    late_after_late = (st.delinquency[prev >= 1] >= 1).mean()
    late_after_ok = (st.delinquency[prev <= 0] >= 1).mean()
    assert late_after_late > 0.5 and late_after_late > 10 * late_after_ok


def test_behaviour_deteriorates_before_a_default(portfolio):
    st, tx, oc = portfolio["statements"], portfolio["transactions"], portfolio["outcomes"]
    rel = st.merge(oc[["customer_id", "month"]].rename(columns={"month": "dm"}), on="customer_id")
    rel["k"] = rel.dm - rel.month  # months before the default
    rel["util"] = rel.bill_amount / rel.credit_limit
    early, late = rel[rel.k.between(10, 12)], rel[rel.k.between(1, 3)]
    assert late.util.mean() > early.util.mean() + 0.2
    assert (late.paid_amount == 0).mean() > (early.paid_amount == 0).mean() + 0.4
    cash = tx[tx.type_code == sim.TXN_TYPE_CODES["cash_advance"]].groupby(["customer_id", "month"]).size()
    rel["cash"] = cash.reindex(pd.MultiIndex.from_frame(rel[["customer_id", "month"]]), fill_value=0).to_numpy() > 0
    # cash advances: much more frequent in the months before the default (the account is maxed out at the end)
    assert rel[rel.k.between(2, 5)].cash.mean() > 2 * rel[rel.k.between(10, 12)].cash.mean()


def test_sequence_features_beat_the_profile(tmp_path):
    """Point-in-time: features from months <= as-of, label = default in the next 12 months."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    p = _params(seed=3, rate=0.15)
    s = sim.simulate(np.arange(1, 3001), p)
    cu = pd.DataFrame(sim.customers_columns(s)).set_index("customer_id")
    st = pd.DataFrame(sim.statements_columns(s))
    tx = pd.DataFrame(sim.transactions_columns(s, p))
    dm = pd.DataFrame(sim.outcomes_columns(s)).set_index("customer_id").month
    as_of = 11  # the end of the 12th month; the 12 months after it are the label horizon
    pop = cu[(cu.open_month <= as_of) & ~cu.index.isin(dm[dm <= as_of].index)]
    y = pop.index.isin(dm[(dm > as_of) & (dm <= as_of + 12)].index).astype(int)
    assert y.sum() > 100

    hist = st[st.month.between(as_of - 5, as_of)].assign(util=lambda d: d.bill_amount / d.credit_limit)
    g = hist.groupby("customer_id")
    seq = pd.DataFrame({"util_6m": g.util.mean(), "util_last": g.util.last(), "dq_max_6m": g.delinquency.max(),
                        "dq_last": g.delinquency.last(),
                        "missed_6m": g.paid_amount.apply(lambda v: (v == 0).sum())})
    cash = tx[(tx.type_code == 2) & tx.month.between(as_of - 5, as_of)].groupby("customer_id").amount.sum()
    seq["cash_6m"] = cash.reindex(seq.index, fill_value=0.0)
    profile = pd.DataFrame({"age": 2025 - pop.birth_year, "sex": pop.sex, "education": pop.education,
                            "marital": pop.marital_status, "region": pop.region_code,
                            "log_income": np.log(pop.income), "tenure": as_of - pop.open_month}, index=pop.index)
    both = profile.join(seq).fillna(0.0)

    cv = StratifiedKFold(5, shuffle=True, random_state=0)

    def auc(X):
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        return roc_auc_score(y, cross_val_predict(model, X, y, cv=cv, method="predict_proba")[:, 1])

    auc_profile, auc_both = auc(profile.to_numpy()), auc(both.to_numpy())
    assert auc_profile > 0.55  # the profile carries some signal...
    assert auc_both - auc_profile > 0.05  # ...but the behaviour sequences carry more
