"""Malformed and degenerate input: every reader names the file, the record (with its list index) and the field;
null / NaN / inf never slip into arrays; a fit that cannot give targets is dropped (is_valid_fit = 0) and counted."""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import test_data_2d as d2
import test_data_3d as d3
import torch

from hap3d.data.check import TEST_SHAPES, TRAIN_SHAPES, _check_sample
from hap3d.data.fit import compute_fit_targets
from hap3d.data.human36m import Human36M
from hap3d.data.io import DataError, as_array, load_json, optional_number, require_int
from hap3d.data.mpii import MPII
from hap3d.data.muco import MuCo
from hap3d.data.pw3d import PW3D
from hap3d.data.transforms import Augmentation
from hap3d.synth import write_synthetic_datasets


@pytest.fixture(scope="module")
def written(tmp_path_factory, fit_model) -> Path:
    root = tmp_path_factory.mktemp("malformed")
    d2.write_mpii(root)
    d3.write_h36m(root, fit_model)
    d3.write_muco(root, fit_model)
    return root


def copy(written: Path, tmp_path: Path, rel: str) -> Path:
    shutil.copytree(written / rel, tmp_path / rel)
    return tmp_path / rel


def edit_json(path: Path, edit) -> None:
    obj = json.loads(path.read_text())
    edit(obj)
    path.write_text(json.dumps(obj))


# ------------------------------------------------------------------------------------------ helpers
def test_typed_helpers():
    rec = {"a": 5, "b": 5.0, "c": "5", "d": True, "e": None, "f": float("nan")}
    assert require_int(rec, "a", "f.json", "x") == 5 and require_int(rec, "b", "f.json", "x") == 5
    for key, shown in (("c", "'5' (a string)"), ("d", "True (a boolean)"), ("e", "None (null)")):
        with pytest.raises(DataError, match=re.escape(f"f.json: x field '{key}' is {shown}, expected an integer")):
            require_int(rec, key, "f.json", "x")
    assert optional_number(rec, "a", "f.json", "x") == 5.0
    assert [optional_number(rec, k, "f.json", "x") for k in ("e", "f", "missing")] == [None, None, None]
    for key, shown in (("c", "'5' (a string)"), ("d", "True (a boolean)")):
        with pytest.raises(DataError, match=re.escape(f"f.json: x field '{key}' is {shown}, expected a number")):
            optional_number(rec, key, "f.json", "x")
    with pytest.raises(DataError, match=r"f\.json: x is null, expected an object with field 'a'"):
        require_int(None, "a", "f.json", "x")
    with pytest.raises(DataError, match=r"f\.json: x has a null, NaN or infinite value at index \(1, 0\)"):
        as_array([[1, 2], [None, 3]], (2, 2), "f.json", "x")
    with pytest.raises(DataError, match=r"at index 2"):
        as_array([1, 2, float("inf")], (3,), "f.json", "x")
    assert np.isnan(as_array([1, None], (2,), "f.json", "x", finite=False)[1])  # callers that decide themselves


TRUNCATED = "the file ends early: it may be truncated (an interrupted download or copy?)"


def json_error(path: Path, content: str | bytes) -> str:
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(DataError) as err:
        load_json(path)
    return str(err.value)


def test_truncated_json_says_the_file_ends_early(tmp_path):
    """Wherever a download stops (inside a key, a string, a number, a literal, between tokens), the message keeps
    the file, line and column and says the file may be truncated."""
    path = tmp_path / "train.json"
    text = json.dumps({"images": [{"id": 1, "file_name": "a b.jpg", "width": 640.5, "crowd": True, "fit": None}],
                       "scale": -1e-05, "more": [{"flag": False}]}, indent=1)
    for cut in range(len(text)):
        message = json_error(path, text[:cut])
        line = text[:cut].count("\n") + 1
        assert re.fullmatch(rf"{re.escape(str(path))}: invalid JSON at line {line}, column \d+: .+", message), message
        expected = "the file is empty (an interrupted download or copy?)" if not text[:cut].strip() else TRUNCATED
        assert message.endswith(f"; {expected}"), (cut, message)
    last_line = text.count("\n") + 1
    assert json_error(path, text[:-1]) == (
        f"{path}: invalid JSON at line {last_line}, column 1: Expecting ',' delimiter; {TRUNCATED}"
    )
    assert json_error(path, '{"a": "café"}'.encode()[:-3]).endswith(f"; {TRUNCATED}")  # cut inside the é


@pytest.mark.parametrize("content", ['{"a": tru}', "[1 2]", '{"a": 1} x', '{"a": 1,, "b": 2}', '{"a": [1, 2}',
                                     b'{"a": "\xff"}'])
def test_malformed_json_that_is_not_cut_off_is_not_called_truncated(tmp_path, content):
    message = json_error(tmp_path / "f.json", content)
    assert message.startswith(f"{tmp_path / 'f.json'}: ") and "truncated" not in message and "empty" not in message


# ------------------------------------------------------------------------------------------ COCO-style
MPII_CASES = [
    (lambda db: db["annotations"][1].update(image_id="abc"),
     r"train\.json: annotation 11 \(annotations\[1\]\) field 'image_id' is 'abc' \(a string\), expected an integer"),
    (lambda db: db["annotations"][1].update(image_id=None),
     r"train\.json: annotation 11 \(annotations\[1\]\) field 'image_id' is None \(null\), expected an integer"),
    (lambda db: db["annotations"][2].pop("id"), r"train\.json: annotations\[2\] has no field 'id'"),
    (lambda db: db["images"][1].pop("id"), r"train\.json: images\[1\] has no field 'id'"),
    (lambda db: db["images"][1].update(width="wide"), r"train\.json: image 2 \(images\[1\]\) field 'width' is 'wide'"),
    (lambda db: db["annotations"].append(None), r"train\.json: annotations\[4\] is null, expected an object"),
    (lambda db: db.update(annotations={}), r"train\.json: the file field 'annotations' is an object, expected a list"),
    (lambda db: db["annotations"][3]["keypoints"].__setitem__(4, None),
     r"train\.json: annotation 13 \(annotations\[3\]\) 'keypoints' has a null, NaN or infinite value "
     r"at index \(1, 1\)"),
    (lambda db: db["annotations"][0]["bbox"].__setitem__(2, None),
     r"train\.json: annotation 10 \(annotations\[0\]\) 'bbox' has a null, NaN or infinite value at index 2"),
]


@pytest.mark.parametrize("edit, message", MPII_CASES)
def test_mpii_annotation_errors(written, tmp_path, edit, message):
    folder = copy(written, tmp_path, "mpii/data")
    edit_json(folder / "annotations" / "train.json", edit)
    with pytest.raises(DataError, match=message):
        MPII(folder, None)


def test_neuralannot_errors(written, tmp_path):
    folder = copy(written, tmp_path, "mpii/data")
    fits = folder / "annotations" / "MPII_train_SMPL_NeuralAnnot.json"
    edit_json(fits, lambda o: o.update(abc=o["10"]))
    with pytest.raises(DataError, match=r"MPII_train_SMPL_NeuralAnnot\.json: key 'abc' is not an annotation id"):
        MPII(folder, None)


@pytest.mark.parametrize("field", ["pose", "trans", "focal"])
def test_non_finite_fit_becomes_no_fit(written, tmp_path, fit_model, caplog, field):
    folder = copy(written, tmp_path, "mpii/data")
    fits = folder / "annotations" / "MPII_train_SMPL_NeuralAnnot.json"

    def spoil(o: dict) -> None:
        entry = o["13"]["cam_param"] if field == "focal" else o["13"]["smpl_param"]
        entry[field][1] = None

    edit_json(fits, spoil)
    with caplog.at_level(logging.WARNING):
        ds = MPII(folder, fit_model, strict=True)
    assert f"{fits}: entry 13" in caplog.text and "without a fit" in caplog.text
    assert ds.filter_counts["fit_non_finite"] == 1 and ds.filter_counts["kept_without_fit"] == 2
    assert [r.fit is not None for r in ds.records] == [True, False, False]  # 10 has a fit, 11 none, 13 spoiled
    s = ds[2]
    assert _check_sample(s, TRAIN_SHAPES) == [] and float(s["meta"]["is_valid_fit"]) == 0.0
    assert torch.count_nonzero(s["targets"]["fit_joint_img"]) == 0


def test_fit_behind_the_camera_is_no_fit(written, tmp_path, fit_model, caplog):
    """A fit 5 m *behind* the camera projects mirrored (and a joint at z = 0 to infinity): no targets from it."""
    folder = copy(written, tmp_path, "mpii/data")
    edit_json(folder / "annotations" / "MPII_train_SMPL_NeuralAnnot.json",
              lambda o: o["13"]["smpl_param"].update(trans=[0.0, 0.2, -5.0]))
    ds = MPII(folder, fit_model, strict=True)
    assert ds.records[2].fit is not None  # finite: only building the sample can tell
    with caplog.at_level(logging.WARNING):
        s = ds[2]
    assert _check_sample(s, TRAIN_SHAPES) == [] and float(s["meta"]["is_valid_fit"]) == 0.0
    assert ds.fits_behind_camera == 1 and "MPII sample 2: the SMPL fit" in caplog.text and "b.jpg" in caplog.text
    assert "at or behind the camera plane" in caplog.text
    assert float(ds[0]["meta"]["is_valid_fit"]) == 1.0 and ds.fits_behind_camera == 1
    # every later visit (another epoch, a repeat in the mix) is counted, but the warning is not repeated
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        ds.set_epoch(1)
        ds.sample(2, visit=1)
        ds[2]
    assert ds.fits_behind_camera == 3 and "camera plane" not in caplog.text

    pose = np.zeros(72, np.float32)
    pose[0] = np.pi
    args = (np.float32([500, 500]), np.float32([128, 128]), 256, Augmentation(), np.eye(2, 3, dtype=np.float32))
    assert compute_fit_targets(fit_model, pose, np.zeros(10), np.float32([0, 0, 5]), *args) is not None
    assert compute_fit_targets(fit_model, pose, np.zeros(10), np.float32([0, 0, 0]), *args) is None  # straddles z = 0


# ------------------------------------------------------------------------------------------ 3D sets
def test_h36m_errors_and_non_finite_fit(written, tmp_path, fit_model):
    folder = copy(written, tmp_path, "Human36M")
    data = folder / "annotations" / "Human36M_subject5_data.json"
    edit_json(data, lambda o: o["images"][0].update(frame_idx="zero"))
    with pytest.raises(DataError, match=rf"{data}: image 11 \(images\[0\]\) field 'frame_idx' is 'zero'"):
        Human36M(folder, fit_model)
    shutil.copy(written / "Human36M" / "annotations" / data.name, data)

    joints = folder / "annotations" / "Human36M_subject5_joint_3d.json"
    edit_json(joints, lambda o: o["2"]["1"]["0"][3].__setitem__(2, None))
    with pytest.raises(DataError, match=rf"{joints}: joints 2/1/0 has a null, NaN or infinite value at index \(3, 2\)"):
        Human36M(folder, fit_model)
    shutil.copy(written / "Human36M" / "annotations" / joints.name, joints)

    edit_json(folder / "annotations" / "Human36M_subject6_smpl_param.json",
              lambda o: o["2"]["1"]["0"]["shape"].__setitem__(0, None))
    ds = Human36M(folder, fit_model)
    assert ds.filter_counts["fit_non_finite"] == 1 and ds.filter_counts["kept_without_fit"] == 3


def test_muco_errors(written, tmp_path, fit_model):
    folder = copy(written, tmp_path, "MuCo")
    ann = folder / "data" / "MuCo-3DHP.json"
    edit_json(ann, lambda o: o["images"][2].update(id=None))
    with pytest.raises(DataError, match=rf"{ann}: images\[2\] field 'id' is None \(null\), expected an integer"):
        MuCo(folder, fit_model)
    shutil.copy(written / "MuCo" / "data" / ann.name, ann)
    edit_json(ann, lambda o: o["annotations"][4].update(image_id=99))
    with pytest.raises(DataError, match=rf"{ann}: annotation 30 \(annotations\[4\]\) refers to image_id 99"):
        MuCo(folder, fit_model)
    shutil.copy(written / "MuCo" / "data" / ann.name, ann)
    edit_json(ann, lambda o: o["annotations"][1]["keypoints_cam"][0].__setitem__(0, float("nan")))
    with pytest.raises(DataError,
                       match=r"annotation 11 \(annotations\[1\]\) 'keypoints_cam' has a null, NaN or infinite"):
        MuCo(folder, fit_model)


# ------------------------------------------------------------------------------------------ 3DPW
@pytest.fixture(scope="module")
def pw3d_folder(tmp_path_factory, body_dir) -> Path:
    root = write_synthetic_datasets(tmp_path_factory.mktemp("pw3d"), body_dir, size="tiny", datasets=["PW3D"])
    return Path(root) / "PW3D" / "data"


def test_pw3d_errors(pw3d_folder, tmp_path):
    folder = tmp_path / "data"
    shutil.copytree(pw3d_folder, folder)
    test = folder / "3DPW_latest_test.json"
    edit_json(test, lambda o: o["annotations"][1].update(image_id="first"))
    with pytest.raises(DataError, match=rf"{test}: annotation 1 \(annotations\[1\]\) field 'image_id' is 'first'"):
        PW3D(folder)
    shutil.copy(pw3d_folder / test.name, test)
    edit_json(test, lambda o: o["annotations"][0]["smpl_param"]["pose"].__setitem__(5, None))
    with pytest.raises(DataError, match=r"annotation 0 \(annotations\[0\]\) smpl_param\.pose has a null, NaN or "
                                        r"infinite value at index 5"):
        PW3D(folder)
    hhrnet = folder / "3DPW_validation_crowd_hhrnet_result.json"
    aid = next(iter(json.loads(hhrnet.read_text())))
    edit_json(hhrnet, lambda o: o[aid].pop("coco_joints"))
    with pytest.raises(DataError, match=rf"{hhrnet}: entry {aid} has no field 'coco_joints'"):
        PW3D(folder, crowd=True)


def test_pw3d_without_a_valid_input_joint_crops_at_the_gt_box(pw3d_folder, tmp_path, caplog):
    """The reference crashes (min of an empty list); hap3d crops at the processed ground-truth box."""
    folder = tmp_path / "data"
    shutil.copytree(pw3d_folder, folder)
    edit_json(folder / "3DPW_latest_test.json",
              lambda o: o["annotations"][0].update(openpose_result=[[0.0, 0.0, 0.0]] * 18))
    ds = PW3D(folder)
    with caplog.at_level(logging.WARNING):
        s = ds[0]
    assert _check_sample(s, TEST_SHAPES) == []
    np.testing.assert_array_equal(s["meta"]["bbox"].numpy(), ds.records[0].bbox)
    assert float(s["inputs"]["joints_mask"].sum()) == 0 and ds.gt_box_crops == 1
    assert "cropping at the GT box" in caplog.text
    assert not np.array_equal(ds[1]["meta"]["bbox"].numpy(), ds.records[1].bbox) and ds.gt_box_crops == 1
