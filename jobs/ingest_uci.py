"""Load the UCI "default of credit card clients" CSV into the customers, statements and outcomes tables.

Usage: python jobs/ingest_uci.py --input ../shared/data/uci_taiwan/UCI_Credit_Card.csv --warehouse ./warehouse/uci

Accepts the Kaggle layout and the original UCI headers (see credspark/sources/uci.py for the alignment).
"""

from __future__ import annotations

import argparse
import sys

from credspark.job_requests import IngestUciRequest, JobOptions, job_parser, parse_request

JOB = "ingest_uci"


def build_parser() -> argparse.ArgumentParser:
    p = job_parser(JOB, __doc__)
    p.add_argument("--input", default=None, metavar="PATH", help="the UCI CSV (default: uci.input)")
    return p


def parse(argv: list[str] | None = None) -> tuple[JobOptions, IngestUciRequest]:
    return parse_request(JOB, build_parser(), argv, lambda v: IngestUciRequest(**v))


def pipeline():
    from credspark.pipelines.ingest import ingest_uci

    return ingest_uci


def main(argv: list[str] | None = None) -> None:
    options, request = parse(argv)
    from credspark.runner import run_job

    sys.exit(run_job(JOB, pipeline(), options, request))


if __name__ == "__main__":
    main()
