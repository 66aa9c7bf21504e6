"""`hap3d demo` on a video of two people: track ids, filtered outputs, per-track NPZ and animations, overlay MP4;
and a model output with NaN/Inf failing its item."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from hap3d.cli import main as cli_main
from hap3d.config import ModelConfig
from hap3d.infer.demo import run_demo
from hap3d.infer.predictor import Predictor
from hap3d.model import build_model
from hap3d.model.checkpoint import save_model_checkpoint
from hap3d.render import person_colour

from conftest import TINY_VIT

skimage_data = pytest.importorskip("skimage.data", reason="scikit-image ships the public-domain test photo")
KEYPOINTS = Path(__file__).with_name("data") / "astronaut_keypoints.json"
PERSON = np.asarray(json.loads(KEYPOINTS.read_text())["astronaut.png"][0], np.float32)  # (17, 3), fits the photo
FRAMES = 8
HIDDEN = 4  # the right-hand person is missing from the keypoints of this frame


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, body_dir):
    model = build_model(ModelConfig(**TINY_VIT), body_dir)
    return model, save_model_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.safetensors", model, model.cfg)


@pytest.fixture(scope="module")
def two_people(tmp_path_factory) -> tuple[Path, Path]:
    """An 8-frame video of two astronauts side by side drifting 6 px/frame apart, and keypoints listing them in
    alternating order (so list position is no identity); the right one is missing in frame 4."""
    root = tmp_path_factory.mktemp("video")
    photo = skimage_data.astronaut()
    video = root / "pair.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (1100, 512))
    if not writer.isOpened():
        pytest.skip("OpenCV cannot write MJPG .avi here (no codec)")
    keypoints = {}
    for f in range(FRAMES):
        frame = np.full((512, 1100, 3), 90, np.uint8)
        left, right = 30 - 3 * f, 560 + 3 * f
        frame[:, left:left + 512][:, max(0, -left):] = photo[:, max(0, -left):]
        frame[:, right:right + 512] = photo[:, :1100 - right]
        writer.write(np.ascontiguousarray(frame[:, :, ::-1]))
        people = [PERSON + np.r_[left, 0, 0].astype(np.float32), PERSON + np.r_[right, 0, 0].astype(np.float32)]
        if f == HIDDEN:
            people = people[:1]
        keypoints[f"pair_{f:06d}"] = [p.tolist() for p in (people[::-1] if f % 2 else people)]
    writer.release()
    path = root / "keypoints.json"
    path.write_text(json.dumps(keypoints))
    return video, path


def _run(tiny, body_dir, two_people, out: Path, *extra: str) -> dict:
    video, keypoints = two_people
    code = cli_main(["demo", str(video), "--keypoints", str(keypoints), "--ckpt", str(tiny[1]),
                     "--body-model-dir", str(body_dir), "--out", str(out), "--device", "cpu", "--backend", "raster",
                     "--formats", "", *extra])
    assert code == 0
    return json.loads((out / "summary.json").read_text())


@pytest.fixture(scope="module")
def smoothed(tiny, body_dir, two_people, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("smoothed")
    return out, _run(tiny, body_dir, two_people, out)


def test_each_person_keeps_one_track(smoothed):
    out, summary = smoothed
    assert set(summary["tracks"]) == {"0", "1"}
    assert summary["tracks"]["0"]["frames"] == FRAMES and summary["tracks"]["1"]["frames"] == FRAMES - 1
    assert summary["settings"]["video"]["smooth"] is True and summary["settings"]["video"]["fps"] == 10
    for f in range(FRAMES):
        for person in (out / f"pair_{f:06d}").glob("person_*.npz"):
            rec = np.load(person)
            side = 0 if rec["input_keypoints"][0, 0] < 550 else 1  # track 0 is the left person
            assert int(rec["track_id"]) == side, (f, person.name)


def test_track_sequences_and_animations(smoothed):
    out, summary = smoothed
    track = np.load(out / "tracks" / "track_1.npz")
    assert track["frame"].tolist() == [f for f in range(FRAMES) if f != HIDDEN]
    assert track["smpl_pose"].shape == (FRAMES - 1, 72) and track["cam_trans"].shape == (FRAMES - 1, 3)
    assert track["joints3d"].shape == (FRAMES - 1, 30, 3) and "vertices" not in track
    assert summary["tracks"]["1"]["outputs"] == ["tracks/track_1.npz", "tracks/track_1.glb", "tracks/track_1.bvh"]
    assert (out / "tracks" / "track_1.glb").stat().st_size > 0
    assert (out / "tracks" / "track_1.bvh").read_text().count("\n") > FRAMES


def test_overlay_video_has_every_frame_in_track_colours(smoothed, two_people):
    out, _ = smoothed
    cap = cv2.VideoCapture(str(out / "overlay.mp4"))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    assert len(frames) == FRAMES and frames[0].shape == (512, 1100, 3)
    overlay = cv2.imread(str(out / "pair_000001" / "overlay.png"))
    assert np.abs(frames[1].astype(int) - overlay).mean() < 6  # the frame's overlay, through a lossy codec
    assert person_colour(0) != person_colour(1)


def test_smoothing_reduces_frame_to_frame_change(smoothed, tiny, body_dir, two_people, tmp_path):
    out, _ = smoothed
    raw_summary = _run(tiny, body_dir, two_people, tmp_path / "raw", "--no-smooth", "--animation", "",
                       "--no-overlay-video")
    assert raw_summary["tracks"]["0"]["outputs"] == ["tracks/track_0.npz"]
    assert not (tmp_path / "raw" / "overlay.mp4").exists()
    raw, smooth = np.load(tmp_path / "raw" / "tracks" / "track_0.npz"), np.load(out / "tracks" / "track_0.npz")
    for key in ("smpl_pose", "smpl_shape"):  # the random network's outputs jitter as the crop moves
        change = [np.abs(np.diff(seq[key], axis=0)).mean() for seq in (raw, smooth)]
        assert change[1] < change[0], (key, change)
    for key in ("smpl_pose", "smpl_shape", "cam_trans", "joints3d"):  # the first frame passes unchanged
        np.testing.assert_allclose(smooth[key][0], raw[key][0], atol=1e-5)
    # translation is filtered in a fixed camera: the person stays where they are in the picture (the walk lags a
    # little: 3 px per frame)
    def image_x(seq):
        return seq["cam_trans"][:, 0] / seq["cam_trans"][:, 2] * seq["focal"] + seq["princpt"][:, 0]

    assert np.abs(image_x(smooth) - image_x(raw)).max() < 10
    # the per-frame mesh is re-posed from the filtered parameters
    rec = np.load(out / "pair_000003" / "person_0.npz")
    assert np.isfinite(rec["vertices"]).all() and rec["vertices"].shape == (6890, 3)


def test_non_finite_model_output_fails_the_item(tiny, tmp_path, monkeypatch):
    images = tmp_path / "images"
    images.mkdir()
    cv2.imwrite(str(images / "a.png"), skimage_data.astronaut()[:, :, ::-1])
    predictor = Predictor(tiny[0], "cpu", amp="none")
    run = predictor.run_prepared

    def broken(prepared):
        people = run(prepared)
        return [replace(people[0], cam_trans=np.full(3, np.nan, np.float32)), *people[1:]]

    monkeypatch.setattr(predictor, "run_prepared", broken)
    second = PERSON + np.r_[150, 0, 0].astype(np.float32)
    code, reports = run_demo(predictor, images, {"a.png": [PERSON, second]}, tmp_path / "out", formats=(),
                             backend="raster", progress=False)
    (report,) = reports
    assert code == 1 and report.status == "failed" and "NaN or Inf" in report.error and "cam_trans" in report.error
    assert report.people == 1 and {"person": 0, "reason": "non-finite model output (cam_trans)"} in report.skipped


@pytest.mark.parametrize("args,message", [
    (["--animation", "fbx"], "unknown animation format(s): fbx"),
    (["--smooth-beta", "-1"], "expected a number >= 0"),
    (["--smooth-min-cutoff", "0"], "expected a positive number"),
    (["--track-max-age", "-2"], "expected a positive integer"),
])
def test_video_options_are_checked_before_any_work(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as err:
        cli_main(["demo", str(tmp_path / "clip.mp4"), "--keypoints", "k.json", "--random-weights", *args])
    assert err.value.code == 2 and message in capsys.readouterr().err
