"""Train, evaluate and publish a model bundle from the features table.

    python jobs/train.py --as-of 2005-09-30
    python jobs/train.py --as-of 2025-06-30,2025-07-31,2025-08-31 --set train.split=time
    python jobs/train.py --as-of 2025-06-30,2025-07-31 --validation-as-of 2025-08-31 --set train.split=time

Exit codes: 0 published as current, 5 stored but failed the quality gate (current unchanged), see
credspark/errors.py for the others.
"""

from __future__ import annotations

import argparse
import sys

from credspark.config import common_parser
from credspark.pipelines._runner import run_job
from credspark.pipelines.train import train_model


def build_parser() -> argparse.ArgumentParser:
    p = common_parser("train", description=__doc__.splitlines()[0])
    p.add_argument("--as-of", dest="as_of", metavar="D1[,D2,...]", required=True,
                   help="as-of date(s) of the feature rows to train on")
    p.add_argument("--validation-as-of", dest="validation_as_of", metavar="DATE",
                   help="as-of date of the validation part (train.split=time)")
    return p


def main(argv=None):
    sys.exit(run_job("train", train_model, argv, build_parser()))


if __name__ == "__main__":
    main()
