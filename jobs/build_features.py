"""Build the features table for one as-of date or a monthly backfill.

python jobs/build_features.py --as-of 2025-12-31
python jobs/build_features.py --from 2025-01-31 --to 2025-12-31 --every month
python jobs/build_features.py --as-of 2005-09-30 --set features.T=6 --set features.horizon_months=1
"""

from __future__ import annotations

import argparse
import sys

from credspark.config import common_parser
from credspark.pipelines._runner import run_job
from credspark.pipelines.features import build_features


def build_parser() -> argparse.ArgumentParser:
    p = common_parser("build_features", description=__doc__.splitlines()[0])
    p.add_argument("--as-of", dest="as_of", metavar="DATE", help="one as-of date (a month end)")
    p.add_argument("--from", dest="date_from", metavar="DATE", help="first as-of date of a backfill")
    p.add_argument("--to", dest="date_to", metavar="DATE", help="last as-of date of a backfill")
    p.add_argument("--every", default="month", choices=["month"], help="backfill step (month ends)")
    return p


def main(argv=None):
    sys.exit(run_job("build_features", build_features, argv, build_parser()))


if __name__ == "__main__":
    main()
