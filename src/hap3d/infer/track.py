"""People tracked across video frames from their 2D keypoints, so each keeps one id (and one colour).

Each track remembers its last box and keypoints and a smoothed velocity of its box centre. In a new frame every
track is moved on by its velocity, compared with every person (box overlap and keypoint similarity, averaged),
and tracks and people are paired by the Hungarian method; a pair less similar than ``min_similarity`` is no
match. A person without a match starts a new track. A track not seen for more than ``max_age`` frames ends, so a
person hidden for fewer frames keeps their id when they come back near where their motion was heading. The
velocity is what keeps two people who cross apart: at the crossing their boxes overlap, but each track expects
its person on their own side.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from hap3d.infer.detect import keypoint_similarity

CONFIDENT = 0.3  # keypoints above this score make the box
VELOCITY_MEMORY = 0.5  # weight of the previous velocity in its running average


def keypoint_box(person: np.ndarray) -> np.ndarray:
    """(x0, y0, x1, y1) of a (17, 3) person's confident keypoints (all of them when none is confident)."""
    pts = person[person[:, 2] > CONFIDENT, :2]
    pts = pts if len(pts) else person[:, :2]
    return np.r_[pts.min(0), pts.max(0)].astype(np.float64)


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(w, 0.0) * max(h, 0.0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


@dataclass
class Track:
    id: int
    keypoints: np.ndarray  # (17, 3) when last seen
    frame: int  # when last seen
    velocity: np.ndarray  # (2,) box-centre pixels per frame

    def predicted(self, frame: int) -> np.ndarray:
        """The keypoints moved on by the velocity to ``frame``."""
        moved = self.keypoints.copy()
        moved[:, :2] += self.velocity * (frame - self.frame)
        return moved


class Tracker:
    """Assigns a stable id to each person of each frame; call :meth:`update` with frames in increasing order."""

    def __init__(self, max_age: int = 30, min_similarity: float = 0.1) -> None:
        if max_age < 0:
            raise ValueError(f"max_age must be >= 0 frames, got {max_age}")
        self.max_age = max_age
        self.min_similarity = min_similarity
        self.tracks: list[Track] = []
        self._next_id = 0

    def similarity(self, track: Track, person: np.ndarray, frame: int) -> float:
        """Mean of box IoU and keypoint similarity between the track, moved on to ``frame``, and the person."""
        expected = track.predicted(frame)
        return 0.5 * (box_iou(keypoint_box(expected), keypoint_box(person))
                      + keypoint_similarity(expected, person, CONFIDENT))

    def update(self, frame: int, people: list[np.ndarray]) -> list[int]:
        """The track id of each (17, 3) person in ``frame``, in order; new people get new ids."""
        self.tracks = [t for t in self.tracks if frame - t.frame <= self.max_age]
        ids = [-1] * len(people)
        if self.tracks and people:
            sim = np.array([[self.similarity(t, p, frame) for p in people] for t in self.tracks])
            for ti, pi in zip(*linear_sum_assignment(-sim)):
                if sim[ti, pi] >= self.min_similarity:
                    ids[pi] = self.tracks[ti].id
                    self._move(self.tracks[ti], np.asarray(people[pi], np.float64), frame)
        for pi, person in enumerate(people):
            if ids[pi] < 0:
                ids[pi] = self._next_id
                self.tracks.append(Track(self._next_id, np.asarray(person, np.float64), frame, np.zeros(2)))
                self._next_id += 1
        return ids

    @staticmethod
    def _move(track: Track, person: np.ndarray, frame: int) -> None:
        step = (_centre(person) - _centre(track.keypoints)) / max(frame - track.frame, 1)
        track.velocity = VELOCITY_MEMORY * track.velocity + (1 - VELOCITY_MEMORY) * step
        track.keypoints, track.frame = person, frame


def _centre(person: np.ndarray) -> np.ndarray:
    box = keypoint_box(person)
    return (box[:2] + box[2:]) / 2
