"""Which months of the ``monthly_activity`` table a feature build computes, reuses or leaves open.

:func:`plan_months` compares the table's recorded state (:class:`MonthlyState`, kept in the table property
``credspark.monthly.state``) with the sources' Delta versions and their change data feed; the rules are in
:mod:`credspark.pipelines.monthly`, which carries the plan out.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from credspark.config import Config
from credspark.errors import CredsparkError
from credspark.features.monthly import (
    MONTHLY_SOURCES,
    month_label,
    source_month,
)
from credspark.io.tables import (
    config_table,
    read_changes,
    table_exists,
    table_version,
)

__all__ = ["STATE_PROPERTY", "MISSING", "FORCED", "MonthlyPlan", "MonthlyState", "source_versions", "plan_months"]

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
        notes: Why months were recomputed wholesale, for the run summary.
        based_on: The stored state the plan was made from (None = none was usable).
    """

    compute: dict[int, str]
    reused: tuple[int, ...]
    open_month: int | None
    state: MonthlyState
    notes: list[str] = field(default_factory=list)
    based_on: MonthlyState | None = None

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


def source_versions(spark: SparkSession, cfg: Config) -> dict[str, int | None]:
    """Current Delta version of each monthly source table (None = no such table).

    Read BEFORE the inputs: data read afterwards is at least as new, so a change the recorded version misses
    can only make the next run recompute a month it did not need to, never skip one.
    """
    return {s: table_version(spark, config_table(cfg, s)) if table_exists(spark, config_table(cfg, s)) else None
            for s in MONTHLY_SOURCES}


def _changed_months(spark: SparkSession, cfg: Config, source: str, since: int, until: int,
                    ) -> tuple[set[int] | None, str]:
    """Months with rows changed in versions ``since+1..until`` of a source (None = the feed is unusable)."""
    try:
        changes = read_changes(spark, config_table(cfg, source), since + 1, until)
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
    return MonthlyPlan(compute, reused, open_month, state, notes, based_on=stored)
