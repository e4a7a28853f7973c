"""The demo: generate a portfolio, validate it, build features for two dates, train, score, print where it all is.

python -m jobs.demo --warehouse ./warehouse/demo [--customers 20000] [--no-train]
"""

from __future__ import annotations

import argparse
import sys

from credspark.pipelines._runner import run_job
from credspark.pipelines.demo import DEMO_SETTINGS, demo_argv, print_demo_summary
from jobs import build_features, generate_portfolio, score_portfolio, train

# Each step is the job's own library function and parser, so the demo runs exactly what spark-submit would.
STEPS = {
    "generate_portfolio": (generate_portfolio.generate_portfolio, generate_portfolio.build_parser),
    "build_features": (build_features.build_features, build_features.build_parser),
    "train": (train.train_model, train.build_parser),
    "score_portfolio": (score_portfolio.score_portfolio, score_portfolio.build_parser),
}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="demo", description=__doc__.splitlines()[0])
    p.add_argument("--warehouse", default="./warehouse/demo", help="where the demo's tables go")
    p.add_argument("--customers", type=int, default=DEMO_SETTINGS["customers"], help="portfolio size")
    p.add_argument("--no-train", dest="train", action="store_false", help="stop after the features")
    args = p.parse_args(argv)
    for name, step_argv in demo_argv(args.warehouse, args.customers, train=args.train):
        print(f"demo: {name} {' '.join(step_argv)}", flush=True)
        body, parser = STEPS[name]
        code = run_job(name, body, step_argv, parser())
        if code != 0:
            print(f"demo: step {name} failed with exit code {code}", file=sys.stderr)
            sys.exit(code)
    print_demo_summary(args.warehouse)
    sys.exit(0)


if __name__ == "__main__":
    main()
