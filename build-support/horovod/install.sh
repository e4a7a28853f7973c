#!/usr/bin/env bash
# Install Horovod 0.28.1 into the virtual environment of <python>, building the wheel first if the cache
# (see build_wheel.sh) has none for this torch. Idempotent: a stamp in the venv, keyed like the wheel cache,
# makes re-runs a no-op.
# Never `horovod[spark]`: that extra pins pyarrow < 11 (which breaks both lanes); the wheel goes in with
# --no-deps plus Horovod's own runtime needs. horovod.spark.run itself needs only pyspark, pyarrow and
# numpy (present in both lanes), not petastorm or h5py.
# Usage: install.sh <python-in-venv> [constraints-file]
set -euo pipefail
py=$1; constraints=${2:-}
here=$(cd "$(dirname "$0")" && pwd)
# The key reads torch's installed version from its metadata (importing torch takes seconds).
key=$("$py" -c 'import sys; from importlib.metadata import version; print("torch-%s-cp%d%d" % (version("torch"), *sys.version_info[:2]))')
stamp="$("$py" -c 'import sys; print(sys.prefix)')/.horovod-0.28.1-$key"
check='import horovod.torch as hvd, horovod.spark; assert hvd.gloo_built(), "Horovod built without gloo"'
# Fast path (no torch import): the stamp is written only after the import check below passed for this key.
if [ -f "$stamp" ] && "$py" -c 'from importlib.metadata import version; assert version("horovod") == "0.28.1"' 2>/dev/null; then
  echo "horovod: installed ($key)"; exit 0
fi
whl=$("$here/build_wheel.sh" "$py" | tail -1)
"$py" -m pip install -q --no-deps --force-reinstall "$whl"
if ! "$py" -c 'import cloudpickle, psutil, yaml, packaging' 2>/dev/null; then
  "$py" -m pip install -q ${constraints:+-c "$constraints"} cloudpickle psutil pyyaml packaging
fi
"$py" -c "$check"
touch "$stamp"
echo "horovod: installed $whl"
