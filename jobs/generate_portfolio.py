"""Generate a seeded synthetic portfolio (customers, statements, transactions, outcomes) into the warehouse.

Usage: python jobs/generate_portfolio.py --customers 100000 --months 24 --default-rate 0.05 --seed 7

Flags override the ``generate`` config section; the same seed gives the same tables for any partitioning.
"""

from __future__ import annotations

import argparse
import sys

from credspark.config import common_parser
from credspark.pipelines._runner import run_job
from credspark.pipelines.ingest import generate_portfolio

JOB = "generate_portfolio"


def build_parser() -> argparse.ArgumentParser:
    p = common_parser(JOB, description=__doc__.splitlines()[0])
    p.add_argument("--customers", type=int, default=None, help="number of customers (generate.customers)")
    p.add_argument("--months", type=int, default=None, help="months of history (generate.months)")
    p.add_argument("--default-rate", dest="default_rate", type=float, default=None,
                   help="share of customers who default in the window (generate.default_rate)")
    p.add_argument("--seed", type=int, default=None, help="random seed (generate.seed)")
    p.add_argument("--end-month", dest="end_month", default=None, metavar="YYYY-MM",
                   help="last generated month (generate.end_month)")
    return p


def main(argv: list[str] | None = None) -> None:
    sys.exit(run_job(JOB, generate_portfolio, argv, build_parser()))


if __name__ == "__main__":
    main()
