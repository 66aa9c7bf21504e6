#!/usr/bin/env bash
# Rerun the numerics-sensitive tests (pytest -m numerics: golden parity, mixed precision, crops) with the CPU kernels
# of other machines, so that a verdict resting on this CPU's instruction set shows up here:
#   baseline  torch's portable kernels (ATEN_CPU_CAPABILITY=default), oneDNN capped at SSE4.1, OpenCV without its
#             AVX/AVX2/AVX-512 paths: what the oldest x86-64 CPUs run;
#   avx2      torch and oneDNN capped at AVX2 (run only where the CPU has AVX-512, which it then stands in for).
# Usage: scripts/test_isa.sh PYTHON [pytest args...]
set -euo pipefail
py="${1:?usage: test_isa.sh PYTHON [pytest args]}"; shift
# OpenCV's dispatched features that this CPU has (a '*' prefix and no '?'), all but SSE4.x disabled.
opencv_off=$("$py" -c 'import cv2
feats = [f[1:] for f in cv2.getCPUFeaturesLine().split() if f.startswith("*") and not f.endswith("?")]
print(",".join(f.replace("-", "_") for f in feats if not f.startswith("SSE")))')
echo "[isa] baseline: ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=SSE41 OPENCV_CPU_DISABLE=$opencv_off"
ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=SSE41 OPENCV_CPU_DISABLE="$opencv_off" "$py" -m pytest -m numerics "$@"
if grep -qw avx512f /proc/cpuinfo 2>/dev/null; then
  echo "[isa] avx2: ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2"
  ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 "$py" -m pytest -m numerics "$@"
else
  echo "[isa] avx2: this CPU has no AVX-512, so its own run above the baseline is the AVX2 one"
fi
