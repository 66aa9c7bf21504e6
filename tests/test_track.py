"""Tracking on synthetic sequences with known identities, and the One Euro filter's jitter reduction and lag."""

from __future__ import annotations

import numpy as np
import pytest

from hap3d.infer.predictor import PersonPrediction
from hap3d.infer.smoothing import OneEuroFilter, PersonSmoother, axis_angles, quaternions
from hap3d.infer.track import Tracker, box_iou, keypoint_box

FPS = 30.0
# A standing COCO17 skeleton in a unit box (x right, y down): head at the top, ankles at the bottom.
SKELETON = np.array([
    [.5, .05], [.55, .03], [.45, .03], [.6, .05], [.4, .05], [.7, .2], [.3, .2], [.75, .35], [.25, .35],
    [.75, .5], [.25, .5], [.62, .55], [.38, .55], [.62, .75], [.38, .75], [.62, .95], [.38, .95],
])


def person(x: float, y: float, height: float, rng: np.random.Generator, noise: float = 2.0) -> np.ndarray:
    pts = SKELETON * [height / 2, height] + [x, y] + rng.normal(0, noise, (17, 2))
    return np.c_[pts, np.full(17, 0.9)].astype(np.float32)


def run(tracker: Tracker, frames: list[list[tuple[str, np.ndarray]]], rng: np.random.Generator) -> dict[str, set]:
    """Track id(s) each true identity received over the sequence (people shuffled in every frame)."""
    ids: dict[str, set] = {}
    for f, people in enumerate(frames):
        order = rng.permutation(len(people))
        got = tracker.update(f, [people[i][1] for i in order])
        for i, track_id in zip(order, got):
            ids.setdefault(people[i][0], set()).add(track_id)
    return ids


def test_boxes():
    assert box_iou(np.r_[0, 0, 10, 10], np.r_[5, 0, 15, 10]) == pytest.approx(1 / 3)
    assert box_iou(np.r_[0, 0, 1, 1], np.r_[2, 2, 3, 3]) == 0
    p = person(100, 50, 200, np.random.default_rng(0), noise=0)
    p[0, 2] = 0.1  # unsure keypoints do not make the box
    p[0, :2] = (-500, -500)
    np.testing.assert_allclose(keypoint_box(p), [125, 56, 175, 240], atol=1e-3)


def test_people_who_cross_keep_their_ids():
    """Two people of different heights walk towards each other at 8 px/frame, overlap fully around frame 37,
    and walk on; with 2 px keypoint noise each keeps one id from start to end."""
    rng = np.random.default_rng(1)
    frames = [[("a", person(50 + 8 * f, 100, 220, rng)), ("b", person(650 - 8 * f, 110, 200, rng))]
              for f in range(80)]
    ids = run(Tracker(), frames, rng)
    assert len(ids["a"]) == 1 and len(ids["b"]) == 1 and ids["a"] != ids["b"], ids


def test_a_hidden_person_keeps_the_id_within_the_track_life_time():
    """Person c is hidden for 15 frames while walking on; they come back as c while the track lives (max_age 30),
    and as a new track after a longer absence (max_age 10). Person d, standing, is never confused with c."""
    def frames(hidden: range) -> list:
        rng = np.random.default_rng(2)
        return [[("d", person(500, 80, 240, rng))]
                + ([] if f in hidden else [("c", person(60 + 5 * f, 100, 220, rng))]) for f in range(60)]

    rng = np.random.default_rng(3)
    ids = run(Tracker(max_age=30), frames(range(20, 35)), rng)
    assert len(ids["c"]) == 1 and len(ids["d"]) == 1 and ids["c"] != ids["d"], ids
    ids = run(Tracker(max_age=10), frames(range(20, 35)), rng)
    assert len(ids["c"]) == 2 and len(ids["d"]) == 1, ids


def test_a_new_person_gets_a_new_id():
    rng = np.random.default_rng(4)
    tracker = Tracker()
    assert tracker.update(0, [person(0, 0, 200, rng)]) == [0]
    assert tracker.update(1, [person(400, 0, 200, rng), person(1, 0, 200, rng)]) == [1, 0]
    assert tracker.update(2, []) == []


def _filtered(f: OneEuroFilter, xs: np.ndarray) -> np.ndarray:
    return np.array([f(x, i / FPS) for i, x in enumerate(xs)])


def test_one_euro_reduces_jitter_7x_and_lags_a_walk_by_under_2_frames():
    """Defaults of PersonSmoother (min_cutoff 1 Hz, beta 1) at 30 fps. Still, with 1 cm noise: the mean
    frame-to-frame change drops 7.2x (bound 5x). A clean walk at 1 m/s: the output trails by 4.7 cm = 1.4 frames
    (bound 2 frames)."""
    rng = np.random.default_rng(0)
    noisy = rng.normal(0, 0.01, (300, 3))
    out = _filtered(OneEuroFilter(1.0, 1.0), noisy)
    jitter = np.abs(np.diff(noisy[30:], axis=0)).mean() / np.abs(np.diff(out[30:], axis=0)).mean()
    assert jitter >= 5, jitter
    walk = np.c_[np.arange(300) / FPS, np.zeros(300), np.zeros(300)]
    lag = (walk - _filtered(OneEuroFilter(1.0, 1.0), walk))[30:, 0]
    assert 0 < lag.max() <= 2 / FPS, lag.max() * FPS  # metres at 1 m/s = seconds
    with pytest.raises(ValueError, match="must increase"):
        f = OneEuroFilter()
        f(np.zeros(2), 1.0)
        f(np.zeros(2), 1.0)


def _prediction(pose: np.ndarray, trans: np.ndarray, princpt: np.ndarray) -> PersonPrediction:
    return PersonPrediction(0, np.zeros(4, np.float32), np.zeros((6890, 3), np.float32),
                            np.tile(trans, (30, 1)).astype(np.float32), np.zeros((30, 2), np.float32),
                            pose.astype(np.float32), np.zeros(10, np.float32), trans.astype(np.float32), 5000.0,
                            princpt.astype(np.float32), np.zeros((17, 3), np.float32), np.zeros(15, np.float32))


def test_person_smoother_handles_quaternion_signs_and_moving_crop_cameras():
    pose = np.random.default_rng(0).normal(0, 0.5, 72)
    np.testing.assert_allclose(axis_angles(quaternions(pose)), pose, atol=1e-6)
    smoother = PersonSmoother()
    near_pi = np.zeros(72)
    for k in range(30):  # a root rotation about x swinging across pi, where axis-angle and q flip sign
        near_pi[:3] = [np.pi - 0.05 + 0.1 * (k % 2), 0, 0]
        if near_pi[0] > np.pi:
            near_pi[:3] = [-(2 * np.pi - near_pi[0]), 0, 0]
        out = smoother(_prediction(near_pi, np.r_[0, 0, 10.0], np.r_[300.0, 200]), k / FPS)
    angle = np.linalg.norm(out.smpl_pose[:3])
    assert abs(angle - np.pi) < 0.06, "averaging q with -q would collapse the rotation towards identity"

    # a still person whose crop box (and so camera) moves: their position in the image must not change
    smoother = PersonSmoother()
    for k in range(20):
        princpt = np.r_[300.0 + 10 * k, 200.0]
        trans = np.r_[(640 - princpt[0]) * 10 / 5000, 0, 10.0]  # always at image x = 640
        out = smoother(_prediction(np.zeros(72), trans, princpt), k / FPS)
        x_image = out.cam_trans[0] / out.cam_trans[2] * 5000 + out.princpt[0]
        assert x_image == pytest.approx(640, abs=0.5), k
