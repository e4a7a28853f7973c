"""Score the whole portfolio for one score date with the current model (the nightly job).

python jobs/score_portfolio.py --score-date 2025-12-31
python jobs/score_portfolio.py --score-date 2025-12-31 --model-version 20251231T010203Z --build-features
python jobs/score_portfolio.py --score-date 2025-12-31 --model-uri models:/credspark@champion
"""

from __future__ import annotations

import argparse
import sys

from credspark.job_requests import JobOptions, ScoreRequest, job_parser, parse_request

JOB = "score_portfolio"


def build_parser() -> argparse.ArgumentParser:
    p = job_parser(JOB, __doc__)
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


def parse(argv: list[str] | None = None) -> tuple[JobOptions, ScoreRequest]:
    return parse_request(JOB, build_parser(), argv, lambda v: ScoreRequest.from_flags(**v))


def pipeline():
    from credspark.pipelines.score import score_portfolio

    return score_portfolio


def main(argv: list[str] | None = None) -> None:
    options, request = parse(argv)  # --help and bad dates end here, before anything heavy is imported
    from credspark.runner import run_job

    sys.exit(run_job(JOB, pipeline(), options, request))


if __name__ == "__main__":
    main()
