"""Checkpoint formats: reference snapshots (ViT and ResNet), mmcv/ViTPose, HAP pre-training, torchvision,
our own safetensors format, the convert command, and malformed inputs."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys

import pytest
import torch

from hap3d.cli import main as cli_main
from hap3d.config import ModelConfig, to_dict
from hap3d.model import build_model
from hap3d.model.checkpoint import (
    CheckpointError,
    infer_model_config,
    load_backbone_checkpoint,
    load_model_checkpoint,
    read_checkpoint,
    save_model_checkpoint,
)
from hap3d.model.resnet import ResNet
from hap3d.model.vit import ViT

from conftest import TINY_VIT


def _randomise(model: torch.nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for k, t in model.state_dict().items():
            if t.is_floating_point():
                t.copy_(torch.randn(t.shape, generator=g) * 0.05 + (1.0 if k.endswith("running_var") else 0.0))


def reference_snapshot(model, epoch: int = 7) -> dict:
    """What the reference's DataParallel training saved for this model (module. prefix, SMPL, full VPoser)."""
    net = {}
    for k, v in model.state_dict().items():
        key = "vposer.vposer." + k[len("vposer.") :] if k.startswith("vposer.") else k
        net["module." + key] = v.clone()
    for name, buf in model.smpl.named_buffers():
        if name.startswith("th_"):
            net["module.human_model_layer." + name] = buf.clone()
    net["module.vposer.vposer.bodyprior_enc_fc1.weight"] = torch.zeros(512, 63)
    optimizer = {"state": {}, "param_groups": [{"lr": 1e-3, "params": [0, 1]}]}
    return {"epoch": epoch, "network": net, "optimizer": optimizer}


def _inputs(b: int = 2):
    g = torch.Generator().manual_seed(1)
    return torch.rand(b, 3, 256, 256, generator=g), torch.rand(b, 30, 2, generator=g) * 64, torch.ones(b, 30, 1)


@pytest.fixture()
def tiny_model(body_dir):
    model = build_model(ModelConfig(**TINY_VIT), body_dir).eval()
    _randomise(model)
    return model


def test_reference_vit_snapshot_round_trip_and_convert(tmp_path, body_dir, tiny_model):
    path = tmp_path / "snapshot_7.pth.tar"
    torch.save(reference_snapshot(tiny_model), path)
    raw = read_checkpoint(path)
    assert raw.format == "reference_snapshot" and raw.meta["epoch"] == 7
    cfg = infer_model_config(raw, num_heads=2)
    assert (cfg.depth, cfg.embed_dim, cfg.lift_dim, cfg.reference_compat) == (2, 64, 96, True)
    assert infer_model_config(raw).num_heads == 1  # not visible in the weights: 64-d heads assumed
    fresh = build_model(ModelConfig(**TINY_VIT), body_dir, vposer_dir=False).eval()
    report = load_model_checkpoint(fresh, path)
    assert not report.missing and not report.unexpected
    assert any("SMPL buffers" in r for r in report.ignored.values())
    assert any("VPoser encoder" in r for r in report.ignored.values())
    with torch.no_grad():
        a, b = tiny_model(*_inputs()), fresh(*_inputs())
    torch.testing.assert_close(a["smpl_mesh_cam"], b["smpl_mesh_cam"], rtol=0, atol=0)

    out = tmp_path / "converted.safetensors"
    assert cli_main(["convert", str(path), str(out), "--body-model-dir", str(body_dir), "--set", "num_heads=2"]) == 0
    raw2 = read_checkpoint(out)
    assert raw2.format == "hap3d" and raw2.meta["info"]["source_format"] == "reference_snapshot"
    again = build_model(infer_model_config(raw2), body_dir, vposer_dir=False).eval()
    load_model_checkpoint(again, out)
    with torch.no_grad():
        torch.testing.assert_close(again(*_inputs())["joint_cam"], a["joint_cam"], rtol=0, atol=0)


def test_original_resnet_snapshot_loads_and_runs(tmp_path, body_dir):
    cfg = ModelConfig(backbone="resnet50")
    model = build_model(cfg, body_dir).eval()
    snap = reference_snapshot(model)
    snap["network"] = {k: v for k, v in snap["network"].items() if "vit_conv_layer" not in k}
    path = tmp_path / "demo_checkpoint.pth.tar"
    torch.save(snap, path)
    raw = read_checkpoint(path)
    assert infer_model_config(raw).backbone == "resnet50"
    fresh = build_model(infer_model_config(raw), body_dir, vposer_dir=False).eval()
    load_model_checkpoint(fresh, path)
    img, joints, mask = _inputs(1)
    with torch.no_grad():
        out = fresh(img, joints, mask)
    assert out["smpl_mesh_cam"].shape == (1, 6890, 3) and torch.isfinite(out["smpl_mesh_cam"]).all()


def test_missing_unexpected_and_misshaped_keys_are_reported(tmp_path, body_dir, tiny_model):
    snap = reference_snapshot(tiny_model)
    del snap["network"]["module.rotation_net.cam_out.0.weight"]
    snap["network"]["module.extra_head.weight"] = torch.zeros(3)
    path = tmp_path / "bad.pth.tar"
    torch.save(snap, path)
    fresh = build_model(ModelConfig(**TINY_VIT), body_dir, vposer_dir=False)
    with pytest.raises(CheckpointError, match=r"(?s)MISSING.*rotation_net\.cam_out\.0\.weight.*UNEXPECTED.*extra_head"):
        load_model_checkpoint(fresh, path)

    snap = reference_snapshot(tiny_model)
    snap["network"]["module.pose2feat.conv.0.weight"] = torch.zeros(5, 5, 3, 3)
    torch.save(snap, path)
    with pytest.raises(CheckpointError, match=r"shape mismatch.*pose2feat\.conv\.0\.weight"):
        load_model_checkpoint(fresh, path)

    deeper = build_model(ModelConfig(**{**TINY_VIT, "depth": 3}), body_dir, vposer_dir=False)
    torch.save(reference_snapshot(tiny_model), path)
    with pytest.raises(CheckpointError, match=r"MISSING.*backbone\.blocks\.2"):
        load_model_checkpoint(deeper, path)


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("echo should-not-run",))


def test_code_carrying_and_garbage_files_are_refused(tmp_path):
    evil = tmp_path / "evil.pth"
    with open(evil, "wb") as f:
        pickle.dump({"network": {"w": _RunsCode()}}, f, protocol=2)
    with pytest.raises(CheckpointError, match=r"evil.pth: not a checkpoint hap3d can read \(UnpicklingError: Trying to "
                                              r"load unsupported GLOBAL posix.system.*never unpickles") as err:
        read_checkpoint(evil)
    assert "weights_only" not in str(err.value), "torch's advice to unpickle anyway is not passed on"
    torch.save({"network": {"a": torch.zeros(1)}}, evil)
    torch.save([1, 2, 3], tmp_path / "list.pth")
    with pytest.raises(CheckpointError, match="expected a dict"):
        read_checkpoint(tmp_path / "list.pth")
    (tmp_path / "junk.pth").write_bytes(os.urandom(256))
    with pytest.raises(CheckpointError, match="junk.pth: not a checkpoint hap3d can read"):
        read_checkpoint(tmp_path / "junk.pth")
    (tmp_path / "config.yaml").write_text("train:\n  lr: 0.001\n")  # a config passed as --ckpt by mistake
    with pytest.raises(CheckpointError, match=r"config.yaml: not a checkpoint hap3d can read \(\w+: .+\): neither a "
                                              "safetensors file nor a PyTorch file holding only tensors and plain "
                                              "values") as err:
        read_checkpoint(tmp_path / "config.yaml")
    assert "weights_only" not in str(err.value)
    with pytest.raises(CheckpointError, match="not found"):
        read_checkpoint(tmp_path / "nope.pth")
    torch.save({"something": {"x": torch.zeros(1)}}, tmp_path / "odd.pth")
    with pytest.raises(CheckpointError, match="unrecognised checkpoint layout"):
        read_checkpoint(tmp_path / "odd.pth")
    torch.save({"network": {"a": 3}}, tmp_path / "nontensor.pth")
    with pytest.raises(CheckpointError, match="non-tensor"):
        read_checkpoint(tmp_path / "nontensor.pth")


def _vit_state(vit: ViT) -> dict[str, torch.Tensor]:
    return {k: torch.randn_like(v) for k, v in vit.state_dict().items()}


def test_mmcv_checkpoint_with_moe_fc2_gets_a_clear_error(tmp_path):
    vit = ViT(depth=2, embed_dim=64, num_heads=2)
    sd = {"backbone." + k: v for k, v in _vit_state(vit).items()}
    sd["backbone.pos_embed"] = torch.randn(1, 193, 64)
    sd["backbone.blocks.1.mlp.fc2.weight"] = torch.randn(48, 256)
    sd["keypoint_head.final_layer.weight"] = torch.randn(17, 8, 1, 1)
    torch.save({"state_dict": sd, "meta": {"epoch": 210}}, tmp_path / "moe.pth")
    with pytest.raises(CheckpointError, match="mixture-of-experts"):
        load_backbone_checkpoint(vit, tmp_path / "moe.pth")


def test_hap_pretrain_checkpoint_maps_norm_and_drops_decoder(tmp_path):
    vit = ViT(depth=2, embed_dim=64, num_heads=2)
    sd = {k.replace("last_norm.", "norm."): v for k, v in _vit_state(vit).items()}
    sd["pos_embed"] = torch.randn(1, 129, 64)  # 256x128 pre-training: a 16x8 grid
    sd["cls_token"] = torch.randn(1, 1, 64)
    sd["mask_token"] = torch.randn(1, 1, 32)
    sd["decoder_embed.weight"] = torch.randn(32, 64)
    torch.save({"model": sd}, tmp_path / "hap.pth")
    report = load_backbone_checkpoint(vit, tmp_path / "hap.pth")
    assert report.format == "hap_pretrain"
    assert {"cls_token", "mask_token", "decoder_embed.weight"} <= set(report.ignored)
    torch.testing.assert_close(vit.last_norm.weight.data, sd["norm.weight"])
    torch.testing.assert_close(vit.pos_embed.data[:, 0], sd["pos_embed"][:, 0])


def test_torchvision_resnet_state_dict_loads_backbone(tmp_path):
    src = ResNet(50)
    sd = {k: torch.randn_like(v) if v.is_floating_point() else v for k, v in src.state_dict().items()}
    sd["fc.weight"], sd["fc.bias"] = torch.randn(1000, 2048), torch.randn(1000)
    torch.save(sd, tmp_path / "resnet50.pth")
    dst = ResNet(50)
    report = load_backbone_checkpoint(dst, tmp_path / "resnet50.pth")
    assert report.format == "torchvision" and set(report.ignored) == {"fc.weight", "fc.bias"}
    torch.testing.assert_close(dst.layer3[2].conv2.weight.data, sd["layer3.2.conv2.weight"])


def test_own_format_is_safetensors_with_config(tmp_path, tiny_model):
    path = save_model_checkpoint(tmp_path / "m.safetensors", tiny_model, tiny_model.cfg, {"note": "x"})
    with open(path, "rb") as f:
        assert b'"format":"hap3d"' in f.read(4096).replace(b" ", b"")
    raw = read_checkpoint(path)
    assert raw.meta["model_config"]["depth"] == 2 and raw.meta["info"] == {"note": "x"}
    assert not any(k.startswith("smpl.") for k in raw.tensors), "licensed body model must not be stored"


def test_inspect_command(tmp_path, tiny_model, capsys):
    path = save_model_checkpoint(tmp_path / "m.safetensors", tiny_model, tiny_model.cfg)
    assert cli_main(["inspect", str(path), "--keys"]) == 0
    out = capsys.readouterr().out
    assert "format=hap3d" in out
    # the metadata in full, not cut off mid-word
    line = next(x for x in out.splitlines() if x.startswith("  model_config: "))
    assert json.loads(line[len("  model_config: "):]) == to_dict(tiny_model.cfg)
    assert cli_main(["inspect", str(tmp_path / "missing.pth")]) == 2


def test_inspect_into_a_closed_pipe_exits_quietly(tmp_path, tiny_model):
    """`hap3d inspect --keys | head`: the reader stops early; no BrokenPipeError traceback, exit status 141."""
    path = save_model_checkpoint(tmp_path / "m.safetensors", tiny_model, tiny_model.cfg)
    proc = subprocess.Popen([sys.executable, "-m", "hap3d.cli", "inspect", str(path), "--keys"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # gone before the command writes anything: every write hits a closed pipe
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141
    assert err == "", err


def test_a_broken_pipe_other_than_stdout_is_an_error(monkeypatch, capsys):
    """Only a closed stdout (`| head`) is a quiet exit; a worker's or socket's broken pipe is a failure."""
    from hap3d import cli
    from hap3d.cli import model as model_commands

    def boom(_args):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(model_commands, "_cmd_inspect", boom)
    assert cli.main(["inspect", "whatever.pt"]) == 1
    assert "broken pipe" in capsys.readouterr().err


def test_mmcv_meta_with_numpy_scalars_loads(tmp_path):
    """Real mmcv checkpoints keep numpy scalars in meta (hook_msgs.best_score); weights-only must accept them."""
    import numpy as np

    vit = ViT(depth=2, embed_dim=64, num_heads=2)
    sd = {"backbone." + k: v for k, v in _vit_state(vit).items()}
    sd["backbone.pos_embed"] = torch.randn(1, 193, 64)
    meta = {"epoch": 210, "config": "model = dict(...)", "hook_msgs": {"best_score": np.float64(0.75)},
            "seed": np.int64(0)}
    optimizer = {"state": {}, "param_groups": []}
    torch.save({"meta": meta, "state_dict": sd, "optimizer": optimizer}, tmp_path / "latest.pth")
    raw = read_checkpoint(tmp_path / "latest.pth")
    assert raw.format == "mmcv" and raw.meta["epoch"] == 210 and raw.meta["seed"] == 0
    report = load_backbone_checkpoint(vit, tmp_path / "latest.pth")
    assert report.loaded and not report.missing


def test_training_state_loads_as_a_full_model(tmp_path, body_dir, capsys):
    """`hap3d eval --ckpt <run>/checkpoints/last.pt`: the training state's weights and model config are used."""
    from hap3d.config import load_config
    from hap3d.engine.distributed import DistInfo
    from hap3d.engine.run import load_for_eval
    from hap3d.engine.train import Trainer

    from train_script import TINY, RandomSamples

    cfg = load_config(None, TINY + [f"data.body_model_dir={body_dir}", "train.train_batch_size=2"])
    model = build_model(cfg.model, body_dir)
    _randomise(model)
    trainer = Trainer(cfg, model, RandomSamples(2), tmp_path / "run", DistInfo(), progress=False)
    trainer.save_state()
    trainer.logger.close()
    raw = read_checkpoint(trainer.state_path)
    assert raw.format == "hap3d-train-state" and infer_model_config(raw) == cfg.model
    eval_cfg = load_config(None, [f"data.body_model_dir={body_dir}"])
    loaded = load_for_eval(trainer.state_path, eval_cfg, torch.device("cpu"))
    assert "(hap3d-train-state): " in capsys.readouterr().out
    got = loaded.state_dict()
    assert all(torch.equal(got[k], v) for k, v in model.state_dict().items())
    assert cli_main(["inspect", str(trainer.state_path)]) == 0
    out = capsys.readouterr().out
    assert "format=hap3d-train-state" in out and "  epochs_completed: 0\n" in out
