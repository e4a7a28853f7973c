"""Set up the Airflow lane's warehouse with the MAIN venv: a tiny generated portfolio, its features at AS_OF
and a tiny model bundle published as ``current`` (fitted on those features), so the nightly DAG's scoring
task has a model. Usage: ``python tests/airflow/prepare_portfolio.py WAREHOUSE``.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
AS_OF = dt.date(2025, 12, 31)


def _job(module, argv: list[str]) -> None:
    try:
        module.main(argv)
    except SystemExit as e:
        if e.code:
            raise SystemExit(f"{module.__name__} {' '.join(argv)}: exit {e.code}") from None


def main(warehouse: str) -> None:
    sys.path[:0] = [str(REPO), str(REPO / "tests")]
    from fixtures_models import publish_tiny_bundle
    from pyspark.sql import functions as F

    from credspark.config import config_from_dict
    from credspark.features.spec import spec_from_table
    from credspark.io.tables import get_properties, read_table, table_ref
    from jobs import build_features, generate_portfolio

    conf = ["--warehouse", warehouse, "--set", "spark.conf.spark.databricks.delta.snapshotPartitions=2"]
    _job(generate_portfolio, ["--customers", "150", "--months", "14", "--end-month", "2025-12",
                              "--set", "generate.partitions=2", *conf])
    _job(build_features, ["--as-of", AS_OF.isoformat(), *conf])
    from pyspark.sql import SparkSession

    spark = SparkSession.getActiveSession()
    ref = table_ref(config_from_dict({"warehouse": {"path": warehouse}}), "features")
    table = read_table(spark, ref)
    spec = spec_from_table(table.schema, get_properties(spark, ref))
    rows = table.where(F.col("as_of_date") == F.lit(AS_OF)).toPandas()
    rows["label"] = rows["label"].fillna(0).astype(int)
    rows.loc[rows.index[:10], "label"] = 1  # a tiny portfolio may have no default in the horizon yet
    publish_tiny_bundle(warehouse, "credspark", "tiny", spec, rows, metadata={"version": "tiny"})
    print(f"prepared {warehouse}: {len(rows)} feature rows at {AS_OF}, bundle 'tiny' is current")


if __name__ == "__main__":
    main(sys.argv[1])
