"""Parity with the reference implementation on the golden fixtures (cases A, B, C).

Weights and inputs are regenerated here rather than stored: weights by hap3d.utils.rule_state_dict (seeded by each
key's name), inputs and targets by case_a_inputs and case_b_targets; seeds and sizes come from the fixtures'
manifest.json.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hap3d.model.checkpoint import load_backbone_checkpoint
from hap3d.model.losses import LOSS_NAMES, loss_terms, reduce_losses
from hap3d.model.vit import ViT
from hap3d.utils import rule_state_dict

from golden import (
    TOL_FORWARD,
    TOL_GRAD,
    TOL_TRAIN_ELEMENT,
    assert_close,
    golden_dir,
    golden_model,
    keys,
    npz,
    params,
    rules,
    tol,
)

pytestmark = [pytest.mark.slow, pytest.mark.numerics]


def case_a_inputs() -> dict[str, np.ndarray]:
    """Case A inputs: uint8 images (per-channel level, gradients, 8x8 blocks and pixel noise), 64-space input joints
    with confidences, and their mask (80 % kept, inside the heatmap), each from its own seeded stream."""
    p = params()["case_a"]
    b, seed = p["batch"], p["seed"]
    r1 = np.random.default_rng(100 * seed + 1)
    base = r1.uniform(0.15, 0.85, size=(b, 3))
    grad = r1.uniform(-0.4, 0.4, size=(b, 3, 2))
    blocks = r1.uniform(-0.3, 0.3, size=(b, 3, 8, 8))
    noise = r1.standard_normal((b, 3, 256, 256))
    ramp = np.arange(256) / 255 - 0.5
    yy, xx = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")
    val = (
        base[:, :, None, None]
        + grad[:, :, 0, None, None] * ramp[None, None, None, :]
        + grad[:, :, 1, None, None] * ramp[None, None, :, None]
        + blocks[:, :, yy // 32, xx // 32]
        + 0.15 * noise
    )
    img_u8 = np.clip(np.rint(255 * val), 0, 255).astype(np.uint8)
    r2 = np.random.default_rng(100 * seed + 2)
    xy = r2.uniform(-4, 68, size=(b, 30, 2))
    conf = r2.uniform(0, 1, size=(b, 30, 1))
    joints = np.concatenate([xy, conf], 2).astype(np.float32)
    keep = np.random.default_rng(100 * seed + 3).random((b, 30)) < 0.8
    x, y = joints[..., 0], joints[..., 1]
    mask = (keep & (x >= 0) & (x < 64) & (y >= 0) & (y < 64)).astype(np.float32)[..., None]
    return {"img_u8": img_u8, "joints": joints, "joints_mask": mask}


@pytest.fixture(scope="module")
def model():
    return golden_model()


@pytest.fixture(scope="module")
def case_a_run(model):
    inp = case_a_inputs()
    img = torch.from_numpy(inp["img_u8"].astype(np.float32) / np.float32(255))
    model.eval()
    with torch.no_grad():
        out = model(img, torch.from_numpy(inp["joints"]), torch.from_numpy(inp["joints_mask"]),
                    return_intermediates=True)
    return inp, out


def test_case_a_inputs_regenerate_exactly():
    ref = npz("case_a.npz")
    inp = case_a_inputs()
    for k in ("img_u8", "joints", "joints_mask"):
        np.testing.assert_array_equal(inp[k], ref[f"in/{k}"])


def test_rule_weights_match_key_checks():
    entries = [e for e in keys()["model_state_dict"] if e["source"] == "rule"]
    from golden import rule_weights

    w = rule_weights()
    for e in entries[:: max(1, len(entries) // 80)]:
        np.testing.assert_allclose(w[e["key"]].reshape(-1)[:4], e["first4"], rtol=1e-6)
        assert abs(w[e["key"]].astype(np.float64).sum() - e["sum"]) <= 1e-6 * max(1.0, abs(e["sum"]))


OUT_KEYS = [
    "cam_param", "joint_img", "joint_proj", "joint_score", "smpl_mesh_cam", "smpl_pose", "smpl_shape",
    "mesh_cam_render",
]
MID_KEYS = {
    "heatmap16": "heatmaps",
    "early_feat": "early_feat",
    "pose2feat_out": "pose2feat_out",
    "late_feat": "late_feat",
    "lift_out": "lift_out",
    "position_joint_coord8": "position_joint_coord",
    "position_joint_score": "position_joint_score",
    "rotation_sampled_feat": "rotation_sampled_feat",
    "rotation_gcn_out": "rotation_gcn_out",
    "rotation_root6d": "rotation_root6d",
    "rotation_vposer_z": "rotation_vposer_z",
    "rotation_betas": "rotation_betas",
    "rotation_cam": "rotation_cam",
    "root_pose_aa": "root_pose_aa",
    "vposer_body_pose_aa": "vposer_body_pose_aa",
    "cam_trans": None,
    "smpl_joints24_abs": "smpl_joints24_abs",
    "joint_cam": None,
}


@pytest.mark.parametrize("key", OUT_KEYS)
def test_case_a_outputs(case_a_run, key):
    _, out = case_a_run
    assert_close(out[key], npz("case_a.npz")[f"out/{key}"], tol("case_a", "out", TOL_FORWARD), key)


@pytest.mark.parametrize("key", list(MID_KEYS))
def test_case_a_intermediates(case_a_run, key):
    _, out = case_a_run
    ours = out[f"mid/{MID_KEYS[key]}"] if MID_KEYS[key] else out[key]
    assert_close(ours, npz("case_a.npz")[f"mid/{key}"], tol("case_a", "mid", TOL_FORWARD), key)


def test_case_a_heatmap_zeros_exact(case_a_run):
    _, out = case_a_run
    ref = npz("case_a.npz")["mid/heatmap16"]
    np.testing.assert_array_equal(out["mid/heatmaps"].numpy() == 0, ref == 0)


def case_b_targets() -> tuple[dict, dict]:
    """Case B targets and meta: random 64-space and camera-frame joints, SMPL parameters and validity masks from one
    seeded stream; half the batch 3D, sample 1 without a valid fit."""
    b = params()["case_a"]["batch"]
    r = np.random.default_rng(100 * params()["case_b"]["seed"] + 4)
    t = {
        "orig_joint_img": r.uniform(0, 64, (b, 30, 3)).astype(np.float32),
        "fit_joint_img": r.uniform(0, 64, (b, 30, 3)).astype(np.float32),
        "orig_joint_cam": (0.3 * r.standard_normal((b, 30, 3))).astype(np.float32),
        "fit_joint_cam": (0.3 * r.standard_normal((b, 30, 3))).astype(np.float32),
        "pose_param": (0.3 * r.standard_normal((b, 72))).astype(np.float32),
        "shape_param": r.standard_normal((b, 10)).astype(np.float32),
    }
    valid = (r.random((b, 30, 1)) < 0.9).astype(np.float32)
    trunc = valid * (r.random((b, 30, 1)) < 0.85).astype(np.float32)
    fit_trunc = (r.random((b, 30, 1)) < 0.9).astype(np.float32)
    fpv = np.ones((b, 24, 3), np.float32)
    fpv[:, [7, 8, 10, 11, 20, 21, 22, 23]] = 0
    m = {
        "orig_joint_valid": valid,
        "orig_joint_trunc": trunc,
        "fit_joint_trunc": fit_trunc,
        "fit_param_valid": fpv.reshape(b, 72),
        "is_3D": (np.arange(b) < int(np.ceil(b / 2))).astype(np.float64),
        "is_valid_fit": (np.arange(b) != 1).astype(np.float64),
    }
    return t, m


@pytest.fixture(scope="module")
def case_b_run():
    model = golden_model()
    model.train()
    for mod in model.modules():  # as case B was recorded: drop-path and VPoser dropout off, BN in training mode
        if type(mod).__name__ == "DropPath":
            mod.eval()
    model.vposer.eval()
    model.vit_conv_layer.requires_grad_(True)  # the reference computes (but never applies) its gradient
    inp = case_a_inputs()
    img = torch.from_numpy(inp["img_u8"].astype(np.float32) / np.float32(255))
    t, m = case_b_targets()
    pred = model(
        img, torch.from_numpy(inp["joints"][..., :2].copy()), torch.from_numpy(inp["joints_mask"]),
        return_intermediates=True,
    )
    targets = {k: torch.from_numpy(v) for k, v in t.items()}
    terms = loss_terms(pred, targets, {k: torch.from_numpy(v) for k, v in m.items()}, model.graph_index)
    total, means = reduce_losses(terms)
    total.backward()
    return model, pred, terms, total, means, t, m


def test_case_b_targets_regenerate_exactly():
    ref = npz("case_b.npz")
    t, m = case_b_targets()
    for k, v in t.items():
        np.testing.assert_array_equal(v, ref[f"target/{k}"])
    for k, v in m.items():
        np.testing.assert_array_equal(v, ref[f"meta/{k}"])


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_case_b_losses(case_b_run, name):
    _, _, terms, _, means, _, _ = case_b_run
    ref = npz("case_b.npz")
    assert_close(means[name], ref[f"loss_mean/{name}"], tol("case_b", "loss_mean", TOL_TRAIN_ELEMENT), name)
    assert_close(terms[name].value, ref[f"loss_elem/{name}"], tol("case_b", "loss_elem", TOL_TRAIN_ELEMENT), name)


def test_case_b_total(case_b_run):
    bound = tol("case_b", "loss_total", TOL_TRAIN_ELEMENT)
    assert_close(case_b_run[3], npz("case_b.npz")["loss_total"], bound, "loss_total")


TRAIN_KEYS = {
    "joint_img8": "mid/position_joint_coord",
    "joint_score": "joint_score",
    "root6d": "mid/rotation_root6d",
    "vposer_z": "mid/rotation_vposer_z",
    "betas": "smpl_shape",
    "cam": "cam_param",
    "pose72": "smpl_pose",
    "joint_proj": "joint_proj",
    "joint_cam": "joint_cam",
}


@pytest.mark.parametrize("key", list(TRAIN_KEYS))
def test_case_b_train_forward(case_b_run, key):
    tolerance = tol("case_b", "train", TOL_TRAIN_ELEMENT)
    assert_close(case_b_run[1][TRAIN_KEYS[key]], npz("case_b.npz")[f"train/{key}"], tolerance, key)


def test_case_b_batchnorm_running_stats(case_b_run):
    model = case_b_run[0]
    ref = npz("case_b.npz")
    sd = model.state_dict()
    for k in ref:
        if k.startswith("bn_after/"):
            name = k[len("bn_after/") :]
            if name.endswith("num_batches_tracked"):
                assert int(sd[name]) == int(ref[k])
            else:
                assert_close(sd[name], ref[k], tol("case_b", "bn_after", TOL_TRAIN_ELEMENT), name)


def test_case_b_gradients_shape_and_sign(case_b_run):
    """Gradients are informative only (L1 sign kinks): shape and a loose agreement."""
    model = case_b_run[0]
    params_ = dict(model.named_parameters())
    for k, ref in npz("case_b.npz").items():
        if k.startswith("grad/"):
            g = params_[k[len("grad/") :]].grad
            assert g is not None, k
            assert_close(g, ref, tol("case_b", "grad", TOL_GRAD), k)


def test_case_c_backbone_checkpoint(tmp_path):
    """Case C: a fake ViTPose/mmcv checkpoint, key filtering, pos-embed resize, strict load."""
    entries = keys()["case_c_checkpoint"]
    shapes = {e["key"]: e["shape"] for e in entries}
    salt = params()["weight_salt"] + rules()["weights"]["ckpt_salt_suffix"]
    tensors = {k: torch.from_numpy(v) for k, v in rule_state_dict(shapes, salt).items()}
    ref = npz("case_c.npz")
    np.testing.assert_array_equal(tensors["backbone.pos_embed"].numpy(), ref["ckpt/backbone.pos_embed"])
    path = tmp_path / "latest.pth"
    torch.save({"meta": rules()["case_c"]["meta"], "state_dict": tensors}, path)

    import json

    expected = json.loads((golden_dir() / "case_c.json").read_text())
    vit = ViT(depth=golden_model_depth())
    report = load_backbone_checkpoint(vit, path)
    assert sorted(report.loaded) == sorted(expected["loaded_keys_after_renaming"])
    assert sorted(report.ignored) == sorted(expected["ignored_checkpoint_keys"])
    assert not report.missing and not report.unexpected
    sd = vit.state_dict()
    assert_close(sd["pos_embed"], ref["loaded/pos_embed"], 1e-6, "pos_embed")
    np.testing.assert_array_equal(sd["pos_embed"][:, 0].numpy(), ref["ckpt/backbone.pos_embed"][:, 0])
    np.testing.assert_array_equal(sd["patch_embed.proj.bias"].numpy(), ref["loaded/patch_embed.proj.bias"])
    for k in report.loaded:
        if k != "pos_embed":
            assert torch.equal(sd[k], tensors["backbone." + k]), k


def golden_model_depth() -> int:
    from golden import manifest

    return manifest()["vit_depth"]
