#!/usr/bin/env bash
# hap3d beside the reference in one process (benchmarks/bench_vs_reference.py), through the reference-bench
# harness, which is kept outside this repository (it builds the reference's pinned CPU venv once and holds the
# golden weights):
#   HAP_MIRROR=<bare git mirror of junkunyuan/HAP> REF_BENCH=<harness folder> benchmarks/vs_reference.sh [args]
# e.g. `... vs_reference.sh --doc docs/benchmarks.md` regenerates the table in docs/benchmarks.md.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
HARNESS=${REF_BENCH:?set REF_BENCH to the reference-bench harness folder}
MIRROR=${HAP_MIRROR:?set HAP_MIRROR to a bare git mirror of junkunyuan/HAP}
TMP=$(python3 -c 'import tempfile; print(tempfile.gettempdir())')
WORK=${REF_BENCH_WORK:-$TMP/hap3d-reference-bench}
if [ ! -f "$WORK/venv/.ok" ]; then  # the harness makes its venv (and checks it runs) on its first call
  HAP_MIRROR=$MIRROR "$HARNESS/run.sh" side-by-side --batches 1 --reps 1 >/dev/null
fi
rm -rf "$WORK/ref-hap3d"; mkdir -p "$WORK/ref-hap3d"
git --git-dir="$MIRROR" archive e86cd1c87510efa868f71283f3987c98a2bef255 downstream_tasks/3d_pose_estimation \
  | tar -x -C "$WORK/ref-hap3d"
R=$WORK/ref-hap3d/downstream_tasks/3d_pose_estimation/3DCrowdNet_RELEASE
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} PYTHONWARNINGS=${PYTHONWARNINGS:-ignore}
export HAP3D_CALLER_DIR=$PWD  # --doc / --out paths are the caller's
cd "$WORK"
PYTHONPATH="$HERE/../src:$HERE" "$WORK/venv/bin/python" "$HERE/bench_vs_reference.py" --ref "$R" --harness "$HARNESS" "$@"
