"""Train, evaluate and publish a model bundle from the features table.

python jobs/train.py --as-of 2005-09-30
python jobs/train.py --as-of 2025-06-30,2025-07-31,2025-08-31 --set train.split=time
python jobs/train.py --as-of 2025-06-30,2025-07-31 --validation-as-of 2025-08-31 --set train.split=time
"""

from __future__ import annotations

import argparse
import sys

from credspark.job_requests import JobOptions, TrainRequest, job_parser, parse_request

JOB = "train"


def build_parser() -> argparse.ArgumentParser:
    p = job_parser(JOB, __doc__)
    p.add_argument("--as-of", dest="as_of", metavar="D1[,D2,...]", required=True,
                   help="as-of date(s) of the feature rows to train on")
    p.add_argument("--validation-as-of", dest="validation_as_of", metavar="DATE",
                   help="as-of date of the validation part (train.split=time)")
    return p


def parse(argv: list[str] | None = None) -> tuple[JobOptions, TrainRequest]:
    return parse_request(JOB, build_parser(), argv, lambda v: TrainRequest.from_flags(**v))


def pipeline():
    from credspark.pipelines.train import train_model

    return train_model


def check():
    from credspark.pipelines.train import check_train_request

    return check_train_request


def main(argv: list[str] | None = None) -> None:
    options, request = parse(argv)  # --help and bad dates end here, before anything heavy is imported
    from credspark.runner import run_job

    sys.exit(run_job(JOB, pipeline(), options, request, check()))


if __name__ == "__main__":
    main()
