"""`hap3d eval --testset MuPoTS`: the reader of MuPoTS-3D.json + MultiPersonTestSet/ (HigherHRNet or OpenPose input)
and 3DPCK (150 mm; all and matched people; per sequence), checked against a direct implementation of the
published definition on the same predictions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from hap3d.cli import main as cli_main
from hap3d.config import load_config
from hap3d.data.mupots import MuPoTS
from hap3d.engine.run import load_for_eval
from hap3d.model import build_model
from hap3d.model.checkpoint import save_model_checkpoint

from train_script import TINY


@pytest.fixture(scope="module")
def setup(tmp_path_factory, body_dir):
    from hap3d.synth import write_synthetic_datasets

    base = tmp_path_factory.mktemp("mupots")
    root = Path(write_synthetic_datasets(base / "data", body_dir, size="small", datasets=["MuPoTS"]))
    body = base / "body"  # the body model plus an MPI-INF-3DHP regressor of 28 rows (the reference uses 17)
    body.mkdir()
    for item in body_dir.iterdir():
        (body / item.name).symlink_to(item)
    h36m = np.load(body_dir / "J_regressor_h36m_correct.npy")
    rng = np.random.default_rng(0)
    mi = np.abs(h36m[rng.integers(0, 17, 28)] + rng.uniform(0, 1e-4, (28, h36m.shape[1])))
    np.save(body / "J_regressor_mi_smpl.npy", mi / mi.sum(1, keepdims=True))
    cfg = load_config(None, TINY + [f"data.body_model_dir={body}"])
    torch.manual_seed(0)
    ckpt = save_model_checkpoint(base / "m.safetensors", build_model(cfg.model, body), cfg.model)
    return root, body, ckpt


def _direct_3dpck(root: Path, body: Path, ckpt: Path, detector: str) -> dict[str, tuple[float, float]]:
    """Sequence -> (3DPCK all people, matched people), straight from the files and the definition."""
    folder = root / "MuPoTs" / "data"
    db = json.loads((folder / "MuPoTS-3D.json").read_text())
    poses = json.loads((folder / f"MuPoTs_test_{detector}_result.json").read_text())
    seq_of = {im["id"]: im["file_name"].split("/")[0] for im in db["images"]}
    reg = np.load(body / "J_regressor_mi_smpl.npy")[:17]
    model = load_for_eval(ckpt, load_config(None, [f"data.body_model_dir={body}"]), torch.device("cpu"))
    samples = MuPoTS(folder, detector)
    predicted = {}
    for i in range(len(samples)):
        s = samples[i]
        with torch.no_grad():
            mesh = model(s["inputs"]["img"][None], s["inputs"]["joints"][None], s["inputs"]["joints_mask"][None])
        predicted[s["meta"]["aid"]] = reg @ mesh["smpl_mesh_cam"][0].numpy().astype(np.float64) * 1000
    hits: dict[str, list[int]] = {}
    people: dict[str, int] = {}
    for a in db["annotations"]:
        if not a["is_valid"]:
            continue
        seq = seq_of[a["image_id"]]
        people[seq] = people.get(seq, 0) + 1
        entry = poses.get(str(a["id"]))
        if entry is None or not np.any(entry["coco_joints"]):
            continue  # the detector missed this person
        gt = np.array(a["keypoints_cam"])
        pred = predicted[a["id"]]
        correct = 0
        for j in range(14):  # head top, thorax, shoulders, elbows, wrists, hips, knees, ankles; pelvis = 14
            if np.linalg.norm((pred[j] - pred[14]) - (gt[j] - gt[14])) < 150:
                correct += 1
        hits.setdefault(seq, []).append(correct)
    return {seq: (100 * sum(hits.get(seq, [])) / (14 * n), 100 * sum(hits[seq]) / (14 * len(hits[seq])))
            for seq, n in people.items()}


@pytest.mark.parametrize("detector", ["hhrnet", "openpose"])
def test_3dpck_equals_the_published_definition(setup, tmp_path, detector, capsys, monkeypatch):
    # the evaluation and the direct forward below run the same (eager) kernels: equal up to batch composition
    monkeypatch.setenv("HAP3D_RUNTIME", "eager")
    root, body, ckpt = setup
    out = tmp_path / "mupots"
    assert cli_main(["eval", "--ckpt", str(ckpt), "--testset", "MuPoTS", "--input", detector, "--data-root",
                     str(root), "--body-model-dir", str(body), "--out", str(out), "data.num_workers=0",
                     "eval.test_batch_size=4"]) == 0
    got = json.loads((out / "mupots.json").read_text())
    assert got["joints_from"] == str(body / "J_regressor_mi_smpl.npy") and got["threshold_mm"] == 150
    want = _direct_3dpck(root, body, ckpt, detector)
    table = got["per_sequence"]
    assert set(table) == set(want) | {"overall"}
    for seq, (pck_all, pck_matched) in want.items():
        assert (table[seq]["all"], table[seq]["matched"]) == (pytest.approx(pck_all), pytest.approx(pck_matched))
    assert table["overall"]["all"] == pytest.approx(np.mean([w[0] for w in want.values()]))
    assert table["overall"]["matched"] == pytest.approx(np.mean([w[1] for w in want.values()]))
    assert table["overall"]["matched_people"] < table["overall"]["people"], "some people are unmatched"
    assert "3DPCK@150mm" in capsys.readouterr().out


def test_reader_keeps_valid_people_and_marks_missed_ones(setup):
    root, _, _ = setup
    folder = root / "MuPoTs" / "data"
    db = json.loads((folder / "MuPoTS-3D.json").read_text())
    valid = {a["id"] for a in db["annotations"] if a["is_valid"]}
    hhrnet = MuPoTS(folder, "hhrnet")
    assert {p.aid for p in hhrnet.people} == valid < {a["id"] for a in db["annotations"]}
    assert {r.aid for r in hhrnet.records} == valid & set(map(int, json.loads(
        (folder / "MuPoTs_test_hhrnet_result.json").read_text())))
    assert all(r.sequence.startswith("TS") for r in hhrnet.people)
    sample = hhrnet[0]
    assert sample["inputs"]["joints"].shape == (30, 3) and sample["targets"]["joint_cam"].shape == (17, 3)
    with pytest.raises(ValueError, match="choose one of hhrnet, openpose"):
        MuPoTS(folder, "vitpose")
