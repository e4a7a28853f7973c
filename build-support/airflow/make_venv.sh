#!/usr/bin/env bash
# Build the Airflow lane's virtual environment: Apache Airflow 3 with the Spark provider and pytest, pinned by
# constraints/airflow.txt. Airflow lives in its own venv (its pins would clash with the main lane's); the
# credspark jobs it schedules run with the main venv's spark-submit and python. pip's wheel cache keeps a
# re-build to a couple of minutes.
# Usage: make_venv.sh <python3.11> <venv-dir> <constraints-file>
set -euo pipefail
python=$1; venv=$2; pins=$3
rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q -c "$pins" apache-airflow apache-airflow-providers-apache-spark pytest
"$venv/bin/python" -c "import airflow, airflow.providers.apache.spark; print('airflow venv: apache-airflow', airflow.__version__)"
touch "$venv/.installed"
