#!/usr/bin/env bash
# Rewrite requirements/lock.txt (and requirements/detect-lock.txt) from the venvs the test suite just passed in.
# Called by `make lock` after `make test`; pip freeze of the venv, minus hap3d itself, torch's local tag dropped.
set -euo pipefail
venv="${1:?usage: lock.sh VENV [DETECT_VENV]}"; detect="${2:-}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
header() {
  echo "# Exact versions of a green \`make test\` ($(date -u +%Y-%m-%d), $("$1" -c 'import platform; print("Python", platform.python_version(), platform.machine())'))."
  echo "# Written by \`make lock\`; installed by scripts/bootstrap.sh. Ranges for other environments: pyproject.toml."
}
{ header "$venv/bin/python"; "$venv/bin/python" -m pip freeze --exclude-editable --disable-pip-version-check \
    | grep -v -i -E '^(hap3d|#)' | sed -E 's/^(torch==[^+]*)\+.*/\1/'; } > "$root/requirements/lock.txt"
echo "wrote requirements/lock.txt ($(grep -vc '^#' "$root/requirements/lock.txt") packages)"
if [ -n "$detect" ] && [ -x "$detect/bin/python" ]; then
  { header "$detect/bin/python"; "$detect/bin/python" -m pip freeze --disable-pip-version-check; } > "$root/requirements/detect-lock.txt"
  echo "wrote requirements/detect-lock.txt ($(grep -vc '^#' "$root/requirements/detect-lock.txt") packages)"
fi
