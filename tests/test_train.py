"""Training engine: DDP equals single process, kill-and-resume, non-finite losses, schedules."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from hap3d.config import ConfigError, load_config
from hap3d.engine.distributed import DistInfo
from hap3d.engine.train import ResumableSampler, Trainer, TrainingDiverged, lr_factor
from hap3d.model import build_model

from train_script import TINY, RandomSamples

SCRIPT = str(Path(__file__).with_name("train_script.py"))


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parent), env.get("PYTHONPATH", "")])
    env["OMP_NUM_THREADS"] = "1"
    return env


def _state(run: Path) -> dict:
    return torch.load(run / "checkpoints" / "last.pt", weights_only=True)


def test_two_process_ddp_matches_single_process(tmp_path, body_dir):
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    common = ["--body", str(body_dir), "train.end_epoch=2"]
    subprocess.run([sys.executable, SCRIPT, "--out", str(single), *common, "train.train_batch_size=4"], check=True, env=_env(), timeout=300)
    subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", SCRIPT, "--out", str(ddp),
         *common, "train.train_batch_size=2"],
        check=True, env=_env(), timeout=300,
    )
    a, b = _state(single), _state(ddp)
    assert a["global_step"] == b["global_step"] == 8
    for sa, sb in zip(a["history"]["steps"], b["history"]["steps"]):
        assert sa["loss"] == pytest.approx(sb["loss"], rel=1e-4)
    for k in a["model"]:
        torch.testing.assert_close(a["model"][k].float(), b["model"][k].float(), atol=1e-4, rtol=1e-3)


def test_sigkill_mid_epoch_then_resume(tmp_path, body_dir):
    run = tmp_path / "run"
    args = [sys.executable, SCRIPT, "--out", str(run), "--body", str(body_dir), "--samples", "40",
            "train.train_batch_size=2", "train.end_epoch=3", "train.ckpt_every_steps=3"]
    proc = subprocess.Popen(args, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    # kill once the run is past its first epoch and inside the second
    while time.time() < deadline:
        if (run / "checkpoints" / "epoch_0.safetensors").exists() and (run / "checkpoints" / "last.pt").exists():
            st = _state(run)
            if st["epoch"] == 1 and st["step_in_epoch"] >= 3:
                break
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed = _state(run)
    assert killed["epoch"] >= 1 and killed["epoch"] < 3, "the kill should land mid-run"
    subprocess.run(args + ["--resume"], check=True, env=_env(), timeout=300)
    final = _state(run)
    assert final["epoch"] == 3 and final["global_step"] == 3 * 20
    assert all((run / "checkpoints" / f"epoch_{e}.safetensors").exists() for e in range(3))
    assert [e["epoch"] for e in final["history"]["epochs"]] == [0, 1, 2]


class _NaNSamples(RandomSamples):
    def __getitem__(self, i):
        s = super().__getitem__(i)
        s["targets"]["pose_param"][:] = float("nan")
        return s


def _tiny_trainer(tmp_path, body_dir, dataset, *overrides):
    cfg = load_config(None, TINY + [f"data.body_model_dir={body_dir}", "train.train_batch_size=2", *overrides])
    model = build_model(cfg.model, body_dir)
    return Trainer(cfg, model, dataset, tmp_path / "run", DistInfo(), progress=False)


def test_non_finite_loss_steps_are_skipped_then_the_run_stops(tmp_path, body_dir):
    trainer = _tiny_trainer(tmp_path, body_dir, _NaNSamples(8), "train.max_bad_steps=3", "train.end_epoch=1")
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    with pytest.raises(TrainingDiverged, match="non-finite for 3 consecutive steps"):
        trainer.run()
    after = trainer.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "skipped steps must not change the weights"


def test_lr_schedules():
    cfg = load_config(None, ["train.lr=0.001", "train.lr_dec_epoch=[10]", "train.end_epoch=11"])
    assert [lr_factor(cfg, e, 0, 10) for e in (0, 9, 10)] == [1.0, 1.0, 0.1]
    cfg = load_config(None, ["train.lr_dec_epoch=[4,6]", "train.lr_dec_factor=10"])
    assert lr_factor(cfg, 5, 0, 1) == pytest.approx(0.1) and lr_factor(cfg, 6, 0, 1) == pytest.approx(0.01)
    cos = load_config(None, ["train.schedule=cosine", "train.end_epoch=2", "train.warmup_steps=5"])
    assert lr_factor(cos, 0, 0, 10) == pytest.approx(0.2 * 1.0, rel=1e-6)
    assert lr_factor(cos, 1, 9, 10) < 0.01


def test_sampler_order_is_shared_across_world_sizes_and_resumable():
    one = ResumableSampler(20, 0, 1, seed=3, batch_size=4)
    two = [ResumableSampler(20, r, 2, seed=3, batch_size=2) for r in range(2)]
    for s in (one, *two):
        s.set_epoch(1)
    o = one.order()
    for k in range(5):
        assert sorted(o[4 * k : 4 * k + 4]) == sorted(two[0].order()[2 * k : 2 * k + 2] + two[1].order()[2 * k : 2 * k + 2])
    one.set_epoch(1, skip_batches=2)
    assert list(one) == o[8:]


def test_reference_compat_freezes_lift_and_vposer(tmp_path, body_dir):
    cfg = load_config(None, [f"data.body_model_dir={body_dir}", "model.depth=2", "model.embed_dim=64", "model.num_heads=2"])
    from hap3d.engine.train import param_groups

    model = build_model(cfg.model, body_dir)
    names = [g["name"] for g in param_groups(model, cfg)]
    assert names == ["backbone", "pose2feat", "position_net", "rotation_net"]
    assert {g["lr"] for g in param_groups(model, cfg)} == {cfg.train.lr}


def test_reference_yaml_keys_and_unknown_keys(tmp_path):
    ref = tmp_path / "3dpw_vit_b_4gpu.yml"
    ref.write_text("trainset_3d: ['Human36M', 'MuCo']\ntrainset_2d: ['MSCOCO', 'MPII']\ntestset: 'PW3D'\n"
                   "lr_dec_epoch: [10]\nend_epoch: 11\nlr: 0.001\nlr_backbone: 0.0001\ntrain_batch_size: 192\n")
    cfg = load_config(ref)
    assert cfg.data.trainset_3d == ["Human36M", "MuCo"] and cfg.train.train_batch_size == 192 and cfg.train.lr_backbone == 1e-4
    bad = tmp_path / "bad.yml"
    bad.write_text("train:\n  learning_rate: 0.1\n")
    with pytest.raises(ConfigError, match=r"bad.yml: unknown config key 'train.learning_rate'"):
        load_config(bad)
    with pytest.raises(ConfigError, match="must be one of"):
        load_config(None, ["train.optimizer=rmsprop"])
