#!/usr/bin/env bash
# Build Horovod 0.28.1 (the last release) from its PyPI sdist for the torch installed in <python>, once,
# and cache the wheel outside the repo, keyed by torch version and Python tag: the torch extension links
# against libtorch, so a wheel is only valid for the exact torch it was built with.
# Why a patch: 0.28.1 compiles as C++14, but torch >= 2.1 headers need C++17 and recent torch (2.10+) C++20:
# the top-level CMakeLists.txt gets C++17 and the torch extension (horovod/torch/CMakeLists.txt, which also
# compiles Horovod's common sources) gets the standard torch's own headers ask for.
# Only CPU collectives (gloo) are built: no MPI, TensorFlow or MXNet.
# Usage: build_wheel.sh <python-with-torch>      prints the cached wheel's path on its last line.
set -euo pipefail
py=$1
version=0.28.1
cache=${CREDSPARK_CACHE:-$HOME/.cache/credspark}
# The key reads torch's installed version from its metadata (importing torch takes seconds).
key=$("$py" -c 'import sys; from importlib.metadata import version; print("torch-%s-cp%d%d" % (version("torch"), *sys.version_info[:2]))')
dest="$cache/wheels/horovod-$version/$key"
if ls "$dest"/horovod-$version-*.whl >/dev/null 2>&1; then ls "$dest"/horovod-$version-*.whl | head -1; exit 0; fi

tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
"$py" -m pip download -q --no-binary :all: --no-deps "horovod==$version" -d "$tmp"
tar xzf "$tmp/horovod-$version.tar.gz" -C "$tmp"
src="$tmp/horovod-$version"
torch_std=$("$py" - <<'PY'
import os, torch
hdr = os.path.join(os.path.dirname(torch.__file__), "include", "torch", "csrc", "api", "include", "torch", "all.h")
print(20 if os.path.exists(hdr) and "C++20" in open(hdr).read() else 17)
PY
)
patch_std() {  # <file> <standard>: replace the C++14 setting, and prove it
  sed -i -E "s/set\(CMAKE_CXX_STANDARD 14\)/set(CMAKE_CXX_STANDARD $2)/" "$src/$1"
  grep -q "set(CMAKE_CXX_STANDARD $2)" "$src/$1" || { echo "horovod: C++$2 patch did not apply to $1" >&2; exit 1; }
  ! grep -q 'set(CMAKE_CXX_STANDARD 14)' "$src/$1" || { echo "horovod: C++14 left in $1" >&2; exit 1; }
}
patch_std CMakeLists.txt 17
patch_std horovod/torch/CMakeLists.txt "$torch_std"
echo "horovod: building for $key with C++17 (core) / C++$torch_std (torch extension)" >&2
# RelWithDebInfo (setup.py's default) spends build time and ~10x the .so size on debug symbols nobody reads.
sed -i "s/else 'RelWithDebInfo'/else 'Release'/" "$src/setup.py"

# The build imports torch (for its headers and ABI flag), so no build isolation; setup.py reads these
# switches. MAKEFLAGS stops setup.py's default `make -j8` on a 2-core machine.
export HOROVOD_WITH_PYTORCH=1 HOROVOD_WITH_GLOO=1 HOROVOD_WITHOUT_MPI=1 HOROVOD_WITHOUT_TENSORFLOW=1 \
       HOROVOD_WITHOUT_MXNET=1 HOROVOD_CPU_OPERATIONS=gloo MAKEFLAGS="-j${HOROVOD_BUILD_JOBS:-2}"
"$py" -m pip wheel --no-deps --no-build-isolation -w "$tmp/out" "$src"
mkdir -p "$dest.tmp" && cp "$tmp"/out/horovod-$version-*.whl "$dest.tmp/"
rm -rf "$dest" && mv "$dest.tmp" "$dest"
ls "$dest"/horovod-$version-*.whl | head -1
