#!/usr/bin/env bash
# Create (or reuse) a virtual environment and install hap3d into it with the exact versions of
# requirements/lock.txt (the environment the test suite last passed in; `make lock` rewrites it).
# torch is installed first and only when missing, so an existing CPU or CUDA build in the venv is kept: the lock's
# torch pin, and its pins of torch's own dependencies, then do not apply.
#   HAP3D_PYTHON       python used to create the venv (default: python3)
#   HAP3D_TORCH_SPEC   what to pip-install when torch is missing (default: the lock's torch version; for a specific
#                      CUDA build, install torch into the venv yourself first, or set this)
#   HAP3D_EXTRAS       pip extras to install (default: test,render; render adds headless GL via moderngl)
#   HAP3D_NO_LOCK=1    resolve the ranges of pyproject.toml instead of the lock (newest compatible releases)
set -euo pipefail
venv="${1:-.venv}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
lock="$root/requirements/lock.txt"
py="${HAP3D_PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
  "$py" -c 'import sys; assert sys.version_info >= (3, 10), "hap3d needs Python >= 3.10"'
  "$py" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check -q)
locked_torch="torch==$(sed -n 's/^torch==\([^+ ]*\).*/\1/p' "$lock")"
if ! "$venv/bin/python" -c "import torch" >/dev/null 2>&1; then
  echo "[bootstrap] installing ${HAP3D_TORCH_SPEC:-$locked_torch}"
  "${pip[@]}" install "${HAP3D_TORCH_SPEC:-$locked_torch}"
fi
stamp="$venv/.hap3d-installed"
if [ ! -f "$stamp" ] || [ "$root/pyproject.toml" -nt "$stamp" ] || [ "$lock" -nt "$stamp" ]; then
  constraints=()
  lock_py=$(sed -n '1s/.*Python \([0-9]*\.[0-9]*\).*/\1/p' "$lock")
  venv_py=$("$venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  if [ -z "${HAP3D_NO_LOCK:-}" ] && [ "$lock_py" != "$venv_py" ]; then
    echo "[bootstrap] warning: requirements/lock.txt was made with Python $lock_py, this venv has $venv_py: installing the" \
         "newest versions within pyproject.toml's ranges instead (the tested set needs Python $lock_py)" >&2
    HAP3D_NO_LOCK=1
  fi
  if [ -z "${HAP3D_NO_LOCK:-}" ]; then
    # The lock minus torch and what torch itself requires when the venv's torch is not the locked one (a CUDA build
    # pins its own versions of those).
    keep=$("$venv/bin/python" - "$lock" "$locked_torch" <<'PY'
import re, sys
from importlib.metadata import requires, version
lock, locked = sys.argv[1], sys.argv[2].split("==")[1]
have = version("torch").split("+")[0]
skip = set()
if have != locked:
    skip = {"torch"} | {re.split(r"[ ;<>=!~\[]", r, 1)[0].lower().replace("_", "-") for r in requires("torch") or []
                        if "extra ==" not in r}
    print(f"[bootstrap] keeping the venv's torch {version('torch')} (the lock has {locked}): its own pins apply",
          file=sys.stderr)
for line in open(lock):
    name = re.split(r"[ =<>;]", line.strip(), 1)[0].lower().replace("_", "-")
    if line.strip() and not line.startswith("#") and name not in skip and not name.startswith(("nvidia-", "triton")):
        print(line.rstrip())
PY
)
    printf '%s\n' "$keep" > "$venv/constraints.txt"
    constraints=(-c "$venv/constraints.txt")
  fi
  echo "[bootstrap] installing hap3d[${HAP3D_EXTRAS:-test,render}] into $venv${constraints:+ (versions from requirements/lock.txt)}"
  "${pip[@]}" install "${constraints[@]}" -e "$root[${HAP3D_EXTRAS:-test,render}]"
  touch "$stamp"
fi
