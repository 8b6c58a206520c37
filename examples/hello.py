# Run by bin/demo: CPython compiled to WebAssembly (WASI), inside the BEAM.
# It sees only what `mix wasmbeam.run` grants: this folder, read-only.
import os
import platform
import sys

print(f"Hello from CPython {platform.python_version()} on {sys.platform}, running inside the BEAM")
print("files it can see:", sorted(os.listdir("/examples")))
print("environment it was given:", dict(os.environ))
try:
    open("/examples/planted.txt", "w")
except OSError as e:
    print("writing here is refused:", e.strerror)
