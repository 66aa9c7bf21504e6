"""Network behaviour beyond the golden numbers: config switches, train/eval semantics, every registered backbone,
autocast."""

from __future__ import annotations

import pytest
import torch

from hap3d.config import BACKBONE_NAMES, ConfigError, ModelConfig, apply_overrides, from_dict
from hap3d.model import build_model
from hap3d.model.backbones import BACKBONES, backbone_spec
from hap3d.model.heads import GraphConvBlock
from hap3d.model.losses import loss_terms, reduce_losses
from hap3d.utils import Hap3dError

from conftest import TINY_VIT

# A small configuration of every registered backbone (ResNet has no width setting: the real ResNet-50).
TINY = {"vit_b": TINY_VIT, "resnet50": dict(backbone="resnet50")}
over_registry = pytest.mark.parametrize("backbone", list(BACKBONES))


def _batch(b: int = 2, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, 256, 256, generator=g), torch.rand(b, 30, 2, generator=g) * 64, torch.ones(b, 30, 1)


def _targets(b: int):
    g = torch.Generator().manual_seed(3)
    t = {
        "orig_joint_img": torch.rand(b, 30, 3, generator=g) * 64,
        "fit_joint_img": torch.rand(b, 30, 3, generator=g) * 64,
        "orig_joint_cam": torch.randn(b, 30, 3, generator=g) * 0.3,
        "fit_joint_cam": torch.randn(b, 30, 3, generator=g) * 0.3,
        "pose_param": torch.randn(b, 72, generator=g) * 0.3,
        "shape_param": torch.randn(b, 10, generator=g),
    }
    m = {
        "orig_joint_valid": torch.ones(b, 30, 1),
        "orig_joint_trunc": torch.ones(b, 30, 1),
        "fit_joint_trunc": torch.ones(b, 30, 1),
        "fit_param_valid": torch.ones(b, 72),
        "is_3D": torch.tensor([1.0, 0.0])[:b],
        "is_valid_fit": torch.ones(b),
    }
    return t, m


def test_reference_compat_switches_resolve():
    ref = ModelConfig(reference_compat=True)
    fixed = ModelConfig(reference_compat=False)
    assert (ref.heatmap_downsample, ref.feature_downsample, ref.lift_trainable, ref.vposer_dropout, ref.input_norm) == (
        "nearest", "nearest", False, True, "none")
    assert (fixed.heatmap_downsample, fixed.feature_downsample, fixed.lift_trainable, fixed.vposer_dropout,
            fixed.input_norm) == ("area", "area", True, False, "imagenet")
    explicit = ModelConfig(reference_compat=False, heatmap_downsample="nearest")
    assert explicit.heatmap_downsample == "nearest"
    assert ModelConfig().camera_depth_scale == pytest.approx(48.828125)


def test_config_validation_messages():
    with pytest.raises(ConfigError, match="unknown config key 'dept'.*Did you mean 'depth'"):
        from_dict(ModelConfig, {"dept": 3})
    with pytest.raises(ConfigError, match="'backbone' must be one of"):
        from_dict(ModelConfig, {"backbone": "vit_l"})
    with pytest.raises(ConfigError, match="must be an integer"):
        from_dict(ModelConfig, {"depth": "twelve"})
    with pytest.raises(ConfigError, match="divisible"):
        from_dict(ModelConfig, {"embed_dim": 100, "num_heads": 3})
    assert from_dict(ModelConfig, {"backbone_type": "resnet", "resnet_type": 50}).backbone == "resnet50"
    d = apply_overrides({"model": {"depth": 12}}, ["model.depth=2", "model.reference_compat=false"])
    assert d == {"model": {"depth": 2, "reference_compat": False}}
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides({}, ["model.depth"])


def test_config_and_registry_name_the_same_backbones():
    assert tuple(BACKBONES) == BACKBONE_NAMES and set(TINY) == set(BACKBONES)
    with pytest.raises(ConfigError, match=r"registered backbones \['vit_b', 'resnet50'\].*got 'vit_l'"):
        ModelConfig(backbone="vit_l")
    with pytest.raises(ConfigError, match="registered: vit_b, resnet50"):
        backbone_spec("vit_l")


def test_old_vit_conv_keys_are_aliases():
    old = from_dict(ModelConfig, {"lift_dim": 96, "lift_trainable": True})
    assert old == from_dict(ModelConfig, {"vit_conv_dim": 96, "vit_conv_trainable": True})
    assert (old.lift_dim, old.lift_trainable) == (96, True)


@over_registry
def test_backbone_protocol(body_dir, backbone):
    """Each backbone's stages give the channels it declares; the heads get vit_conv_dim or its late channels."""
    model = build_model(ModelConfig(**TINY[backbone]), body_dir).eval()
    img, joints, mask = _batch(1)
    with torch.no_grad():
        out = model(img, joints, mask, return_intermediates=True)
    assert out["mid/early_feat"].shape[1] == model.backbone.early_channels
    assert out["mid/heatmaps"].shape[-2:] == out["mid/early_feat"].shape[-2:]
    assert out["mid/late_feat"].shape[1] == model.backbone.late_channels
    lifted = BACKBONES[backbone].vit_conv_layer
    assert (model.vit_conv_layer is not None) == lifted
    heads_in = model.cfg.vit_conv_dim if lifted else model.backbone.late_channels
    assert tuple(out["mid/lift_out"].shape[1:]) == (heads_in, 8, 8)
    assert out["smpl_mesh_cam"].shape == (1, 6890, 3) and torch.isfinite(out["smpl_mesh_cam"]).all()


def test_train_mode_semantics(body_dir):
    compat = build_model(ModelConfig(**TINY_VIT), body_dir).train()
    assert compat.vposer.training, "reference: VPoser dropout is active in training"
    assert not any(p.requires_grad for p in compat.vit_conv_layer.parameters()), "reference: lift stays frozen"
    assert not any(p.requires_grad for p in compat.vposer.parameters())
    fixed = build_model(ModelConfig(**TINY_VIT, reference_compat=False), body_dir).train()
    assert not fixed.vposer.training
    assert all(p.requires_grad for p in fixed.vit_conv_layer.parameters())
    names = {n for n, p in fixed.named_parameters() if p.requires_grad}
    assert not any(n.startswith("vposer.") for n in names)


def test_vposer_dropout_makes_training_forward_stochastic_only_in_compat(body_dir):
    img, joints, mask = _batch()
    for compat, stochastic in ((True, True), (False, False)):
        model = build_model(ModelConfig(**TINY_VIT, reference_compat=compat, drop_path_rate=0.0), body_dir).train()
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm1d | torch.nn.BatchNorm2d):
                m.eval()
        torch.manual_seed(0)
        a = model(img, joints, mask)["smpl_pose"]
        b = model(img, joints, mask)["smpl_pose"]
        assert (not torch.equal(a, b)) == stochastic


def test_heatmap_downsampling_modes(body_dir):
    joints = torch.tensor([[[8.0, 20.0]] * 30, [[34.0, 22.0]] * 30])
    mask = torch.ones(2, 30, 1)
    mask[1, 5] = 0
    near = build_model(ModelConfig(**TINY_VIT), body_dir).make_heatmaps(joints, mask, 16)
    area = build_model(ModelConfig(**TINY_VIT, heatmap_downsample="area"), body_dir).make_heatmaps(joints, mask, 16)
    assert near[0, 0, 5, 2] == pytest.approx(1.0)  # on the every-4th-pixel lattice: full peak
    assert near[1, 0].max() == pytest.approx(float(torch.exp(torch.tensor(-0.64))), rel=1e-6)  # 2 px off: 0.53
    assert torch.all(near[1, 5] == 0) and torch.all(area[1, 5] == 0)
    # 'area' keeps a joint's whole Gaussian mass wherever it lies
    mass = 2 * torch.pi * 2.5**2
    assert float(area[0, 0].sum()) * 16 == pytest.approx(mass, rel=1e-3)
    assert float(area[1, 0].sum()) * 16 == pytest.approx(mass, rel=1e-3)


def test_resnet_backbone_forward_and_loss_backward(body_dir):
    model = build_model(ModelConfig(backbone="resnet50"), body_dir).train()
    img, joints, mask = _batch(2)
    pred = model(img, joints, mask)
    assert pred["joint_img"].shape == (2, 15, 3) and pred["smpl_mesh_cam"].shape == (2, 6890, 3)
    t, m = _targets(2)
    total, means = reduce_losses(loss_terms(pred, t, m, model.graph_index))
    total.backward()
    assert model.backbone.layer1[0].conv1.weight.grad is not None
    assert set(means) == {"body_joint_img", "smpl_joint_img", "smpl_pose", "smpl_shape", "body_joint_proj",
                          "body_joint_cam", "smpl_joint_cam"}


@over_registry
def test_valid_mean_reduction_normalises_by_supervised_elements(body_dir, backbone):
    model = build_model(ModelConfig(**TINY[backbone]), body_dir).eval()
    pred = model(*_batch(2))
    t, m = _targets(2)
    terms = loss_terms(pred, t, m, model.graph_index)
    _, mean = reduce_losses(terms, "mean")
    _, valid = reduce_losses(terms, "valid_mean")
    # body_joint_cam is supervised only for the 3D sample (is_3D = [1, 0]): half of the elements
    assert valid["body_joint_cam"].item() == pytest.approx(2 * mean["body_joint_cam"].item(), rel=1e-5)
    assert valid["smpl_joint_cam"].item() == pytest.approx(mean["smpl_joint_cam"].item(), rel=1e-5)


@pytest.mark.numerics
def test_bf16_autocast_stays_close_to_fp32(body_dir):
    """Stated tolerance for bf16 inference: root-relative mesh within 2 cm and pose within 0.05 rad of fp32."""
    model = build_model(ModelConfig(**TINY_VIT), body_dir).eval()
    args = _batch(2)
    with torch.no_grad():
        ref = model(*args)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(*args)
    assert low["smpl_mesh_cam"].dtype == torch.float32, "the body model runs in fp32 under autocast"
    def root_relative(mesh: torch.Tensor) -> torch.Tensor:
        return mesh - mesh.mean(dim=1, keepdim=True)

    # Seeded weights (conftest): over 20 seeds the error was 3-63 mm, heavy-tailed; seed 0 gives ~5 mm with the
    # AVX2 and the portable (SSE4.1) kernels alike, so 20 mm leaves room for other bf16 kernels.
    assert (root_relative(low["smpl_mesh_cam"]) - root_relative(ref["smpl_mesh_cam"])).abs().max() < 0.02
    assert (low["smpl_pose"] - ref["smpl_pose"]).abs().max() < 0.05


@over_registry
def test_batch_of_three_matches_per_sample(body_dir, backbone):
    """The reference's cross product broke batches of exactly 3; here every sample is independent."""
    model = build_model(ModelConfig(**TINY[backbone]), body_dir).eval()
    img, joints, mask = _batch(3)
    with torch.no_grad():
        full = model(img, joints, mask)["smpl_pose"]
        single = torch.cat([model(img[i : i + 1], joints[i : i + 1], mask[i : i + 1])["smpl_pose"] for i in range(3)])
    torch.testing.assert_close(full, single, atol=1e-5, rtol=1e-4)


def test_amp_auto_resolution(monkeypatch):
    from hap3d import precision

    monkeypatch.setattr(precision, "native_bf16", lambda device_type="cpu": True)
    assert precision.resolve_amp("auto", "cpu") == "bf16"
    monkeypatch.setattr(precision, "native_bf16", lambda device_type="cpu": False)
    assert precision.resolve_amp("auto", "cpu") == "none" and precision.resolve_amp("fp16", "cpu") == "fp16"
    monkeypatch.setattr(precision, "native_fp16", lambda device_type="cpu": False)
    with pytest.raises(Hap3dError, match="--amp=fp16 on a CPU without native fp16"):
        precision.check_amp("fp16", "cpu", "--amp")
    monkeypatch.setattr(precision, "native_fp16", lambda device_type="cpu": True)
    assert precision.check_amp("fp16", "cpu") == "fp16"
    # eval.amp takes 'auto' too; its default stays fp32, so that a score does not depend on the CPU
    from hap3d.config import Config

    assert from_dict(Config, {"eval": {"amp": "auto"}}).eval.amp == "auto" and Config().eval.amp == "none"


def test_graph_block_eval_folding_equals_the_per_joint_modules():
    """Eval folds each joint's Linear + BatchNorm into one batched product; it must be the same function."""
    torch.manual_seed(0)
    adj = torch.softmax(torch.randn(15, 15), dim=1)
    block = GraphConvBlock(adj, 20, 8)
    for seq in block.fcbn_list:  # non-trivial running statistics and affine parameters
        bn = seq[1]
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.data.normal_()
        bn.bias.data.normal_()
    block.eval()
    x = torch.randn(5, 15, 20)
    per_joint = torch.stack([m(x[:, v]) for v, m in enumerate(block.fcbn_list)], dim=1)
    expected = torch.relu(adj @ per_joint)
    torch.testing.assert_close(block(x), expected, rtol=1e-5, atol=1e-5)
    block.train()  # training keeps the per-joint modules (batch statistics)
    torch.testing.assert_close(
        block(x), torch.relu(adj @ torch.stack([m(x[:, v]) for v, m in enumerate(block.fcbn_list)], dim=1))
    )
