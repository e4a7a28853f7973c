# credspark: `make help` lists the targets. The two set-up commands are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
JARS_DIR ?= $(HOME)/.cache/credspark/jars/delta-4.4.0
WAREHOUSE ?= ./warehouse
export CREDSPARK_JARS_DIR := $(abspath $(JARS_DIR))
export PYTHONHASHSEED := 0
# Compat lane (Petastorm 0.13.1: pyspark 4.0, pyarrow 14, numpy 1.26): a second venv, its own Delta JARs.
COMPAT_VENV ?= .venv-compat
COMPAT_PY := $(COMPAT_VENV)/bin/python
COMPAT_STAMP := $(COMPAT_VENV)/.installed
COMPAT_JARS_DIR ?= $(HOME)/.cache/credspark/jars/delta-4.0.1
# S3 lane: Spark's s3a connector for pyspark's Hadoop 3.5.0, fetched through a Maven repo of the project's own
# (never ~/.m2, whose POM-only entries break Ivy's --packages for users).
S3A_JARS_DIR ?= $(HOME)/.cache/credspark/jars/s3a-hadoop-3.5.0
export CREDSPARK_S3A_JARS_DIR := $(abspath $(S3A_JARS_DIR))
MAVEN_REPO ?= $(HOME)/.cache/credspark/m2
# moto's S3 server runs from a venv of its own (botocore needs python-dateutil < 3; the main lane pins 4).
S3_VENV ?= .venv-s3
S3_STAMP := $(S3_VENV)/.installed
# Airflow lane (Apache Airflow 3 + the Spark provider): a venv of its own; the jobs run with $(VENV)'s spark-submit.
AIRFLOW_VENV ?= .venv-airflow
AIRFLOW_STAMP := $(AIRFLOW_VENV)/.installed
# make pack: its own venv (never the shared .venv), packed into dist/.
PACK_VENV ?= .venv-pack
WHEEL := dist/credspark-0.1.0-py3-none-any.whl

.PHONY: help venv jars demo test test-cluster pack test-fast lint bench bench-features bench-models bench-train bench-champion bench-scoring bench-deep bench-recovery dist clean \
	horovod venv-compat jars-compat test-compat bench-paper jars-s3a venv-s3 test-s3 venv-airflow test-airflow

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints/main.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# pip's wheel cache (~/.cache/pip) keeps a fresh .venv to minutes; constraints pin what CI tested.
	$(PY) -m pip install -q -c constraints/main.txt -e '.[dev,bench,mlflow]'
	@touch $(STAMP)

venv: $(STAMP) ## create .venv and install credspark with its extras (once)

jars: $(STAMP) ## fetch the Delta Lake JARs from Maven Central once into $(JARS_DIR)
	@build-support/fetch_delta_jars.sh $(PY) $(JARS_DIR)

demo: venv jars ## generate a demo portfolio, validate it, build features and print a summary
	$(PY) -m jobs.demo --warehouse $(WAREHOUSE)/demo

test: venv jars horovod ## run the whole test suite (unit, integration; Horovod built first if missing)
	$(PY) -m pytest -q --durations=15 tests --ignore=tests/compat --ignore=tests/s3 --ignore=tests/standalone --ignore=tests/airflow

test-cluster: venv jars ## standalone-cluster lane: master + two 1-core workers on 127.0.0.1, the README's spark-submit recipe
	$(PY) -m pytest -q --durations=10 tests/standalone

jars-s3a: $(STAMP) ## fetch Spark's s3a connector (hadoop-aws 3.5.0 + AWS SDK v2 modules, 13 MB) once into $(S3A_JARS_DIR)
	@MAVEN_OPTS="-Dmaven.repo.local=$(MAVEN_REPO)" build-support/fetch_delta_jars.sh $(PY) $(S3A_JARS_DIR) \
		build-support/s3a-jars.pom.xml

$(S3_STAMP): constraints/s3.txt
	@test -x $(S3_VENV)/bin/python || $(PYTHON) -m venv $(S3_VENV)
	$(S3_VENV)/bin/python -m pip install -q -c constraints/s3.txt 'moto[s3]' flask flask-cors
	@touch $(S3_STAMP)

venv-s3: $(S3_STAMP) ## create .venv-s3 holding moto's S3 server for the S3 lane (once)

test-s3: venv jars jars-s3a venv-s3 ## S3 lane: a moto S3 server on 127.0.0.1; the jobs end to end with the warehouse on s3a://
	CREDSPARK_MOTO_PYTHON=$(abspath $(S3_VENV))/bin/python $(PY) -m pytest -q tests/s3

horovod: venv ## build Horovod 0.28.1 from source once (wheel cached by torch version) and install it into .venv
	@build-support/horovod/install.sh $(PY) constraints/main.txt

$(COMPAT_STAMP): constraints/compat.txt build-support/compat/make_venv.sh
	build-support/compat/make_venv.sh $(PYTHON) $(COMPAT_VENV) constraints/compat.txt

venv-compat: $(COMPAT_STAMP) ## create .venv-compat from constraints/compat.txt (once)

jars-compat: venv-compat ## fetch the compat lane's Delta JARs (delta-spark 4.0.1) once into $(COMPAT_JARS_DIR)
	@build-support/fetch_delta_jars.sh $(COMPAT_PY) $(COMPAT_JARS_DIR) build-support/compat/delta-jars.pom.xml

test-compat: venv-compat jars-compat ## compat lane: Petastorm feed, Horovod training fed by Petastorm
	@build-support/horovod/install.sh $(COMPAT_PY) constraints/compat.txt
	CREDSPARK_JARS_DIR=$(abspath $(COMPAT_JARS_DIR)) $(COMPAT_PY) -m pytest -q tests/compat

$(AIRFLOW_STAMP): constraints/airflow.txt build-support/airflow/make_venv.sh
	build-support/airflow/make_venv.sh $(PYTHON) $(AIRFLOW_VENV) constraints/airflow.txt

venv-airflow: $(AIRFLOW_STAMP) ## create .venv-airflow (Apache Airflow 3, Spark provider) from constraints/airflow.txt
	@true

test-airflow: venv jars venv-airflow ## Airflow lane: the example DAGs import; the nightly DAG runs once (dag.test)
	CREDSPARK_BIN=$(abspath $(VENV))/bin $(AIRFLOW_VENV)/bin/python -m pytest -q tests/airflow

test-fast: venv jars ## unit tests only
	$(PY) -m pytest -q tests/unit

lint: venv ## ruff (style + docstrings)
	$(VENV)/bin/ruff check credspark jobs tests benchmarks

bench: bench-features bench-models bench-train bench-champion bench-scoring bench-recovery ## all benchmarks (long; not part of make test)

bench-features: venv jars ## Spark feature build vs DuckDB on generated portfolios
	$(PY) benchmarks/features.py

bench-train: venv jars ## the training job on the UCI features, stage times and metrics vs baseline
	$(PY) benchmarks/train_uci.py

bench-champion: venv jars ## the published champion vs plain XGBoost on the raw UCI columns, split seeds 0..4
	$(PY) benchmarks/champion_uci.py

bench-scoring: venv jars ## Spark scoring vs the in-process limit
	$(PY) benchmarks/scoring.py

bench-deep: venv jars ## distributed ResNet-LSTM / ACTGAN epochs, 1 vs 2 workers
	$(PY) benchmarks/train_deep.py

bench-recovery: venv jars ## scoring and distributed training with one worker killed vs undisturbed (wall-time ratios)
	$(PY) benchmarks/recovery.py

bench-models: venv ## model quality on the UCI data (paper protocol)
	$(PY) benchmarks/models_uci.py

bench-paper: venv ## the paper's experiments on UCI (hours; resumable; writes its section of docs/results.md)
	$(PY) benchmarks/paper.py

dist: venv ## build the wheel for spark-submit --py-files
	$(PY) -m pip wheel --no-deps -w dist .

pack: dist ## a non-editable environment with the wheel installed, packed into dist/credspark-env.tar.gz (--archives)
	build-support/pack_env.sh $(PYTHON) $(PACK_VENV) $(WHEEL) constraints/main.txt dist/credspark-env.tar.gz

clean: ## remove build outputs and the local warehouse (not the venv)
	rm -rf dist build *.egg-info warehouse spark-warehouse metastore_db $(PACK_VENV)
