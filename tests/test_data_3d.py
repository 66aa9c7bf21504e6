"""Human3.6M and MuCo readers: filters, the sample contract, the coordinate pipeline and the 25 mm fit test.

The datasets are written here in their real file formats. Ground-truth joints are regressed from the very
SMPL fits the files carry (through the body model's H36M regressor), so a "consistent" fit matches its ground
truth to well under 25 mm and a "perturbed" one (bent knees and elbows) does not.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from hap3d.body.joints import convert_joints, get_joint_set, joint_mapping
from hap3d.cli.data import format_data_report
from hap3d.data.base import PackedRecords
from hap3d.data.check import TRAIN_SHAPES, _check_sample, check_data_root
from hap3d.data.human36m import Human36M
from hap3d.data.io import DataError, load_image
from hap3d.data.muco import MuCo
from hap3d.data.transforms import Augmentation, crop_image, flip_joints_2d, rotation_about_z

SMPL30 = get_joint_set("smpl30")
H36M = get_joint_set("h36m17")
MUCO = get_joint_set("muco21")
WIDTH, HEIGHT = 360, 300  # not square, so that width/height mix-ups show

# arms down, knees slightly bent; the perturbed fit bends knees and elbows hard
BASE_POSE = np.zeros((24, 3), np.float32)
BASE_POSE[16, 2], BASE_POSE[17, 2] = -1.2, 1.2
BASE_POSE[4, 0] = BASE_POSE[5, 0] = 0.2
PERTURBATION = np.zeros((24, 3), np.float32)
PERTURBATION[4, 0] = PERTURBATION[5, 0] = 1.2
PERTURBATION[18, 1], PERTURBATION[19, 1] = -1.5, 1.5
SHAPE = [0.1, -0.1] + [0.0] * 8  # small: the procedural body's shape space is not left/right symmetric


def rot_x(a: float) -> np.ndarray:
    return np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]], np.float32)


def rot_y(a: float) -> np.ndarray:
    return np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]], np.float32)


def fit_entry(root_pose, frame: int = 0, trans=(0.0, 0.0, 0.0), perturbed: bool = False) -> dict:
    pose = BASE_POSE.copy()
    pose[0] = root_pose
    pose[1:] += 0.02 * frame  # every frame a slightly different pose
    if perturbed:
        pose += PERTURBATION
    return {"pose": pose.reshape(-1).tolist(), "shape": SHAPE, "trans": list(trans)}


def regressed(fit_model, entry: dict) -> dict[str, np.ndarray]:
    """The fit's joints in millimetres (its own frame: world for H36M, camera for MuCo)."""
    j = fit_model.joints(np.float32(entry["pose"]), np.float32(entry["shape"]), np.float32(entry["trans"]))
    return {k: v * 1000.0 for k, v in j.items()}


def project(cam: np.ndarray, f, c) -> np.ndarray:
    return np.stack([cam[:, 0] / cam[:, 2] * f[0] + c[0], cam[:, 1] / cam[:, 2] * f[1] + c[1]], 1)


def tight_box(xy: np.ndarray, pad: float = 8.0) -> list[float]:
    lo, hi = xy.min(0) - pad, xy.max(0) + pad
    return [float(lo[0]), float(lo[1]), float(hi[0] - lo[0]), float(hi[1] - lo[1])]


def write_image(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.random.default_rng(seed).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    assert cv2.imwrite(str(path), img)


def write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


# --------------------------------------------------------------------------------------- Human3.6M writer
# What the files hold, per subject: (frame, camera, kind) with kind in consistent | perturbed | nofit | degenerate.
H36M_LAYOUT = {
    1: [(fr, cam, kind) for fr, kind in ((0, "consistent"), (3, "consistent"), (5, "perturbed"), (10, "nofit"))
        for cam in (1, 2)] + [(15, 1, "consistent"), (15, 2, "degenerate")],
    **{s: [(0, 1, "consistent")] for s in (5, 6, 7, 8)},
    **{s: [(fr, cam, "consistent") for fr in (0, 32, 64) for cam in (1, 4)] for s in (9, 11)},
}
H36M_TRAIN_COUNTS = {"annotations": 14, "other_frame": 2, "other_camera": 0, "degenerate_bbox": 1, "kept": 11,
                     "kept_without_fit": 2, "fit_non_finite": 0}
H36M_TEST_COUNTS = {"annotations": 12, "other_frame": 4, "other_camera": 4, "degenerate_bbox": 0, "kept": 4,
                    "kept_without_fit": 0, "fit_non_finite": 0}


def h36m_camera(cam: int) -> dict:
    """World y up -> camera y down, each camera yawed differently around the person, 5 m away."""
    r = rot_x(math.pi) @ rot_y(0.35 * (cam - 1))
    return {"R": r.tolist(), "t": [30.0 * cam, -20.0, 5000.0], "f": [400.0 + 10 * cam, 405.0 + 10 * cam],
            "c": [170.0, 155.0]}


def write_h36m(root: Path, fit_model) -> Path:
    folder = root / "Human36M"
    ann_dir = folder / "annotations"
    next_id = 1
    for subject, items in H36M_LAYOUT.items():
        cameras = {str(c): h36m_camera(c) for c in (1, 2, 3, 4)}
        images, anns, joints, fits = [], [], {}, {}
        for frame, cam, kind in items:
            entry = fit_entry([0.0, 0.4, 0.0], frame, trans=(0.1, 0.05, -0.2))
            world = regressed(fit_model, entry)["h36m"]
            c = cameras[str(cam)]
            cam_xyz = world @ np.float32(c["R"]).T + np.float32(c["t"])
            bbox = tight_box(project(cam_xyz, c["f"], c["c"]))
            if kind == "degenerate":
                bbox[2] = 0.0
            joints.setdefault("2", {}).setdefault("1", {})[str(frame)] = world.tolist()
            if kind != "nofit":
                stored = fit_entry([0.0, 0.4, 0.0], frame, trans=(0.1, 0.05, -0.2), perturbed=kind == "perturbed")
                fits.setdefault("2", {}).setdefault("1", {})[str(frame)] = stored
            sequence = f"s_{subject:02d}_act_02_subact_01_ca_{cam:02d}"
            name = f"{sequence}/{sequence}_{frame:06d}.jpg"
            images.append({"id": next_id, "file_name": name, "width": WIDTH, "height": HEIGHT, "subject": subject,
                           "action_name": "Directions", "action_idx": 2, "subaction_idx": 1, "frame_idx": frame,
                           "cam_idx": cam})
            anns.append({"id": next_id, "image_id": next_id, "bbox": bbox, "keypoints_vis": [True] * 17})
            write_image(folder / "images" / name, next_id)
            next_id += 1
        write_json(ann_dir / f"Human36M_subject{subject}_data.json", {"images": images, "annotations": anns})
        write_json(ann_dir / f"Human36M_subject{subject}_camera.json", cameras)
        write_json(ann_dir / f"Human36M_subject{subject}_joint_3d.json", joints)
        write_json(ann_dir / f"Human36M_subject{subject}_smpl_param.json", fits)
    return folder


# -------------------------------------------------------------------------------------------- MuCo writer
MUCO_FROM_SMPL30 = {"Thorax": "Neck", "Spine": "Spine", "Head": "Head", "R_Hand": "R_Hand", "L_Hand": "L_Hand",
                    "R_Toe": "R_Toe", "L_Toe": "L_Toe"}
MUCO_COUNTS = {"images": 5, "images_without_people": 1, "annotations": 7, "not_closest": 3, "degenerate_bbox": 1,
               "kept": 3, "kept_without_fit": 1, "fit_non_finite": 0}
MUCO_FOCAL, MUCO_PRINCPT = [420.0, 425.0], [175.0, 150.0]


def muco_keypoints_cam(fit_model, entry: dict) -> np.ndarray:
    j = regressed(fit_model, entry)
    out = convert_joints(j["h36m"], "h36m17", "muco21")
    for muco_name, smpl_name in MUCO_FROM_SMPL30.items():
        out[MUCO.index(muco_name)] = j["smpl30"][SMPL30.index(smpl_name)]
    return out


def write_muco(root: Path, fit_model) -> Path:
    """Image 1: three people (closest 10 with a consistent fit, 11 overlapping it, 12 far to the right);
    image 2: 20 with a perturbed fit; image 3: 30 without a fit; image 4: closest person 40 has a degenerate
    box (dropped) and 41 is further away (not a sample); image 5: nobody. Three samples."""
    folder = root / "MuCo"
    upright = [math.pi, 0.3, 0.0]
    people = {  # ann id -> (image id, trans, perturbed)
        10: (1, (0.0, 0.2, 4.0), False), 11: (1, (0.35, 0.2, 5.0), False), 12: (1, (2.0, 0.2, 6.0), False),
        20: (2, (0.1, 0.1, 4.5), True), 30: (3, (-0.1, 0.2, 4.2), False), 40: (4, (0.0, 0.2, 4.0), False),
        41: (4, (0.3, 0.2, 5.0), False),
    }
    images = [{"id": i, "file_name": f"{'augmented' if i % 2 else 'unaugmented'}_set/{i}.jpg", "width": WIDTH,
               "height": HEIGHT, "f": MUCO_FOCAL, "c": MUCO_PRINCPT} for i in range(1, 6)]
    anns, fits = [], {}
    for aid, (image_id, trans, perturbed) in people.items():
        entry = fit_entry(upright, aid % 10, trans)
        cam = muco_keypoints_cam(fit_model, entry)
        img_xy = project(cam, MUCO_FOCAL, MUCO_PRINCPT)
        bbox = tight_box(img_xy)
        if aid == 40:
            bbox[3] = 0.0
        anns.append({"id": aid, "image_id": image_id, "keypoints_cam": cam.tolist(), "keypoints_img": img_xy.tolist(),
                     "bbox": bbox})
        if aid != 30:
            fits[str(aid)] = fit_entry(upright, aid % 10, trans, perturbed)
    for img in images:
        write_image(folder / "data" / img["file_name"], 100 + img["id"])
    write_json(folder / "data" / "MuCo-3DHP.json", {"images": images, "annotations": anns})
    write_json(folder / "data" / "smpl_param.json", fits)
    return folder


# -------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def data_root(tmp_path_factory, fit_model) -> Path:
    root = tmp_path_factory.mktemp("data3d")
    write_h36m(root, fit_model)
    write_muco(root, fit_model)
    return root


@pytest.fixture(scope="module")
def h36m(data_root, fit_model) -> Human36M:
    return Human36M(data_root / "Human36M", fit_model, strict=True)


@pytest.fixture(scope="module")
def muco(data_root, fit_model) -> MuCo:
    return MuCo(data_root / "MuCo", fit_model, strict=True)


def force_augmentation(monkeypatch, aug: Augmentation) -> None:
    monkeypatch.setattr("hap3d.data.base.sample_augmentation", lambda rng, *a, **k: aug)


def h36m_kinds(ds: Human36M) -> list[str]:
    """The written kind of every record, recovered from its image path."""
    kinds = {}
    for subject, items in H36M_LAYOUT.items():
        for frame, cam, kind in items:
            kinds[f"s_{subject:02d}_act_02_subact_01_ca_{cam:02d}_{frame:06d}.jpg"] = kind
    return [kinds[r.img_path.name] for r in ds.records]


def muco_kinds(ds: MuCo) -> list[str]:
    kinds = {"1.jpg": "consistent", "2.jpg": "perturbed", "3.jpg": "nofit"}
    return [kinds[r.img_path.name] for r in ds.records]


# --------------------------------------------------------------------------------------------- records
def test_h36m_records(h36m, data_root, fit_model):
    assert len(h36m) == 11 and h36m.filter_counts == H36M_TRAIN_COUNTS
    assert isinstance(h36m.records, PackedRecords)
    assert h36m_kinds(h36m).count("nofit") == 2 and "degenerate" not in h36m_kinds(h36m)
    assert [r.fit is None for r in h36m.records] == [k == "nofit" for k in h36m_kinds(h36m)]
    rec = h36m.records[0]
    sequence = "s_01_act_02_subact_01_ca_01"
    assert rec.img_path == data_root / "Human36M" / "images" / sequence / f"{sequence}_000000.jpg"
    assert rec.img_size == (HEIGHT, WIDTH) and rec.near_joints == [] and rec.valid.shape == (17, 1)
    cam = h36m_camera(1)
    np.testing.assert_allclose(rec.world_to_cam[0], cam["R"], atol=1e-6)
    np.testing.assert_allclose(rec.world_to_cam[1], np.float32(cam["t"]) / 1000, atol=1e-6)
    np.testing.assert_allclose(rec.joints[:, :2], project(rec.joint_cam, cam["f"], cam["c"]), atol=1e-3)
    np.testing.assert_array_equal(rec.joints[:, 2], rec.joint_cam[:, 2])
    joint_file = data_root / "Human36M" / "annotations" / "Human36M_subject1_joint_3d.json"
    world = np.float32(json.loads(joint_file.read_text())["2"]["1"]["0"])
    np.testing.assert_allclose(rec.joint_cam, world @ np.float32(cam["R"]).T + np.float32(cam["t"]), atol=1e-2)
    assert h36m.replace_idx == (1, 2, 3, 4, 5, 6, 9, 11, 12, 13, 14, 15, 16)  # the reference's index list

    test = Human36M(data_root / "Human36M", fit_model, split="test")
    assert len(test) == 4 and test.filter_counts == H36M_TEST_COUNTS and not test.augment
    assert all("_ca_04_" in r.img_path.name for r in test.records)
    assert _check_sample(test[0], TRAIN_SHAPES) == []  # usable for inspection
    with pytest.raises(ValueError, match="unknown Human36M split"):
        Human36M(data_root / "Human36M", fit_model, split="val")


def test_muco_records(muco, data_root):
    assert len(muco) == 3 and muco.filter_counts == MUCO_COUNTS
    a, b, c = muco.records
    assert a.img_path == data_root / "MuCo" / "data" / "augmented_set" / "1.jpg" and a.img_size == (HEIGHT, WIDTH)
    assert [r.fit is not None for r in muco.records] == [True, True, False]
    np.testing.assert_allclose(a.focal, MUCO_FOCAL) and np.testing.assert_allclose(a.princpt, MUCO_PRINCPT)
    assert a.world_to_cam is None
    db = json.loads((data_root / "MuCo" / "data" / "MuCo-3DHP.json").read_text())
    anns = {ann["id"]: ann for ann in db["annotations"]}
    np.testing.assert_allclose(a.joint_cam, anns[10]["keypoints_cam"], atol=1e-3)  # the closest of 10, 11, 12
    np.testing.assert_allclose(a.joints[:, :2], anns[10]["keypoints_img"], atol=1e-3)
    np.testing.assert_allclose(a.joints[:, 2], a.joint_cam[:, 2])
    # 11 overlaps 10 and becomes its near person (renamed to COCO17); 12 does not overlap
    assert len(a.near_joints) == 1 and b.near_joints == [] and c.near_joints == []
    near, coco = a.near_joints[0], get_joint_set("coco17")
    assert near.shape == (17, 3)
    for name in ("L_Shoulder", "R_Wrist", "L_Ankle"):
        np.testing.assert_allclose(near[coco.index(name), :2], anns[11]["keypoints_img"][MUCO.index(name)], atol=1e-3)
        assert near[coco.index(name), 2] == 1
    assert np.all(near[coco.index("Nose")] == 0)  # MuCo has no face joints
    assert muco.replace_idx == tuple(range(2, 14))  # the reference's index list


def test_packed_records_round_trip(muco):
    records = list(muco.records)
    both = PackedRecords.concat([PackedRecords(records[:1]), PackedRecords([]), PackedRecords(records[1:])])
    assert len(both) == 3 and len(both[-3:]) == 3
    for x, y in zip(records, both):
        assert x.img_path == y.img_path and x.img_size == y.img_size and (x.fit is None) == (y.fit is None)
        for field in ("bbox", "tight_bbox", "joints", "valid", "joint_cam", "focal", "princpt"):
            np.testing.assert_array_equal(getattr(x, field), getattr(y, field))
        assert len(x.near_joints) == len(y.near_joints)
    np.testing.assert_array_equal(both[0].near_joints[0], records[0].near_joints[0])
    both[0].joints[:] = 0  # items are copies: the store cannot be changed through them
    assert np.any(both[0].joints)
    with pytest.raises(IndexError):
        both[3]


# ------------------------------------------------------------------------------------------ samples
@pytest.mark.parametrize("which", ["h36m", "muco"])
def test_sample_contract(which, request):
    ds = request.getfixturevalue(which)
    kinds = h36m_kinds(ds) if which == "h36m" else muco_kinds(ds)
    gt_only = {"h36m": ("Pelvis", "Neck", "Head_top", "Torso"),
               "muco": ("Pelvis", "Head_top", "Head", "Spine", "L_Hand")}[which]
    for i, kind in enumerate(kinds):
        s = ds[i]
        assert _check_sample(s, TRAIN_SHAPES) == []
        meta, tgt, inp = s["meta"], s["targets"], s["inputs"]
        assert float(meta["is_3D"]) == 1.0
        assert float(meta["is_valid_fit"]) == float(kind == "consistent"), (i, kind)
        valid, trunc = meta["orig_joint_valid"], meta["orig_joint_trunc"]
        assert torch.all(trunc <= valid) and torch.equal(inp["joints_mask"], trunc)
        inside = trunc[:, 0] > 0
        assert inside.sum() > 10
        assert torch.all((tgt["orig_joint_img"][inside] >= 0) & (tgt["orig_joint_img"][inside] < 64))
        assert torch.allclose(tgt["orig_joint_cam"][0], torch.zeros(3))  # root-relative
        for name in gt_only:  # never touched by PoseFix
            j = SMPL30.index(name)
            assert torch.equal(inp["joints"][j], tgt["orig_joint_img"][j, :2])
        if kind == "nofit":
            assert torch.count_nonzero(tgt["fit_joint_img"]) == 0 and torch.count_nonzero(tgt["pose_param"]) == 0
        else:
            ftrunc = meta["fit_joint_trunc"][:, 0] > 0
            assert ftrunc.sum() > 20
            assert torch.all((tgt["fit_joint_img"][ftrunc] >= 0) & (tgt["fit_joint_img"][ftrunc] < 64))
            assert torch.allclose(tgt["fit_joint_cam"][0], torch.zeros(3))
            np.testing.assert_allclose(tgt["shape_param"][:2].numpy(), SHAPE[:2], atol=1e-6)


@pytest.mark.parametrize("which", ["h36m", "muco"])
@pytest.mark.parametrize("flip", [False, True])
def test_coordinate_round_trip(which, flip, request, monkeypatch):
    """GT pixel -> crop -> 64-space -> back through bb2img lands where it started; depth and 3D likewise."""
    ds = request.getfixturevalue(which)
    aug = Augmentation(scale=1.1, rot=25.0, color=(1.0, 0.9, 1.1), flip=flip)
    force_augmentation(monkeypatch, aug)
    rec, s = ds.records[0], ds[0]
    pairs = ds.flip_pairs
    joints = flip_joints_2d(rec.joints.copy(), rec.img_size[1], pairs) if flip else rec.joints
    crop = crop_image(load_image(rec.img_path), rec.bbox, aug)
    img64 = convert_joints(s["targets"]["orig_joint_img"].numpy(), "smpl30", ds.joint_set)
    crop_xy = img64[:, :2] * 4
    back = (crop.bb2img @ np.concatenate([crop_xy, np.ones((len(crop_xy), 1))], 1).T).T
    kept = joint_mapping(ds.joint_set, "smpl30")[0]  # the joints the 30-joint targets carry
    np.testing.assert_allclose(back[kept], joints[kept, :2], atol=2e-2)
    root = get_joint_set(ds.joint_set).root
    np.testing.assert_allclose((img64[kept, 2] / 32 - 1) * 1000, joints[kept, 2] - joints[root, 2], atol=0.5)
    # 3D: undo the in-plane rotation; the flip negates x and swaps sides
    cam = convert_joints(s["targets"]["orig_joint_cam"].numpy(), "smpl30", ds.joint_set) @ rotation_about_z(aug.rot)
    expected = (rec.joint_cam - rec.joint_cam[root]) / 1000
    if flip:
        expected = expected.copy()
        expected[:, 0] *= -1
        expected = expected[get_joint_set(ds.joint_set).flip_index()]
    np.testing.assert_allclose(cam[kept], expected[kept], atol=1e-5)


@pytest.mark.parametrize("which", ["h36m", "muco"])
def test_flip_consistency(which, request, monkeypatch):
    """Flipping mirrors the GT exactly: left in the flipped sample = right in the plain one. The fit is mirrored
    only up to the procedural body model's left/right asymmetry (1-3 cm), hence the loose tolerances."""
    ds = request.getfixturevalue(which)
    samples = {}
    for flip in (False, True):
        force_augmentation(monkeypatch, Augmentation(flip=flip))
        samples[flip] = ds[0]
    mirror = torch.from_numpy(SMPL30.flip_index())
    plain, flipped = samples[False]["targets"], samples[True]["targets"]
    valid = samples[False]["meta"]["orig_joint_valid"][:, 0] > 0
    gt_p, gt_f = plain["orig_joint_img"][mirror], flipped["orig_joint_img"]
    assert torch.allclose(gt_f[valid, 0], 64 - gt_p[valid, 0], atol=1e-3)
    assert torch.allclose(gt_f[valid, 1:], gt_p[valid, 1:], atol=1e-3)
    fit_p, fit_f = plain["fit_joint_img"][mirror], flipped["fit_joint_img"]
    assert torch.allclose(fit_f[0], torch.stack([64 - fit_p[0, 0], fit_p[0, 1], fit_p[0, 2]]), atol=0.1)  # the root
    assert torch.allclose(fit_f[:, 0], 64 - fit_p[:, 0], atol=1.2)
    assert torch.allclose(fit_f[:, 1:], fit_p[:, 1:], atol=1.2)
    cam_p, cam_f = plain["fit_joint_cam"][mirror], flipped["fit_joint_cam"]
    assert torch.allclose(cam_f[:, 0], -cam_p[:, 0], atol=0.04)
    assert torch.allclose(cam_f[:, 1:], cam_p[:, 1:], atol=0.04)
    assert float(samples[True]["meta"]["is_valid_fit"]) == 1.0


@pytest.mark.parametrize("which", ["h36m", "muco"])
def test_fit_matches_ground_truth(which, request, monkeypatch):
    """A consistent fit lands on the GT (world->camera merge for H36M, camera frame for MuCo), after rotation too."""
    ds = request.getfixturevalue(which)
    kinds = h36m_kinds(ds) if which == "h36m" else muco_kinds(ds)
    force_augmentation(monkeypatch, Augmentation(rot=-40.0))
    shared = [SMPL30.index(n) for n in ("L_Hip", "R_Knee", "L_Ankle", "R_Shoulder", "L_Elbow", "R_Wrist")]
    for i in [i for i, kind in enumerate(kinds) if kind == "consistent"]:  # H36M: several cameras
        t = ds[i]["targets"]
        np.testing.assert_allclose(t["fit_joint_cam"][shared], t["orig_joint_cam"][shared], atol=0.015)
        np.testing.assert_allclose(t["fit_joint_img"][shared], t["orig_joint_img"][shared], atol=0.3)


@pytest.mark.parametrize("which", ["h36m", "muco"])
def test_fit_validity(which, request):
    """25 mm rule: the consistent fit passes and the perturbed one fails, whatever the augmentation."""
    ds = request.getfixturevalue(which)
    kinds = h36m_kinds(ds) if which == "h36m" else muco_kinds(ds)
    good, bad = kinds.index("consistent"), kinds.index("perturbed")
    for epoch in range(4):
        ds.set_epoch(epoch)
        assert float(ds[good]["meta"]["is_valid_fit"]) == 1.0
        assert float(ds[bad]["meta"]["is_valid_fit"]) == 0.0
    ds.set_epoch(0)


@pytest.mark.parametrize("cls, folder", [(Human36M, "Human36M"), (MuCo, "MuCo")])
def test_determinism(cls, folder, data_root, fit_model):
    a, b = cls(data_root / folder, fit_model, seed=3), cls(data_root / folder, fit_model, seed=3)

    def flat(s: dict) -> list[torch.Tensor]:
        return [v for part in s.values() for v in part.values()]

    for i in range(len(a)):
        assert all(torch.equal(x, y) for x, y in zip(flat(a[i]), flat(b[i])))
    b.set_epoch(1)
    assert not torch.equal(a[0]["inputs"]["img"], b[0]["inputs"]["img"])
    a.set_epoch(1)
    assert all(torch.equal(x, y) for x, y in zip(flat(a[0]), flat(b[0])))


@pytest.mark.parametrize("cls, folder", [(Human36M, "Human36M"), (MuCo, "MuCo")])
def test_reference_compat_targets_unchanged(cls, folder, data_root, fit_model):
    """Neither reader changes its targets with reference_compat (only PoseFix's input noise may differ)."""
    compat = cls(data_root / folder, fit_model, seed=1)
    fixed = cls(data_root / folder, fit_model, seed=1, reference_compat=False)
    for i in range(len(compat)):
        for key, value in compat[i]["targets"].items():
            assert torch.equal(value, fixed[i]["targets"][key]), key


@pytest.mark.parametrize("cls, folder", [(Human36M, "Human36M"), (MuCo, "MuCo")])
def test_missing_image_is_skipped_and_counted(cls, folder, data_root, fit_model, tmp_path):
    shutil.copytree(data_root / folder, tmp_path / folder)
    ds = cls(tmp_path / folder, fit_model)
    victim = ds.records[0].img_path
    victim.unlink()
    s = ds[0]  # another sample stands in
    assert _check_sample(s, TRAIN_SHAPES) == []
    assert ds.skipped == {str(victim): 1}
    with pytest.raises(DataError, match="image not found"):
        cls(tmp_path / folder, fit_model, strict=True)[0]


@pytest.mark.parametrize("content, problem", [(None, "megapixel limit"), (b"\0" * 64, "cannot be decoded")])
def test_oversized_or_corrupt_image_is_a_bad_sample(data_root, fit_model, tmp_path, content, problem):
    """A small PNG declaring 2.5 gigapixels (or garbage) costs no memory and does not end training: replaced."""
    from test_files import _huge_png_header

    shutil.copytree(data_root / "MuCo", tmp_path / "MuCo")
    ds = MuCo(tmp_path / "MuCo", fit_model)
    victim = ds.records[0].img_path
    victim.write_bytes(_huge_png_header(50000, 50000) if content is None else content)
    assert _check_sample(ds[0], TRAIN_SHAPES) == [] and ds.skipped == {str(victim): 1}
    with pytest.raises(DataError, match=problem):
        MuCo(tmp_path / "MuCo", fit_model, strict=True)[0]


# ------------------------------------------------------------------------------------ malformed input
def edit_json(path: Path, edit) -> None:
    obj = json.loads(path.read_text())
    edit(obj)
    path.write_text(json.dumps(obj))


def test_h36m_malformed_files(data_root, fit_model, tmp_path):
    folder = tmp_path / "Human36M"
    shutil.copytree(data_root / "Human36M", folder)
    ann = folder / "annotations"
    cam_file = ann / "Human36M_subject5_camera.json"
    edit_json(cam_file, lambda o: o["1"].pop("R"))
    with pytest.raises(DataError, match=rf"{cam_file}: camera '1' has no field 'R'"):
        Human36M(folder, fit_model)
    shutil.copy(data_root / "Human36M" / "annotations" / cam_file.name, cam_file)

    joint_file = ann / "Human36M_subject1_joint_3d.json"
    edit_json(joint_file, lambda o: o["2"]["1"].pop("5"))
    with pytest.raises(DataError, match=rf"{joint_file}: no entry for frame '5' at 2/1/5"):
        Human36M(folder, fit_model)
    shutil.copy(data_root / "Human36M" / "annotations" / joint_file.name, joint_file)

    fit_file = ann / "Human36M_subject6_smpl_param.json"
    edit_json(fit_file, lambda o: o["2"]["1"]["0"].update(shape=[0.0] * 9))
    with pytest.raises(DataError, match=rf"{fit_file}: fit 2/1/0.shape has 9 values, expected 10"):
        Human36M(folder, fit_model)
    fit_file.unlink()
    with pytest.raises(DataError, match=rf"not found: {fit_file}"):
        Human36M(folder, fit_model)


def test_muco_malformed_files(data_root, fit_model, tmp_path):
    folder = tmp_path / "MuCo"
    shutil.copytree(data_root / "MuCo", folder)
    ann_file, fit_file = folder / "data" / "MuCo-3DHP.json", folder / "data" / "smpl_param.json"
    edit_json(fit_file, lambda o: o["20"].pop("trans"))
    with pytest.raises(DataError, match=rf"{fit_file}: entry 20 has no field 'trans'"):
        MuCo(folder, fit_model)
    edit_json(ann_file, lambda o: o["annotations"][1].update(keypoints_cam=[[0.0, 0.0, 1.0]] * 20))
    with pytest.raises(DataError, match=rf"{ann_file}: annotation 11 \(annotations\[1\]\) 'keypoints_cam' "
                                        r"has 60 values, expected 63"):
        MuCo(folder, fit_model)


# ------------------------------------------------------------------------------------------ data check
def test_data_check(data_root, body_dir):
    report = check_data_root(data_root, ["Human36M", "MuCo"], body_dir, spot_checks=2)
    assert report.exit_code == 0, format_data_report(report)
    by_name = {d.name: d for d in report.datasets}
    assert by_name["Human36M"].samples == 11 and by_name["Human36M"].with_fit == 9
    assert by_name["MuCo"].samples == 3 and by_name["MuCo"].with_fit == 2
    assert all(d.spot_ok == d.spot_total == 2 for d in report.datasets)


@pytest.mark.numerics
@pytest.mark.parametrize("flip", [False, True])
def test_crop_equals_warping_the_whole_float_frame(flip):
    """The crop converts only the pixels it samples; the result is bit-identical to the reference's way (the
    whole frame to float RGB, flipped, warped) for boxes inside, across and outside the frame, uint8 or float."""
    rng = np.random.default_rng(7)
    for t in range(40):
        h, w = int(rng.integers(60, 700)), int(rng.integers(60, 700))
        bgr = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        box = np.array([rng.uniform(-0.6 * w, w), rng.uniform(-0.6 * h, h), rng.uniform(5, 1.5 * w),
                        rng.uniform(5, 1.5 * h)], np.float32)
        aug = Augmentation(float(rng.uniform(0.75, 1.25)), float(rng.uniform(-30, 30)), (1.0, 1.1, 0.9), flip)
        ours = crop_image(bgr if t % 2 else bgr.astype(np.float32), box, aug, out_size=64, bgr=True)
        frame = bgr[:, :, ::-1].astype(np.float32)
        if flip:
            frame = np.ascontiguousarray(frame[:, ::-1])
        expected = cv2.warpAffine(frame, ours.img2bb, (64, 64), flags=cv2.INTER_LINEAR)
        expected = np.clip(expected * np.asarray(aug.color)[None, None], 0, 255).astype(np.float32)
        np.testing.assert_array_equal(ours.img, expected)
