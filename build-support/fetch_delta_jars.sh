#!/usr/bin/env bash
# Fetch the Delta Lake JARs once from Maven Central into a cache folder outside the repo, keeping only the
# ones Spark does not already ship (copying Spark's own hadoop/parquet/scala jars twice would shadow them).
# Re-runs are offline: the folder's .complete stamp short-cuts everything. Maven downloads into a repository of
# the project's own ($CREDSPARK_M2, default ~/.cache/credspark/m2), never ~/.m2: entries Maven leaves there
# (POM-only, no JAR) make spark-submit --packages fail on the same machine ("download failed: ...").
# Usage: fetch_delta_jars.sh <python-with-pyspark> <dest-dir> [pom]   (pom: default delta-jars.pom.xml beside
# this script; the compat lane passes build-support/compat/delta-jars.pom.xml for its older Delta)
set -euo pipefail
py=$1; dest=$2
here=$(cd "$(dirname "$0")" && pwd)
pom=${3:-$here/delta-jars.pom.xml}
if [ -f "$dest/.complete" ]; then echo "delta jars: cached in $dest"; exit 0; fi
spark_jars=$("$py" -c 'import os, pyspark; print(os.path.join(os.path.dirname(pyspark.__file__), "jars"))')
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
m2=${CREDSPARK_M2:-$HOME/.cache/credspark/m2}
mvn -q -B -Dmaven.repo.local="$m2" -f "$pom" dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp/all"
mkdir -p "$tmp/keep"
for j in "$tmp"/all/*.jar; do
  base=$(basename "$j" | sed -E 's/-[0-9][^-]*\.jar$//')
  # grep reads all its input (no -q): under pipefail, -q's early exit fails the pipe with SIGPIPE at random.
  if ! ls "$spark_jars" | sed -E 's/-[0-9][^-]*\.jar$//' | grep -x "$base" >/dev/null; then cp "$j" "$tmp/keep/"; fi
done
mkdir -p "$(dirname "$dest")"; rm -rf "$dest.tmp"; mv "$tmp/keep" "$dest.tmp"
touch "$dest.tmp/.complete"; rm -rf "$dest"; mv "$dest.tmp" "$dest"
echo "delta jars: fetched into $dest ($(ls "$dest" | wc -l) files)"
