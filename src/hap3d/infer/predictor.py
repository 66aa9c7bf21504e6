"""Inference on full images: crop each person from their 2D keypoints, run the network in batches, and return
meshes and parameters in the original image's camera frame.

The network predicts in a virtual 256x256 crop camera (f = 5000 px). As in the reference demo's render mode,
the depth is rescaled by 256 / sqrt(box_w * box_h) so that a camera with f = 5000 px and its principal point at
the crop-box centre reproduces the person at their place in the full image.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from hap3d.body.joints import convert_joints
from hap3d.data.transforms import apply_affine, crop_image, inside_mask, joints_bbox, process_bbox, to_heatmap_space
from hap3d.infer.keypoints import coco19_from_coco17
from hap3d.model.hap import HapModel
from hap3d.model.runtime import prepare_for_inference
from hap3d.precision import autocast, check_amp

log = logging.getLogger(__name__)
CONF_THR = 0.1  # the reference demo's keypoint threshold
MIN_TOTAL_SCORE = 1.0
DUPLICATE_PX = 20.0


@dataclass
class PersonPrediction:
    """One person's result. Lengths in metres, angles in radians, pixels in the original image."""

    person_index: int
    bbox: np.ndarray  # (4,) crop box xywh in the image
    vertices: np.ndarray  # (6890, 3) camera frame of the image (f = focal, principal point = bbox centre)
    joints3d: np.ndarray  # (30, 3) SMPL30 joints in the same frame
    joints2d: np.ndarray  # (30, 2) their projection into the image
    smpl_pose: np.ndarray  # (72,) axis-angle
    smpl_shape: np.ndarray  # (10,)
    cam_trans: np.ndarray  # (3,) translation of the body model in that frame
    focal: float
    princpt: np.ndarray  # (2,)
    input_keypoints: np.ndarray  # (17, 3) the COCO keypoints used
    joint_score: np.ndarray  # (15,) PositionNet confidences
    track_id: int = -1  # in a video: the person's track (hap3d.infer.track), else -1


@dataclass
class ImagePrediction:
    people: list[PersonPrediction] = field(default_factory=list)
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (person index, reason)


@dataclass
class PreparedPerson:
    index: int
    img: np.ndarray  # (3, 256, 256) float32 [0, 1]
    joints: np.ndarray  # (30, 3) 64-space
    mask: np.ndarray  # (30, 1)
    bbox: np.ndarray
    keypoints: np.ndarray


class Predictor:
    """Run a :class:`HapModel` on images with 2D keypoints (the Python API behind ``hap3d demo``)."""

    def __init__(
        self, model: HapModel, device: str | torch.device = "cpu", amp: str = "auto", batch_size: int = 16,
        runtime: str = "auto",
    ) -> None:
        """``amp='auto'`` uses bf16 autocast where the hardware runs it natively (see tests/test_model.py for
        the tolerance it keeps against fp32) and fp32 elsewhere. ``batch_size``: crops per model forward.
        ``runtime``: how the network runs (hap3d.model.runtime: 'auto' is the fast CPU path or $HAP3D_RUNTIME)."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be a positive number of crops per forward, got {batch_size}")
        self.device = torch.device(device)
        self.model = prepare_for_inference(model.to(self.device), runtime, self.device.type)
        self.amp = check_amp(amp, self.device.type)
        self.batch_size = batch_size
        self.faces: np.ndarray = self.model.smpl.faces.cpu().numpy()  # (F, 3), once: every render and export uses it

    def prepare(
        self, image_rgb: np.ndarray, people: list[np.ndarray]
    ) -> tuple[list[PreparedPerson], list[tuple[int, str]]]:
        """Filter and crop people as the reference demo does; every skipped person comes with its reason."""
        h, w = image_rgb.shape[:2]
        img = image_rgb.astype(np.float32)
        kept, skipped, accepted = [], [], []
        for i, kp in enumerate(people):
            j19 = coco19_from_coco17(kp)
            valid = (j19[:, 2] > CONF_THR).astype(np.float32)
            if j19[:, 2].sum() < MIN_TOTAL_SCORE:
                skipped.append((i, f"total keypoint score below {MIN_TOTAL_SCORE}"))
                continue
            if not valid.any():
                skipped.append((i, f"no keypoint above confidence {CONF_THR}"))
                continue
            if any(self._duplicate(j19, other) for other in accepted):
                skipped.append((i, f"duplicate of an earlier person (mean keypoint distance < {DUPLICATE_PX} px)"))
                continue
            box = joints_bbox(j19[:, :2], valid)
            if box[2] * box[3] <= 0:  # process_bbox would drop it too, but not because it is outside the image
                skipped.append((i, f"too few valid keypoints to make a box (those above {CONF_THR} span no area)"))
                continue
            bbox = process_bbox(box, w, h)
            if bbox is None:
                skipped.append((i, "the keypoints' box lies outside the image"))
                continue
            crop = crop_image(img, bbox)
            j30 = convert_joints(j19, "coco19", "smpl30")
            j30[:, :2] = to_heatmap_space(apply_affine(j30[:, :2], crop.img2bb))
            mask = (j30[:, 2:] > CONF_THR).astype(np.float32) * inside_mask(j30, use_depth=False)
            if not mask.any():
                skipped.append((i, "all confident keypoints fall outside the person crop"))
                continue
            accepted.append(j19)
            img_chw = np.ascontiguousarray(crop.img.transpose(2, 0, 1)) / np.float32(255)
            kept.append(PreparedPerson(i, img_chw, j30, mask, bbox, np.asarray(kp, np.float32)[:17, :3]))
        return kept, skipped

    @staticmethod
    def _duplicate(a: np.ndarray, b: np.ndarray) -> bool:
        """The demo's test: mean |dxy| over joints confident in both (exact zeros dropped) below 20 px."""
        both = ((a[:, 2] > CONF_THR) & (b[:, 2] > CONF_THR))[:, None]
        diff = np.abs(a[:, :2] - b[:, :2]) * both
        diff = diff[diff != 0]
        return diff.size == 0 or diff.mean() < DUPLICATE_PX

    @torch.no_grad()
    def run_prepared(self, prepared: list[PreparedPerson]) -> list[PersonPrediction]:
        """Batched forward over prepared crops (from one or many images)."""
        out: list[PersonPrediction] = []
        cfg = self.model.cfg
        for start in range(0, len(prepared), self.batch_size):
            chunk = prepared[start : start + self.batch_size]
            img = torch.from_numpy(np.stack([p.img for p in chunk])).to(self.device)
            joints = torch.from_numpy(np.stack([p.joints for p in chunk])).to(self.device)
            mask = torch.from_numpy(np.stack([p.mask for p in chunk])).to(self.device)
            with autocast(self.device.type, self.amp):
                pred = self.model(img, joints, mask)
            pred = {k: v.float().cpu().numpy() for k, v in pred.items()}
            for b, p in enumerate(chunk):
                scale = cfg.img_size / np.sqrt(p.bbox[2] * p.bbox[3])
                trans = pred["cam_trans"][b].copy()
                trans_img = trans.copy()
                trans_img[2] = trans[2] * scale
                shift = trans_img - trans
                verts = pred["mesh_cam_render"][b] + shift
                j3d = pred["joint_cam"][b] + (pred["mesh_cam_render"][b] - pred["smpl_mesh_cam"][b])[0] + shift
                princpt = np.array([p.bbox[0] + p.bbox[2] / 2, p.bbox[1] + p.bbox[3] / 2], np.float32)
                j2d = j3d[:, :2] / j3d[:, 2:] * cfg.focal + princpt
                out.append(PersonPrediction(
                    p.index, p.bbox, verts.astype(np.float32), j3d.astype(np.float32), j2d.astype(np.float32),
                    pred["smpl_pose"][b], pred["smpl_shape"][b], trans_img.astype(np.float32), cfg.focal, princpt,
                    p.keypoints, pred["joint_score"][b, :, 0],
                ))
        return out

    @torch.no_grad()
    def repose(self, person: PersonPrediction) -> PersonPrediction:
        """``person`` with ``vertices`` from its SMPL parameters (as the network's mesh is made) and ``joints2d``
        from its ``joints3d``: for parameters changed afterwards, e.g. filtered over time."""
        def tensor(x: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(np.asarray(x, np.float32)[None], device=self.device)

        verts = self.model.smpl(tensor(person.smpl_pose), tensor(person.smpl_shape), tensor(person.cam_trans))
        j2d = person.joints3d[:, :2] / person.joints3d[:, 2:] * person.focal + person.princpt
        return replace(person, vertices=verts.vertices[0].cpu().numpy().astype(np.float32),
                       joints2d=j2d.astype(np.float32))

    def predict(self, image_rgb: np.ndarray, people: list[np.ndarray]) -> ImagePrediction:
        prepared, skipped = self.prepare(image_rgb, people)
        return ImagePrediction(self.run_prepared(prepared), skipped)


def load_predictor_model(ckpt: str | Path | None, body_model_dir: str | Path, random_weights: bool = False) -> HapModel:
    """A model from any full checkpoint, or randomly initialised (for pipeline tests) with a warning."""
    from hap3d.config import ModelConfig
    from hap3d.model import build_model
    from hap3d.model.checkpoint import infer_model_config, load_model_checkpoint, read_checkpoint

    if random_weights:
        log.warning("using RANDOM weights: the meshes are meaningless (pipeline test only)")
        return build_model(ModelConfig(), body_model_dir)
    if ckpt is None:
        raise ValueError("a checkpoint is required (or random_weights=True)")
    model = build_model(infer_model_config(read_checkpoint(ckpt)), body_model_dir, vposer_dir=False)
    load_model_checkpoint(model, ckpt)
    return model
