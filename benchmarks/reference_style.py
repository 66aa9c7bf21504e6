"""The reference's per-sample data work, transcribed plainly from its code, as a same-machine baseline.

The reference cannot be installed here (chumpy, torchgeometry, CUDA), so its data pipeline is measured through a
transcription of what it does per sample, in the same process as ours:

* decode: the whole frame converted to float32 RGB;
* crop: the whole float frame flipped (when the augmentation flips) and warped;
* SMPL fit: a full 6890-vertex SMPL forward (``bench_data.FullMeshFitModel``);
* PoseFix: the reference's ``replace_joint_img`` (common/utils/posefix.py) step by step, one joint after the other,
  every point of every ring simulated.

The PoseFix transcription doubles as the test oracle of ``hap3d.data.posefix`` (tests/test_posefix.py compares
the two outcome distributions), so this baseline is the same computation as ours, only organised like the
reference's.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from hap3d.data.posefix import PARTNER, crop_box_area, oks_radius, type_probabilities
from hap3d.data.transforms import INPUT_SIZE, NO_AUGMENTATION, Augmentation, Crop, crop_affine


def decode(path) -> np.ndarray:
    """The frame as float32 RGB, returned as 'BGR' for the crop below (which takes it whole)."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    return img.astype(np.float32)


def crop(img: np.ndarray, bbox: np.ndarray, aug: Augmentation = NO_AUGMENTATION, out_size: int = INPUT_SIZE,
         bgr: bool = False) -> Crop:
    """Flip and channel-swap the whole float frame, then warp it."""
    h, w = img.shape[:2]
    frame = img[:, :, ::-1] if bgr else img
    cx, cy = float(bbox[0] + 0.5 * bbox[2]), float(bbox[1] + 0.5 * bbox[3])
    if aug.flip:
        frame = frame[:, ::-1]
        cx = w - cx - 1
    size = (float(bbox[2]), float(bbox[3]))
    fwd = crop_affine((cx, cy), size, aug.scale, aug.rot, out_size)
    inv = crop_affine((cx, cy), size, aug.scale, aug.rot, out_size, inverse=True)
    patch = cv2.warpAffine(np.ascontiguousarray(frame, dtype=np.float32), fwd, (out_size, out_size),
                           flags=cv2.INTER_LINEAR)
    if aug.color != (1.0, 1.0, 1.0):
        patch = np.clip(patch * np.asarray(aug.color, dtype=np.float64)[None, None], 0, 255).astype(np.float32)
    return Crop(patch, fwd, inv)


def posefix_joint(j: int, joints: np.ndarray, near: np.ndarray, area: float, num_overlap: int,
                  rng: np.random.Generator, quirks: bool, partner_xy: np.ndarray | None = None) -> np.ndarray:
    """The reference's PoseFix for one joint, every ring point simulated; returns (x, y, valid).

    Candidates in the reference's order [gt, swap..., inv?, swap-inv...]; per error type, points drawn on a ring
    around its source candidate(s) and kept when clear of the other candidates (hap3d.data.posefix's docstring
    gives the radii and tests); the types with survivors keep their table probability, renormalised; one type is
    drawn, then one of its survivors. ``partner_xy`` is the inv candidate (default: the partner's ground truth)."""
    d85, d50, d10 = (oks_radius(ks, area)[j] for ks in (0.85, 0.5, 0.1))
    prior = type_probabilities(int((joints[:, 2] > 0).sum()), num_overlap)[j]
    p = PARTNER[j]
    has_inv = p >= 0 and joints[p, 2] > 0
    swap = near[near[:, j, 2] > 0, j, :2]
    inv = (joints[p, :2] if partner_xy is None else partner_xy).reshape(1, 2) if has_inv else np.empty((0, 2))
    swap_inv = near[near[:, p, 2] > 0, p, :2] if p >= 0 else np.empty((0, 2))
    cands = np.concatenate([joints[[j], :2], swap, inv, swap_inv])
    inv_idx = 1 + len(swap)

    def ring(src: int, n: int, lo: float, hi: float, refs: list[int], clearance: float | None = None) -> np.ndarray:
        """Points around cands[src] farther than clearance (default: their own radius) from every reference."""
        angle, r = rng.uniform(0, 2 * np.pi, n), rng.uniform(lo, hi, n)
        pts = cands[src] + r[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1)
        dist2 = (pts[:, 0, None] - cands[refs, 0]) ** 2 + (pts[:, 1, None] - cands[refs, 1]) ** 2
        return pts[(dist2 > ((r if clearance is None else np.full(n, clearance)) ** 2)[:, None]).all(axis=1)]

    def others(i: int) -> list[int]:
        return [k for k in range(len(cands)) if k != i]

    miss = [ring(m, 2000, d50, d10, others(m), clearance=d50) for m in range(len(cands))]
    miss = [miss[0]] + [pts[rng.integers(0, len(pts), len(pts) // 4)] for pts in miss[1:] if len(pts)]
    skip = inv_idx if (has_inv or quirks) and inv_idx < len(cands) else None  # docs/reference-differences.md R28
    refs = [0] + ([skip] if skip is not None else [])
    pools = [
        ring(0, 500, d85, d50, others(0)),
        np.concatenate(miss),
        ring(inv_idx, 500, 0, d50, others(inv_idx)) if has_inv else np.empty((0, 2)),
        np.concatenate([ring(i, 500, 0, d50, refs) for i in range(1, len(cands)) if i != skip] + [np.empty((0, 2))]),
        ring(0, 125, 0, d85, others(0)),
    ]
    weight = prior * np.array([len(pool) > 0 for pool in pools])
    if weight.sum() == 0:
        return np.zeros(3)
    pool = pools[rng.choice(5, p=weight / weight.sum())]
    return np.array([*pool[rng.integers(len(pool))], 1.0])


def posefix(coco_joints: np.ndarray, tight_bbox_xywh: Sequence[float], near_joints: np.ndarray, num_overlap: int,
            img2bb_trans: np.ndarray, rng: np.random.Generator, reference_quirks: bool = True) -> np.ndarray:
    """Drop-in for ``hap3d.data.posefix.synthesize_pose``: joints 0..16 in turn, the pose updated in place."""
    joints = np.asarray(coco_joints, dtype=np.float64)[:17]
    near = np.asarray(near_joints, dtype=np.float64)[:, :17]
    area = crop_box_area(tight_bbox_xywh, img2bb_trans)
    out = joints.copy()
    for j in range(17):
        source = out if reference_quirks else joints  # docs/reference-differences.md R27: corrupted partner
        partner = source[PARTNER[j], :2] if PARTNER[j] >= 0 else None
        out[j] = posefix_joint(j, joints, near, area, num_overlap, rng, reference_quirks, partner)
    return out.astype(np.float32)
