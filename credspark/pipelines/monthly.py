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

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from credspark.config import Config
from credspark.dates import month_index_of
from credspark.errors import CredsparkError
from credspark.features.monthly import (
    MONTHLY_SCHEMA,
    MONTHLY_SOURCES,
    activity_for_as_of,
    month_label,
    month_rows,
    source_month,
)
from credspark.io.delta_retry import overwrite_partitions_retrying
from credspark.io.tables import (
    TableRef,
    get_properties,
    read_changes,
    read_table,
    set_properties,
    table_exists,
    table_ref,
    table_version,
)

__all__ = ["STATE_PROPERTY", "MonthlyPlan", "MonthlyState", "source_versions", "plan_months",
           "update_monthly_activity"]

log = logging.getLogger("credspark.features.monthly")

#: Table property holding the stored month range and the source versions (JSON).
STATE_PROPERTY = "credspark.monthly.state"

#: Reasons a closed month is computed (keys of the run summary's ``monthly_activity.recomputed``).
MISSING, FORCED = "missing", "forced by --rebuild-monthly"


@dataclass(frozen=True)
class MonthlyState:
    """What the table holds: every month ``first..last`` (index) consistent with the sources at ``versions``.

    Attributes:
        first: First stored month index.
        last: Last stored month index.
        versions: Delta version per present source (None = not a versioned table: untracked).
    """

    first: int
    last: int
    versions: dict[str, int | None]

    def to_json(self) -> str:
        """The property value (months as ``YYYY-MM``)."""
        return json.dumps({"first_month": month_label(self.first), "last_month": month_label(self.last),
                           "versions": self.versions}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | None) -> MonthlyState | None:
        """The state of a property value; None when absent or unreadable (the table is then rebuilt)."""
        if not text:
            return None
        try:
            d = json.loads(text)
            first, last = (_month_of(d[k]) for k in ("first_month", "last_month"))
            versions = {str(k): None if v is None else int(v) for k, v in d["versions"].items()}
        except (ValueError, KeyError, TypeError, AttributeError):
            return None
        return cls(first, last, versions)


def _month_of(label: str) -> int:
    year, month = (int(p) for p in str(label).split("-"))
    if not 1 <= month <= 12:
        raise ValueError(label)
    return year * 12 + month - 1


@dataclass(frozen=True)
class MonthlyPlan:
    """What one run does with the monthly table.

    Attributes:
        compute: Closed months to compute and store, with the reason for each.
        reused: Stored months read as they are.
        open_month: The latest as-of date's month when it is computed for this build only (None = stored).
        state: The state to record after the write.
    """

    compute: dict[int, str]
    reused: tuple[int, ...]
    open_month: int | None
    state: MonthlyState
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        """The run summary's ``monthly_activity`` entry (months as ``YYYY-MM``)."""
        computed = sorted(m for m, why in self.compute.items() if why == MISSING)
        return {
            "computed": [month_label(m) for m in computed],
            "recomputed": {month_label(m): why for m, why in sorted(self.compute.items()) if why != MISSING},
            "reused": len(self.reused),
            "reused_range": [month_label(self.reused[0]), month_label(self.reused[-1])] if self.reused else None,
            "open_month": None if self.open_month is None else month_label(self.open_month),
            "source_versions": dict(self.state.versions),
            "notes": list(self.notes),
        }


def _ref(cfg: Config, source: str) -> TableRef:
    return table_ref(cfg, getattr(cfg.tables, source))


def source_versions(spark: SparkSession, cfg: Config) -> dict[str, int | None]:
    """Current Delta version of each monthly source table (None = no such table).

    Read BEFORE the inputs: data read afterwards is at least as new, so a change the recorded version misses
    can only make the next run recompute a month it did not need to, never skip one.
    """
    return {s: table_version(spark, _ref(cfg, s)) if table_exists(spark, _ref(cfg, s)) else None
            for s in MONTHLY_SOURCES}


def _changed_months(spark: SparkSession, cfg: Config, source: str, since: int, until: int,
                    ) -> tuple[set[int] | None, str]:
    """Months with rows changed in versions ``since+1..until`` of a source (None = the feed is unusable)."""
    try:
        changes = read_changes(spark, _ref(cfg, source), since + 1, until)
        rows = changes.select(source_month(source).alias("m")).where(F.col("m").isNotNull()).distinct().collect()
    except Exception as e:  # Delta raises AnalysisException / IllegalArgument subclasses by version
        if isinstance(e, CredsparkError):
            raise
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return None, f"{source} changed (versions {since + 1}..{until}) and its change data feed is unusable: {first}"
    return {int(r["m"]) for r in rows}, f"late data: {source} changed in versions {since + 1}..{until}"


def _first_source_month(inputs: Mapping[str, DataFrame]) -> int | None:
    parts = [inputs[s].select(source_month(s).alias("m")) for s in MONTHLY_SOURCES if s in inputs]
    both = parts[0] if len(parts) == 1 else parts[0].unionByName(parts[1])
    value = both.agg(F.min("m")).first()[0]  # one scalar
    return None if value is None else int(value)


def plan_months(
    spark: SparkSession,
    cfg: Config,
    inputs: Mapping[str, DataFrame],
    as_of_month: int,
    versions: Mapping[str, int | None],
    *,
    stored: MonthlyState | None,
    rebuild: tuple[int, int] | None = None,
) -> MonthlyPlan:
    """Decide which closed months to compute, which to reuse, and whether the as-of month is open.

    Args:
        spark: The session.
        cfg: Job config (table names).
        inputs: Clean input tables (transactions and statements are used).
        as_of_month: Month index of the latest as-of date; months before it are closed.
        versions: :func:`source_versions`, read before the inputs.
        stored: The table's recorded state (None = no table or no usable state: everything is computed).
        rebuild: Month-index range to recompute whatever the state says (``--rebuild-monthly``).

    Returns:
        The plan.
    """
    present = {s: versions.get(s) for s in MONTHLY_SOURCES if s in inputs}
    closed_end = as_of_month - 1
    compute: dict[int, str] = {}
    notes: list[str] = []
    if stored is not None and set(stored.versions) != set(present):
        notes.append(f"sources {sorted(stored.versions)} -> {sorted(present)}: every month rebuilt")
        stored = None
    if stored is None:
        first = _first_source_month(inputs)
        first = closed_end + 1 if first is None else min(first, closed_end + 1)
        for m in range(first, closed_end + 1):
            compute[m] = MISSING
        last = closed_end
    else:
        first, last = stored.first, stored.last
        for m in range(last + 1, closed_end + 1):
            compute[m] = MISSING
        for source, now in present.items():
            before = stored.versions[source]
            if before is not None and now is not None and before == now:
                continue
            if before is None or now is None:
                changed, why = None, f"{source} has no Delta version to compare: every stored month recomputed"
            elif now < before:
                changed, why = None, f"{source} is at version {now}, older than the recorded {before} (replaced?)"
            else:
                changed, why = _changed_months(spark, cfg, source, before, now)
            if changed is None:
                notes.append(why)
                changed = set(range(first, last + 1))
            for m in sorted(changed):
                if m <= min(last, closed_end):
                    compute.setdefault(m, why)
        last = max(last, closed_end)
    if rebuild is not None:
        for m in range(rebuild[0], min(rebuild[1], closed_end) + 1):
            compute[m] = FORCED
    if compute:
        first = min(first, min(compute))
    open_month = None if as_of_month <= last else as_of_month
    reused = tuple(m for m in range(first, min(last, as_of_month) + 1) if m not in compute)
    state = MonthlyState(first, last, dict(present))
    return MonthlyPlan(compute, reused, open_month, state, notes)


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

    Returns:
        A :class:`MonthlyActivity`.
    """
    ref = table_ref(cfg, cfg.tables.monthly_activity)
    until = as_of_dates[-1]
    as_of_month = month_index_of(until)
    seen = MonthlyState.from_json(get_properties(spark, ref).get(STATE_PROPERTY)) if table_exists(spark, ref) \
        else None
    plan = plan_months(spark, cfg, inputs, as_of_month, versions, stored=seen, rebuild=rebuild)
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
        _record_state(spark, ref, seen, plan.state)
        stored = read_table(spark, ref).where(
            F.col("month").between(plan.state.first, min(plan.state.last, as_of_month)))
    else:  # no closed month yet (the sources start in the as-of month)
        stored = spark.createDataFrame([], MONTHLY_SCHEMA)
    if plan.open_month is not None:
        stored = stored.unionByName(month_rows(inputs, [plan.open_month]))
    rows = activity_for_as_of(stored, customers=inputs.get("customers"), present_sources=inputs,
                              until=until, lookback_start_month=lookback_start_month)
    return MonthlyActivity(rows, plan, version)
