"""Keeping the ``monthly_activity`` table up to date for a feature build (Spark orchestration).

A run of the feature job calls :func:`source_versions` before it reads its inputs, then
:func:`update_monthly_activity` with the clean inputs. That plans and writes, in ONE Delta commit
(``replaceWhere`` on the months, retried after a concurrent commit), every *closed* month (ended before the
latest as-of date's month) that is:

- **missing**: not stored yet (the first run stores the whole history, once);
- **changed**: late or corrected source rows landed in it since it was stored, found in the change data feed
  of ``transactions`` / ``statements`` between the versions recorded with the table and the current ones
  (without a usable change feed every stored month is recomputed, and the summary says why);
- **forced**: inside ``--rebuild-monthly FROM..TO``.

Every other stored month is reused. The as-of month itself is *open*: computed from its rows for this build
and never stored (it is stored once a later run finds it closed). The table property
``credspark.monthly.state`` records the stored month range and the source versions they are consistent with;
it is set after the data commit, so a run that dies in between leaves months that the next run recomputes.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from credspark.config import Config
from credspark.dates import month_index_of
from credspark.features.monthly import (
    MONTHLY_SCHEMA,
    MONTHLY_SOURCES,
    activity_for_as_of,
    month_label,
    month_rows,
    month_start_date,
)
from credspark.io.delta_retry import overwrite_partitions_retrying
from credspark.io.tables import (
    TableRef,
    get_properties,
    read_table,
    set_properties,
    table_exists,
    table_ref,
)
from credspark.pipelines.monthly_plan import (
    STATE_PROPERTY,
    MonthlyPlan,
    MonthlyState,
    plan_months,
    source_versions,
)

__all__ = ["MonthlyActivity", "update_monthly_activity", "source_versions", "early_plan", "events_from", "stored_state"]

log = logging.getLogger("credspark.features.monthly")

def _record_state(spark: SparkSession, ref: TableRef, seen: MonthlyState | None, mine: MonthlyState) -> None:
    """Set the state property; when another run changed it meanwhile, keep the older versions of both."""
    now = MonthlyState.from_json(get_properties(spark, ref).get(STATE_PROPERTY))
    state = mine
    if now is not None and now != seen and now != mine and set(now.versions) == set(mine.versions):
        # A concurrent run recorded its own state: the older version of each source is the one both runs'
        # months are consistent with (a newer change is then found again, and only recomputes a month).
        versions = {s: None if now.versions[s] is None or v is None else min(v, now.versions[s])
                    for s, v in mine.versions.items()}
        state = MonthlyState(min(now.first, mine.first), max(now.last, mine.last), versions)
    if now != state:
        set_properties(spark, ref, {STATE_PROPERTY: state.to_json()})


def stored_state(spark: SparkSession, ref: TableRef) -> MonthlyState | None:
    """The monthly table's recorded state (None = no table, or no usable state: everything is computed)."""
    return MonthlyState.from_json(get_properties(spark, ref).get(STATE_PROPERTY)) if table_exists(spark, ref) \
        else None


def early_plan(
    spark: SparkSession,
    cfg: Config,
    sources: Mapping[str, DataFrame],
    as_of_dates: Sequence,
    versions: Mapping[str, int | None],
    *,
    rebuild: tuple[int, int] | None = None,
) -> MonthlyPlan | None:
    """The plan, made before the inputs are validated, when the table's state allows it (else None).

    With a stored state the plan needs no source row, only the sources' presence and change data feed, so the
    feature job can validate just the source rows of the months it computes (:func:`events_from`). Without
    one (first build, or the set of sources changed) every month is computed and every row validated: None.

    Args:
        spark: The session.
        cfg: Job config.
        sources: The source tables that exist, by name (only their presence is read).
        as_of_dates: The build's as-of dates, ascending.
        versions: :func:`source_versions`, read before the inputs.
        rebuild: Month-index range to recompute (``--rebuild-monthly``).
    """
    seen = stored_state(spark, table_ref(cfg, cfg.tables.monthly_activity))
    present = {s for s in MONTHLY_SOURCES if s in sources}
    if seen is None or set(seen.versions) != present:
        return None
    return plan_months(spark, cfg, sources, month_index_of(as_of_dates[-1]), versions, stored=seen,
                       rebuild=rebuild)


def events_from(plan: MonthlyPlan, as_of: dt.date) -> dt.date:
    """First day of the oldest month whose source rows the build reads (the computed and open months).

    When it reads none (every month it needs is stored), the day after ``as_of``: no event row is needed.
    """
    months = [*plan.compute, *([] if plan.open_month is None else [plan.open_month])]
    return month_start_date(min(months)) if months else as_of + dt.timedelta(days=1)


@dataclass(frozen=True)
class MonthlyActivity:
    """What :func:`update_monthly_activity` returns.

    Attributes:
        rows: The frame the feature aggregation reads (lazy: stored months, the open month, the profile).
        plan: What was computed, reused and left open, and why.
        version: The table version this run committed (None = nothing written).
    """

    rows: DataFrame
    plan: MonthlyPlan
    version: int | None


def update_monthly_activity(
    spark: SparkSession,
    cfg: Config,
    inputs: Mapping[str, DataFrame],
    as_of_dates: Sequence,
    versions: Mapping[str, int | None],
    *,
    lookback_start_month: int,
    run_id: str,
    rebuild: tuple[int, int] | None = None,
    plan: MonthlyPlan | None = None,
) -> MonthlyActivity:
    """Bring the monthly table up to date for these as-of dates and return the rows the features read.

    Args:
        spark: The session.
        cfg: Job config (``tables.monthly_activity``).
        inputs: Clean input tables.
        as_of_dates: The build's month-end as-of dates, ascending.
        versions: :func:`source_versions`, read before the inputs.
        lookback_start_month: Oldest month index any as-of date looks at (older months are folded).
        run_id: Stamped on the commit.
        rebuild: Month-index range to recompute (``--rebuild-monthly``).
        plan: The plan :func:`early_plan` made before the inputs were validated (None = plan here).

    Returns:
        A :class:`MonthlyActivity`.
    """
    ref = table_ref(cfg, cfg.tables.monthly_activity)
    until = as_of_dates[-1]
    as_of_month = month_index_of(until)
    if plan is None:
        plan = plan_months(spark, cfg, inputs, as_of_month, versions, stored=stored_state(spark, ref),
                           rebuild=rebuild)
    for note in plan.notes:
        log.warning("monthly_activity: %s", note)
    version = None
    if plan.compute:
        months = sorted(plan.compute)
        log.info("monthly_activity: computing %d closed month(s) %s .. %s", len(months), month_label(months[0]),
                 month_label(months[-1]))
        version = overwrite_partitions_retrying(spark, month_rows(inputs, months), ref, "month", months,
                                                run_id=run_id)
    if table_exists(spark, ref):
        _record_state(spark, ref, plan.based_on, plan.state)
        stored = read_table(spark, ref).where(
            F.col("month").between(plan.state.first, min(plan.state.last, as_of_month)))
    else:  # no closed month yet (the sources start in the as-of month)
        stored = spark.createDataFrame([], MONTHLY_SCHEMA)
    open_rows = None if plan.open_month is None else month_rows(inputs, [plan.open_month])
    rows = activity_for_as_of(stored, open_month=open_rows, customers=inputs.get("customers"), present_sources=inputs,
                              until=until, lookback_start_month=lookback_start_month)
    return MonthlyActivity(rows, plan, version)
