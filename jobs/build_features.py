"""Build the features table for one as-of date or a monthly backfill.

python jobs/build_features.py --as-of 2025-12-31
python jobs/build_features.py --from 2025-01-31 --to 2025-12-31 --every month
python jobs/build_features.py --as-of 2005-09-30 --set features.T=6 --set features.horizon_months=1
python jobs/build_features.py --as-of 2025-12-31 --rebuild-monthly 2025-03..2025-05
"""

from __future__ import annotations

import argparse
import sys

from credspark.job_requests import FeaturesRequest, JobOptions, job_parser, parse_request

JOB = "build_features"


def build_parser() -> argparse.ArgumentParser:
    p = job_parser(JOB, __doc__)
    p.add_argument("--as-of", dest="as_of", metavar="DATE", help="one as-of date (a month end)")
    p.add_argument("--from", dest="date_from", metavar="DATE", help="first as-of date of a backfill")
    p.add_argument("--to", dest="date_to", metavar="DATE", help="last as-of date of a backfill")
    p.add_argument("--every", default="month", choices=["month"], help="backfill step (month ends)")
    p.add_argument("--rebuild-monthly", dest="rebuild_monthly", metavar="FROM..TO",
                   help="recompute these closed months (YYYY-MM..YYYY-MM) of the monthly_activity table whatever "
                   "its recorded state, e.g. after a late-data incident the change feed cannot show")
    return p


def parse(argv: list[str] | None = None) -> tuple[JobOptions, FeaturesRequest]:
    return parse_request(JOB, build_parser(), argv, lambda v: FeaturesRequest.from_flags(**v))


def pipeline():
    from credspark.pipelines.features import build_features

    return build_features


def main(argv: list[str] | None = None) -> None:
    options, request = parse(argv)  # --help and bad dates end here, before anything heavy is imported
    from credspark.runner import run_job

    sys.exit(run_job(JOB, pipeline(), options, request))


if __name__ == "__main__":
    main()
