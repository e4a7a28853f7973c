#!/usr/bin/env bash
# Build a non-editable environment with the credspark wheel and its pinned dependencies in a venv of its own,
# and pack it with venv-pack into a tar.gz for spark-submit --archives (see README, "A packed environment").
# Usage: pack_env.sh <python> <venv-dir> <wheel> <constraints> <out.tar.gz>
# The packed environment needs the same Python (same path) on every node: venv-pack keeps the venv's link to
# its base interpreter.
set -euo pipefail
python=$1; venv=$2; wheel=$3; constraints=$4; out=$5
rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q -c "$constraints" "$wheel" 'venv-pack==0.2.0'
# A non-editable install: credspark (and its conf/) must come from the venv, not from a checkout. Checked
# from / so that no checkout on the current folder shadows it.
(cd / && "$venv/bin/python" - <<'PY'
import importlib.metadata as md, pathlib, credspark
from credspark.config import default_conf_dir
site = pathlib.Path(md.distribution("credspark").locate_file("")).resolve()
assert '"editable": true' not in (md.distribution("credspark").read_text("direct_url.json") or ""), "editable install"
assert pathlib.Path(credspark.__file__).resolve().is_relative_to(site), credspark.__file__
assert pathlib.Path(str(default_conf_dir())).resolve().is_relative_to(site), default_conf_dir()
PY
)
mkdir -p "$(dirname "$out")"
rm -f "$out.tmp"
"$venv/bin/venv-pack" -p "$venv" -o "$out.tmp" --format tar.gz -q
mv "$out.tmp" "$out"
echo "packed $(du -h "$out" | cut -f1) into $out"
