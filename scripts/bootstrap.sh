#!/usr/bin/env bash
# Create (or reuse) a virtual environment and install hap3d into it.
# torch is installed first and only when missing, so an existing CPU or CUDA build is kept.
#   HAP3D_PYTHON       python used to create the venv (default: python3)
#   HAP3D_TORCH_SPEC   what to pip-install when torch is missing (default: torch==2.13.0; for a specific
#                      CUDA build, install torch into the venv yourself first or set this)
#   HAP3D_EXTRAS       pip extras to install (default: test,render; render adds headless GL via moderngl)
set -euo pipefail
venv="${1:-.venv}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py="${HAP3D_PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
  "$py" -c 'import sys; assert sys.version_info >= (3, 10), "hap3d needs Python >= 3.10"'
  "$py" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check -q)
if ! "$venv/bin/python" -c "import torch" >/dev/null 2>&1; then
  echo "[bootstrap] installing ${HAP3D_TORCH_SPEC:-torch==2.13.0}"
  "${pip[@]}" install "${HAP3D_TORCH_SPEC:-torch==2.13.0}"
fi
stamp="$venv/.hap3d-installed"
if [ ! -f "$stamp" ] || [ "$root/pyproject.toml" -nt "$stamp" ]; then
  echo "[bootstrap] installing hap3d[${HAP3D_EXTRAS:-test,render}] into $venv"
  "${pip[@]}" install -e "$root[${HAP3D_EXTRAS:-test,render}]"
  touch "$stamp"
fi
