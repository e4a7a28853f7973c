"""Generate a seeded synthetic portfolio (customers, statements, transactions, outcomes) into the warehouse.

Usage: python jobs/generate_portfolio.py --customers 100000 --months 24 --default-rate 0.05 --seed 7

Flags override the ``generate`` config section; the same seed gives the same tables for any partitioning.
"""

from __future__ import annotations

import argparse
import sys

from credspark.job_requests import GenerateRequest, JobOptions, job_parser, parse_request

JOB = "generate_portfolio"


def build_parser() -> argparse.ArgumentParser:
    p = job_parser(JOB, __doc__)
    p.add_argument("--customers", type=int, default=None, help="number of customers (generate.customers)")
    p.add_argument("--months", type=int, default=None, help="months of history (generate.months)")
    p.add_argument("--default-rate", dest="default_rate", type=float, default=None,
                   help="share of customers who default in the window (generate.default_rate)")
    p.add_argument("--seed", type=int, default=None, help="random seed (generate.seed)")
    p.add_argument("--end-month", dest="end_month", default=None, metavar="YYYY-MM",
                   help="last generated month (generate.end_month)")
    return p


def parse(argv: list[str] | None = None) -> tuple[JobOptions, GenerateRequest]:
    return parse_request(JOB, build_parser(), argv, lambda v: GenerateRequest(**v))


def pipeline():
    from credspark.pipelines.ingest import generate_portfolio

    return generate_portfolio


def main(argv: list[str] | None = None) -> None:
    options, request = parse(argv)
    from credspark.runner import run_job

    sys.exit(run_job(JOB, pipeline(), options, request))


if __name__ == "__main__":
    main()
