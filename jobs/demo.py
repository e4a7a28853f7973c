"""The demo: generate a portfolio, validate it, build features for two dates, train, score, print where it all is.

python -m jobs.demo --warehouse ./warehouse/demo [--customers 20000] [--no-train]
"""

from __future__ import annotations

import argparse
import sys

from credspark.errors import ConfigError
from credspark.job_requests import EXIT_CODES_HELP, DemoRequest
from credspark.pipelines.demo import DEMO_SETTINGS, demo_argv, print_demo_summary
from jobs import build_features, generate_portfolio, score_portfolio, train

# Each step is the job's own parser and pipeline, so the demo runs exactly what spark-submit would.
STEPS = {m.JOB: m for m in (generate_portfolio, build_features, train, score_portfolio)}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="demo", description=__doc__.splitlines()[0], epilog=EXIT_CODES_HELP)
    p.add_argument("--warehouse", default="./warehouse/demo", help="where the demo's tables go")
    p.add_argument("--customers", type=int, default=DEMO_SETTINGS["customers"], help="portfolio size")
    p.add_argument("--no-train", dest="train", action="store_false", help="stop after the features")
    args = p.parse_args(argv)
    try:
        demo = DemoRequest(args.warehouse, args.customers, args.train)
    except ConfigError as e:
        p.error(str(e))
    from credspark.runner import run_job

    for name, step_argv in demo_argv(demo):
        print(f"demo: {name} {' '.join(step_argv)}", flush=True)
        step = STEPS[name]
        options, request = step.parse(step_argv)
        check = step.check() if hasattr(step, "check") else None
        code = run_job(name, step.pipeline(), options, request, check)
        if code != 0:
            print(f"demo: step {name} failed with exit code {code}", file=sys.stderr)
            sys.exit(code)
    print_demo_summary(demo.warehouse)
    sys.exit(0)


if __name__ == "__main__":
    main()
