"""MSCOCO, MPII and CrowdPose readers: filters, the sample contract, and the reference-compat differences; data check.

The reader tests write their own tiny annotation files (exact control of what each filter must drop); the
data-check test also runs on the project's synthetic data root when its writer is available.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from hap3d.body.joints import CROWDPOSE_REFERENCE_FLIP_PAIRS, get_joint_set
from hap3d.cli.data import cmd_data_check, format_data_report
from hap3d.data import DATASETS
from hap3d.data.base import PackedRecords
from hap3d.data.check import TRAIN_SHAPES, _check_sample, check_data_root
from hap3d.data.coco import MSCOCO
from hap3d.data.crowdpose import CrowdPose
from hap3d.data.io import DataError
from hap3d.data.mpii import MPII
from hap3d.data.transforms import Augmentation

MPII16 = ("R_Ankle", "R_Knee", "R_Hip", "L_Hip", "L_Knee", "L_Ankle", "Pelvis", "Thorax", "Neck", "Head_top",
          "R_Wrist", "R_Elbow", "R_Shoulder", "L_Shoulder", "L_Elbow", "L_Wrist")
CROWDPOSE14 = ("L_Shoulder", "R_Shoulder", "L_Elbow", "R_Elbow", "L_Wrist", "R_Wrist", "L_Hip", "R_Hip", "L_Knee",
               "R_Knee", "L_Ankle", "R_Ankle", "Head_top", "Neck")
# A standing person facing the camera, in box-normalised coordinates (u right, v down).
TEMPLATE = {
    "Head_top": (0.5, 0.0), "Neck": (0.5, 0.15), "Thorax": (0.5, 0.2), "R_Shoulder": (0.3, 0.2),
    "L_Shoulder": (0.7, 0.2), "R_Elbow": (0.2, 0.35), "L_Elbow": (0.8, 0.35), "R_Wrist": (0.15, 0.5),
    "L_Wrist": (0.85, 0.5), "Pelvis": (0.5, 0.5), "R_Hip": (0.4, 0.5), "L_Hip": (0.6, 0.5), "R_Knee": (0.4, 0.75),
    "L_Knee": (0.6, 0.75), "R_Ankle": (0.4, 1.0), "L_Ankle": (0.6, 1.0),
}
SMPL30 = get_joint_set("smpl30").joints


def keypoints(
    names: tuple[str, ...], box: tuple[float, float, float, float], flag: int = 2, invisible: tuple[str, ...] = ()
) -> list[float]:
    x, y, w, h = box
    out = []
    for n in names:
        u, v = TEMPLATE[n]
        out += [0.0, 0.0, 0] if n in invisible else [x + u * w, y + v * h, flag]
    return out


def neuralannot(width: int, height: int, fit_err: float | None = None) -> dict:
    entry = {
        "smpl_param": {"pose": [math.pi, 0.0, 0.0] + [0.0] * 69, "shape": [0.0] * 10, "trans": [0.0, 0.2, 5.0]},
        "cam_param": {"focal": [500.0, 500.0], "princpt": [width / 2, height / 2]},
    }
    if fit_err is not None:
        entry["fit_err"] = fit_err
    return entry


def write_image(path: Path, width: int, height: int, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    assert cv2.imwrite(str(path), img)


def write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def write_mpii(root: Path) -> Path:
    """mpii/data/ (the lowercase tree; returned, it is the reader's folder): image 1 holds two overlapping
    people (10 with a fit, 11 without), image 2 one degenerate box (12, dropped) and one person with a fit (13):
    3 samples."""
    folder = root / "mpii" / "data"
    write_image(folder / "images" / "a.jpg", 320, 240, 0)
    write_image(folder / "images" / "b.jpg", 256, 256, 1)
    box_a, box_b, box_c = (100, 30, 80, 180), (130, 40, 80, 180), (80, 40, 90, 190)
    db = {
        "images": [
            {"id": 1, "file_name": "images/a.jpg", "width": 320, "height": 240},
            {"id": 2, "file_name": "images/b.jpg", "width": 256, "height": 256},
        ],
        "annotations": [
            {"id": 10, "image_id": 1, "bbox": box_a, "keypoints": keypoints(MPII16, box_a)},
            {"id": 11, "image_id": 1, "bbox": box_b,
             "keypoints": keypoints(MPII16, box_b, flag=1, invisible=("L_Wrist",))},
            {"id": 12, "image_id": 2, "bbox": [10, 10, 0, 50], "keypoints": keypoints(MPII16, (10, 10, 0, 50))},
            {"id": 13, "image_id": 2, "bbox": box_c, "keypoints": keypoints(MPII16, box_c)},
        ],
    }
    write_json(folder / "annotations" / "train.json", db)
    write_json(folder / "annotations" / "MPII_train_SMPL_NeuralAnnot.json",
               {"10": neuralannot(320, 240), "13": neuralannot(256, 256)})
    return folder


def write_crowdpose(root: Path) -> Path:
    """CrowdPose/: image 1 (320x240, sizes written correctly) holds 20 (fit_err 2), 21 (fit_err 8, overlaps 20)
    and 22 (all-zero keypoints, dropped); image 2 (square) holds 23 without a fit: 3 samples."""
    folder = root / "CrowdPose"
    write_image(folder / "images" / "100.jpg", 320, 240, 2)
    write_image(folder / "images" / "200.jpg", 256, 256, 3)
    box_a, box_b, box_c = (100, 30, 80, 180), (125, 35, 80, 180), (70, 40, 100, 180)
    db = {
        "images": [
            {"id": 100, "file_name": "100.jpg", "width": 320, "height": 240},
            {"id": 200, "file_name": "200.jpg", "width": 256, "height": 256},
        ],
        "annotations": [
            {"id": 20, "image_id": 100, "bbox": box_a, "keypoints": keypoints(CROWDPOSE14, box_a)},
            {"id": 21, "image_id": 100, "bbox": box_b,
             "keypoints": keypoints(CROWDPOSE14, box_b, invisible=("R_Hip",))},
            {"id": 22, "image_id": 100, "bbox": [20, 20, 40, 60], "keypoints": [0] * 42},
            {"id": 23, "image_id": 200, "bbox": box_c, "keypoints": keypoints(CROWDPOSE14, box_c)},
        ],
    }
    write_json(folder / "annotations" / "crowdpose_train.json", db)
    write_json(folder / "annotations" / "CrowdPose_train_SMPL_NeuralAnnot.json",
               {"20": neuralannot(320, 240, 2.0), "21": neuralannot(320, 240, 8.0), "22": neuralannot(320, 240, 1.0)})
    return folder


COCO17 = ("Nose", "L_Eye", "R_Eye", "L_Ear", "R_Ear", "L_Shoulder", "R_Shoulder", "L_Elbow", "R_Elbow", "L_Wrist",
          "R_Wrist", "L_Hip", "R_Hip", "L_Knee", "R_Knee", "L_Ankle", "R_Ankle")
FACE = {"Nose": (0.5, 0.05), "L_Eye": (0.55, 0.03), "R_Eye": (0.45, 0.03), "L_Ear": (0.6, 0.05), "R_Ear": (0.4, 0.05)}


def write_coco(root: Path) -> Path:
    """coco/: image 1 holds 30 (fit) and 31 (no fit, overlaps 30), a crowd region 32 and 33 with no labelled
    keypoint (both dropped); the NeuralAnnot file sits directly under coco/ (the HAP README's place): 2 samples."""
    folder = root / "coco"
    write_image(folder / "images" / "train2017" / "000001.jpg", 320, 240, 4)
    box_a, box_b = (100, 30, 80, 180), (125, 35, 80, 180)
    TEMPLATE.update(FACE)
    db = {
        "images": [{"id": 1, "file_name": "000001.jpg", "width": 320, "height": 240}],
        "annotations": [
            {"id": 30, "image_id": 1, "bbox": box_a, "keypoints": keypoints(COCO17, box_a), "num_keypoints": 17,
             "iscrowd": 0},
            {"id": 31, "image_id": 1, "bbox": box_b, "keypoints": keypoints(COCO17, box_b), "num_keypoints": 17,
             "iscrowd": 0},
            {"id": 32, "image_id": 1, "bbox": [0, 0, 50, 50], "keypoints": [0] * 51, "num_keypoints": 0, "iscrowd": 1},
            {"id": 33, "image_id": 1, "bbox": [0, 0, 50, 50], "keypoints": [0] * 51, "num_keypoints": 0, "iscrowd": 0},
        ],
    }
    write_json(folder / "annotations" / "person_keypoints_train2017.json", db)
    write_json(folder / "MSCOCO_train_SMPL_NeuralAnnot.json", {"30": neuralannot(320, 240)})
    return folder


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data2d")
    write_mpii(root)
    write_crowdpose(root)
    return root


@pytest.fixture(scope="module")
def coco_folder(tmp_path_factory) -> Path:
    return write_coco(tmp_path_factory.mktemp("coco"))


def force_augmentation(monkeypatch, aug: Augmentation) -> None:
    monkeypatch.setattr("hap3d.data.base.sample_augmentation", lambda rng, *a, **k: aug)


# ----------------------------------------------------------------------------------------------- MSCOCO
def test_coco_records(coco_folder, fit_model):
    coco = MSCOCO(coco_folder, fit_model)
    assert coco.filter_counts == {"annotations": 4, "crowd": 1, "no_keypoints": 1, "degenerate_bbox": 0, "kept": 2,
                                  "kept_without_fit": 1, "fit_non_finite": 0}
    assert isinstance(coco.records, PackedRecords)
    a, b = coco.records
    assert a.img_path == coco_folder / "images" / "train2017" / "000001.jpg" and a.img_size == (240, 320)
    # a fit brings its camera; a person without one has none (per record, in one column store)
    assert a.fit is not None and a.focal.tolist() == [500.0, 500.0] and a.princpt.tolist() == [160.0, 120.0]
    assert b.fit is None and b.focal is None and b.princpt is None
    assert a.joints.shape == (18, 3)  # + mid-hip pelvis
    np.testing.assert_allclose(a.joints[17, :2], (a.joints[11, :2] + a.joints[12, :2]) / 2)
    assert len(a.near_joints) == len(b.near_joints) == 1 and a.near_joints[0].shape == (17, 3)
    np.testing.assert_array_equal(a.near_joints[0], b.joints[:17])
    sample = coco[0]
    assert _check_sample(sample, TRAIN_SHAPES) == [] and float(sample["meta"]["is_valid_fit"]) == 1.0
    assert float(coco[1]["meta"]["is_valid_fit"]) == 0.0


def test_packed_records_concat_of_parts_with_and_without_cameras(coco_folder, fit_model):
    a, b = MSCOCO(coco_folder, fit_model).records
    both = PackedRecords.concat([PackedRecords([b]), PackedRecords([a]), PackedRecords([b])])
    assert [r.focal is None for r in both] == [True, False, True]
    np.testing.assert_array_equal(both[1].focal, a.focal)
    assert both[1].fit is not None and both[2].fit is None


def test_neuralannot_extra_field_must_be_a_number(data_root, fit_model, tmp_path):
    folder = tmp_path / "CrowdPose"
    shutil.copytree(data_root / "CrowdPose", folder)
    path = folder / "annotations" / "CrowdPose_train_SMPL_NeuralAnnot.json"
    fits = json.loads(path.read_text())
    fits["21"]["fit_err"] = "large"
    path.write_text(json.dumps(fits))
    with pytest.raises(DataError, match=r"CrowdPose_train_SMPL_NeuralAnnot.json: entry 21 field 'fit_err' is 'large' "
                                        r"\(a string\), expected a number"):
        CrowdPose(folder, fit_model)


@pytest.mark.parametrize("fit_err", [None, float("nan"), "missing"])
def test_neuralannot_fit_err_without_a_value_means_no_fit(data_root, fit_model, tmp_path, caplog, fit_err):
    """Like a non-finite pose: the person is kept without a fit and counted; the load goes on. An entry whose pose
    is already null may have a null fit_err too."""
    folder = tmp_path / "CrowdPose"
    shutil.copytree(data_root / "CrowdPose", folder)
    path = folder / "annotations" / "CrowdPose_train_SMPL_NeuralAnnot.json"
    fits = json.loads(path.read_text())
    if fit_err == "missing":
        del fits["20"]["fit_err"]
    else:
        fits["20"]["fit_err"] = fit_err
    fits["21"]["smpl_param"]["pose"][0] = None
    fits["21"]["fit_err"] = None
    path.write_text(json.dumps(fits))  # NaN is written as the bare NaN that Python's json (and the releases) read
    with caplog.at_level(logging.WARNING):
        ds = CrowdPose(folder, fit_model, reference_compat=False)
    assert [r.fit is not None for r in ds.records] == [False, False, False]
    assert ds.filter_counts["fit_non_finite"] == 2 and ds.filter_counts["fit_rejected"] == 0
    assert f"{path}: entry 20 has no finite 'fit_err'" in caplog.text


# ----------------------------------------------------------------------------------------------- MPII
def test_mpii_records(data_root, fit_model):
    ds = MPII(data_root / "mpii" / "data", fit_model)
    assert len(ds) == 3  # the degenerate box is dropped, nothing else is
    a, b, c = ds.records
    assert [r.fit is not None for r in ds.records] == [True, False, True]
    assert a.img_path == data_root / "mpii" / "data" / "images" / "a.jpg" and a.img_size == (240, 320)
    assert set(np.unique(b.valid)) == {0.0, 1.0} and b.valid[MPII16.index("L_Wrist"), 0] == 0  # flags 1/2 -> 1
    np.testing.assert_array_equal(b.joints[:, 2], b.valid[:, 0])
    # the overlapping neighbour, renamed to COCO17 (no MPII Thorax / Neck / Head_top there)
    assert len(a.near_joints) == 1 and len(b.near_joints) == 1 and c.near_joints == []
    coco = get_joint_set("coco17").joints
    np.testing.assert_array_equal(a.near_joints[0].shape, (17, 3))
    np.testing.assert_allclose(a.near_joints[0][coco.index("L_Shoulder")], b.joints[MPII16.index("L_Shoulder")])
    assert a.near_joints[0][coco.index("Nose"), 2] == 0
    assert ds.replace_idx == tuple(i for i, n in enumerate(MPII16) if n not in ("Thorax", "Neck", "Head_top"))


def test_mpii_sample_contract(data_root, fit_model):
    ds = MPII(data_root / "mpii" / "data", fit_model, strict=True)
    moved = 0
    for i, rec in enumerate(ds.records):
        s = ds[i]
        assert _check_sample(s, TRAIN_SHAPES) == []
        assert float(s["meta"]["is_3D"]) == 0.0
        assert float(s["meta"]["is_valid_fit"]) == float(rec.fit is not None)
        assert torch.count_nonzero(s["targets"]["orig_joint_cam"]) == 0
        j, gt = s["inputs"]["joints"], s["targets"]["orig_joint_img"][:, :2]
        for name in ("Neck", "Head_top", "Pelvis"):  # never corrupted by PoseFix
            assert torch.equal(j[SMPL30.index(name)], gt[SMPL30.index(name)])
        moved += int(not torch.equal(j[SMPL30.index("L_Knee")], gt[SMPL30.index("L_Knee")]))
    assert moved > 0  # PoseFix is active on the COCO joints


def test_mpii_compat_fit_is_absolute_and_unrotated(data_root, fit_model, monkeypatch):
    force_augmentation(monkeypatch, Augmentation(rot=30.0))
    compat = MPII(data_root / "mpii" / "data", fit_model, reference_compat=True)[0]
    fixed = MPII(data_root / "mpii" / "data", fit_model, reference_compat=False)[0]
    cam_c, cam_f = compat["targets"]["fit_joint_cam"], fixed["targets"]["fit_joint_cam"]
    assert cam_c[0, 2] > 4.0  # absolute: the pelvis sits ~5 m in front of the camera
    assert torch.allclose(cam_f[0], torch.zeros(3))  # root-relative
    # fixed rotates the root-relative joints by R_z(-30 deg); compat leaves them unrotated
    r = torch.from_numpy(np.float32([[math.cos(-math.pi / 6), -math.sin(-math.pi / 6), 0],
                                     [math.sin(-math.pi / 6), math.cos(-math.pi / 6), 0], [0, 0, 1]]))
    assert torch.allclose((cam_c - cam_c[:1]) @ r.T, cam_f, atol=1e-5)
    np.testing.assert_allclose(compat["targets"]["pose_param"][:3].numpy(), [math.pi, 0, 0], atol=1e-6)
    assert not torch.allclose(compat["targets"]["pose_param"][:3], fixed["targets"]["pose_param"][:3])
    assert torch.equal(compat["targets"]["fit_joint_img"], fixed["targets"]["fit_joint_img"])


# ------------------------------------------------------------------------------------------ CrowdPose
def test_crowdpose_records(data_root, fit_model):
    compat = CrowdPose(data_root / "CrowdPose", fit_model, reference_compat=True)
    fixed = CrowdPose(data_root / "CrowdPose", fit_model, reference_compat=False)
    assert len(compat) == len(fixed) == 3  # the all-zero annotation is dropped
    # fits: the reference keeps fit_err >= 5 (21), the fix keeps fit_err < 5 (20); 23 has none
    assert [r.fit is not None for r in compat.records] == [False, True, False]
    assert [r.fit is not None for r in fixed.records] == [True, False, False]
    assert compat.filter_counts == {"annotations": 4, "no_keypoints": 1, "degenerate_bbox": 0, "kept": 3,
                                    "kept_without_fit": 2, "fit_rejected": 1, "images_size_corrected": 0,
                                    "images_size_unchecked": 0, "fit_non_finite": 0}
    # the reference swaps the (correctly written) width and height
    assert fixed.records[0].img_size == (240, 320) and compat.records[0].img_size == (320, 240)
    a = fixed.records[1]
    assert a.joints.shape == (15, 3)
    np.testing.assert_allclose(a.joints[14, :2], (a.joints[6, :2] + a.joints[7, :2]) / 2)
    assert a.valid[14, 0] == 0 and a.valid[6, 0] == 1 and a.valid[7, 0] == 0  # pelvis validity = L_Hip and R_Hip
    assert len(a.near_joints) == 1 and a.near_joints[0].shape == (17, 3)
    assert compat.replace_idx == tuple(range(12)) + (14,)


def test_crowdpose_sizes_of_the_original_release(data_root, fit_model, tmp_path):
    """The file 3DCrowdNet used stored width/height reversed: the reference's swap undoes it, and fixed mode,
    which reads the sizes from the images, gets them right with either file version."""
    root = tmp_path / "CrowdPose"
    shutil.copytree(data_root / "CrowdPose", root)
    ann = root / "annotations" / "crowdpose_train.json"
    db = json.loads(ann.read_text())
    for img in db["images"]:
        img["width"], img["height"] = img["height"], img["width"]
    ann.write_text(json.dumps(db))
    compat = CrowdPose(root, fit_model, reference_compat=True)
    fixed = CrowdPose(root, fit_model, reference_compat=False)
    assert compat.records[0].img_size == fixed.records[0].img_size == (240, 320)
    assert fixed.filter_counts["images_size_corrected"] == 1  # the 320x240 image; the square one is unaffected
    (root / "images" / "100.jpg").unlink()  # unreadable: fall back to the annotation
    fallback = CrowdPose(root, fit_model, reference_compat=False)
    assert fallback.records[0].img_size == (320, 240) and fallback.filter_counts["images_size_unchecked"] == 1


def test_crowdpose_flip_pairs(data_root, fit_model, monkeypatch):
    compat = CrowdPose(data_root / "CrowdPose", fit_model, reference_compat=True)
    fixed = CrowdPose(data_root / "CrowdPose", fit_model, reference_compat=False)
    assert compat.flip_pairs == CROWDPOSE_REFERENCE_FLIP_PAIRS
    assert fixed.flip_pairs == ((0, 1), (2, 3), (4, 5), (6, 7), (8, 9), (10, 11))

    def joints_img(ds, flip: bool) -> torch.Tensor:
        force_augmentation(monkeypatch, Augmentation(flip=flip))
        return ds[2]["targets"]["orig_joint_img"]  # record 23: a square image, so the size swap is moot

    rs, ls, le = SMPL30.index("R_Shoulder"), SMPL30.index("L_Shoulder"), SMPL30.index("L_Elbow")
    for ds, source in ((fixed, ls), (compat, le)):  # compat: the elbow lands in the right-shoulder row
        plain, flipped = joints_img(ds, False), joints_img(ds, True)
        assert torch.allclose(flipped[rs, 0], 64 - plain[source, 0], atol=1e-3)
        assert torch.allclose(flipped[rs, 1], plain[source, 1], atol=1e-3)


def test_crowdpose_sample_contract(data_root, fit_model):
    ds = CrowdPose(data_root / "CrowdPose", fit_model, reference_compat=True, strict=True)
    for i, rec in enumerate(ds.records):
        s = ds[i]
        assert _check_sample(s, TRAIN_SHAPES) == []
        assert float(s["meta"]["is_valid_fit"]) == float(rec.fit is not None)
        j, gt = s["inputs"]["joints"], s["targets"]["orig_joint_img"][:, :2]
        for name in ("Neck", "Head_top", "Pelvis"):
            assert torch.equal(j[SMPL30.index(name)], gt[SMPL30.index(name)])
        if rec.fit is not None:  # CrowdPose's fit is rotated and root-relative in both modes
            assert torch.allclose(s["targets"]["fit_joint_cam"][0], torch.zeros(3))


# ------------------------------------------------------------------------------------------ data check
def test_check_hand_written_root(data_root, body_dir, capsys):
    report = check_data_root(data_root, ["MPII", "CrowdPose"], body_dir, spot_checks=2)
    assert report.exit_code == 0, format_data_report(report)
    by_name = {d.name: d for d in report.datasets}
    assert by_name["MPII"].samples == 3 and by_name["MPII"].with_fit == 2
    assert by_name["MPII"].filter_counts == {"annotations": 4, "degenerate_bbox": 1, "kept": 3, "kept_without_fit": 1,
                                             "fit_non_finite": 0}
    assert by_name["CrowdPose"].samples == 3 and by_name["CrowdPose"].spot_ok == 2
    # reference_compat swaps CrowdPose's (correct) sizes: the spot check notices on the non-square image
    assert any("320x240 (WxH), the reader uses 240x320" in w for w in by_name["CrowdPose"].warnings)

    assert cmd_data_check(data_root, body_dir, ["MPII"]) == 0
    assert "MPII" in capsys.readouterr().out


def test_check_reports_missing_and_malformed(data_root, body_dir, tmp_path):
    root = tmp_path / "root"
    shutil.copytree(data_root, root)
    fits = root / "mpii" / "data" / "annotations" / "MPII_train_SMPL_NeuralAnnot.json"
    fits.unlink()
    bad = root / "CrowdPose" / "annotations" / "crowdpose_train.json"
    bad.write_text('{"images": [')
    report = check_data_root(root, ["MPII", "CrowdPose"], body_dir)
    assert report.exit_code == 1
    text = format_data_report(report)
    assert f"missing: {fits}" in text
    assert f"malformed: {bad}" in text
    assert [d.status for d in report.datasets] == ["FAIL", "FAIL"]


def test_check_reports_missing_images(data_root, tmp_path):
    root = tmp_path / "root"
    shutil.copytree(data_root, root)
    (root / "CrowdPose" / "images" / "200.jpg").unlink()
    shutil.rmtree(root / "mpii" / "data" / "images")
    report = check_data_root(root, ["MPII", "CrowdPose"], None)
    mpii, crowdpose = report.datasets
    assert mpii.status == "FAIL" and mpii.errors[0].startswith("none of the images exist (checked 2 of 2 image files)")
    assert crowdpose.status == "FAIL" and (
        f"1 of 2 images are missing (checked 2 of 2 image files): {root}/CrowdPose/images/200.jpg."
        in crowdpose.errors[0]
    )


def test_check_unrequested_absent_dataset_does_not_fail(data_root, body_dir):
    report = check_data_root(data_root, ["CrowdPose"], None, spot_checks=1)
    assert report.exit_code == 0 and any("without SMPL-fit targets" in n for n in report.notes)
    missing = check_data_root(data_root, ["MSCOCO"], None)
    assert missing.exit_code == 1 and "dataset folder not found" in format_data_report(missing)


def test_check_synthetic_root(body_dir, tmp_path):
    """The project's synthetic data root: complete -> exit 0 with every annotation accounted for; CrowdPose's
    (release-style, reversed) image sizes are right in both modes; one file deleted -> exit 1, naming the path."""
    write = pytest.importorskip("hap3d.synth").write_synthetic_datasets
    written = write(tmp_path / "data", body_dir, size="tiny", seed=0)
    root = Path(written)
    # every dataset the writer produced whose reader exists in this tree
    names = [n for n, spec in DATASETS.items()
             if (root / spec.written).is_dir() and importlib.util.find_spec(spec.module)]
    assert {"MPII", "CrowdPose"} <= set(names)
    report = check_data_root(root, names, body_dir, spot_checks=2)
    assert report.exit_code == 0, format_data_report(report)
    assert all(d.samples and d.spot_ok == d.spot_total for d in report.datasets)
    by_name = {d.name: d for d in report.datasets}
    assert "PW3D-Crowd" in by_name  # the writer includes 3DPW-Crowd's files, so the check loads that set too
    for name in ("MPII", "CrowdPose"):
        assert by_name[name].filter_counts["annotations"] == written[name]
        assert by_name[name].samples == by_name[name].filter_counts["kept"]
    fixed = check_data_root(root, ["CrowdPose"], body_dir, spot_checks=3, reference_compat=False).datasets[0]
    assert fixed.status == "OK" and fixed.filter_counts["images_size_corrected"] > 0, fixed

    victim = root / "mpii" / "data" / "annotations" / "train.json"
    victim.unlink()
    report = check_data_root(root, names, body_dir, spot_checks=1)
    assert report.exit_code == 1 and f"missing: {victim}" in format_data_report(report)
