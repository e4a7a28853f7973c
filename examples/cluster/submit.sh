#!/usr/bin/env bash
# The credspark chain on a Spark cluster: generate a demo portfolio, build features, train, score. Every job
# is `spark-submit jobs/<job>.py` with the wheel in --py-files, the Delta JARs in --jars and the cluster
# overlay (spark-submit decides the master). Run from the repository root after `make dist jars`:
#
#   MASTER=spark://host:7077 WAREHOUSE=/mnt/shared/credspark examples/cluster/submit.sh [--set key=value ...]
#
# MASTER          spark://host:7077, yarn or k8s://...
# WAREHOUSE       root of tables, model store and run summaries; driver and executors must reach it
# WHEEL           the credspark wheel (default: what `make dist` builds)
# DELTA_JARS      folder of the Delta JARs `make jars` fetched (default: its cache folder)
# SUBMIT_OPTS     more spark-submit options, e.g. "--total-executor-cores 8 --executor-memory 4g"
# PYSPARK_PYTHON  the executors' Python: an environment with credspark's dependencies (or `make pack`'s)
# Arguments go to every job, e.g. --set distributed.num_workers=auto --set generate.customers=100000.
set -euo pipefail
: "${MASTER:?set MASTER to the master URL (spark://host:7077, yarn, k8s://...)}"
: "${WAREHOUSE:?set WAREHOUSE to the warehouse root}"
WHEEL=${WHEEL:-dist/credspark-0.1.0-py3-none-any.whl}
DELTA_JARS=${DELTA_JARS:-$HOME/.cache/credspark/jars/delta-4.4.0}
jars=$(ls "$DELTA_JARS"/*.jar | paste -sd, -)
read -r -a opts <<< "${SUBMIT_OPTS:-}"

submit() {
  local job=$1
  shift
  spark-submit --master "$MASTER" --deploy-mode client --jars "$jars" --py-files "$WHEEL" "${opts[@]}" \
    "jobs/$job.py" --env cluster --warehouse "$WAREHOUSE" "$@"
}

submit generate_portfolio "$@"
submit build_features --as-of 2024-12-31 "$@"
submit build_features --as-of 2025-12-31 "$@"
submit train --as-of 2024-12-31 "$@"
submit score_portfolio --score-date 2025-12-31 "$@"
