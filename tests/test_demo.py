"""`hap3d demo` end to end on a public-domain photo (scikit-image's astronaut) with a project-made checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import trimesh

from hap3d.cli import main as cli_main
from hap3d.config import ModelConfig
from hap3d.infer.render import Camera, rasterize
from hap3d.model import build_model
from hap3d.model.checkpoint import save_model_checkpoint

from conftest import TINY_VIT

skimage_data = pytest.importorskip("skimage.data", reason="scikit-image ships the public-domain test photo")
KEYPOINTS = Path(__file__).with_name("data") / "astronaut_keypoints.json"


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory, body_dir):
    root = tmp_path_factory.mktemp("demo")
    images = root / "images"
    images.mkdir()
    photo = skimage_data.astronaut()
    cv2.imwrite(str(images / "astronaut.png"), photo[:, :, ::-1])
    (images / "corrupt.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    model = build_model(ModelConfig(**TINY_VIT), body_dir)
    ckpt = save_model_checkpoint(root / "tiny.safetensors", model, model.cfg)
    out = root / "out"
    code = cli_main(["demo", str(images), "--keypoints", str(KEYPOINTS), "--ckpt", str(ckpt),
                     "--body-model-dir", str(body_dir), "--out", str(out), "--device", "cpu", "--backend", "raster"])
    return code, out, photo


def test_exit_code_and_summary_report_each_item(demo_run):
    code, out, _ = demo_run
    assert code == 1, "missing and corrupt inputs must make the exit code non-zero"
    summary = json.loads((out / "summary.json").read_text())
    items = {i["name"]: i for i in summary["items"]}
    assert items["astronaut.png"]["people"] == 1 and items["astronaut.png"]["error"] is None
    assert "below" in items["astronaut.png"]["skipped"][0]["reason"]
    assert "cannot be decoded" in items["corrupt.jpg"]["error"]
    assert "not among the inputs" in items["missing_photo.jpg"]["error"]


def test_meshes_load_with_the_right_sizes(demo_run):
    _, out, _ = demo_run
    for ext in ("obj", "ply", "glb"):
        mesh = trimesh.load(out / "astronaut" / f"person_0.{ext}", force="mesh", process=False, maintain_order=True)
        assert mesh.vertices.shape == (6890, 3) and mesh.faces.shape == (13776, 3), ext


def test_json_and_npz_keys(demo_run):
    _, out, _ = demo_run
    rec = json.loads((out / "astronaut" / "person_0.json").read_text())
    assert np.asarray(rec["smpl_pose"]).shape == (72,) and np.asarray(rec["smpl_shape"]).shape == (10,)
    assert np.asarray(rec["joints2d"]).shape == (30, 2) and np.asarray(rec["cam_trans"]).shape == (3,)
    npz = np.load(out / "astronaut" / "person_0.npz")
    assert npz["vertices"].shape == (6890, 3) and npz["joints3d"].shape == (30, 3)


def test_overlay_changes_exactly_the_mesh_pixels(demo_run, body_dir):
    _, out, photo = demo_run
    overlay = cv2.imread(str(out / "astronaut" / "overlay.png"))[:, :, ::-1]
    npz = np.load(out / "astronaut" / "person_0.npz")
    cam = Camera(float(npz["focal"]), float(npz["focal"]), *map(float, npz["princpt"]))
    faces = build_model(ModelConfig(**TINY_VIT), body_dir).smpl.faces.numpy()
    depth, _ = rasterize(npz["vertices"], faces, cam, *photo.shape[:2])
    covered = np.isfinite(depth)
    changed = np.any(overlay != photo, axis=2)
    assert covered.sum() > 500, "the person should be visible in the photo"
    assert not np.any(changed & ~covered), "pixels outside the mesh must be untouched"
    assert changed[covered].mean() > 0.95
    assert (out / "astronaut" / "side.png").is_file()
