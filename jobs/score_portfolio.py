"""Score the whole portfolio for one score date with the current model (the nightly job).

    python jobs/score_portfolio.py --score-date 2025-12-31
    python jobs/score_portfolio.py --score-date 2025-12-31 --model-version 20251231T010203Z --build-features
    python jobs/score_portfolio.py --score-date 2025-12-31 --model-uri models:/credspark@champion

Exit codes: 0 ok, 2 bad configuration, 3 drift beyond score.psi_fail (scores written), 4 missing or
refused input (features partition, bundle), 1 anything else.
"""

from __future__ import annotations

import argparse
import sys

from credspark.config import common_parser
from credspark.pipelines._runner import run_job
from credspark.pipelines.score import score_portfolio


def build_parser() -> argparse.ArgumentParser:
    p = common_parser("score_portfolio", description=__doc__.splitlines()[0])
    p.add_argument("--score-date", dest="score_date", required=True, metavar="DATE",
                   help="as-of date of the features to score (YYYY-MM-DD)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--model-version", dest="model_version", default=None, metavar="VERSION",
                       help="bundle version to use (default: the model store's 'current')")
    which.add_argument("--model-uri", dest="model_uri", default=None, metavar="URI",
                       help="an MLflow model version instead, e.g. models:/credspark@champion "
                            "(needs tracking.mlflow_uri and the mlflow extra)")
    p.add_argument("--build-features", dest="build_features", action="store_true",
                   help="build the features partition of the score date first")
    return p


def main(argv=None):
    sys.exit(run_job("score_portfolio", score_portfolio, argv, build_parser()))


if __name__ == "__main__":
    main()
