"""Hostile inputs against the command line, each in a subprocess (a crash fails the test instead of pytest):
file names that are not UTF-8, names that would escape the output folder, images whose header claims a huge size.
Each case checks the exit code, that the message names the file, and that nothing outside --out changed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import pytest
from skimage import data as skimage_data

from hap3d.config import ModelConfig
from hap3d.model import build_model
from hap3d.model.checkpoint import save_model_checkpoint

from conftest import TINY_VIT

KEYPOINTS = Path(__file__).parent / "data" / "astronaut_keypoints.json"


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory, body_dir):
    model = build_model(ModelConfig(**TINY_VIT), body_dir)
    return save_model_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.safetensors", model, model.cfg)


def _tree(root: Path) -> set[bytes]:
    return {os.path.join(d, f) for d, _, fs in os.walk(os.fsencode(root)) for f in fs}


def _demo(src: Path | bytes, keypoints: Path, out: Path, ckpt: Path, body_dir: Path) -> subprocess.CompletedProcess:
    args = [sys.executable, "-m", "hap3d.cli", "demo", os.fsencode(src), "--keypoints", str(keypoints), "--ckpt",
            str(ckpt), "--body-model-dir", str(body_dir), "--out", str(out), "--device", "cpu", "--backend", "raster",
            "--formats", "obj"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run(args, capture_output=True, timeout=300, env=env)


def test_demo_on_names_that_are_not_utf8_or_escape_the_output(tmp_path, ckpt, body_dir):
    photos = tmp_path / "in"
    photos.mkdir()
    photo = cv2.imencode(".png", skimage_data.astronaut()[:, :, ::-1])[1].tobytes()
    bad, dots = b"bad\xff.png", b"...png"  # the stem of '...png' is '..'
    for name in (bad, dots):
        with open(os.path.join(os.fsencode(photos), name), "wb") as f:
            f.write(photo)
    people = json.loads(KEYPOINTS.read_text())["astronaut.png"][:1]
    keypoints = tmp_path / "kp.json"
    keypoints.write_text(json.dumps({os.fsdecode(bad): people, os.fsdecode(dots): people}))
    out = tmp_path / "work" / "out"
    out.parent.mkdir()
    before = _tree(tmp_path)
    done = _demo(photos, keypoints, out, ckpt, body_dir)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    outside = {p for p in _tree(tmp_path) - before if not p.startswith(os.fsencode(out) + b"/")}
    assert not outside, f"written outside --out: {outside}"
    summary = json.loads((out / "summary.json").read_text())
    assert [i["status"] for i in summary["items"]] == ["ok", "ok"], summary
    folders = sorted(os.listdir(out))
    assert all(not f.startswith(".") for f in folders) and len(folders) == 3, folders  # two items + summary.json


def test_an_image_declaring_a_huge_size_is_refused_by_name(tmp_path, ckpt, body_dir):
    from test_files import _huge_png_header

    src = tmp_path / "astronaut.png"
    src.write_bytes(_huge_png_header(50000, 50000))
    out = tmp_path / "out"
    done = _demo(src, KEYPOINTS, out, ckpt, body_dir)
    report = json.loads((out / "summary.json").read_text())["items"][0]
    assert report["status"] == "failed" and "megapixel limit" in report["error"] and "astronaut.png" in report["error"]
    assert done.returncode != 0 and b"Traceback" not in done.stderr
