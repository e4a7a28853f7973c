"""Load a flat CSV or Parquet file of your own into a contract table (labels into outcomes) as a mapping says.

Usage: python jobs/ingest_table.py --input data.csv --format csv --mapping conf/mappings/uci_application.yaml
           --env uci_application --warehouse ./warehouse/app

The mapping (credspark/sources/mapping.py, docs/data-contract.md) names the contract table, the key, the
columns (contract columns or attributes declared in the config's `attributes` section), the snapshot date
and the label. Run the feature, training and scoring jobs with the same `attributes` declarations.
"""

from __future__ import annotations

import argparse
import sys

from credspark.job_requests import IngestTableRequest, JobOptions, job_parser, parse_request

JOB = "ingest_table"


def build_parser() -> argparse.ArgumentParser:
    p = job_parser(JOB, __doc__)
    p.add_argument("--input", required=True, metavar="PATH", help="the file (or folder) to load")
    p.add_argument("--format", required=True, choices=("csv", "parquet"), help="csv (with a header row) or parquet")
    p.add_argument("--mapping", required=True, metavar="FILE.yaml", help="the mapping file (e.g. conf/mappings/*.yaml)")
    return p


def parse(argv: list[str] | None = None) -> tuple[JobOptions, IngestTableRequest]:
    return parse_request(JOB, build_parser(), argv, lambda v: IngestTableRequest(**v))


def pipeline():
    from credspark.pipelines.ingest import ingest_table

    return ingest_table


def main(argv: list[str] | None = None) -> None:
    options, request = parse(argv)
    from credspark.pipelines.ingest import check_ingest_table
    from credspark.runner import run_job

    sys.exit(run_job(JOB, pipeline(), options, request, check=check_ingest_table))


if __name__ == "__main__":
    main()
