"""Build a job's session the way every job does and print its settings as JSON (run with spark-submit).

Usage: ``spark-submit [options] --py-files credspark.whl session_probe.py [--env ENV] [--set k=v ...]``.
"""

from __future__ import annotations

import json
import sys

KEYS = ("spark.app.name", "spark.master", "spark.ui.enabled", "spark.sql.shuffle.partitions",
        "spark.sql.session.timeZone", "spark.sql.execution.arrow.maxRecordsPerBatch", "spark.sql.extensions")


def main(argv: list[str]) -> dict:
    import credspark
    from credspark.config import default_conf_dir, load_config
    from credspark.io.spark import build_session
    from credspark.job_requests import job_parser, parse_request

    options, _ = parse_request("probe", job_parser("probe", __doc__), argv, lambda values: None)
    cfg = load_config("probe", options)
    spark = build_session(cfg.spark, "probe", cfg.warehouse.path)
    try:
        conf = spark.sparkContext.getConf()
        out = {k: spark.conf.get(k, None) if k.startswith("spark.sql") else conf.get(k) for k in KEYS}
        out["ui_url"] = spark.sparkContext.uiWebUrl
        out["credspark_file"] = credspark.__file__
        out["conf_dir"] = str(default_conf_dir())
        return out
    finally:
        spark.stop()


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:])))
