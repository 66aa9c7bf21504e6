"""train.init_from: the whole network from any full checkpoint `hap3d eval` loads, strictly; optimizer and epoch
fresh; the load report in train.log."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from hap3d.config import ConfigError, load_config, to_dict, with_absolute_paths
from hap3d.engine.distributed import DistInfo
from hap3d.engine.run import make_model, train
from hap3d.engine.train import Trainer
from hap3d.model import build_model
from hap3d.model.checkpoint import CheckpointError, save_model_checkpoint
from hap3d.utils import Hap3dError

from train_script import TINY, RandomSamples


def _randomised(cfg, body_dir) -> torch.nn.Module:
    """A trained-looking network: every float tensor drawn at random (BatchNorm variances kept positive)."""
    model = build_model(cfg.model, body_dir)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for k, t in model.state_dict().items():
            if t.is_floating_point():
                t.copy_(torch.randn(t.shape, generator=g) * 0.05 + (1.0 if k.endswith("running_var") else 0.0))
    return model


def _snapshot(model, path: Path) -> Path:
    """The reference's snapshot_N.pth.tar layout (module. prefix, vposer.vposer., SMPL buffers, optimizer)."""
    net = {"module." + ("vposer.vposer." + k[7:] if k.startswith("vposer.") else k): v.clone()
           for k, v in model.state_dict().items()}
    net.update({f"module.human_model_layer.{n}": b.clone()
                for n, b in model.smpl.named_buffers() if n.startswith("th_")})
    torch.save({"epoch": 10, "network": net, "optimizer": {"state": {}, "param_groups": []}}, path)
    return path


def _train_state(cfg, model, tmp_path) -> Path:
    trainer = Trainer(cfg, model, RandomSamples(2), tmp_path / "source_run", DistInfo(), progress=False)
    trainer.epoch = 4  # a run 4 epochs in: init_from must not take its position
    trainer.save_state()
    trainer.logger.close()
    return trainer.state_path


def _outputs(model) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    img, joints = torch.rand(2, 3, 256, 256, generator=g), torch.rand(2, 30, 2, generator=g) * 64
    model.eval()
    with torch.no_grad():
        return model(img, joints, torch.ones(2, 30, 1))


@pytest.mark.parametrize("kind", ["safetensors", "train_state", "reference_snapshot"])
def test_init_from_loads_every_weight_of_each_checkpoint_kind(tmp_path, body_dir, kind, caplog):
    cfg = load_config(None, TINY + [f"data.body_model_dir={body_dir}", "train.train_batch_size=2"])
    source = _randomised(cfg, body_dir)
    path = {"safetensors": lambda: save_model_checkpoint(tmp_path / "m.safetensors", source, cfg.model),
            "train_state": lambda: _train_state(cfg, source, tmp_path),
            "reference_snapshot": lambda: _snapshot(source, tmp_path / "snapshot_10.pth.tar")}[kind]()
    fresh = load_config(None, TINY + [f"data.body_model_dir={body_dir}", f"train.init_from={path}"])
    torch.manual_seed(123)  # another initialisation than the source's: only the checkpoint can make them equal
    model = make_model(fresh, DistInfo())
    want = source.state_dict()
    assert all(torch.equal(v, want[k]) for k, v in model.state_dict().items())
    got, ref = _outputs(model), _outputs(source)
    for k in ("smpl_mesh_cam", "joint_img", "smpl_pose"):
        assert torch.equal(got[k], ref[k]), k
    if kind == "reference_snapshot":  # trained with reference_compat (the snapshot's settings): named, not refused
        assert "was trained with model.reference_compat=True; this run uses False" in caplog.text


def test_init_from_trains_from_the_loaded_weights_with_a_fresh_optimizer_and_logs_the_report(tmp_path, body_dir):
    from hap3d.synth import write_synthetic_datasets

    root = Path(write_synthetic_datasets(tmp_path / "data", body_dir, size="tiny", datasets=["MuCo"]))
    common = TINY + [f"data.root={root}", f"data.body_model_dir={body_dir}", "data.trainset_3d=[MuCo]",
                     "data.trainset_2d=[]", "train.train_batch_size=2", "train.max_steps_per_epoch=1",
                     "eval.device=cpu"]
    first = load_config(None, common + ["train.end_epoch=2"])
    train(first, tmp_path / "first", progress=False)
    last = tmp_path / "first" / "checkpoints" / "last.pt"
    tune = load_config(None, common + ["train.end_epoch=1", f"train.init_from={last}", "train.lr=0.001"])
    train(tune, tmp_path / "tuned", progress=False)
    log = (tmp_path / "tuned" / "train.log").read_text()
    assert f"INFO train.init_from: {last} (hap3d-train-state): " in log and "tensors loaded" in log
    history = json.loads((tmp_path / "tuned" / "history.json").read_text())
    assert [e["epoch"] for e in history["epochs"]] == [0], "the epoch count starts fresh"
    state = torch.load(tmp_path / "tuned" / "checkpoints" / "last.pt", weights_only=False)
    assert state["optimizer"]["param_groups"][0]["lr"] == pytest.approx(0.001)
    assert state["config"]["train"]["init_from"] == str(last)


def test_init_from_is_strict_and_checked_before_any_work(tmp_path, body_dir):
    cfg = load_config(None, TINY + [f"data.body_model_dir={body_dir}"])
    source = _randomised(cfg, body_dir)
    path = save_model_checkpoint(tmp_path / "m.safetensors", source, cfg.model)
    deeper = load_config(None, TINY + [f"data.body_model_dir={body_dir}", "model.depth=3", f"train.init_from={path}"])
    with pytest.raises(CheckpointError, match=r"MISSING.*backbone\.blocks\.2"):
        make_model(deeper, DistInfo())
    with pytest.raises(ConfigError, match="train.init_from and train.pretrained are both set"):
        load_config(None, ["train.init_from=a.safetensors", "train.pretrained=b.pth"])
    missing = load_config(None, TINY + [f"data.body_model_dir={body_dir}", f"train.init_from={tmp_path / 'no.pt'}"])
    with pytest.raises(Hap3dError, match=r"checkpoint not found: .*no\.pt .*set by train\.init_from"):
        train(missing, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()
    assert to_dict(with_absolute_paths(load_config(None, ["train.init_from=x.pt"])))["train"]["init_from"] == str(
        Path("x.pt").resolve())
