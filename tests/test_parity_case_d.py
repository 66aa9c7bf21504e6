"""Golden case D: the 3DPW test crop and the evaluation metric, against the reference's recorded values."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from hap3d.body.smpl import GENDERS, SMPL, GenderedSMPL, load_smpl_arrays
from hap3d.data.pw3d import PW3D
from hap3d.engine.metrics import mesh_errors

from golden import TOL_CROP_PIXELS, TOL_FORWARD, TOL_GEOMETRY, assert_close, golden_dir, golden_model, npz, params

pytestmark = [pytest.mark.slow, pytest.mark.numerics]


@pytest.fixture(scope="module")
def dataset():
    return PW3D(golden_dir() / "case_d_pw3d")


@pytest.fixture(scope="module")
def samples(dataset):
    return [dataset[i] for i in range(len(dataset))]


@pytest.fixture(scope="module")
def gendered():
    body = golden_dir() / "body"
    return GenderedSMPL({g: SMPL(load_smpl_arrays(body / f"smpl_{g}.npz")) for g in GENDERS})


def regressors():
    reg = npz("body/regressors.npz")
    root = load_smpl_arrays(golden_dir() / "body" / "smpl_neutral.npz")["J_regressor"][0]
    return reg["J_regressor_h36m_correct"], root


def test_dataset_order_and_genders(dataset):
    info = json.loads((golden_dir() / "case_d.json").read_text())
    assert [r.aid for r in dataset.records] == info["aids"]
    assert [r.gender for r in dataset.records] == info["genders"]
    assert len(dataset) == sum(params()["case_d"]["people_per_image"])


def test_load_time_processed_tight_box(dataset):
    ours = np.stack([r.bbox for r in dataset.records])
    assert_close(ours, npz("case_d.npz")["load/process_bbox_of_tight"], TOL_GEOMETRY, "bbox")


@pytest.mark.parametrize("key", ["img2bb_trans", "bb2img_trans", "bbox", "tight_bbox", "joints_bbox_raw"])
def test_crop_geometry(samples, key):
    ours = np.stack([s["meta"][key].numpy() for s in samples])
    assert_close(ours, npz("case_d.npz")[f"crop/{key}"], TOL_GEOMETRY, key)


def test_crop_inputs(samples):
    ref = npz("case_d.npz")
    assert_close(np.stack([s["inputs"]["img"].numpy() for s in samples]), ref["crop/img"], TOL_CROP_PIXELS, "img")
    assert_close(np.stack([s["inputs"]["joints"].numpy() for s in samples]), ref["crop/joints"], TOL_GEOMETRY, "joints")
    joints_mask = np.stack([s["inputs"]["joints_mask"].numpy() for s in samples])
    np.testing.assert_array_equal(joints_mask, ref["crop/joints_mask"])
    np.testing.assert_array_equal([s["meta"]["aid"] for s in samples], ref["crop/aid"])


def test_ground_truth_meshes(samples, gendered):
    t = {k: torch.stack([torch.as_tensor(s["targets"][k]) for s in samples])
         for k in ("smpl_pose", "smpl_shape", "smpl_trans", "gender")}
    with torch.no_grad():
        mesh = gendered(t["smpl_pose"], t["smpl_shape"], t["smpl_trans"], t["gender"])
    assert_close(mesh, npz("case_d.npz")["gt/smpl_mesh_cam"], TOL_FORWARD, "gt mesh")


@pytest.mark.parametrize("which", ["metric_model", "metric_synth"])
def test_metric_on_recorded_predictions(which):
    """The metric alone, fed the reference's recorded predictions and ground truth."""
    ref = npz("case_d.npz")
    pred = ref["model_out/smpl_mesh_cam"] if which == "metric_model" else ref["synth/pred_smpl_mesh_cam"]
    h36m, root = regressors()
    ours = mesh_errors(pred, ref["gt/smpl_mesh_cam"], h36m, root)
    info = json.loads((golden_dir() / "case_d.json").read_text())[which]
    for m in ("mpjpe", "pa_mpjpe", "mpvpe"):
        assert_close(ours[m], ref[f"{which}/{m}"], TOL_FORWARD, m)
        assert ours[m].mean() == pytest.approx(info[m]["mean"], rel=1e-4)
    assert ours["mpjpe"].dtype == np.float64 and ours["mpvpe"].dtype == np.float32


def test_metric_intermediates():
    ref = npz("case_d.npz")
    from hap3d.engine.metrics import h36m_eval_joints, rigid_align

    h36m, _ = regressors()
    gt = h36m_eval_joints(ref["gt/smpl_mesh_cam"], h36m)
    pred = h36m_eval_joints(ref["model_out/smpl_mesh_cam"], h36m)
    assert_close(gt, ref["metric_model_mid/gt_h36m14"], 1e-6, "gt joints")
    assert_close(pred, ref["metric_model_mid/pred_h36m14"], 1e-6, "pred joints")
    aligned = np.stack([rigid_align(pred[i], gt[i]) for i in range(len(gt))])
    assert_close(aligned, ref["metric_model_mid/pred_h36m14_aligned"], 1e-6, "aligned")


def test_end_to_end_model_on_our_crops(samples, gendered):
    """Our crop -> our model (golden weights) -> our metric equals the reference's recorded per-sample metric."""
    model = golden_model().eval()
    batch = {k: torch.stack([s["inputs"][k] for s in samples]) for k in ("img", "joints", "joints_mask")}
    with torch.no_grad():
        out = model(batch["img"], batch["joints"], batch["joints_mask"])
    ref = npz("case_d.npz")
    for k in ("smpl_mesh_cam", "joint_img", "smpl_pose", "mesh_cam_render"):
        assert_close(out[k], ref[f"model_out/{k}"], TOL_FORWARD, k)
    h36m, root = regressors()
    ours = mesh_errors(out["smpl_mesh_cam"].numpy(), ref["gt/smpl_mesh_cam"], h36m, root)
    for m in ("mpjpe", "pa_mpjpe", "mpvpe"):
        assert_close(ours[m], ref[f"metric_model/{m}"], TOL_FORWARD, m)
