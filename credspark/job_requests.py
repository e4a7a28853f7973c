"""What each job is asked to do: frozen requests parsed from the command line, checked before Spark starts.

Standard library only (with :mod:`credspark.errors`): ``jobs/*.py --help`` and every date or flag check run
without pyspark, yaml or torch importable, so a typo costs no JVM start. The library below ``jobs/`` takes
these requests, never a command line.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from credspark.dates import is_month_end, month_end, month_ends, month_index_of, parse_date, parse_dates
from credspark.errors import (
    EXIT_CONFIG,
    EXIT_DRIFT,
    EXIT_FAILED,
    EXIT_INPUT,
    EXIT_OK,
    EXIT_QUALITY_GATE,
    ConfigError,
    CredsparkError,
)

__all__ = [
    "JobOptions",
    "GenerateRequest",
    "IngestUciRequest",
    "IngestTableRequest",
    "FeaturesRequest",
    "TrainRequest",
    "ScoreRequest",
    "DemoRequest",
    "MaintainRequest",
    "EXIT_CODES_HELP",
    "job_parser",
    "parse_request",
    "request_params",
]

#: The exit codes every job can return (shown by ``--help``).
EXIT_CODES_HELP = (
    f"exit codes: {EXIT_OK} ok; {EXIT_FAILED} unexpected failure; {EXIT_CONFIG} bad command line or "
    f"configuration; {EXIT_DRIFT} score_portfolio: drift beyond score.psi_fail (scores written); {EXIT_INPUT} "
    f"input data missing or breaking the contract (tables, partitions, model bundle); {EXIT_QUALITY_GATE} "
    "train: the model failed the quality gate (stored, 'current' unchanged)."
)


# --------------------------------------------------------------------------------------------- requests
@dataclass(frozen=True)
class JobOptions:
    """The flags every job accepts: where its configuration comes from.

    Attributes:
        env: ``--env``: overlay ``conf/env/<env>.yaml`` (None = none).
        overrides: ``--set key=value`` assignments, in order.
        warehouse: ``--warehouse`` (None = the config's ``warehouse.path``).
        conf_dir: ``--conf-dir`` (None = the default conf folder).
    """

    env: str | None = None
    overrides: tuple[str, ...] = ()
    warehouse: str | None = None
    conf_dir: str | None = None


@dataclass(frozen=True)
class GenerateRequest:
    """``generate_portfolio``: values given on the command line override the ``generate`` section."""

    customers: int | None = None
    months: int | None = None
    default_rate: float | None = None
    seed: int | None = None
    end_month: str | None = None

    def overrides(self) -> dict[str, Any]:
        """The ``generate`` config fields this request sets (those given)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if getattr(self, f.name) is not None}


@dataclass(frozen=True)
class IngestUciRequest:
    """``ingest_uci``: the CSV to load (None = ``uci.input``)."""

    input: str | None = None


def _parse_month(flag: str, text: str) -> dt.date:
    """``YYYY-MM`` as the first day of that month; ConfigError names the flag."""
    try:
        year, month = (int(p) for p in text.strip().split("-"))
        return dt.date(year, month, 1)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{flag} {text!r}: expected months YYYY-MM..YYYY-MM") from e


@dataclass(frozen=True)
class IngestTableRequest:
    """``ingest_table``: the file to load, its format, and the mapping file that says how."""

    input: str
    format: str
    mapping: str

    def __post_init__(self) -> None:
        if self.format not in ("csv", "parquet"):
            raise ConfigError(f"--format {self.format!r}: one of csv, parquet")
        if not self.input or not self.mapping:
            raise ConfigError("--input PATH and --mapping FILE are required")


@dataclass(frozen=True)
class FeaturesRequest:
    """``build_features``: the as-of dates (month ends, ascending) to build.

    Attributes:
        as_of_dates: Month ends, ascending, without repeats.
        rebuild_monthly: ``--rebuild-monthly FROM..TO``: first days of the first and last month whose
            ``monthly_activity`` rows are recomputed whatever their recorded state (None = none). Only closed
            months (before the latest as-of date's month) are stored, so TO must be before it.
    """

    as_of_dates: tuple[dt.date, ...]
    rebuild_monthly: tuple[dt.date, dt.date] | None = None

    def __post_init__(self) -> None:
        if not self.as_of_dates:
            raise ConfigError("no as-of date given")
        bad = [d for d in self.as_of_dates if not is_month_end(d)]
        if bad:
            raise ConfigError(f"as-of dates must be month ends; {bad[0]} is not")
        object.__setattr__(self, "as_of_dates", tuple(sorted(set(self.as_of_dates))))
        if self.rebuild_monthly is not None:
            start, end = self.rebuild_monthly
            if start.day != 1 or end.day != 1 or end < start:
                raise ConfigError(f"--rebuild-monthly {start:%Y-%m}..{end:%Y-%m}: FROM must not be after TO")
            latest = self.as_of_dates[-1]
            if month_index_of(end) >= month_index_of(latest):
                raise ConfigError(
                    f"--rebuild-monthly ..{end:%Y-%m}: only closed months are stored, i.e. months before the "
                    f"latest as-of date's month ({latest:%Y-%m}); the as-of month is always computed afresh")

    @property
    def rebuild_months(self) -> tuple[int, int] | None:
        """``rebuild_monthly`` as a range of month indexes (``year * 12 + month - 1``), or None."""
        if self.rebuild_monthly is None:
            return None
        return month_index_of(self.rebuild_monthly[0]), month_index_of(self.rebuild_monthly[1])

    @classmethod
    def from_flags(
        cls,
        as_of: str | None = None,
        date_from: str | None = None,
        date_to: str | None = None,
        every: str | None = "month",
        rebuild_monthly: str | None = None,
    ) -> FeaturesRequest:
        """The request of ``--as-of D`` or ``--from A --to B --every month``, with ``--rebuild-monthly FROM..TO``.

        Raises:
            ConfigError: Neither or both forms given, a date is not a month end, an unknown step, or a bad
                ``--rebuild-monthly`` range.
        """
        rebuild = None
        if rebuild_monthly is not None:
            start, sep, end = rebuild_monthly.partition("..")
            if not sep:
                raise ConfigError(f"--rebuild-monthly {rebuild_monthly!r}: expected FROM..TO (months YYYY-MM)")
            rebuild = (_parse_month("--rebuild-monthly", start), _parse_month("--rebuild-monthly", end))
        if as_of and (date_from or date_to):
            raise ConfigError("give either --as-of or --from/--to, not both")
        if as_of:
            day = parse_date("--as-of", as_of)
            if not is_month_end(day):
                raise ConfigError(f"--as-of {day}: as-of dates are month ends (features are monthly), e.g. "
                                  f"{month_end(day)}")
            return cls((day,), rebuild)
        if not (date_from and date_to):
            raise ConfigError("give --as-of DATE, or --from DATE --to DATE [--every month]")
        if (every or "month") != "month":
            raise ConfigError(f"--every {every!r}: only 'month' is supported")
        return cls(tuple(month_ends(parse_date("--from", date_from), parse_date("--to", date_to))), rebuild)


@dataclass(frozen=True)
class TrainRequest:
    """``train``: the as-of dates of the feature rows (ascending) and the time split's validation date."""

    as_of_dates: tuple[dt.date, ...]
    validation_as_of: dt.date | None = None

    def __post_init__(self) -> None:
        if not self.as_of_dates:
            raise ConfigError("--as-of is required (one date or a comma-separated list)")
        object.__setattr__(self, "as_of_dates", tuple(sorted(set(self.as_of_dates))))

    @classmethod
    def from_flags(cls, as_of: str | None, validation_as_of: str | None = None) -> TrainRequest:
        """The request of ``--as-of D1[,D2,...] [--validation-as-of D]``."""
        if not as_of:
            raise ConfigError("--as-of is required (one date or a comma-separated list)")
        val = parse_dates(validation_as_of, "--validation-as-of")[0] if validation_as_of else None
        return cls(tuple(parse_dates(as_of)), val)


@dataclass(frozen=True)
class ScoreRequest:
    """``score_portfolio``: the score date, the bundle version (None = ``current``), build features first."""

    score_date: dt.date
    model_version: str | None = None
    build_features: bool = False
    model_uri: str | None = None

    @classmethod
    def from_flags(cls, score_date: str | None, model_version: str | None = None,
                   build_features: bool = False, model_uri: str | None = None) -> ScoreRequest:
        """The request of ``--score-date D [--model-version V | --model-uri URI] [--build-features]``."""
        if not score_date:
            raise ConfigError("--score-date DATE is required (YYYY-MM-DD, the as-of date of the features)")
        if model_version and model_uri:
            raise ConfigError("--model-version and --model-uri are mutually exclusive: give one bundle to score with")
        return cls(parse_date("--score-date", score_date), model_version, bool(build_features), model_uri)


@dataclass(frozen=True)
class DemoRequest:
    """``demo``: where its tables go, the portfolio size, and whether it trains and scores after the features."""

    warehouse: str
    customers: int
    train: bool = True

    def __post_init__(self) -> None:
        if not self.warehouse:
            raise ConfigError("--warehouse must name a folder or a warehouse URI")
        if self.customers < 1:
            raise ConfigError(f"--customers must be >= 1, got {self.customers}")


@dataclass(frozen=True)
class MaintainRequest:
    """``maintain_tables``: the tables to maintain (empty = every credspark table in the warehouse), dry run.

    Attributes:
        tables: Table names (``--table``, repeatable), without repeats; each must be one of the config's tables
            (checked with the config, before Spark starts: ``credspark.pipelines.maintain.check_maintain_tables``).
        dry_run: List what VACUUM would delete; change and delete nothing.
    """

    tables: tuple[str, ...] = ()
    dry_run: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "tables", tuple(dict.fromkeys(self.tables)))


def request_params(options: JobOptions, request: object) -> dict[str, Any]:
    """The run summary's ``params``: the options and the request's fields, JSON-safe (dates as ISO text)."""

    def plain(v: Any) -> Any:
        if isinstance(v, dt.date):
            return v.isoformat()
        if isinstance(v, (tuple, list)):
            return [plain(x) for x in v]
        return v

    fields = dataclasses.fields(request) if dataclasses.is_dataclass(request) else ()
    return ({f.name: plain(getattr(options, f.name)) for f in dataclasses.fields(options)}
            | {f.name: plain(getattr(request, f.name)) for f in fields})


# ---------------------------------------------------------------------------------------------- parsing
def job_parser(job: str, doc: str | None) -> argparse.ArgumentParser:
    """An argument parser with the flags every job accepts; ``--help`` ends with the exit codes.

    Args:
        job: The job name (the program name in usage lines).
        doc: The job module's docstring: its first line is the description.
    """
    description = (doc or "").strip().splitlines()[0] if doc else None
    p = argparse.ArgumentParser(prog=job, description=description, epilog=EXIT_CODES_HELP)
    p.add_argument("--env", default=None, help="overlay conf/env/<ENV>.yaml")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config key (repeatable), e.g. --set features.T=6")
    p.add_argument("--warehouse", default=None, help="root folder of the tables (default ./warehouse)")
    p.add_argument("--conf-dir", default=None,
                   help="folder with <job>.yaml and env/ (default: $CREDSPARK_CONF_DIR, else the checkout's conf/, "
                   "else the copy inside the installed package)")
    return p


R = TypeVar("R")


def parse_request(
    job: str,
    parser: argparse.ArgumentParser,
    argv: list[str] | None,
    make: Callable[[Mapping[str, Any]], R],
) -> tuple[JobOptions, R]:
    """Parse a job's command line into its options and its checked request.

    Args:
        job: The job name (prefix of error lines).
        parser: The job's parser (from :func:`job_parser`).
        argv: Arguments (None = ``sys.argv[1:]``).
        make: Builds the request from the job's own flag values (a mapping of flag name to value).

    Returns:
        ``(options, request)``.

    Raises:
        SystemExit: ``--help`` (code 0), or a bad flag or value (code 2, the reason on stderr).
    """
    values = dict(vars(parser.parse_args(argv)))
    options = JobOptions(env=values.pop("env"), overrides=tuple(values.pop("overrides")),
                         warehouse=values.pop("warehouse"), conf_dir=values.pop("conf_dir"))
    try:
        return options, make(values)
    except CredsparkError as e:
        print(f"{job}: error: {e}", file=sys.stderr)
        raise SystemExit(e.exit_code) from e
