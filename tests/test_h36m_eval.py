"""`hap3d eval --testset Human36M`: protocols 1 and 2 on synthetic Human3.6M in the real format, checked against a
direct implementation (joints from the raw JSON files, Horn's quaternion Procrustes)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from hap3d.body.joints import COCO17, H36M17, H36M_EVAL14
from hap3d.cli import main as cli_main
from hap3d.config import load_config
from hap3d.data.h36m_test import Human36MTest
from hap3d.engine.run import load_for_eval
from hap3d.model import build_model
from hap3d.model.checkpoint import save_model_checkpoint

from train_script import TINY


@pytest.fixture(scope="module")
def setup(tmp_path_factory, body_dir):
    from hap3d.synth import write_synthetic_datasets

    base = tmp_path_factory.mktemp("h36m")
    root = Path(write_synthetic_datasets(base / "data", body_dir, size="tiny", datasets=["Human36M"]))
    cfg = load_config(None, TINY + [f"data.body_model_dir={body_dir}"])
    torch.manual_seed(0)
    ckpt = save_model_checkpoint(base / "m.safetensors", build_model(cfg.model, body_dir), cfg.model)
    return root, ckpt


def _raw_frames(root: Path, cameras: set[int] | None) -> dict[int, dict]:
    """aid -> {joint_cam (17x3 mm), action, pixels (17x2)} straight from the subject files of subjects 9 and 11."""
    out = {}
    for s in (9, 11):
        ann = lambda kind: json.loads((root / "Human36M" / "annotations" / f"Human36M_subject{s}_{kind}.json")  # noqa: E731
                                      .read_text())
        data, cams, joints = ann("data"), ann("camera"), ann("joint_3d")
        images = {im["id"]: im for im in data["images"]}
        for a in data["annotations"]:
            im = images[a["image_id"]]
            if im["frame_idx"] % 64 or (cameras is not None and im["cam_idx"] not in cameras):
                continue
            cam = cams[str(im["cam_idx"])]
            world = np.array(joints[str(im["action_idx"])][str(im["subaction_idx"])][str(im["frame_idx"])])
            jc = world @ np.array(cam["R"]).T + np.array(cam["t"])
            px = jc[:, :2] / jc[:, 2:] * np.array(cam["f"]) + np.array(cam["c"])
            out[a["id"]] = {"joint_cam": jc, "action": im["action_name"], "pixels": px, "image_id": im["id"]}
    return out


def _horn(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Similarity alignment of points a onto b by Horn's unit-quaternion method (1987)."""
    ca, cb = a - a.mean(0), b - b.mean(0)
    m = ca.T @ cb
    (sxx, sxy, sxz), (syx, syy, syz), (szx, szy, szz) = m
    n = np.array([[sxx + syy + szz, syz - szy, szx - sxz, sxy - syx],
                  [syz - szy, sxx - syy - szz, sxy + syx, szx + sxz],
                  [szx - sxz, sxy + syx, -sxx + syy - szz, syz + szy],
                  [sxy - syx, szx + sxz, syz + szy, -sxx - syy + szz]])
    w, x, y, z = np.linalg.eigh(n)[1][:, -1]
    r = np.array([[w * w + x * x - y * y - z * z, 2 * (x * y - w * z), 2 * (x * z + w * y)],
                  [2 * (x * y + w * z), w * w - x * x + y * y - z * z, 2 * (y * z - w * x)],
                  [2 * (x * z - w * y), 2 * (y * z + w * x), w * w - x * x - y * y + z * z]])
    rotated = ca @ r.T
    scale = (rotated * cb).sum() / (ca * ca).sum()
    return scale * rotated + b.mean(0)


def _expected(root, ckpt, body_dir, protocol) -> dict[int, tuple[float, float, str]]:
    """aid -> (MPJPE, PA-MPJPE, action) computed directly from the network's meshes and the raw files."""
    cfg = load_config(None, [f"data.body_model_dir={body_dir}"])
    model = load_for_eval(ckpt, cfg, torch.device("cpu"))
    reg = np.load(body_dir / "J_regressor_h36m_correct.npy")
    raw = _raw_frames(root, None if protocol == 1 else {4})
    dataset = Human36MTest(root / "Human36M", protocol)
    out = {}
    for i in range(len(dataset)):
        sample = dataset[i]
        with torch.no_grad():
            inp = sample["inputs"]
            mesh = model(inp["img"][None], inp["joints"][None], inp["joints_mask"][None])["smpl_mesh_cam"][0].numpy()
        aid = sample["meta"]["aid"]
        pj = reg @ mesh.astype(np.float64) * 1000
        gj = raw[aid]["joint_cam"]
        pj, gj = (pj - pj[0])[list(H36M_EVAL14)], (gj - gj[0])[list(H36M_EVAL14)]
        out[aid] = (np.linalg.norm(pj - gj, axis=1).mean(), np.linalg.norm(_horn(pj, gj) - gj, axis=1).mean(),
                    raw[aid]["action"])
    assert set(out) == set(raw), "every test frame of the protocol is evaluated"
    return out


def test_both_protocols_equal_a_direct_implementation(setup, body_dir, tmp_path, capsys, monkeypatch):
    # the evaluation and the direct forward below run the same (eager) kernels: equal up to batch composition
    monkeypatch.setenv("HAP3D_RUNTIME", "eager")
    root, ckpt = setup
    out = tmp_path / "h36m"
    assert cli_main(["eval", "--ckpt", str(ckpt), "--testset", "Human36M", "--data-root", str(root),
                     "--body-model-dir", str(body_dir), "--out", str(out), "data.num_workers=0",
                     "eval.test_batch_size=2"]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "eval.json").read_text())
    assert summary["input"] == "ground-truth 2D joints (oracle input)" and "oracle" in printed
    for protocol, metric in ((1, "mpjpe"), (2, "pa_mpjpe")):
        want = _expected(root, ckpt, body_dir, protocol)
        rows = list(csv.DictReader(open(out / f"eval_p{protocol}_per_sample.csv")))
        assert {int(r["aid"]) for r in rows} == set(want)
        for r in rows:
            mpjpe, pa, action = want[int(r["aid"])]
            assert (float(r["mpjpe"]), float(r["pa_mpjpe"]), r["sequence"]) == (
                pytest.approx(mpjpe, rel=1e-5), pytest.approx(pa, rel=1e-5), action)
        reported = summary[f"protocol_{protocol}"]
        assert reported["metric"] == metric and reported["num_samples"] == len(want)
        assert reported["value_mm"] == pytest.approx(np.mean([w[0 if metric == "mpjpe" else 1]
                                                              for w in want.values()]), rel=1e-5)
        per_action = json.loads((out / f"eval_p{protocol}.json").read_text())["per_sequence"]
        assert {a: v["count"] for a, v in per_action.items()} == {
            a: sum(w[2] == a for w in want.values()) for a in {w[2] for w in want.values()}}
    assert len(_raw_frames(root, None)) > len(_raw_frames(root, {4})), "protocol 1 has more cameras"


def test_keypoint_file_input_is_read_by_image_id_and_named(setup, body_dir, tmp_path, capsys):
    root, ckpt = setup
    raw = _raw_frames(root, None)
    coco = [H36M17.index(n) if n in H36M17 else None for n in COCO17]
    results = []
    for k, frame in enumerate(sorted(raw.values(), key=lambda f: f["image_id"])[1:]):  # the first image: no person
        kp = np.zeros((17, 3))
        for c, h in enumerate(coco):
            if h is not None:
                kp[c] = [*frame["pixels"][h], 0.9]
        results.append({"image_id": frame["image_id"], "category_id": 1, "keypoints": kp.reshape(-1).tolist(),
                        "score": 0.9})
        results.append({"image_id": frame["image_id"], "category_id": 1, "keypoints": [0.0] * 51, "score": 0.1})
    path = tmp_path / "keypoints.json"
    path.write_text(json.dumps(results))
    out = tmp_path / "h36m"
    assert cli_main(["eval", "--ckpt", str(ckpt), "--testset", "Human36M", "--keypoints", str(path), "--data-root",
                     str(root), "--body-model-dir", str(body_dir), "--out", str(out), "data.num_workers=0"]) == 0
    p1 = json.loads((out / "eval_p1.json").read_text())
    assert p1["input"] == f"2D keypoints of {path}" and p1["without_input"] == 1
    assert p1["num_samples"] == len(raw) - 1
    assert "oracle" not in capsys.readouterr().out


def test_data_check_loads_the_test_split_as_a_row_of_its_own(setup, body_dir):
    from hap3d.data.check import check_data_root

    root, _ = setup
    report = check_data_root(root, ["Human36M"], body_dir, spot_checks=1)
    rows = {d.name: d for d in report.datasets}
    assert rows["Human36M-test"].status == "OK" and report.exit_code == 0
    assert any("Human36M_subject9_data.json" in str(f.path) for f in rows["Human36M-test"].files)


def test_training_refuses_the_eval_only_test_sets():
    from hap3d.config import ConfigError
    from hap3d.engine.run import resolve_test_set

    for name, command in (("Human36M", "--testset Human36M"), ("MuPoTS", "--testset MuPoTS")):
        with pytest.raises(ConfigError, match=f"evaluated by `hap3d eval {command}`"):
            resolve_test_set(load_config(None, [f"data.testset={name}"]))
