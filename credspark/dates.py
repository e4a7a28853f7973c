"""Calendar rules of the project (month ends, month indices, ISO dates from flags); standard library only."""

from __future__ import annotations

import datetime as dt

from credspark.errors import ConfigError

__all__ = ["parse_date", "parse_dates", "month_index_of", "month_end", "is_month_end", "month_ends"]


def parse_date(flag: str, text: str) -> dt.date:
    """An ISO date (``YYYY-MM-DD``); ConfigError names the flag or config key."""
    try:
        return dt.date.fromisoformat(str(text))
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{flag} {text!r}: expected a date YYYY-MM-DD") from e


def parse_dates(text: str, flag: str = "--as-of") -> list[dt.date]:
    """Comma-separated ISO dates, ascending and without repeats.

    Args:
        text: Comma-separated ISO dates.
        flag: Flag name for error messages. Defaults to ``--as-of``.

    Returns:
        Ascending dates.
    """
    out = set()
    for part in (p.strip() for p in str(text).split(",")):
        if not part:
            continue
        try:
            out.add(dt.date.fromisoformat(part))
        except ValueError as e:
            raise ConfigError(f"{flag} {part!r}: not an ISO date (YYYY-MM-DD)") from e
    if not out:
        raise ConfigError(f"{flag}: at least one date is needed")
    return sorted(out)


def month_index_of(day: dt.date) -> int:
    """``year * 12 + month - 1`` of a date (the numbering of ``credspark.features.sequences.month_index``)."""
    return day.year * 12 + day.month - 1


def month_end(day: dt.date) -> dt.date:
    """The last day of ``day``'s month."""
    first_next = dt.date(day.year + day.month // 12, day.month % 12 + 1, 1)
    return first_next - dt.timedelta(days=1)


def is_month_end(day: dt.date) -> bool:
    """True when ``day`` is the last day of its month."""
    return month_end(day) == day


def month_ends(start: dt.date, end: dt.date) -> list[dt.date]:
    """Every month end from ``start`` to ``end`` inclusive (both month ends)."""
    if not (is_month_end(start) and is_month_end(end)):
        raise ConfigError(f"--from {start} / --to {end}: both must be month ends (e.g. 2025-01-31)")
    if end < start:
        raise ConfigError(f"--to {end} is before --from {start}")
    out, m = [], month_index_of(start)
    while m <= month_index_of(end):
        out.append(month_end(dt.date(m // 12, m % 12 + 1, 1)))
        m += 1
    return out
