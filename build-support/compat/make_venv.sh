#!/usr/bin/env bash
# Build the compat lane's virtual environment: the pinned closure in constraints/compat.txt, installed with
# --no-deps (Petastorm 0.13.1 declares setuptools<70 while torch declares setuptools>=77, so no resolver
# can install both; the closure was resolved once without Petastorm and Petastorm's real imports were
# added by hand, see build-support/compat/requirements.in), then credspark itself, also --no-deps
# (pyproject.toml pins the main lane's pyspark/pyarrow). pip's wheel cache keeps re-builds to a few minutes.
# Usage: make_venv.sh <python3.11> <venv-dir> <constraints-file>
set -euo pipefail
python=$1; venv=$2; pins=$3
rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q --no-deps -r "$pins"
"$venv/bin/python" -m pip install -q --no-deps -e .
# Fail here, not in the tests, if the closure misses an import or a version drifted.
"$venv/bin/python" - <<'PY'
import numpy, pyarrow, pyspark, torch, petastorm, petastorm.spark, petastorm.pytorch, delta, sklearn, credspark
assert numpy.__version__.startswith("1."), numpy.__version__
assert pyarrow.__version__.startswith("14."), pyarrow.__version__
assert pyspark.__version__.startswith("4.0."), pyspark.__version__
print(f"compat venv: python ok; numpy {numpy.__version__}, pyarrow {pyarrow.__version__}, "
      f"pyspark {pyspark.__version__}, torch {torch.__version__}, petastorm {petastorm.__version__}")
PY
touch "$venv/.installed"
