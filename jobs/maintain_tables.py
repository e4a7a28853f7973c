"""Bring the tables' retention properties up to date and VACUUM them with their own retention.

python jobs/maintain_tables.py                           # every credspark table in ./warehouse
python jobs/maintain_tables.py --table features --table scores --warehouse s3a://bucket/wh
python jobs/maintain_tables.py --dry-run                 # list what would be deleted; change nothing

Deletes only files the current version does not use that are older than the table's
delta.deletedFileRetentionDuration (config retention.deleted_files, default 7 days): every version committed
within it stays readable. Run it when no other job writes (docs/jobs.md).
"""

from __future__ import annotations

import argparse
import sys

from credspark.job_requests import JobOptions, MaintainRequest, job_parser, parse_request

JOB = "maintain_tables"


def build_parser() -> argparse.ArgumentParser:
    p = job_parser(JOB, __doc__)
    p.add_argument("--table", dest="tables", action="append", default=[], metavar="NAME",
                   help="a table to maintain (repeatable; default: every credspark table in the warehouse)")
    p.add_argument("--dry-run", dest="dry_run", action="store_true",
                   help="list the files VACUUM would delete now; set no property, delete nothing")
    return p


def parse(argv: list[str] | None = None) -> tuple[JobOptions, MaintainRequest]:
    return parse_request(JOB, build_parser(), argv,
                         lambda v: MaintainRequest(tables=tuple(v["tables"]), dry_run=bool(v["dry_run"])))


def pipeline():
    from credspark.pipelines.maintain import maintain_tables

    return maintain_tables


def main(argv: list[str] | None = None) -> None:
    options, request = parse(argv)  # --help ends here, before anything heavy is imported
    from credspark.pipelines.maintain import check_maintain_tables
    from credspark.runner import run_job

    sys.exit(run_job(JOB, pipeline(), options, request, check=check_maintain_tables))


if __name__ == "__main__":
    main()
