"""Inference runtimes (hap3d.model.runtime): 'fast' equals 'eager' within its stated tolerance and leaves training
alone; 'int8' runs on a copy; the mode is resolved and refused clearly."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from hap3d.config import ModelConfig
from hap3d.model import build_model
from hap3d.model.runtime import (
    FAST_TOLERANCE_M,
    PackedLinear,
    WinogradConv2d,
    prepare_for_inference,
    resolve_runtime,
)
from hap3d.utils import Hap3dError

from conftest import TINY_VIT

OUTPUTS = ("smpl_mesh_cam", "joint_cam", "cam_trans")


def _inputs(b: int = 3) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return {
        "img": torch.rand(b, 3, 256, 256, generator=g),
        "joints": 16 + 32 * torch.rand(b, 30, 2, generator=g),
        "joints_mask": torch.ones(b, 30, 1),
    }


@pytest.fixture
def model(body_dir):
    torch.manual_seed(0)
    m = build_model(ModelConfig(**TINY_VIT), body_dir).eval()
    for p in m.backbone.parameters():  # weights of a trained network's scale, so the outputs move with them
        p.data.normal_(0, 0.2)
    return m


def _max_diff(a: dict, b: dict, keys=OUTPUTS) -> float:
    return max((a[k] - b[k]).abs().max().item() for k in keys)


def test_fast_equals_eager_within_tolerance_and_keeps_the_state_dict(model):
    inp = _inputs()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.inference_mode():
        ref = model(**inp)
        fast = prepare_for_inference(model, "fast")
        out = fast(**inp)
    assert fast is model
    assert sum(isinstance(m, PackedLinear) for m in model.modules()) == 4 * TINY_VIT["depth"]
    assert sum(isinstance(m, nn.GELU) for m in model.backbone.modules()) == 0  # fused into fc1
    assert isinstance(model.pose2feat.conv[0], WinogradConv2d)
    assert _max_diff(out, ref) <= FAST_TOLERANCE_M
    assert (out["joint_img"] - ref["joint_img"]).abs().max().item() <= 1e-3  # 64-pixel grid
    assert list(model.state_dict()) == list(state)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())
    # Packed weights follow the parameters: a changed weight changes the output like it does in eager.
    with torch.no_grad():
        model.backbone.blocks[0].mlp.fc1.weight.mul_(0.5)
    with torch.inference_mode():
        changed = model(**inp)
        eager = prepare_for_inference(model, "eager")
        assert _max_diff(eager(**inp), changed) <= FAST_TOLERANCE_M
    assert _max_diff(changed, out) > 10 * FAST_TOLERANCE_M
    assert not any(isinstance(m, (PackedLinear, WinogradConv2d)) for m in eager.modules())
    assert type(eager.pose2feat.conv[0]) is nn.Conv2d and type(eager.backbone.blocks[0].mlp.act) is nn.GELU


def test_fast_layers_train_like_plain_linears(model):
    """In train mode (or with gradients) a packed layer is a plain Linear (+GELU): same loss, gradients flow."""
    inp = _inputs(2)
    model.train()
    torch.manual_seed(3)
    ref = model(**inp)["joint_cam"].square().mean()
    ref.backward()
    grad = model.backbone.blocks[0].mlp.fc1.weight.grad.clone()
    model.zero_grad()
    prepare_for_inference(model, "fast").train()
    torch.manual_seed(3)
    loss = model(**inp)["joint_cam"].square().mean()
    loss.backward()
    assert torch.allclose(loss, ref, atol=1e-6)
    assert torch.allclose(model.backbone.blocks[0].mlp.fc1.weight.grad, grad, atol=1e-6)


@pytest.mark.parametrize("optimizer", ["sgd_fused", "adamw_fused", "sgd"])
def test_fast_follows_optimizer_steps_between_evaluations(model, optimizer):
    """Evaluate, train a step, evaluate again (what training with evaluations does): the second evaluation uses the
    new weights. Fused optimizers write the parameters without bumping their version counters; an earlier build
    kept the weights packed at the first evaluation for every later one."""
    inp = _inputs(2)
    kind, fused = optimizer.split("_")[0], optimizer.endswith("fused")
    params = [p for p in model.parameters() if p.requires_grad]
    opt = (torch.optim.SGD(params, lr=0.5, momentum=0.9, fused=fused) if kind == "sgd"
           else torch.optim.AdamW(params, lr=0.05, fused=fused))
    prepare_for_inference(model, "fast")
    with torch.no_grad():
        before = model(**inp)  # packs the weights
    model.train()
    model(**inp)["joint_cam"].square().mean().backward()
    opt.step()
    model.eval()
    with torch.no_grad():
        after = model(**inp)
        eager = copy.deepcopy(model)
        prepare_for_inference(eager, "eager")
        assert _max_diff(after, eager(**inp)) <= FAST_TOLERANCE_M
    assert _max_diff(after, before) > 10 * FAST_TOLERANCE_M


def test_prepare_repacks_weights_changed_behind_torchs_back(model):
    """``.data`` writes bypass the version counter; prepare_for_inference (every evaluation's start) repacks."""
    inp = _inputs(2)
    with torch.no_grad():
        prepare_for_inference(model, "fast")(**inp)
        for p in model.backbone.parameters():
            p.data.mul_(0.5)
        model.pose2feat.conv[0].weight.data.mul_(0.5)
        out = prepare_for_inference(model, "fast")(**inp)
        assert _max_diff(out, prepare_for_inference(copy.deepcopy(model), "eager")(**inp)) <= FAST_TOLERANCE_M


def test_int8_quantises_a_copy_of_the_backbone(model):
    inp = _inputs()
    with torch.inference_mode():
        ref = model(**inp)
        prepare_for_inference(model, "fast")(**inp)  # packed weights present: the copy must not trip on them
        q = prepare_for_inference(model, "int8")
        out = q(**inp)
    assert q is not model
    dynamic = torch.ao.nn.quantized.dynamic.Linear
    assert sum(isinstance(m, dynamic) for m in q.backbone.modules()) == 4 * TINY_VIT["depth"]
    assert not any(type(m) is nn.Linear for m in q.backbone.modules())
    assert not any(isinstance(m, (PackedLinear, WinogradConv2d)) for m in q.modules())
    assert type(model.backbone.blocks[0].attn.qkv) is PackedLinear  # the original is untouched
    diff = _max_diff(out, ref)
    assert 0 < diff < 0.5  # quantised, yet the same network


@pytest.mark.parametrize("size,bound", [((16, 16), 4e-5), ((8, 12), 4e-5), ((6, 10), 1e-5), ((5, 7), 1e-5)])
def test_winograd_convolution_equals_the_direct_one(size, bound):
    """F(4x4) on sides divisible by 4, F(2x2) on other even sides, the direct convolution on odd ones: each within
    ``bound`` x the outputs' scale of the float64 convolution (Pose2Feat's 798 input channels, as in the network)."""
    torch.manual_seed(0)
    conv = nn.Conv2d(798, 24, 3, padding=1).eval()
    x = torch.randn(2, 798, *size)
    wino = WinogradConv2d(conv).eval()
    with torch.no_grad():
        exact = F.conv2d(x.double(), conv.weight.double(), conv.bias.double(), padding=1)
        out = wino(x)
        assert (out.double() - exact).abs().max().item() <= bound * exact.abs().max().item()
        conv.weight.mul_(-1)  # the transformed filters follow the shared weight
        assert torch.allclose(wino(x), conv(x), atol=1e-4)
    assert type(wino.plain()) is nn.Conv2d and wino.plain().weight is conv.weight
    assert not WinogradConv2d.fits(nn.Conv2d(3, 4, 3, stride=2, padding=1))


def test_modes_resolve_and_bad_ones_are_named(monkeypatch):
    monkeypatch.delenv("HAP3D_RUNTIME", raising=False)
    assert resolve_runtime("auto", "cpu") == "fast"
    assert resolve_runtime("auto", "cuda") == "eager"
    monkeypatch.setenv("HAP3D_RUNTIME", "int8")
    assert resolve_runtime("auto", "cpu") == "int8"
    assert resolve_runtime("eager", "cpu") == "eager"
    monkeypatch.setenv("HAP3D_RUNTIME", "turbo")
    with pytest.raises(Hap3dError, match="HAP3D_RUNTIME='turbo'"):
        resolve_runtime("auto", "cpu")
    with pytest.raises(Hap3dError, match="runtime=int8.*CPU"):
        resolve_runtime("int8", "cuda")
