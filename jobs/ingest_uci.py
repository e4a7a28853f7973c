"""Load the UCI "default of credit card clients" CSV into the customers, statements and outcomes tables.

Usage: python jobs/ingest_uci.py --input ../shared/data/uci_taiwan/UCI_Credit_Card.csv --warehouse ./warehouse/uci

Accepts the Kaggle layout and the original UCI headers (see credspark/sources/uci.py for the alignment).
"""

from __future__ import annotations

import argparse
import sys

from credspark.config import common_parser
from credspark.pipelines._runner import run_job
from credspark.pipelines.ingest import ingest_uci

JOB = "ingest_uci"


def build_parser() -> argparse.ArgumentParser:
    p = common_parser(JOB, description=__doc__.splitlines()[0])
    p.add_argument("--input", default=None, metavar="PATH", help="the UCI CSV (default: uci.input)")
    return p


def main(argv: list[str] | None = None) -> None:
    sys.exit(run_job(JOB, ingest_uci, argv, build_parser()))


if __name__ == "__main__":
    main()
