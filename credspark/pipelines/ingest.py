"""Input pipelines: generate a synthetic portfolio, ingest the UCI file or a mapped flat file.

``generate_portfolio``, ``ingest_uci`` and ``ingest_table`` are job pipelines for
:func:`credspark.runner.run_job`; each overwrites the input tables it loads. Validation is the feature job's
first step (:mod:`credspark.pipelines.validate`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from credspark.config import Config, GenerateConfig
from credspark.contract import (
    OBSERVED_THROUGH_PROPERTY,
    SOURCE_PROPERTY,
    unknown_code_flags,
)
from credspark.dates import parse_date
from credspark.errors import InputError
from credspark.features.monthly import CHANGE_DATA_FEED, MONTHLY_SOURCES
from credspark.io.tables import (
    config_table,
    overwrite_table,
    read_csv,
    read_table,
    set_properties,
    table_exists,
)
from credspark.job_requests import GenerateRequest, IngestTableRequest, IngestUciRequest
from credspark.pipelines.validate import INPUT_TABLES
from credspark.runner import JobResult, Run
from credspark.sources.generator import generate_tables, plan_generation
from credspark.sources.uci import (
    detect_layout,
    uci_customers,
    uci_dates,
    uci_outcomes,
    uci_statements,
    uci_wide,
)

__all__ = [
    "generate_portfolio",
    "ingest_uci",
    "ingest_table",
    "check_ingest_table",
    "generate_settings",
]

log = logging.getLogger(__name__)

def _write_inputs(spark: SparkSession, cfg: Config, tables: dict[str, DataFrame], run: Run,
                  source: str, observed_through: dt.date) -> None:
    """Overwrite each input table (one commit each), set the outcomes' properties and count what was written."""
    for name in INPUT_TABLES:
        ref = config_table(cfg, name)
        if name not in tables:
            run.details.setdefault("absent_tables", []).append(name)
            if table_exists(spark, ref):
                # Not deleted (it may be wanted), but a feature build would mix sources: say so loudly.
                msg = f"table '{ref.name}' from an earlier load is still in the warehouse and was not replaced"
                run.details.setdefault("warnings", []).append(msg)
                log.warning(msg)
            continue
        _write_table(spark, cfg, name, tables[name], run, source, observed_through)


def _write_table(spark: SparkSession, cfg: Config, name: str, df: DataFrame, run: Run, source: str,
                 observed_through: dt.date | None) -> None:
    """Overwrite one input table (one commit), set the outcomes' properties and count what was written."""
    ref = config_table(cfg, name)
    with run.stage(f"write_{name}"):
        overwrite_table(df, ref, user_metadata=run.run_id)
    if name in MONTHLY_SOURCES:
        # The feature job finds late and corrected rows of closed months in the change data feed.
        set_properties(spark, ref, {CHANGE_DATA_FEED: "true"})
    if name == "outcomes":
        # Only the outcomes carry properties (one extra commit); the other tables' commits carry the
        # run id as user metadata, which leads to this run's run.
        props = {SOURCE_PROPERTY: source}
        if observed_through is not None:
            props[OBSERVED_THROUGH_PROPERTY] = observed_through.isoformat()
        set_properties(spark, ref, props)
    # Counted from the written table (Delta can answer a plain count from its per-file statistics).
    run.counts[name] = read_table(spark, ref).count()


# --------------------------------------------------------------------------------------------- generate


def generate_settings(base: GenerateConfig, request: GenerateRequest) -> GenerateConfig:
    """The ``generate`` section with the request's values (those given) applied on top."""
    return dataclasses.replace(base, **request.overrides())


def generate_portfolio(spark: SparkSession, cfg: Config, request: GenerateRequest, run: Run) -> JobResult:
    """Job body: generate the seeded portfolio and overwrite the four input tables with it.

    Args:
        spark: The session.
        cfg: Job config (section ``generate``; ``tables``; ``warehouse``).
        request: Values given on the command line (they override the ``generate`` section).
        run: The run; gets rows per table, the realised default rate and the calibration.

    Returns:
        Exit code 0 with the counts and details.
    """
    g = generate_settings(cfg.generate, request)
    with run.stage("calibrate"):
        plan = plan_generation(g)
    run.details["generator"] = {
        **dataclasses.asdict(g),
        "window_start": plan.start.isoformat(),
        "observed_through": plan.observed_through.isoformat(),
        "distress_intercept": round(plan.params.distress_intercept, 6),
        "pilot_default_rate": plan.pilot_default_rate,
    }
    tables = generate_tables(spark, plan)
    with run.stage("write"):
        _write_inputs(spark, cfg, tables, run, "generator", plan.observed_through)
    run.details["default_rate"] = round(run.counts["outcomes"] / max(1, run.counts["customers"]), 6)
    written = sum(v for k, v in run.counts.items() if k in INPUT_TABLES)
    run.details["rows_per_s"] = round(written / max(run.durations_s.get("write", 0.0), 1e-9), 1)
    return run.result()


# ------------------------------------------------------------------------------------------------- UCI


def ingest_uci(spark: SparkSession, cfg: Config, request: IngestUciRequest, run: Run) -> JobResult:
    """Job body: load the UCI CSV (any accepted layout) into customers, statements and outcomes.

    No transactions table is written (the data has none); the outcomes table gets the property
    ``credspark.observed_through`` = the last day of the month after ``uci.as_of``.

    Args:
        spark: The session.
        cfg: Job config (section ``uci``).
        request: The CSV to load (None = ``uci.input``).
        run: The run; gets rows per table, positives and the codes mapped to 'other'.

    Returns:
        Exit code 0 with the counts and details.
    """
    path = request.input or cfg.uci.input
    as_of = parse_date("uci.as_of", cfg.uci.as_of)  # checked when the config was built
    dates = uci_dates(as_of)
    raw = read_csv(spark, path, header=False)
    with run.stage("read"):
        head = [list(r) for r in raw.limit(2).collect()]
        layout = detect_layout(head)
        wide = uci_wide(raw, layout)
        flags = unknown_code_flags()
        # One pass: rows, positives, rows with a value that is not a number, and codes outside the code sets.
        stats = wide.withColumn("marital_status", F.col("marriage")).agg(
            F.count(F.lit(1)).alias("rows"),
            F.sum((F.col("target") == 1).cast("long")).alias("positives"),
            F.sum(F.greatest(*[F.col(c).isNull() for c in wide.columns]).cast("long")).alias("incomplete"),
            *[F.sum(flag.cast("long")).alias(name) for name, flag in flags.items()],
        ).first()
    if not stats["rows"]:
        raise InputError(f"uci: {path} holds no data rows")
    run.details["uci"] = {
        "input": str(path), "columns": layout, "as_of": as_of.isoformat(),
        "statement_months": [m.isoformat() for m in dates.months],
        "default_date": dates.default_date.isoformat(), "observed_through": dates.observed_through.isoformat(),
    }
    run.counts["uci_rows"] = stats["rows"]
    run.counts["uci_positives"] = int(stats["positives"] or 0)
    run.counts["uci_rows_with_unparseable_values"] = int(stats["incomplete"] or 0)
    run.counts["mapped_codes"] = {name: int(stats[name] or 0) for name in flags}
    tables = {"customers": uci_customers(wide, as_of), "statements": uci_statements(wide, as_of),
              "outcomes": uci_outcomes(wide, as_of)}
    with run.stage("write"):
        _write_inputs(spark, cfg, tables, run, "uci", dates.observed_through)
    return run.result()


# ------------------------------------------------------------------------------------------ flat files


def check_ingest_table(cfg: Config, request: IngestTableRequest) -> None:
    """The mapping file read and checked against the config's attributes (before the session starts)."""
    from credspark.sources.mapping import load_mapping

    load_mapping(request.mapping, cfg.attributes)


def ingest_table(spark: SparkSession, cfg: Config, request: IngestTableRequest, run: Run) -> JobResult:
    """Job body: load a flat CSV or Parquet file into a contract table as its mapping says, labels included.

    Writes the mapping's table (``customers`` or ``attributes``) and, with a label, ``outcomes`` (property
    ``credspark.observed_through`` = the latest label horizon end; see :mod:`credspark.sources.flat`).
    Other tables are left as they are. Values that do not parse as their type are counted per target
    (``counts.unparseable``) and become null; the feature job's contract then applies.

    Args:
        spark: The session.
        cfg: Job config (``attributes``, ``tables``).
        request: The file, its format and the mapping file.
        run: The run; gets rows per table, positives and the unparseable values.

    Returns:
        Exit code 0 with the counts and details.
    """
    from credspark.io.tables import read_parquet
    from credspark.sources.flat import (
        flat_outcomes,
        mapped_rows,
        mapped_table,
        observed_through,
        unparseable_counts,
    )
    from credspark.sources.mapping import load_mapping

    mapping = load_mapping(request.mapping, cfg.attributes)
    raw = read_csv(spark, request.input) if request.format == "csv" else read_parquet(spark, request.input)
    missing = [c for c in {mapping.key, *(c.source for c in mapping.columns)} if c.lower() not in
               {n.lower() for n in raw.columns}]
    if missing:
        raise InputError(f"{request.input}: column(s) {sorted(missing)} named in {request.mapping} are not in the file")
    with run.stage("read"):
        stats = raw.agg(F.count(F.lit(1)).alias("rows"), *unparseable_counts(raw, mapping)).first().asDict()
    if not stats["rows"]:
        raise InputError(f"{request.input} holds no data rows")
    run.counts["input_rows"] = stats.pop("rows")
    run.counts["unparseable"] = {k[len("bad_"):]: int(v or 0) for k, v in stats.items() if v}
    for target, n in run.counts["unparseable"].items():
        log.warning("ingest_table: %d value(s) of %s did not parse and are null", n, target)
    run.details["mapping"] = {"file": request.mapping, "table": mapping.table, "columns": mapping.targets,
                              "label": mapping.label is not None}
    rows = mapped_rows(raw, mapping)
    tables = {mapping.table: mapped_table(rows, mapping)}
    through = None
    if mapping.label is not None:
        tables["outcomes"] = flat_outcomes(rows, mapping)
        through = observed_through(rows, mapping)
        run.details["observed_through"] = through.isoformat() if through else None
    with run.stage("write"):
        for name, df in tables.items():
            _write_table(spark, cfg, name, df, run, "flat", through)
    return run.result()
