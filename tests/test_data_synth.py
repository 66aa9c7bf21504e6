"""``hap3d data synth``: the synthetic datasets have every file and field of the real ones, load with the readers,
are deterministic, and show the people they annotate."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import hap3d.data.base as base
from hap3d.cli import cmd_data_synth
from hap3d.data import build_fit_model
from hap3d.data.coco import MSCOCO
from hap3d.data.crowdpose import CrowdPose
from hap3d.data.human36m import Human36M
from hap3d.data.mpii import MPII
from hap3d.data.muco import MuCo
from hap3d.data.pw3d import PW3D
from hap3d.data.transforms import Augmentation
from hap3d.synth import README_HEADER, write_synthetic_datasets
from hap3d.utils import Hap3dError

from golden import golden_dir

H36M_SUBJECTS = (1, 5, 6, 7, 8, 9, 11)
EXPECTED_FILES = (
    [f"Human36M/annotations/Human36M_subject{s}_{k}.json"
     for s in H36M_SUBJECTS for k in ("data", "camera", "joint_3d", "smpl_param")]
    + ["MuCo/data/MuCo-3DHP.json", "MuCo/data/smpl_param.json"]
    + ["coco/annotations/person_keypoints_train2017.json", "coco/annotations/MSCOCO_train_SMPL_NeuralAnnot.json"]
    + ["mpii/data/annotations/train.json", "mpii/data/annotations/MPII_train_SMPL_NeuralAnnot.json"]
    + ["PW3D/data/3DPW_latest_test.json", "PW3D/data/3DPW_latest_validation.json",
       "PW3D/data/3DPW_validation_crowd_hhrnet_result.json"]
    + ["CrowdPose/annotations/crowdpose_train.json", "CrowdPose/annotations/CrowdPose_train_SMPL_NeuralAnnot.json"]
    + ["README.txt"]
)  # fmt: skip
EXPECTED_DIRS = ("Human36M/images", "MuCo/data/augmented_set", "MuCo/data/unaugmented_set", "coco/images/train2017",
                 "mpii/data/images", "PW3D/data/imageFiles", "CrowdPose/images")  # fmt: skip


@pytest.fixture(scope="session")
def synth(body_dir, tmp_path_factory):
    """(data root, counts, seconds) of one tiny write."""
    root = tmp_path_factory.mktemp("synth") / "data"
    start = time.perf_counter()
    counts = write_synthetic_datasets(root, body_dir, size="tiny", seed=0)
    return root, counts, time.perf_counter() - start


@pytest.fixture(scope="session")
def fit_model(body_dir):
    return build_fit_model(body_dir)


def load(root: Path, rel: str):
    return json.loads((root / rel).read_text(encoding="utf-8"))


def shape_of(value) -> tuple[int, ...]:
    return np.asarray(value, dtype=np.float64).shape


def force_flip(monkeypatch, flip: bool) -> None:
    monkeypatch.setattr(base, "sample_augmentation", lambda rng, *a, **k: Augmentation(flip=flip))


# ------------------------------------------------------------------------------------------ files
def test_files_counts_and_time(synth):
    root, counts, seconds = synth
    missing = [f for f in EXPECTED_FILES if not (root / f).is_file()]
    missing += [d for d in EXPECTED_DIRS if not (root / d).is_dir()]
    assert missing == []
    assert list(counts) == ["Human36M", "MuCo", "MSCOCO", "MPII", "PW3D", "CrowdPose", "MuPoTS"]
    assert all(n > 0 for n in counts.values())
    assert os.fspath(counts) == str(root)  # also usable as the data root path
    assert (root / "README.txt").read_text().startswith(README_HEADER) and "NOT" in (root / "README.txt").read_text()
    assert seconds < 60  # ~6 s on 2 cores; a generous bound against slow CI machines


def test_every_referenced_image_exists_and_has_its_size(synth):
    root, _, _ = synth
    images = []
    folders = {f"Human36M/annotations/Human36M_subject{s}_data.json": "Human36M/images" for s in H36M_SUBJECTS}
    folders.update({"MuCo/data/MuCo-3DHP.json": "MuCo/data", "mpii/data/annotations/train.json": "mpii/data",
                    "coco/annotations/person_keypoints_train2017.json": "coco/images/train2017"})  # fmt: skip
    for rel, folder in folders.items():
        images += [(root / folder / im["file_name"], im) for im in load(root, rel)["images"]]
    for split in ("test", "validation"):
        db = load(root, f"PW3D/data/3DPW_latest_{split}.json")
        images += [(root / "PW3D/data/imageFiles" / im["sequence"] / im["file_name"], im) for im in db["images"]]
    for path, im in images:
        img = cv2.imread(str(path))
        assert img is not None, path
        assert img.shape[:2] == (im["height"], im["width"]), path
    # CrowdPose stores every width/height swapped, as the release the reference was built on did
    for im in load(root, "CrowdPose/annotations/crowdpose_train.json")["images"]:
        img = cv2.imread(str(root / "CrowdPose/images" / im["file_name"]))
        assert img.shape[:2] == (im["width"], im["height"]) and im["width"] != im["height"]


# ------------------------------------------------------------------------------------------ schemas
def test_human36m_schema(synth):
    root, _, _ = synth
    frames = 0
    for s in H36M_SUBJECTS:
        data = load(root, f"Human36M/annotations/Human36M_subject{s}_data.json")
        cams = load(root, f"Human36M/annotations/Human36M_subject{s}_camera.json")
        joints = load(root, f"Human36M/annotations/Human36M_subject{s}_joint_3d.json")
        fits = load(root, f"Human36M/annotations/Human36M_subject{s}_smpl_param.json")
        assert set(cams) == {"1", "2", "3", "4"}
        for cam in cams.values():
            assert shape_of(cam["R"]) == (3, 3) and shape_of(cam["t"]) == (3,)
            assert shape_of(cam["f"]) == shape_of(cam["c"]) == (2,)
            np.testing.assert_allclose(np.asarray(cam["R"]) @ np.asarray(cam["R"]).T, np.eye(3), atol=1e-6)
            assert 2000 < np.linalg.norm(cam["t"]) < 9000  # millimetres
        by_id = {im["id"]: im for im in data["images"]}
        for ann in data["annotations"]:
            im = by_id[ann["image_id"]]
            fields = {"file_name", "width", "height", "subject", "action_idx", "subaction_idx", "frame_idx", "cam_idx"}
            assert fields <= set(im)
            assert im["subject"] == s and shape_of(ann["bbox"]) == (4,)
            key = (str(im["action_idx"]), str(im["subaction_idx"]), str(im["frame_idx"]))
            world = np.asarray(joints[key[0]][key[1]][key[2]])
            assert world.shape == (17, 3)
            cam = cams[str(im["cam_idx"])]
            xyz = world @ np.asarray(cam["R"]).T + cam["t"]
            uv = xyz[:, :2] / xyz[:, 2:] * cam["f"] + cam["c"]
            x, y, w, h = ann["bbox"]  # the tight box holds the projected joints
            assert ((uv >= [x - 5, y - 5]) & (uv <= [x + w + 5, y + h + 5])).all()
        for action in fits.values():
            for sub in action.values():
                for fit in sub.values():
                    frames += 1
                    assert shape_of(fit["pose"]) == (72,) and shape_of(fit["shape"]) == (10,)
                    assert shape_of(fit["trans"]) == (3,)
    assert frames > 0


def test_muco_schema(synth):
    root, _, _ = synth
    db = load(root, "MuCo/data/MuCo-3DHP.json")
    fits = load(root, "MuCo/data/smpl_param.json")
    for im in db["images"]:
        assert {"id", "file_name", "width", "height", "f", "c"} <= set(im)
        assert im["file_name"].split("/")[0] in ("augmented_set", "unaugmented_set")
    for ann in db["annotations"]:
        assert shape_of(ann["keypoints_cam"]) == (21, 3) and shape_of(ann["keypoints_img"]) == (21, 2)
        assert shape_of(ann["bbox"]) == (4,) and 2500 < ann["keypoints_cam"][14][2] < 8500  # pelvis depth, mm
    people = np.bincount([a["image_id"] for a in db["annotations"]])
    assert people.max() >= 2  # composites of several people
    assert set(fits) <= {str(a["id"]) for a in db["annotations"]}
    assert all(shape_of(f["pose"]) == (72,) and shape_of(f["shape"]) == (10,) and shape_of(f["trans"]) == (3,)
               for f in fits.values())


def check_coco_keypoints(ann: dict, num_joints: int, flags: set[int]) -> None:
    kps = np.asarray(ann["keypoints"])
    assert kps.shape == (3 * num_joints,) and all(isinstance(v, int) for v in ann["keypoints"])
    kps = kps.reshape(num_joints, 3)
    assert set(kps[:, 2].tolist()) <= flags
    assert (kps[kps[:, 2] == 0, :2] == 0).all()
    assert ann["num_keypoints"] == int((kps[:, 2] > 0).sum())
    assert shape_of(ann["bbox"]) == (4,)


def check_neuralannot(fits: dict, annotation_ids: set[str], fit_err: bool = False) -> None:
    assert fits and set(fits) <= annotation_ids
    for entry in fits.values():
        smpl, cam = entry["smpl_param"], entry["cam_param"]
        assert shape_of(smpl["pose"]) == (72,) and shape_of(smpl["shape"]) == (10,) and shape_of(smpl["trans"]) == (3,)
        assert shape_of(cam["focal"]) == shape_of(cam["princpt"]) == (2,)
        assert isinstance(entry.get("fit_err"), float) == fit_err


def test_coco_schema(synth):
    root, _, _ = synth
    db = load(root, "coco/annotations/person_keypoints_train2017.json")
    assert {"info", "licenses", "images", "annotations", "categories"} <= set(db)
    assert db["categories"][0]["name"] == "person" and len(db["categories"][0]["keypoints"]) == 17
    for im in db["images"]:
        assert {"id", "file_name", "width", "height"} <= set(im) and im["file_name"] == f"{im['id']:012d}.jpg"
    for ann in db["annotations"]:
        assert {"id", "image_id", "category_id", "iscrowd", "area", "segmentation"} <= set(ann)
        check_coco_keypoints(ann, 17, {0, 1, 2})
        if ann["iscrowd"]:
            rle = ann["segmentation"]
            assert sum(rle["counts"]) == rle["size"][0] * rle["size"][1] and ann["num_keypoints"] == 0
        else:
            assert ann["segmentation"] and all(len(p) >= 6 and len(p) % 2 == 0 for p in ann["segmentation"])
    anns = db["annotations"]
    assert any(a["iscrowd"] for a in anns) and any(a["num_keypoints"] == 0 and not a["iscrowd"] for a in anns)
    # visible and hidden keypoints
    assert any(2 in a["keypoints"][2::3] for a in anns) and any(1 in a["keypoints"][2::3] for a in anns)
    labeled = np.bincount([a["image_id"] for a in anns if a["num_keypoints"] > 0])
    assert labeled.max() >= 2  # images with several people
    check_neuralannot(load(root, "coco/annotations/MSCOCO_train_SMPL_NeuralAnnot.json"),
                      {str(a["id"]) for a in anns if a["num_keypoints"] > 0})  # fmt: skip


def test_mpii_schema(synth):
    root, _, _ = synth
    db = load(root, "mpii/data/annotations/train.json")
    assert all(im["file_name"].startswith("images/") for im in db["images"])
    for ann in db["annotations"]:
        check_coco_keypoints(ann, 16, {0, 1})
    check_neuralannot(load(root, "mpii/data/annotations/MPII_train_SMPL_NeuralAnnot.json"),
                      {str(a["id"]) for a in db["annotations"]})


def test_crowdpose_schema(synth):
    root, _, _ = synth
    db = load(root, "CrowdPose/annotations/crowdpose_train.json")
    assert all(isinstance(im["crowdIndex"], float) for im in db["images"])
    for ann in db["annotations"]:
        check_coco_keypoints(ann, 14, {0, 1, 2})
    assert any(sum(a["keypoints"]) == 0 for a in db["annotations"])  # dropped by the reader
    fits = load(root, "CrowdPose/annotations/CrowdPose_train_SMPL_NeuralAnnot.json")
    check_neuralannot(fits, {str(a["id"]) for a in db["annotations"]}, fit_err=True)
    errors = [f["fit_err"] for f in fits.values()]
    assert min(errors) < 5.0 <= max(errors)  # both sides of the reader's threshold


def schema(value):
    """The nesting of a JSON value: dict keys recursively, list lengths, leaf types (int counts as float)."""
    if isinstance(value, dict):
        return {k: schema(v) for k, v in value.items()}
    if isinstance(value, list):
        return [len(value), schema(value[0]) if value else None]
    return "number" if isinstance(value, (int, float)) and not isinstance(value, bool) else type(value).__name__


def test_pw3d_schema_matches_the_fixture_authors_example(synth):
    root, _, _ = synth
    golden = json.loads((golden_dir() / "case_d_pw3d" / "3DPW_latest_test.json").read_text())
    for split in ("test", "validation"):
        db = load(root, f"PW3D/data/3DPW_latest_{split}.json")
        assert set(db) == set(golden)
        for key in ("images", "annotations"):
            for record in db[key]:
                assert schema(record) == schema(golden[key][0])
        assert {a["smpl_param"]["gender"] for a in db["annotations"]} <= {"male", "female"}
    validation = load(root, "PW3D/data/3DPW_latest_validation.json")
    sequences = {im["sequence"] for im in validation["images"]}
    assert {"courtyard_hug_00", "courtyard_dancing_00"} < sequences
    crowd_images = {im["id"] for im in validation["images"]
                    if im["sequence"] in ("courtyard_hug_00", "courtyard_dancing_00")}
    crowd = {str(a["id"]): a["image_id"] for a in validation["annotations"] if a["image_id"] in crowd_images}
    hhrnet = load(root, "PW3D/data/3DPW_validation_crowd_hhrnet_result.json")
    assert hhrnet and set(hhrnet) < set(crowd)  # some people were not matched: the reader's OpenPose fallback
    for aid, entry in hhrnet.items():
        assert shape_of(entry["coco_joints"]) == (17, 3) and entry["img_id"] == crowd[aid]


# ------------------------------------------------------------------------------------------ readers
def test_pw3d_loads(synth):
    root, counts, _ = synth
    ds = PW3D(root / "PW3D" / "data")
    assert len(ds) == len(load(root, "PW3D/data/3DPW_latest_test.json")["annotations"]) > 0
    sample = ds[0]
    assert sample["inputs"]["img"].shape == (3, 256, 256) and sample["inputs"]["joints"].shape == (30, 3)
    assert sample["inputs"]["joints_mask"].sum() >= 10  # most OpenPose joints are confident and in the crop
    crowd = PW3D(root / "PW3D" / "data", crowd=True)
    assert len(crowd) > 0 and {r.sequence for r in crowd.records} == {"courtyard_hug_00", "courtyard_dancing_00"}
    assert crowd[len(crowd) - 1]["inputs"]["joints"].shape == (30, 3)


def test_coco_loads_and_filters(synth):
    root, _, _ = synth
    ds = MSCOCO(root / "coco", fit_model=None)
    anns = load(root, "coco/annotations/person_keypoints_train2017.json")["annotations"]
    assert len(ds) == sum(1 for a in anns if not a["iscrowd"] and a["num_keypoints"] > 0) < len(anns)
    assert any(r.near_joints for r in ds.records)  # overlapping people feed PoseFix
    assert ds[0]["inputs"]["img"].shape == (3, 256, 256)


@pytest.mark.parametrize("flip", [False, True])
def test_3d_fits_pass_the_25mm_check(synth, fit_model, monkeypatch, flip):
    """Joints are regressed from the fits, so nearly all fits pass (with and without flip); a perturbed one fails."""
    root, _, _ = synth
    force_flip(monkeypatch, flip)
    h36m = Human36M(root / "Human36M", fit_model, strict=True)
    valid = [float(h36m[i]["meta"]["is_valid_fit"]) for i in range(len(h36m))]
    assert len(valid) >= 5 and 0.7 * len(valid) <= sum(valid) < len(valid)
    muco = MuCo(root / "MuCo", fit_model, strict=True)
    valid = [float(muco[i]["meta"]["is_valid_fit"]) for i in range(len(muco)) if muco.records[i].fit is not None]
    assert valid and sum(valid) >= 0.7 * len(valid)


def test_2d_training_sets_load(synth, fit_model):
    root, _, _ = synth
    mpii = MPII(root / "mpii" / "data", fit_model, strict=True)
    assert len(mpii) > 0 and float(mpii[0]["meta"]["is_valid_fit"]) in (0.0, 1.0)
    for compat in (True, False):
        cp = CrowdPose(root / "CrowdPose", fit_model, reference_compat=compat, strict=True)
        assert cp.filter_counts["no_keypoints"] >= 1 and 0 < cp.filter_counts["fit_rejected"] < cp.filter_counts["kept"]
        for rec in cp.records:  # the reference swap undoes the stored swap
            assert cv2.imread(str(rec.img_path)).shape[:2] == rec.img_size
        assert torch.isfinite(cp[0]["targets"]["orig_joint_img"]).all()


# ------------------------------------------------------------------------------------------ images
def test_people_are_visible(synth):
    """Inside each labeled COCO person's outline the colour differs from the ring of background around it."""
    root, _, _ = synth
    db = load(root, "coco/annotations/person_keypoints_train2017.json")
    images = {im["id"]: im for im in db["images"]}
    contrasts = []
    for ann in db["annotations"]:
        if ann["iscrowd"] or ann["num_keypoints"] == 0:
            continue
        img = cv2.imread(str(root / "coco/images/train2017" / images[ann["image_id"]]["file_name"])).astype(np.float64)
        mask = np.zeros(img.shape[:2], np.uint8)
        cv2.fillPoly(mask, [np.asarray(p).reshape(-1, 2).round().astype(np.int32) for p in ann["segmentation"]], 1)
        inner = cv2.erode(mask, np.ones((3, 3), np.uint8)) > 0
        ring = (cv2.dilate(mask, np.ones((25, 25), np.uint8)) > 0) & ~(cv2.dilate(mask, np.ones((7, 7), np.uint8)) > 0)
        contrasts.append(np.abs(img[inner].mean(0) - img[ring].mean(0)).max())
    assert contrasts and np.mean(np.asarray(contrasts) > 20) >= 0.8, contrasts


# ------------------------------------------------------------------------------------------ determinism and safety
def test_same_seed_same_bytes(synth, body_dir, tmp_path, capsys):
    root, _, _ = synth
    again = tmp_path / "again"
    assert cmd_data_synth(again, body_dir, "tiny", 0) == 0
    assert "NOT the real ones" in capsys.readouterr().out
    files = sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    different = [f for f in files if (root / f).read_bytes() != (again / f).read_bytes()]
    assert different == []


def test_other_seed_differs_and_subsets_keep_their_stream(synth, body_dir, tmp_path):
    root, _, _ = synth
    write_synthetic_datasets(tmp_path / "s0", body_dir, size="tiny", seed=0, datasets=["MPII"])
    write_synthetic_datasets(tmp_path / "s1", body_dir, size="tiny", seed=1, datasets=["MPII"])
    rel = "mpii/data/annotations/train.json"
    assert (tmp_path / "s0" / rel).read_bytes() == (root / rel).read_bytes()  # independent of the other datasets
    assert (tmp_path / "s1" / rel).read_bytes() != (root / rel).read_bytes()
    assert not (tmp_path / "s0" / "coco").exists()


def test_refuses_to_mix_into_real_data_and_rewrites_its_own(body_dir, tmp_path):
    real = tmp_path / "real"
    (real / "mpii" / "data").mkdir(parents=True)
    (real / "mpii" / "data" / "train.json").write_text("{}")
    with pytest.raises(Hap3dError, match="refusing"):
        write_synthetic_datasets(real, body_dir, size="tiny", datasets=["MPII"])
    assert (real / "mpii" / "data" / "train.json").read_text() == "{}"

    ours = tmp_path / "ours"
    write_synthetic_datasets(ours, body_dir, size="tiny", datasets=["MPII"])
    stale = ours / "mpii" / "data" / "images" / "stale.jpg"
    stale.write_bytes(b"x")
    write_synthetic_datasets(ours, body_dir, size="tiny", datasets=["MPII"])
    assert not stale.exists() and (ours / "mpii" / "data" / "annotations" / "train.json").is_file()
    with pytest.raises(Hap3dError, match="unknown size"):
        write_synthetic_datasets(ours, body_dir, size="huge")


def test_cli_data_synth_and_check(tmp_path, body_dir, capsys):
    from hap3d.cli import main as cli_main

    out = str(tmp_path / "d")
    assert cli_main(["data", "synth", "--out", out, "--size", "tiny", "--body-model-dir", str(body_dir)]) == 0
    assert cli_main(["data", "check", "--root", str(tmp_path / "d"), "--body-model-dir", str(body_dir)]) == 0
    (tmp_path / "d" / "coco" / "annotations" / "person_keypoints_train2017.json").unlink()
    assert cli_main(["data", "check", "--root", str(tmp_path / "d"), "--datasets", "MSCOCO"]) != 0
    assert "person_keypoints_train2017.json" in capsys.readouterr().out


def test_cli_check_of_what_synth_wrote(tmp_path, capsys):
    """The walkthrough: `data synth` without a body model writes one into <out>/body_model, which `data check`
    then uses; one deleted image fails the check (every image is checked) unless missing images are allowed."""
    from hap3d.cli import main as cli_main

    out = tmp_path / "d"
    assert cli_main(["data", "synth", "--out", str(out), "--size", "tiny"]) == 0
    assert cli_main(["data", "check", "--root", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"note: using the body model found under the data root, {out}/body_model" in text
    assert re.search(rf"^body model +OK .* {re.escape(str(out))}/body_model$", text, re.M)

    records = MSCOCO(out / "coco", None).records
    image, n = records[0].img_path, len({r.img_path for r in records})
    image.unlink()
    assert cli_main(["data", "check", "--root", str(out), "--datasets", "MSCOCO"]) == 1
    text = capsys.readouterr().out
    assert f"1 of {n} images are missing (checked {n} of {n} image files): {image}." in text
    assert re.search(r"^MSCOCO +FAIL ", text, re.M) and "result: FAILED" in text
    assert cli_main(["data", "check", "--root", str(out), "--datasets", "MSCOCO", "--allow-missing-images"]) == 0
    assert re.search(r"^MSCOCO +WARN ", capsys.readouterr().out, re.M)
