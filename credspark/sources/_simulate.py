"""Spark-free core of the portfolio generator: counter-based randomness and the monthly simulation.

Every random draw is a pure function of ``(seed, customer_id, month, stream, k)`` (a SplitMix64 hash turned
into a uniform), so a customer's whole history is the same whichever partition, batch or chunk it lands in:
the same seed gives the same portfolio for any number of Spark partitions, and the first ``n`` customers of
a larger portfolio are the ``n``-customer portfolio.

The model, one month at a time, for each customer who has opened and not defaulted:

1. *Distress* is a persistent hidden state (a two-state Markov chain): a healthy customer enters it with a
   probability rising with the customer's latent risk ``z``; a distressed one stays distressed with a high
   probability (so once late, likely stays late).
2. The previous bill is paid in full, partly (at least the minimum due) or missed. Distressed customers
   miss most payments; a missed payment adds a month to the delinquency (UCI scale: -2 no consumption,
   -1 paid in full, 0 revolving, 1..9 months overdue), and a later payment clears it only if the customer
   also catches up on the arrears (likely when healthy, unlikely when distressed).
3. Purchases, cash advances, interest on the carried balance, fees (late fee, cash-advance fee) and
   occasional refunds make the month's new charges; distress raises spending and cash advances, so
   utilisation climbs before a default.
4. A customer three or more months overdue defaults in the next month with a high probability; after the
   default the customer has no more statements or transactions.

The intercept of the distress hazard is calibrated (bisection on a fixed pilot portfolio) so that the share
of customers who default inside the window matches the requested rate. Profile columns depend only weakly
on ``z``; most of the risk signal is in the behaviour sequences.

Partition functions (``*_partition``, bodies of ``mapInArrow``) take ``Iterator[pyarrow.RecordBatch]``
of customer ids (column ``id``) and yield contract-shaped batches with numeric encodings (month indexes,
epoch seconds, category codes) that the Spark side turns into dates, timestamps and strings. Arrow rather
than pandas: the transactions are the bulk of the data and pandas' block consolidation cost more than the
simulation itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np
import pyarrow as pa

__all__ = [
    "SimParams",
    "Simulation",
    "REGIONS",
    "MERCHANT_CATEGORIES",
    "TXN_TYPE_CODES",
    "simulate",
    "customers_columns",
    "statements_columns",
    "outcomes_columns",
    "transactions_columns",
    "customers_partition",
    "statements_partition",
    "outcomes_partition",
    "transactions_partition",
    "calibrate_distress_intercept",
    "pilot_default_rate",
    "CUSTOMERS_RAW_SCHEMA",
    "STATEMENTS_RAW_SCHEMA",
    "OUTCOMES_RAW_SCHEMA",
    "TRANSACTIONS_RAW_SCHEMA",
]

#: Region codes 0..5 (the Spark side maps a code to its name).
REGIONS = ("north", "south", "east", "west", "central", "islands")
#: Merchant category codes 0..9 for purchases and refunds; 10 = "atm" for cash advances; -1 = null.
MERCHANT_CATEGORIES = ("grocery", "fuel", "restaurants", "travel", "electronics", "apparel", "utilities",
                       "health", "entertainment", "online", "atm")
_MCC_WEIGHTS = np.array([0.24, 0.12, 0.14, 0.05, 0.05, 0.08, 0.1, 0.06, 0.06, 0.1])
#: Codes of credspark.contract.TXN_TYPES, in the same order.
TXN_TYPE_CODES = {"purchase": 0, "payment": 1, "cash_advance": 2, "fee": 3, "refund": 4, "interest": 5}

# Spark DDL of the partition functions' outputs (numeric encodings; see the module docstring).
CUSTOMERS_RAW_SCHEMA = (
    "customer_id long, birth_year int, sex int, education int, marital_status int, region_code int, "
    "income double, open_month int, open_day int"
)
STATEMENTS_RAW_SCHEMA = (
    "customer_id long, month int, credit_limit double, bill_amount double, paid_amount double, "
    "min_due double, delinquency int"
)
OUTCOMES_RAW_SCHEMA = "customer_id long, month int, day int"
TRANSACTIONS_RAW_SCHEMA = (
    "customer_id long, month int, seq int, ts_s long, amount double, type_code int, mcc_code int"
)

_PILOT_SALT = 0x5DEECE66D  # the calibration pilot draws from its own streams, never the portfolio's
_PROFILE_MONTH = 1_000_000  # "month" key of the per-customer (profile) draws
_MONTH_OFFSET = 10_000  # keeps burn-in (negative) months non-negative inside the hash
_TXN_CHUNK = 1_000  # customers per transactions frame: ~240k rows, bounded memory

# --------------------------------------------------------------------------------------- randomness

_U = np.uint64
_GOLDEN = _U(0x9E3779B97F4A7C15)


def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser: a bijective, well-mixed hash of uint64 values (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        x = x + _GOLDEN
        x = (x ^ (x >> _U(30))) * _U(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> _U(27))) * _U(0x94D049BB133111EB)
        return x ^ (x >> _U(31))


def _keys(seed: int, ids: np.ndarray, month: int | np.ndarray) -> np.ndarray:
    """Per (customer, month) base keys: every stream of that customer-month hashes from here."""
    s = _mix(np.asarray([seed & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64))
    m = np.asarray(month, dtype=np.int64) + _MONTH_OFFSET
    return _mix(_mix(s ^ ids.astype(np.uint64)) ^ m.astype(np.uint64))


def _unif(keys: np.ndarray, stream: int, k: np.ndarray | int = 0) -> np.ndarray:
    """Uniforms in (0, 1) for stream ``stream`` (and draw index ``k``) of the given base keys."""
    sk = (np.asarray(k, dtype=np.uint64) << _U(8)) | _U(stream)
    h = _mix(keys ^ _mix(sk))
    return ((h >> _U(11)).astype(np.float64) + 0.5) * (1.0 / 9007199254740992.0)


def _normal(keys: np.ndarray, stream: int, k: np.ndarray | int = 0) -> np.ndarray:
    """Standard normals (Box-Muller on two streams)."""
    u1 = _unif(keys, stream, k)
    u2 = _unif(keys, stream + 100, k)
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


def _sigmoid(x: np.ndarray | float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


# ------------------------------------------------------------------------------------------- params


@dataclass(frozen=True)
class SimParams:
    """Everything a partition needs to simulate its customers (small and picklable).

    Args:
        seed: The portfolio seed.
        months: Months in the window (month indexes 0..months-1).
        month_start_s: Epoch seconds (UTC) of the first instant of each window month, plus one past the end.
        txn_per_month: Mean transactions per active customer-month.
        distress_intercept: Intercept of the monthly distress-entry hazard (calibrated).
        new_customer_share: Share of customers who open during the window (shorter history).
        burn_in: Months simulated before the window (not emitted) so the window starts in a steady state.
    """

    seed: int
    months: int
    month_start_s: tuple[int, ...]
    txn_per_month: float = 10.0
    distress_intercept: float = -4.0
    new_customer_share: float = 0.2
    burn_in: int = 6

    def __post_init__(self) -> None:
        if self.months < 1:
            raise ValueError("months must be >= 1")
        if len(self.month_start_s) != self.months + 1:
            raise ValueError("month_start_s needs months + 1 entries")


# Streams (one per independent decision); profile streams use month key _PROFILE_MONTH.
(_S_Z, _S_AGE, _S_SEX, _S_EDU, _S_MAR, _S_REG, _S_INC, _S_NEW, _S_OPEN, _S_DAY, _S_LIM, _S_SPEND,
 _S_TRANSACT, _S_ACT, _S_INIT, _S_INITD) = range(16)
(_S_DIN, _S_DSTAY, _S_MISS, _S_FULL, _S_PART, _S_NOCONS, _S_SNOISE, _S_CASH, _S_CASHAMT, _S_REFUND,
 _S_REFAMT, _S_DEF, _S_DEFDAY, _S_NPURCH, _S_W, _S_TS, _S_MCC, _S_TSO, _S_CATCHUP) = range(20, 39)


@dataclass
class Simulation:
    """The simulated histories of a batch of customers (arrays of shape (n,) or (n, months))."""

    customer_id: np.ndarray
    birth_year: np.ndarray
    sex: np.ndarray
    education: np.ndarray
    marital_status: np.ndarray
    region_code: np.ndarray
    income: np.ndarray
    open_month: np.ndarray
    open_day: np.ndarray
    activity: np.ndarray
    active: np.ndarray
    credit_limit: np.ndarray
    bill: np.ndarray
    paid: np.ndarray
    min_due: np.ndarray
    delinquency: np.ndarray
    purchases: np.ndarray
    cash: np.ndarray
    fees: np.ndarray
    interest: np.ndarray
    refunds: np.ndarray
    default_month: np.ndarray
    default_day: np.ndarray


def _cents(x: np.ndarray) -> np.ndarray:
    return np.round(x, 2)


def _min_due(bill: np.ndarray) -> np.ndarray:
    return np.where(bill > 0, _cents(np.minimum(bill, np.maximum(0.05 * bill, 25.0))), 0.0)


def _profile(ids: np.ndarray, p: SimParams, salt: int) -> dict[str, np.ndarray]:
    k = _keys(p.seed ^ salt, ids, _PROFILE_MONTH)
    z = _normal(k, _S_Z)
    age = np.clip(np.round(41.0 - 2.5 * z + 10.0 * _normal(k, _S_AGE)), 21, 75)
    end_year = int(np.datetime64(int(p.month_start_s[-2]), "s").astype("datetime64[Y]").astype(np.int64)) + 1970
    sex = np.where(_unif(k, _S_SEX) < 0.6, 2, 1)
    edu_lat = -0.35 * z + _normal(k, _S_EDU)
    education = np.select([edu_lat > 0.35, edu_lat > -0.9, edu_lat > -2.3], [1, 2, 3], 4)
    um = _unif(k, _S_MAR)
    marital = np.select([um < 0.45, um < 0.98], [1, 2], 3)
    region = np.minimum((_unif(k, _S_REG) * len(REGIONS)).astype(np.int64), len(REGIONS) - 1)
    income = _cents(np.exp(10.4 - 0.12 * z + 0.45 * _normal(k, _S_INC)))
    is_new = _unif(k, _S_NEW) < (p.new_customer_share if p.months > 1 else 0.0)
    u_open = _unif(k, _S_OPEN)
    open_month = np.where(
        is_new,
        1 + np.minimum((u_open * (p.months - 1)).astype(np.int64), max(p.months - 2, 0)),
        -1 - (u_open * 120).astype(np.int64),
    )
    open_day = 1 + (_unif(k, _S_DAY) * 28).astype(np.int64)
    limit = np.maximum(500.0, np.round(income * (0.15 + 0.25 * _unif(k, _S_LIM)) * np.exp(-0.1 * z) / 100) * 100)
    return {
        "z": z,
        "birth_year": (end_year - age).astype(np.int32),
        "sex": sex.astype(np.int32),
        "education": education.astype(np.int32),
        "marital_status": marital.astype(np.int32),
        "region_code": region.astype(np.int32),
        "income": income,
        "open_month": open_month.astype(np.int32),
        "open_day": open_day.astype(np.int32),
        "limit": limit,
        # Per-customer habits: spending level, paying-in-full propensity, transaction activity.
        "spend": np.exp(-1.7 + 0.3 * z + 0.4 * _normal(k, _S_SPEND)),
        "transactor": _normal(k, _S_TRANSACT),
        "activity": np.exp(0.3 * _normal(k, _S_ACT) - 0.045),
        "init_util": np.clip(0.1 + 0.25 * _sigmoid(z) + 0.2 * _unif(k, _S_INIT), 0.0, 0.95),
        "init_d": np.where(_unif(k, _S_INITD) < 0.5, -1, 0),
    }


@dataclass(frozen=True)
class _Rates:
    """Each customer's monthly probabilities that depend on the profile only.

    Attributes:
        enter: Of a healthy customer becoming distressed.
        stay: Of a distressed customer staying distressed.
        miss_healthy: Of a healthy customer missing a payment.
        full: Of a healthy customer paying the whole balance.
        cash_healthy: Of a healthy customer taking a cash advance.
    """

    enter: np.ndarray
    stay: np.ndarray
    miss_healthy: np.ndarray
    full: np.ndarray
    cash_healthy: np.ndarray


def _rates(prof: dict[str, np.ndarray], p: SimParams) -> _Rates:
    """The profile-driven monthly probabilities (latent risk ``z``, paying-in-full habit)."""
    z = prof["z"]
    return _Rates(
        enter=_sigmoid(p.distress_intercept + 1.2 * z),
        stay=_sigmoid(1.2 + 0.6 * z),
        miss_healthy=_sigmoid(-4.2 + 0.7 * z),
        full=_sigmoid(0.8 - 1.3 * z + 1.0 * prof["transactor"]),
        cash_healthy=_sigmoid(-3.6 + 0.9 * z),
    )


@dataclass
class _Account:
    """Each customer's state carried from one month to the next.

    Attributes:
        start: First simulated month (the opening month, or the start of the burn-in).
        bill: Balance of the last statement.
        d: Delinquency at the last statement (UCI scale).
        distressed: The hidden distress state.
        defaulted: Whether the customer has defaulted (no more months then).
    """

    start: np.ndarray
    bill: np.ndarray
    d: np.ndarray
    distressed: np.ndarray
    defaulted: np.ndarray


def _opening(prof: dict[str, np.ndarray], p: SimParams) -> _Account:
    """The accounts at their first simulated month.

    Customers opened long before the window start the burn-in with a typical balance; the others start empty
    in their opening month.
    """
    seasoned = prof["open_month"] < -p.burn_in
    n = len(seasoned)
    return _Account(
        start=np.where(seasoned, -p.burn_in, prof["open_month"]),
        bill=np.where(seasoned, _cents(prof["limit"] * prof["init_util"]), 0.0),
        d=np.where(seasoned, prof["init_d"], -2).astype(np.int32),
        distressed=np.zeros(n, dtype=bool),
        defaulted=np.zeros(n, dtype=bool),
    )


@dataclass
class _Month:
    """One month's statement of every customer, before the customers not live are masked out."""

    paid: np.ndarray
    purchases: np.ndarray
    cash: np.ndarray
    fees: np.ndarray
    interest: np.ndarray
    refunds: np.ndarray
    bill: np.ndarray
    delinquency: np.ndarray


def _defaults(k: np.ndarray, live: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Step 4: who defaults this month (three or more months overdue at the last statement) and on which day.

    Returns:
        The mask of new defaults and the day of the month of each (in mask order).
    """
    p_def = np.minimum(1.0, 0.5 + 0.15 * (d - 3))
    new_def = live & (d >= 3) & (_unif(k, _S_DEF) < p_def)
    return new_def, 1 + (_unif(k, _S_DEFDAY)[new_def] * 28).astype(np.int32)


def _distress(k: np.ndarray, acct: _Account, live: np.ndarray, rates: _Rates) -> np.ndarray:
    """Step 1: this month's distress state, a two-state Markov chain per customer."""
    u = _unif(k, _S_DIN)
    return np.where(acct.distressed, _unif(k, _S_DSTAY) < rates.stay, u < rates.enter) & live


def _payment(k: np.ndarray, acct: _Account, rates: _Rates) -> tuple[np.ndarray, ...]:
    """Step 2: the payment of the previous bill.

    Returns:
        ``(owed, miss, full, pay)``: a balance was owed, the payment was missed, the balance was paid in full,
        the amount paid.
    """
    prev, distressed = acct.bill, acct.distressed
    owed = prev > 0.005
    mdue = _min_due(prev)
    miss = owed & (_unif(k, _S_MISS) < np.where(distressed, 0.65, rates.miss_healthy))
    # Accounts already overdue rarely clear the whole balance at once.
    p_full = np.where(distressed, 0.05, rates.full) * np.where(acct.d >= 1, 0.3, 1.0)
    full = owed & ~miss & (_unif(k, _S_FULL) < p_full)
    frac = _unif(k, _S_PART) ** 2 * np.where(distressed, 0.2, 1.0)
    pay = np.where(miss, 0.0, np.where(full, prev, mdue + frac * np.maximum(prev - mdue, 0.0)))
    return owed, miss, full, np.where(owed, _cents(np.minimum(pay, prev)), 0.0)


def _charges(k: np.ndarray, carried: np.ndarray, distressed: np.ndarray, prof: dict[str, np.ndarray],
             rates: _Rates) -> tuple[np.ndarray, np.ndarray]:
    """Step 3, the customer's part: purchases within the limit and cash advances.

    Returns:
        ``(purchases, cash)``.
    """
    L = prof["limit"]
    no_cons = _unif(k, _S_NOCONS) < np.where(distressed, 0.01, 0.04)
    avail = np.maximum(0.0, 1.02 * L - np.maximum(carried, 0.0))
    spend = L * prof["spend"] * np.where(distressed, 1.3, 1.0) * np.exp(0.35 * _normal(k, _S_SNOISE) - 0.06)
    purchases = np.where(no_cons, 0.0, _cents(np.minimum(spend, avail)))
    take_cash = _unif(k, _S_CASH) < np.where(distressed, 0.45, rates.cash_healthy)
    # Cash is drawn up to an over-limit tolerance of 10%: a customer in trouble draws cash while still
    # possible, so cash advances show up in the months before a default.
    cash_room = np.maximum(0.0, 1.10 * L - np.maximum(carried, 0.0) - purchases)
    cash = np.where(take_cash, _cents(np.minimum(L * (0.05 + 0.15 * _unif(k, _S_CASHAMT)), cash_room)), 0.0)
    return purchases, cash


def _delinquency(k: np.ndarray, acct: _Account, owed: np.ndarray, miss: np.ndarray, full: np.ndarray,
                 charges: np.ndarray, in_window: bool) -> np.ndarray:
    """The delinquency of the new statement (UCI scale, at most 9; at most 2 during the burn-in).

    Paying after a missed month clears the arrears only when the customer also catches up on the overdue
    amount; otherwise the account stays as many months overdue as it was (so lateness persists).
    """
    d = acct.d
    catch_up = _unif(k, _S_CATCHUP) < np.where(acct.distressed, 0.1, 0.35)
    stays_late = ~miss & ~full & (d >= 1) & owed & ~catch_up
    new_d = np.where(miss, np.maximum(d, 0) + 1,
                     np.where(stays_late, d,
                              np.where(owed & ~full, 0, np.where(owed | (charges > 0), -1, -2))))
    if not in_window:
        new_d = np.minimum(new_d, 2)  # no defaults during the burn-in
    return np.minimum(new_d, 9)


def _month(k: np.ndarray, acct: _Account, prof: dict[str, np.ndarray], rates: _Rates, in_window: bool) -> _Month:
    """Steps 2 and 3: the payment of the last bill, the new charges and the new statement."""
    owed, miss, full, pay = _payment(k, acct, rates)
    carried = acct.bill - pay
    purchases, cash = _charges(k, carried, acct.distressed, prof, rates)
    interest = np.where(owed & ~full, _cents(0.018 * np.maximum(carried, 0.0)), 0.0)
    fees = _cents(np.where(miss, 25.0, 0.0) + 0.03 * cash)
    refunds = np.where((purchases > 0) & (_unif(k, _S_REFUND) < 0.06),
                       _cents(purchases * (0.05 + 0.25 * _unif(k, _S_REFAMT))), 0.0)
    return _Month(
        paid=pay, purchases=purchases, cash=cash, fees=fees, interest=interest, refunds=refunds,
        bill=_cents(carried + purchases + cash + interest + fees - refunds),
        delinquency=_delinquency(k, acct, owed, miss, full, purchases + cash, in_window),
    )


class _Window:
    """The per-month arrays of the window, filled in month by month (what :class:`Simulation` holds)."""

    _FLOWS = ("bill", "paid", "min_due", "purchases", "cash", "fees", "interest", "refunds")

    def __init__(self, n: int, months: int) -> None:
        self.flows = {name: np.zeros((n, months)) for name in self._FLOWS}
        self.delinquency = np.zeros((n, months), dtype=np.int32)
        self.active = np.zeros((n, months), dtype=bool)
        self.default_month = np.full(n, -1, dtype=np.int32)
        self.default_day = np.zeros(n, dtype=np.int32)

    def record_defaults(self, m: int, new_def: np.ndarray, day: np.ndarray) -> None:
        """Record the month and day of the customers who default in window month ``m``."""
        self.default_month[new_def] = m
        self.default_day[new_def] = day

    def record(self, m: int, live: np.ndarray, month: _Month) -> None:
        """Record window month ``m``'s statements of the live customers (zeros for the others)."""
        self.active[:, m] = live
        for name in self._FLOWS:
            val = _min_due(month.bill) if name == "min_due" else getattr(month, name)
            self.flows[name][:, m] = np.where(live, val, 0.0)
        self.delinquency[:, m] = np.where(live, month.delinquency, 0)

    def simulation(self, ids: np.ndarray, prof: dict[str, np.ndarray]) -> Simulation:
        """The :class:`Simulation` of these customers: their profiles and the recorded months."""
        out, months = self.flows, self.active.shape[1]
        return Simulation(
            customer_id=ids, birth_year=prof["birth_year"], sex=prof["sex"], education=prof["education"],
            marital_status=prof["marital_status"], region_code=prof["region_code"], income=prof["income"],
            open_month=prof["open_month"], open_day=prof["open_day"], activity=prof["activity"],
            active=self.active, credit_limit=np.repeat(prof["limit"][:, None], months, axis=1), bill=out["bill"],
            paid=out["paid"], min_due=out["min_due"], delinquency=self.delinquency, purchases=out["purchases"],
            cash=out["cash"], fees=out["fees"], interest=out["interest"], refunds=out["refunds"],
            default_month=self.default_month, default_day=self.default_day,
        )


def simulate(customer_ids: np.ndarray, p: SimParams, *, salt: int = 0) -> Simulation:
    """Simulate the profiles and monthly histories of the given customers (the model in the module docstring).

    Args:
        customer_ids: Integer ids (any order; each customer's history depends only on its id and the seed).
        p: Simulation parameters.
        salt: Mixed into the seed (the calibration pilot uses its own streams).

    Returns:
        The customers' profiles and (n, months) arrays of statements, charges and activity.
    """
    ids = np.asarray(customer_ids, dtype=np.int64)
    prof = _profile(ids, p, salt)
    rates = _rates(prof, p)
    acct = _opening(prof, p)
    window = _Window(len(ids), p.months)
    for m in range(-p.burn_in, p.months):
        live = (acct.start <= m) & ~acct.defaulted
        if not live.any():
            continue
        k = _keys(p.seed ^ salt, ids, m)
        in_window = m >= 0
        if in_window:  # defaults first: a customer who defaults this month has no more statements
            new_def, day = _defaults(k, live, acct.d)
            window.record_defaults(m, new_def, day)
            acct.defaulted |= new_def
            live &= ~new_def
        acct.distressed = _distress(k, acct, live, rates)
        month = _month(k, acct, prof, rates, in_window)
        acct.bill = np.where(live, month.bill, acct.bill)
        acct.d = np.where(live, month.delinquency, acct.d).astype(np.int32)
        if in_window:
            window.record(m, live, month)
    return window.simulation(ids, prof)


# ------------------------------------------------------------------------------------------ columns

Columns = dict[str, np.ndarray]


def customers_columns(sim: Simulation) -> Columns:
    """Profiles as columns of CUSTOMERS_RAW_SCHEMA."""
    return {
        "customer_id": sim.customer_id, "birth_year": sim.birth_year, "sex": sim.sex,
        "education": sim.education, "marital_status": sim.marital_status, "region_code": sim.region_code,
        "income": sim.income, "open_month": sim.open_month, "open_day": sim.open_day,
    }


def statements_columns(sim: Simulation) -> Columns:
    """One row per active customer-month, as columns of STATEMENTS_RAW_SCHEMA."""
    i, m = np.nonzero(sim.active)
    return {
        "customer_id": sim.customer_id[i], "month": m.astype(np.int32),
        "credit_limit": sim.credit_limit[i, m], "bill_amount": sim.bill[i, m], "paid_amount": sim.paid[i, m],
        "min_due": sim.min_due[i, m], "delinquency": sim.delinquency[i, m].astype(np.int32),
    }


def outcomes_columns(sim: Simulation) -> Columns:
    """One row per default inside the window, as columns of OUTCOMES_RAW_SCHEMA."""
    i = np.nonzero(sim.default_month >= 0)[0]
    return {"customer_id": sim.customer_id[i], "month": sim.default_month[i].astype(np.int32),
            "day": sim.default_day[i].astype(np.int32)}


def _split_cents(total_cents: np.ndarray, n: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Split each total into ``n[g]`` non-negative integer parts proportional to ``weights``.

    Integer arithmetic throughout: each part is one cent plus the difference of floor-rounded cumulative
    shares of the rest, so the parts are exact, at least one cent, sum to the total, and a group's result
    never depends on its neighbours in the array. Needs ``n[g] <= total_cents[g]``.

    Args:
        total_cents: (G,) int64 totals.
        n: (G,) number of parts per group (groups with 0 parts get none).
        weights: (sum(n),) positive floats, group after group.

    Returns:
        (sum(n),) int64 parts.
    """
    if weights.size == 0:
        return np.zeros(0, dtype=np.int64)
    # 2**16 steps per unit weight: fine enough, and total * cumulative weight stays far below 2**63.
    w = np.maximum(1, (weights * (1 << 16)).astype(np.int64))
    grp = np.repeat(np.arange(len(n)), n)
    cum = np.cumsum(w)
    ends = np.cumsum(n)
    first = ends - n
    has = n > 0
    before = np.zeros(len(n), dtype=np.int64)
    later = first > 0
    before[later] = cum[first[later] - 1]
    within = cum - before[grp]
    tot = np.ones(len(n), dtype=np.int64)
    tot[has] = within[ends[has] - 1]
    # One cent per part up front, the rest split: no part is ever zero.
    rest = (total_cents - n)[grp]
    cum_cents = rest * within // tot[grp] + (np.arange(len(grp)) - first[grp] + 1)
    prev = np.empty_like(cum_cents)
    prev[1:] = cum_cents[:-1]
    prev[first[has]] = 0
    return cum_cents - prev


def transactions_columns(sim: Simulation, p: SimParams) -> Columns:
    """The transactions behind the statements, as columns of TRANSACTIONS_RAW_SCHEMA.

    Per active customer-month: purchases split into about ``txn_per_month - 1.6`` transactions (scaled by the
    customer's activity) whose amounts sum to the month's purchases to the cent; one payment equal to the
    statement's paid amount; one cash advance, one fee, one interest and one refund transaction where the
    month has them. So payments equal ``paid_amount`` and purchases + cash advances + fees + interest -
    refunds equal the month's new charges (``bill_amount - previous bill_amount + paid_amount``).
    """
    i, m = np.nonzero(sim.active)
    cid = sim.customer_id[i]
    k = _keys(p.seed, cid, m)
    starts = np.asarray(p.month_start_s, dtype=np.int64)
    m0, mlen = starts[m], starts[m + 1] - starts[m]
    purch = sim.purchases[i, m]

    # Purchases: count ~ normal approximation of Poisson(mu), at least one when there are purchases.
    mu = np.maximum(0.5, p.txn_per_month - 1.6) * sim.activity[i]
    n_p = np.round(mu + np.sqrt(mu) * _normal(k, _S_NPURCH)).astype(np.int64)
    purch_cents = np.round(purch * 100).astype(np.int64)
    n_p = np.where(purch_cents > 0, np.clip(n_p, 1, np.minimum(200, purch_cents)), 0)
    grp = np.repeat(np.arange(len(i)), n_p)
    kk = np.arange(len(grp)) - np.repeat(np.cumsum(n_p) - n_p, n_p)
    kg = k[grp]
    w = -np.log(_unif(kg, _S_W, kk))
    amt = _split_cents(purch_cents, n_p, w) / 100.0
    p_ts = m0[grp] + (_unif(kg, _S_TS, kk) * mlen[grp]).astype(np.int64)
    mcc_cdf = np.cumsum(_MCC_WEIGHTS) / _MCC_WEIGHTS.sum()
    mcc = np.minimum(np.searchsorted(mcc_cdf, _unif(kg, _S_MCC, kk)), len(_MCC_WEIGHTS) - 1)

    # One transaction per other component present in the month.
    comp = [("payment", sim.paid, -1), ("cash_advance", sim.cash, 10), ("fee", sim.fees, -1),
            ("interest", sim.interest, -1), ("refund", sim.refunds, None)]
    parts = [(grp, kk, p_ts, amt, np.zeros(len(grp), dtype=np.int64), mcc)]
    for j, (name, arr, code) in enumerate(comp):
        a = arr[i, m]
        sel = np.nonzero(a > 0)[0]
        kj = np.full(len(sel), 1000 + j)
        uts = _unif(k[sel], _S_TSO, kj)
        if name in ("fee", "interest"):  # posted on the statement date, in the month's last hour
            ts = m0[sel] + mlen[sel] - 1 - (uts * 3600).astype(np.int64)
        else:
            ts = m0[sel] + (uts * mlen[sel]).astype(np.int64)
        if code is None:  # a refund goes back to a purchase's merchant category
            mc = np.minimum(np.searchsorted(mcc_cdf, _unif(k[sel], _S_MCC, kj)), len(_MCC_WEIGHTS) - 1)
        else:
            mc = np.full(len(sel), code)
        parts.append((sel, n_p[sel] + j, ts, a[sel], np.full(len(sel), TXN_TYPE_CODES[name]), mc))

    g = np.concatenate([x[0] for x in parts])
    order = np.argsort(g, kind="stable")
    g = g[order]
    return {
        "customer_id": cid[g],
        "month": m[g].astype(np.int32),
        "seq": np.concatenate([x[1] for x in parts])[order].astype(np.int32),
        "ts_s": np.concatenate([x[2] for x in parts])[order].astype(np.int64),
        "amount": np.concatenate([x[3] for x in parts])[order].astype(np.float64),
        "type_code": np.concatenate([x[4] for x in parts])[order].astype(np.int32),
        "mcc_code": np.concatenate([x[5] for x in parts])[order].astype(np.int32),
    }


# -------------------------------------------------------------------------------- partition functions


def _ids(batches: Iterator[pa.RecordBatch]) -> Iterator[np.ndarray]:
    for b in batches:
        if b.num_rows:
            yield b.column(b.schema.get_field_index("id")).to_numpy(zero_copy_only=False).astype(np.int64)


def _batch(cols: Columns) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict({name: pa.array(v) for name, v in cols.items()})


def customers_partition(batches: Iterator[pa.RecordBatch], params: SimParams) -> Iterator[pa.RecordBatch]:
    """Body of mapInArrow: batches of customer ids (column ``id``) -> CUSTOMERS_RAW_SCHEMA batches."""
    for ids in _ids(batches):
        yield _batch(customers_columns(simulate(ids, params)))


def statements_partition(batches: Iterator[pa.RecordBatch], params: SimParams) -> Iterator[pa.RecordBatch]:
    """Body of mapInArrow: customer ids -> STATEMENTS_RAW_SCHEMA batches."""
    for ids in _ids(batches):
        yield _batch(statements_columns(simulate(ids, params)))


def outcomes_partition(batches: Iterator[pa.RecordBatch], params: SimParams) -> Iterator[pa.RecordBatch]:
    """Body of mapInArrow: customer ids -> OUTCOMES_RAW_SCHEMA batches."""
    for ids in _ids(batches):
        yield _batch(outcomes_columns(simulate(ids, params)))


def transactions_partition(batches: Iterator[pa.RecordBatch], params: SimParams) -> Iterator[pa.RecordBatch]:
    """Body of mapInArrow: customer ids -> TRANSACTIONS_RAW_SCHEMA batches, a bounded chunk at a time."""
    for ids in _ids(batches):
        for lo in range(0, len(ids), _TXN_CHUNK):
            yield _batch(transactions_columns(simulate(ids[lo:lo + _TXN_CHUNK], params), params))


# --------------------------------------------------------------------------------------- calibration


def pilot_default_rate(p: SimParams, n: int = 10_000) -> float:
    """Share of a fixed pilot portfolio (its own random streams) that defaults inside the window."""
    sim = simulate(np.arange(1, n + 1), p, salt=_PILOT_SALT)
    return float((sim.default_month >= 0).mean())


def calibrate_distress_intercept(p: SimParams, target_rate: float, *, n: int = 10_000,
                                 iterations: int = 12) -> tuple[float, float]:
    """Bisect the distress-entry intercept so the pilot's default rate matches ``target_rate``.

    The pilot depends only on the parameters and the seed (not on the portfolio size), so a portfolio of
    ``n`` customers is a prefix of a larger one with the same seed.

    Args:
        p: Parameters (their ``distress_intercept`` is ignored).
        target_rate: Wanted share of customers with a default inside the window, in (0, 1).
        n: Pilot size.
        iterations: Bisection steps.

    Returns:
        The intercept and the pilot's default rate at that intercept.
    """
    lo, hi = -12.0, 2.0
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        if pilot_default_rate(replace(p, distress_intercept=mid), n) < target_rate:
            lo = mid
        else:
            hi = mid
    best = 0.5 * (lo + hi)
    return best, pilot_default_rate(replace(p, distress_intercept=best), n)
