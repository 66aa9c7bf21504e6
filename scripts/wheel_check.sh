#!/usr/bin/env bash
# The wheel works on its own: build it, install it (not editable) into a fresh venv outside the repository, with
# the lock's versions, and run the installed `hap3d` from an empty folder: the quickstart, training from a shipped
# config given by name, and the demo on one of the quickstart's synthetic photos.
# Usage: scripts/wheel_check.sh PYTHON   (a python that has `build`, e.g. the test venv's)
set -euo pipefail
py="${1:?usage: wheel_check.sh PYTHON}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/hap3d-wheel.XXXXXX")"
trap 'rm -rf "$work"' EXIT
step() { echo "[wheel-check] $*"; }

step "building the wheel"
"$py" -m build --wheel --outdir "$work/dist" "$root" >"$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }
wheel=$(ls "$work"/dist/hap3d-*.whl)
"$py" -c 'import sys, zipfile; names = zipfile.ZipFile(sys.argv[1]).namelist()
missing = [n for n in ("hap3d/configs/hap_vit_b_3dpw.yaml", "hap3d/infer/mediapipe_worker.py", "hap3d/py.typed")
           if n not in names]
sys.exit(f"the wheel lacks {missing}" if missing else 0)' "$wheel"

step "installing $(basename "$wheel") into a fresh venv"
"${HAP3D_PYTHON:-python3}" -m venv "$work/venv"
vpy="$work/venv/bin/python"
pip=("$vpy" -m pip --disable-pip-version-check -q)
grep -v -E '^(#|torch==)' "$root/requirements/lock.txt" > "$work/constraints.txt"
"${pip[@]}" install "torch==$(sed -n 's/^torch==\([^+ ]*\).*/\1/p' "$root/requirements/lock.txt")"
"${pip[@]}" install -c "$work/constraints.txt" "$wheel"
export PATH="$work/venv/bin:$PATH"
cd "$work"  # nothing from the repository is importable or readable by relative path from here
"$vpy" -c 'import hap3d, pathlib, sys; p = pathlib.Path(hap3d.__file__); assert "site-packages" in p.parts, p; print("hap3d", hap3d.__version__, "from", p.parent)'

step "hap3d quickstart"
hap3d quickstart --out qs --budget tiny --device cpu

step "hap3d train --cfg hap_vit_b_3dpw (a shipped config by name; ViT-B shortened to 2 blocks, one step)"
hap3d train --cfg hap_vit_b_3dpw --out train_run --data-root qs/data --body-model-dir qs/body_model --device cpu \
  model.depth=2 train.pretrained=null train.amp=none train.loss_scale=dynamic train.train_batch_size=2 \
  train.max_steps_per_epoch=1 train.end_epoch=1 data.num_workers=0
test -f train_run/checkpoints/epoch_0.safetensors

step "hap3d demo on a synthetic COCO photo with its annotated keypoints"
"$vpy" - <<'PY'
import json, pathlib
root = next(p for p in pathlib.Path("qs/data").glob("*/annotations/person_keypoints_train2017.json"))
ann = json.loads(root.read_text())
image = ann["images"][0]
people = [[[a["keypoints"][3 * k], a["keypoints"][3 * k + 1], 0.9 if a["keypoints"][3 * k + 2] > 0 else 0.0]
           for k in range(17)] for a in ann["annotations"] if a["image_id"] == image["id"]]
src = next(root.parent.parent.glob(f"images/*/{image['file_name']}"))
pathlib.Path("photo").mkdir()
(pathlib.Path("photo") / src.name).write_bytes(src.read_bytes())
pathlib.Path("keypoints.json").write_text(json.dumps({src.name: people}))
PY
ckpt=$(ls qs/run/checkpoints/epoch_*.safetensors | sort -V | tail -n 1)
hap3d demo photo --keypoints keypoints.json --ckpt "$ckpt" --body-model-dir qs/body_model --out demo_out --device cpu
ls demo_out
step "ok"
