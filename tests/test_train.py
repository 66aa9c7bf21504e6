"""Training engine: DDP equals single process, kill-and-resume, non-finite losses, schedules."""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from hap3d import precision
from hap3d.config import ConfigError, ModelConfig, load_config
from hap3d.engine.distributed import DistInfo
from hap3d.engine.evaluate import EvalResult
from hap3d.engine.logging import RunLogger, attach_file_handler
from hap3d.engine.train import (
    LossScaler,
    ResumableSampler,
    Trainer,
    TrainingDiverged,
    build_optimizer,
    derived_seed,
    describe_position,
    lr_factor,
)
from hap3d.model import build_model
from hap3d.utils import Hap3dError

from conftest import TINY_VIT
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
    common = ["--body", str(body_dir), "--eval", "train.end_epoch=2", "train.eval_every_epoch=true"]
    subprocess.run([sys.executable, SCRIPT, "--out", str(single), *common, "train.train_batch_size=4"], check=True,
                   env=_env(), timeout=300)
    subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", SCRIPT, "--out", str(ddp),
         *common, "train.train_batch_size=2"],
        check=True, env=_env(), timeout=300,
    )
    a, b = _state(single), _state(ddp)
    assert a["global_step"] == b["global_step"] == 8
    # each rank saved its own RNG state, and they differ (per-rank seeds: distinct dropout / drop-path masks)
    assert len(a["rng"]) == 1 and len(b["rng"]) == 2
    assert not torch.equal(b["rng"][0]["cpu"], b["rng"][1]["cpu"])
    # rank 0 evaluated after each epoch while rank 1 waited for it
    assert [e["eval_mpjpe"] for e in b["history"]["epochs"]] == [1.0, 1.0] and b["pending_eval"] is None
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
    log_before = (run / "train.log").read_text()
    subprocess.run(args + ["--resume"], check=True, env=_env(), timeout=300)
    final = _state(run)
    assert final["epoch"] == 3 and final["global_step"] == 3 * 20
    assert all((run / "checkpoints" / f"epoch_{e}.safetensors").exists() for e in range(3))
    assert [e["epoch"] for e in final["history"]["epochs"]] == [0, 1, 2]
    # The resumed process started from the checkpoint, not from scratch ...
    resumed_log = (run / "train.log").read_text()[len(log_before):]
    g = killed["global_step"]
    position = describe_position(killed["epoch"], killed["step_in_epoch"], g)
    assert f"resumed from {run / 'checkpoints' / 'last.pt'}: {position}" in resumed_log
    # ... ran exactly the steps after it (log_every=1: one line per step) ...
    steps_run = [int(m) for m in re.findall(r"step \d+/20 \(global (\d+)\)", resumed_log)]
    assert steps_run == list(range(g + 1, 61))
    # ... and kept the history written before the kill as it was.
    n = len(killed["history"]["steps"])
    assert n == g and final["history"]["steps"][:n] == killed["history"]["steps"]
    assert [s["step"] for s in final["history"]["steps"]] == list(range(1, 61))
    assert final["history"]["epochs"][0] == killed["history"]["epochs"][0]
    if importlib.util.find_spec("tensorboard"):  # the replayed steps were purged, not logged twice
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        acc = EventAccumulator(str(run / "tensorboard"))
        acc.Reload()
        assert [e.step for e in acc.Scalars("train/loss")] == list(range(1, 61))


class _NaNSamples(RandomSamples):
    def __getitem__(self, i):
        s = super().__getitem__(i)
        s["targets"]["pose_param"][:] = float("nan")
        return s


def _tiny_trainer(tmp_path, body_dir, dataset, *overrides, evaluate_fn=None):
    cfg = load_config(None, TINY + [f"data.body_model_dir={body_dir}", "train.train_batch_size=2", *overrides])
    torch.manual_seed(0)
    model = build_model(cfg.model, body_dir)
    return Trainer(cfg, model, dataset, tmp_path / "run", DistInfo(), evaluate_fn, progress=False)


def _first_batch(trainer: Trainer) -> dict:
    trainer.sampler.set_epoch(0)
    return next(iter(trainer.loader))


def _assert_same(a, b, where="state") -> None:
    """Nested dicts / lists of tensors and plain values are equal."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    else:
        assert a == b, where


def _finite(model) -> bool:
    return all(torch.isfinite(v).all() for v in model.state_dict().values() if v.is_floating_point())


def _scaled_fp32_trainer(tmp_path, body_dir, dataset, loss_scale, init_scale, *overrides, evaluate_fn=None):
    """A trainer computing in fp32 whose steps go through an enabled fp16 loss scaler: the scaler's logic (skip on
    overflow, dynamic back-off and growth, the reference's fixed reset) is then tested without fp16 kernels, whose
    overflow depends on the CPU (fp16 training is refused on CPUs without native fp16, see hap3d.precision)."""
    trainer = _tiny_trainer(tmp_path, body_dir, dataset, *overrides, evaluate_fn=evaluate_fn)
    trainer.scaler = LossScaler("cpu", loss_scale, init_scale)
    return trainer


@pytest.mark.numerics
@pytest.mark.parametrize("loss_scale", ["dynamic", "fixed"])
def test_loss_scaler_takes_finite_steps(tmp_path, body_dir, loss_scale):
    trainer = _scaled_fp32_trainer(tmp_path, body_dir, RandomSamples(4), loss_scale, 2.0)
    before = [p.clone() for p in trainer.model.parameters()]
    batch = _first_batch(trainer)
    for _ in range(2):
        skipped, logged = trainer.train_step(batch)
        assert skipped is None and all(math.isfinite(v) for v in logged.values())
    assert _finite(trainer.model)
    assert any(not torch.equal(a, p) for a, p in zip(before, trainer.model.parameters())), "no step was taken"
    # both steps taken at scale 2: the dynamic scaler counts them, the fixed one resets each time
    assert trainer.scaler.get_scale() == 2.0
    assert trainer.scaler.state_dict()["_growth_tracker"] == (2 if loss_scale == "dynamic" else 0)


@pytest.mark.numerics
def test_dynamic_loss_scale_grows_after_its_interval(tmp_path, body_dir):
    trainer = _scaled_fp32_trainer(tmp_path, body_dir, RandomSamples(4), "dynamic", 2.0)
    trainer.scaler.set_growth_interval(2)
    batch = _first_batch(trainer)
    for _ in range(2):
        assert trainer.train_step(batch)[0] is None
    assert trainer.scaler.get_scale() == 4.0


@pytest.mark.numerics
@pytest.mark.parametrize("loss_scale", ["dynamic", "fixed"])
def test_fp16_overflow_backs_off_only_with_the_dynamic_scale(tmp_path, body_dir, loss_scale):
    big = 2.0**126  # the scaled gradients overflow even in fp32: the scaler skips the step
    trainer = _scaled_fp32_trainer(tmp_path, body_dir, RandomSamples(4), loss_scale, big)
    before = [p.clone() for p in trainer.model.parameters()]
    trainer.train_step(_first_batch(trainer))
    assert all(torch.equal(a, p) for a, p in zip(before, trainer.model.parameters()))
    assert trainer.scaler.get_scale() == (big / 2 if loss_scale == "dynamic" else big)  # fixed: the reference's reset


@pytest.mark.numerics
def test_bf16_autocast_training_steps_stay_finite(tmp_path, body_dir):
    """bf16 has fp32's range: it trains on any CPU (natively on AVX512-BF16/AMX, emulated elsewhere)."""
    trainer = _tiny_trainer(tmp_path, body_dir, RandomSamples(4), "train.amp=bf16")
    assert not trainer.scaler.is_enabled()
    batch = _first_batch(trainer)
    for _ in range(2):
        skipped, logged = trainer.train_step(batch)
        assert skipped is None and all(math.isfinite(v) for v in logged.values())
    assert _finite(trainer.model)


def test_fp16_training_on_a_cpu_without_native_fp16_names_bf16(tmp_path, body_dir, monkeypatch):
    monkeypatch.setattr(precision, "native_fp16", lambda device_type="cpu": False)
    with pytest.raises(Hap3dError, match=r"train\.amp=fp16 on a CPU without native fp16.*train\.amp=bf16"):
        _tiny_trainer(tmp_path, body_dir, RandomSamples(4), "train.amp=fp16")


@pytest.mark.numerics
@pytest.mark.skipif(not precision.native_fp16("cpu"), reason="this CPU has no native fp16 (AVX512-FP16 / AMX-FP16): "
                    "fp16 training is refused on it, see test_fp16_training_on_a_cpu_without_native_fp16_names_bf16")
def test_native_fp16_training_step_keeps_weights_finite(tmp_path, body_dir):
    trainer = _tiny_trainer(tmp_path, body_dir, RandomSamples(4), "train.amp=fp16", "train.init_scale=2")
    trainer.train_step(_first_batch(trainer))  # taken, or skipped by the scaler: never non-finite weights
    assert _finite(trainer.model)


def test_optimizers_from_config(tmp_path, body_dir):
    ref = tmp_path / "ref.yml"
    ref.write_text("optimizer: adamW\nlr: 0.0003\n")  # the reference's spelling
    for cfg, cls, wd in (
        (load_config(None, ["train.optimizer=adam"]), torch.optim.Adam, 0.0),
        (load_config(ref), torch.optim.AdamW, 0.1),
        (load_config(None, ["train.optimizer=adamw", "train.weight_decay=0.01"]), torch.optim.AdamW, 0.01),
        (load_config(None, ["train.optimizer=sgd", "train.momentum=0.9"]), torch.optim.SGD, 0.0),
    ):
        model = build_model(ModelConfig(**TINY_VIT), body_dir)
        opt = build_optimizer(model, cfg)
        assert type(opt) is cls
        assert {g["weight_decay"] for g in opt.param_groups} == {wd}
        assert {g["lr"] for g in opt.param_groups} == {cfg.train.lr}
        if cls is not torch.optim.SGD:
            assert {g["betas"] for g in opt.param_groups} == {(0.9, 0.999)}
    assert load_config(ref).train.lr == 3e-4


def test_resume_restores_optimizer_scaler_and_rng_state(tmp_path, body_dir):
    args = ("train.optimizer=adamw", "train.end_epoch=1")
    first = _scaled_fp32_trainer(tmp_path, body_dir, RandomSamples(4), "dynamic", 2.0, *args)
    first.run()
    optimizer, scaler, rng = first.optimizer.state_dict(), first.scaler.state_dict(), torch.get_rng_state()
    saved = _state(first.run_dir)
    _assert_same(saved["optimizer"], optimizer)
    torch.manual_seed(123)
    second = _scaled_fp32_trainer(tmp_path, body_dir, RandomSamples(4), "dynamic", 2.0, *args)
    assert not second.optimizer.state_dict()["state"] and second.scaler.state_dict() != scaler  # fresh ones differ
    assert second.load_state()
    _assert_same(second.optimizer.state_dict(), optimizer, "optimizer")
    assert second.scaler.state_dict() == scaler
    assert torch.equal(torch.get_rng_state(), rng)
    # Another process count: no state of this rank to take; a derived seed and a warning instead.
    saved["rng"] = saved["rng"] * 2
    other = tmp_path / "two_ranks.pt"
    torch.save(saved, other)
    third = _tiny_trainer(tmp_path, body_dir, RandomSamples(4), *args)
    assert third.load_state(other)
    reseeded = torch.get_rng_state()
    torch.manual_seed(derived_seed(0, 0, saved["global_step"]))
    assert torch.equal(reseeded, torch.get_rng_state())
    assert "holds the RNG state of 2 processes, this run has 1" in (third.run_dir / "train.log").read_text()
    # A different network cannot resume this state: said plainly instead of a shape mismatch. lift_trainable is
    # refused too (it changes the optimizer's groups); training-only keys may change, with a warning.
    with pytest.raises(Hap3dError, match=r"another model configuration \(depth 2 -> 3"):
        _tiny_trainer(tmp_path, body_dir, RandomSamples(4), *args, "model.depth=3").load_state()
    with pytest.raises(Hap3dError, match=r"another model configuration \(vit_conv_trainable True -> False\).*only "
                                         r"drop_path_rate, vposer_dropout may change"):
        _tiny_trainer(tmp_path, body_dir, RandomSamples(4), *args, "model.lift_trainable=false").load_state()
    changed = _tiny_trainer(tmp_path, body_dir, RandomSamples(4), *args, "model.drop_path_rate=0.1",
                            "model.vposer_dropout=true")
    assert changed.load_state()
    changed.logger.close()
    log = (changed.run_dir / "train.log").read_text()
    for key, before, after in (("drop_path_rate", 0.0, 0.1), ("vposer_dropout", False, True)):
        assert f"WARNING resuming {changed.state_path} with model.{key} {before} -> {after} (training-only" in log


def test_non_finite_gradients_are_skipped_like_non_finite_losses(tmp_path, body_dir):
    trainer = _tiny_trainer(tmp_path, body_dir, RandomSamples(8), "train.max_bad_steps=2", "train.end_epoch=1")
    param = trainer.model.trainable_parameters()[0]
    param.register_hook(lambda g: torch.full_like(g, float("nan")))
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    with pytest.raises(TrainingDiverged, match="non-finite for 2 consecutive steps"):
        trainer.run()
    assert all(torch.equal(before[k], v) for k, v in trainer.model.state_dict().items())
    assert trainer.bad_steps_total == 2
    assert (trainer.run_dir / "train.log").read_text().count("non-finite gradients at epoch 1/1") == 2


def _eval_result(mpjpe: float) -> EvalResult:
    per_sample = {k: np.array([mpjpe]) for k in ("mpjpe", "pa_mpjpe", "mpvpe", "pa_mpvpe")}
    return EvalResult(per_sample, [0], ["seq"])


def test_state_is_saved_before_the_evaluation_and_a_killed_one_reruns_on_resume(tmp_path, body_dir):
    class Killed(Exception):
        pass

    seen = []

    def killed_during_eval(model):
        state = _state(tmp_path / "run")
        seen.append((state["epoch"], state["global_step"], state["pending_eval"]))
        raise Killed

    args = ("train.end_epoch=1",)
    with pytest.raises(Killed):
        _tiny_trainer(tmp_path, body_dir, RandomSamples(4), *args, evaluate_fn=killed_during_eval).run()
    assert seen == [(1, 2, 0)], "last.pt holds the finished epoch, its evaluation pending"
    resumed = _tiny_trainer(tmp_path, body_dir, RandomSamples(4), *args, evaluate_fn=lambda m: _eval_result(42.0))
    assert resumed.load_state()
    assert resumed.run()["mpjpe"] == 42.0
    state = _state(tmp_path / "run")
    assert state["global_step"] == 2 and state["pending_eval"] is None, "the epoch was not trained again"
    assert state["history"]["epochs"][0]["eval_mpjpe"] == 42.0
    assert (tmp_path / "run" / "eval_epoch_0_per_sequence.csv").is_file()


def test_skipped_image_warning_reaches_train_log(tmp_path, body_dir):
    from hap3d.data import build_fit_model, dataset_class, dataset_root
    from hap3d.synth import write_synthetic_datasets

    write_synthetic_datasets(tmp_path / "data", body_dir, size="tiny", datasets=["MuCo"])
    muco = dataset_class("MuCo")(dataset_root(tmp_path / "data", "MuCo"), build_fit_model(body_dir))
    victim = muco.records[0].img_path
    victim.unlink()
    # one loader worker: its warning must reach the log too
    trainer = _tiny_trainer(tmp_path, body_dir, muco, "train.train_batch_size=1", "data.num_workers=1",
                            "train.end_epoch=1")
    trainer.run()
    log = (trainer.run_dir / "train.log").read_text()
    assert re.search(rf"WARNING MuCo sample \d+ skipped \(.*{re.escape(str(victim))}", log), log
    where = trainer.run_dir / "train.log"
    assert f"1 unreadable samples replaced (each named in a 'skipped' warning in {where})" in log
    assert re.search(r"epoch 1/1 step 3/3 \(global 3\): loss ", log), "periodic step lines in the text log"
    assert _state(trainer.run_dir)["history"]["epochs"][0]["replaced_samples"] == 1


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
        both = two[0].order()[2 * k : 2 * k + 2] + two[1].order()[2 * k : 2 * k + 2]
        assert sorted(o[4 * k : 4 * k + 4]) == sorted(both)
    one.set_epoch(1, skip_batches=2)
    assert list(one) == o[8:]


def test_reference_compat_freezes_lift_and_vposer(tmp_path, body_dir):
    cfg = load_config(None, [f"data.body_model_dir={body_dir}", "model.depth=2", "model.embed_dim=64",
                             "model.num_heads=2"])
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
    assert cfg.data.trainset_3d == ["Human36M", "MuCo"]
    assert cfg.train.train_batch_size == 192 and cfg.train.lr_backbone == 1e-4
    bad = tmp_path / "bad.yml"
    bad.write_text("train:\n  learning_rate: 0.1\n")
    with pytest.raises(ConfigError, match=r"bad.yml: unknown config key 'train.learning_rate'"):
        load_config(bad)
    with pytest.raises(ConfigError, match="must be one of"):
        load_config(None, ["train.optimizer=rmsprop"])


def test_epoch_means_after_a_mid_epoch_resume_equal_an_uninterrupted_run(tmp_path, body_dir):
    """The epoch's running loss sums and the consecutive-bad-step count are part of the state: a run stopped mid
    epoch and resumed reports the same epoch means as one that never stopped."""
    args = ("train.end_epoch=2", "train.ckpt_every_steps=3")  # 8 steps per epoch; states at global steps 3, 6, 9, 12
    whole = _tiny_trainer(tmp_path / "whole", body_dir, RandomSamples(16), *args)
    whole.run()

    class Stopped(Exception):
        pass

    cut = _tiny_trainer(tmp_path / "cut", body_dir, RandomSamples(16), *args)
    step = cut.train_step

    def stop_at_step_14(batch):
        if cut.global_step == 13:
            raise Stopped
        return step(batch)

    cut.train_step = stop_at_step_14
    with pytest.raises(Stopped):
        cut.run()
    stopped = _state(cut.run_dir)
    assert (stopped["epoch"], stopped["step_in_epoch"], stopped["epoch_count"], stopped["bad_steps"]) == (1, 4, 4, 0)
    assert stopped["epoch_sums"] and set(stopped["epoch_sums"]) <= set(whole.logger.history["epochs"][1])
    resumed = _tiny_trainer(tmp_path / "cut", body_dir, RandomSamples(16), *args)
    resumed.bad_steps = 5  # restored from the state, not kept from before
    assert resumed.load_state() and resumed.bad_steps == 0
    resumed.run()
    want, got = _state(whole.run_dir)["history"]["epochs"], _state(cut.run_dir)["history"]["epochs"]
    assert [e["epoch"] for e in got] == [0, 1]
    for w, g in zip(want, got):
        losses = [k for k in w if k.startswith("loss")]
        assert losses and {k: g[k] for k in losses} == pytest.approx({k: w[k] for k in losses}, rel=1e-6)


def _gathered(monkeypatch, other):
    """Make load_state's all-gather report ``other`` (position, problem) for a second process."""
    import hap3d.engine.train as train_module

    monkeypatch.setattr(train_module, "all_gather_object", lambda obj, info: [obj, other])


def test_resume_stops_every_process_when_they_found_different_states(tmp_path, body_dir, monkeypatch):
    _tiny_trainer(tmp_path, body_dir, RandomSamples(4), "train.end_epoch=1").run()  # last.pt: epoch 1, global step 2
    state = tmp_path / "run" / "checkpoints" / "last.pt"
    trainer = _tiny_trainer(tmp_path, body_dir, RandomSamples(4), "train.end_epoch=1")
    _gathered(monkeypatch, ((0, 1, 1), None))  # another node has an older copy of the run directory
    with pytest.raises(Hap3dError, match=re.escape(
            f"cannot resume: the processes found different training states in {state} (rank 0: 1 epoch completed "
            "(global step 2); rank 1: 0 epochs completed, 1 step into epoch 1 (global step 1)). Every process reads "
            "the run directory itself, so it must be on storage all nodes share")):
        trainer.load_state()
    _gathered(monkeypatch, (None, None))  # another node has no copy at all
    with pytest.raises(Hap3dError, match=re.escape(
            f"cannot resume: some processes cannot find {state} (rank 0: 1 epoch completed (global step 2); rank 1: no "
            "such file)")):
        trainer.load_state()
    _gathered(monkeypatch, ((1, 0, 2), "the file is truncated"))  # one process's error stops them all
    with pytest.raises(Hap3dError, match=r"^rank 1: the file is truncated$"):
        trainer.load_state()
    assert trainer.global_step == 0, "nothing was restored"
    _gathered(monkeypatch, ((1, 0, 2), None))
    assert trainer.load_state() and trainer.global_step == 2


def test_worker_log_handler_is_the_run_loggers_for_a_run_dir_with_dotdot(tmp_path, monkeypatch):
    """`--out ../runs/x`: a DataLoader worker re-attaching the run's log must find the handler already there,
    or every warning is written twice."""
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    logger = RunLogger(Path("../runs/x"))
    try:
        assert attach_file_handler(logger.file, logger.level) is logger._handler  # what _worker_init does
        logging.getLogger("hap3d.data").warning("a worker warning")
    finally:
        logger.close()
    assert (tmp_path / "runs" / "x" / "train.log").read_text().count("a worker warning") == 1


def test_readers_load_time_tallies_and_warnings_reach_train_log(tmp_path, body_dir):
    from hap3d.engine.run import train
    from hap3d.synth import write_synthetic_datasets

    root = Path(write_synthetic_datasets(tmp_path / "data", body_dir, size="tiny", datasets=["MuCo"]))
    fits = root / "MuCo" / "data" / "smpl_param.json"
    entries = json.loads(fits.read_text())
    aid = next(iter(entries))
    entries[aid]["pose"][0] = None
    fits.write_text(json.dumps(entries))
    cfg = load_config(None, TINY + [f"data.root={root}", f"data.body_model_dir={body_dir}", "data.trainset_3d=[MuCo]",
                                    "data.trainset_2d=[]", "train.train_batch_size=2", "train.end_epoch=1",
                                    "train.max_steps_per_epoch=1", "eval.device=cpu"])
    train(cfg, tmp_path / "run", progress=False)
    log = (tmp_path / "run" / "train.log").read_text()
    assert f"WARNING {fits}: entry {aid}.pose has a null, NaN or infinite value" in log
    tally = r"INFO MuCo: \d+ samples from \d+ images \(\d+ without SMPL fit, 1 of them for a non-finite fit\)"
    assert re.search(tally, log)
    handlers = [getattr(h, "baseFilename", None) for h in logging.getLogger("hap3d").handlers]
    assert str(tmp_path / "run" / "train.log") not in handlers, "the run's log handler is removed at the end"


def test_human_facing_epochs_count_from_one_and_files_from_zero(tmp_path, body_dir):
    """Log lines say "epoch N/T" (1-based, as the progress bar); epoch_N files and their evaluations are 0-based like
    the reference's snapshot_N; last.pt and epoch_N both say how many epochs were completed."""
    from hap3d.model.checkpoint import read_checkpoint

    trainer = _tiny_trainer(tmp_path, body_dir, RandomSamples(4), "train.end_epoch=1",
                            evaluate_fn=lambda m: _eval_result(1.0))
    trainer.run()
    log = (trainer.run_dir / "train.log").read_text()
    for line in ("epoch 1/1 step 2/2 (global 2): loss", "epoch 1/1 done: ", "epoch 1/1 eval: MPJPE 1.00 mm",
                 "finished 1 epoch: "):
        assert line in log, line
    assert not re.search(r"\bepoch 0\b", log) and "1 epochs" not in log
    ckpts = trainer.run_dir / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir()) == ["epoch_0.safetensors", "last.pt"]
    assert (trainer.run_dir / "eval_epoch_0.json").is_file()
    info = read_checkpoint(ckpts / "epoch_0.safetensors").meta["info"]
    assert info == {"epoch": 0, "epochs_completed": 1, "global_step": 2}
    state = read_checkpoint(ckpts / "last.pt").meta
    assert state["epochs_completed"] == 1 and "epoch" not in state
    assert describe_position(1, 0, 2) == "1 epoch completed (global step 2)"
    assert describe_position(2, 1, 9) == "2 epochs completed, 1 step into epoch 3 (global step 9)"
    assert describe_position(0, 5, 5) == "0 epochs completed, 5 steps into epoch 1 (global step 5)"


def test_a_warmup_longer_than_the_run_is_warned_about_not_changed(tmp_path, body_dir, capsys):
    trainer = _tiny_trainer(tmp_path, body_dir, RandomSamples(4), "train.end_epoch=1", "train.warmup_steps=1000")
    trainer.run()
    warning = ("train.warmup_steps=1000 > the run's 2 training steps (1 epoch x 2 steps): the learning rate never "
               "leaves its linear warm-up and reaches at most 0.2% of its configured value. Lower train.warmup_steps "
               "(e.g. train.warmup_steps=1) or train longer")
    assert f"warning: {warning}" in capsys.readouterr().err
    assert f"WARNING {warning}" in (trainer.run_dir / "train.log").read_text()
    # the schedule is the configured one: lr 0.01 ramped over 1000 steps
    assert [s["lr"] for s in trainer.logger.history["steps"]] == pytest.approx([0.01 / 1000, 0.01 * 2 / 1000])
    # a warm-up as long as the run reaches the full rate at its last step: no warning
    short = _tiny_trainer(tmp_path / "short", body_dir, RandomSamples(4), "train.end_epoch=1", "train.warmup_steps=2")
    short.run()
    assert "warmup" not in capsys.readouterr().err
    assert "warmup" not in (short.run_dir / "train.log").read_text()


def test_a_training_set_smaller_than_one_batch_names_the_setting(tmp_path, body_dir):
    with pytest.raises(Hap3dError, match=re.escape(
            "training set has 3 samples, fewer than one global batch (train.train_batch_size 4 x 1 process); lower "
            "train.train_batch_size (per process), e.g. train.train_batch_size=3")):
        _tiny_trainer(tmp_path, body_dir, RandomSamples(3), "train.train_batch_size=4")
    # with BatchNorm training (freeze_bn false) one sample per step cannot train: not suggested
    with pytest.raises(Hap3dError, match=re.escape("fewer than one global batch (train.train_batch_size 2 x 1 "
                                                   "process); use fewer processes or more data")):
        _tiny_trainer(tmp_path / "one", body_dir, RandomSamples(1), "train.freeze_bn=false")


def test_batch_of_one_needs_frozen_batchnorm():
    """BatchNorm over one sample has no variance: the setting is refused at load, naming the way out."""
    with pytest.raises(ConfigError, match=r"train.train_batch_size.*at least 2 per process.*train.freeze_bn=true"):
        load_config(None, ["train.train_batch_size=1"])
    assert load_config(None, ["train.train_batch_size=1", "train.freeze_bn=true"]).train.train_batch_size == 1


def test_run_config_yaml_holds_absolute_paths(tmp_path, body_dir, monkeypatch):
    """Relative paths are resolved against the directory training started in: the run's config.yaml (and the state's
    config) name the same files from anywhere, e.g. for `hap3d eval --ckpt <run>/checkpoints/...`."""
    import yaml

    monkeypatch.chdir(tmp_path)
    trainer = _tiny_trainer(tmp_path, body_dir, RandomSamples(4), "train.end_epoch=1", "data.root=data",
                            "train.pretrained=../weights/latest.pth")
    trainer.run()
    assert trainer.cfg.data.root == "data", "the run itself keeps the config as given"
    for saved in (yaml.safe_load((tmp_path / "run" / "config.yaml").read_text()), _state(tmp_path / "run")["config"]):
        assert saved["data"]["root"] == str(tmp_path / "data")
        assert saved["data"]["body_model_dir"] == str(body_dir)
        assert saved["train"]["pretrained"] == str(tmp_path.parent / "weights" / "latest.pth")
    assert load_config(tmp_path / "run" / "config.yaml").data.root == str(tmp_path / "data")


def test_loader_workers_are_capped_at_the_usable_cpus(tmp_path, body_dir, monkeypatch, capsys):
    import hap3d.engine.distributed as distributed

    if hasattr(os, "sched_getaffinity"):
        assert distributed.usable_cpus() == len(os.sched_getaffinity(0))
    monkeypatch.setattr(distributed, "usable_cpus", lambda: 2)
    assert distributed.loader_workers(2) == 2 and capsys.readouterr().out == ""
    assert distributed.loader_workers(16, announce=False) == 2 and capsys.readouterr().out == ""
    trainer = _tiny_trainer(tmp_path, body_dir, RandomSamples(4), "data.num_workers=16")
    assert trainer.loader.num_workers == 2
    trainer.logger.close()
    message = "data.num_workers=16 capped at 2 loader workers: this process may use 2 CPUs"
    assert capsys.readouterr().out.count(message) == 1


def test_missing_pretrained_or_body_model_name_their_settings_before_any_work(tmp_path, body_dir):
    from hap3d.engine.run import train

    cfg = load_config(None, TINY + [f"data.body_model_dir={body_dir}", "train.pretrained=checkpoints/latest.pth"])
    with pytest.raises(Hap3dError, match=r"backbone checkpoint not found: checkpoints/latest.pth \(resolved: .*\), "
                                         r"set by train.pretrained\. .*train.pretrained=PATH.*train.pretrained=null to "
                                         "train the backbone from scratch"):
        train(cfg, tmp_path / "run", progress=False)
    cfg = load_config(None, TINY + [f"data.body_model_dir={tmp_path / 'nobody'}"])
    with pytest.raises(Hap3dError, match=r"(?s)no neutral SMPL model found in .*nobody.*The body-model folder is "
                                         r"data.body_model_dir = .*; point it at yours with --body-model-dir DIR or "
                                         r"data.body_model_dir=DIR"):
        train(cfg, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists(), "nothing was started"


def test_train_command_takes_overrides_anywhere(tmp_path, monkeypatch, capsys):
    """`hap3d train --cfg X --out R a=1 --resume b=2`: every KEY=VALUE is an override, wherever it stands."""
    import hap3d.engine.run as run
    from hap3d.cli import main as cli_main

    calls = []
    monkeypatch.setattr(run, "train", lambda cfg, out, resume, overwrite: calls.append((cfg, out, resume)) or {})
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("train:\n  end_epoch: 5\n  lr: 0.5\n")
    assert cli_main(["train", "train.seed=3", "--cfg", str(cfg_file), "--out", str(tmp_path / "r"), "train.end_epoch=1",
                     "--resume", "lr=0.25", "--data-root", "/d"]) == 0
    (cfg, out, resume), = calls
    assert (cfg.train.seed, cfg.train.end_epoch, cfg.train.lr, cfg.data.root) == (3, 1, 0.25, "/d")
    assert out == str(tmp_path / "r") and resume is True
    capsys.readouterr()
    for args, message in ((["--resume", "--bogus"], "unrecognized arguments: --bogus"),
                          (["a.b=1", "--resume", "stray"], "unrecognized arguments: stray")):
        with pytest.raises(SystemExit) as err:
            cli_main(["train", "--out", str(tmp_path / "r"), *args])
        assert err.value.code == 2 and message in capsys.readouterr().err
    assert cli_main(["train", "--resume", "stray"]) == 2
    assert "override 'stray' must look like key=value" in capsys.readouterr().err
    assert len(calls) == 1
    # commands without overrides still refuse KEY=VALUE words
    with pytest.raises(SystemExit):
        cli_main(["inspect", "x.safetensors", "--keys", "a=1"])
    assert "unrecognized arguments: a=1" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["train"], ["eval"], ["demo"], ["data", "synth"]])
def test_every_option_has_help_and_shows_its_default(command):
    import argparse

    from hap3d.cli import build_parser

    parser = build_parser()
    for name in command:
        parser = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[name]
    required_groups = [a for g in parser._mutually_exclusive_groups if g.required for a in g._group_actions]
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help, f"{command} {action.dest}: no help"
        takes_value = action.nargs != 0 and action.option_strings
        if takes_value and not action.required and action not in required_groups:
            assert "(default: " in action.help, f"{command} {action.dest}: no default shown in {action.help!r}"
    shown = parser.format_help()
    assert "%(default)" not in shown and "(default: None)" not in shown


def test_loss_weights_weigh_the_terms_of_the_total(tmp_path, body_dir):
    """Without train.loss_weights the total is the sum of the terms (the reference's); a weight scales its term and
    0 removes it from the total, while the term is still logged."""
    from hap3d.model.losses import LOSS_NAMES

    plain = _tiny_trainer(tmp_path / "plain", body_dir, RandomSamples(4))
    _, logged = plain.train_step(_first_batch(plain))
    assert logged["loss"] == pytest.approx(sum(logged[f"loss_{k}"] for k in LOSS_NAMES), rel=1e-5)
    plain.logger.close()
    weights = {k: 0 for k in LOSS_NAMES} | {"smpl_pose": 2}
    weighted = _tiny_trainer(tmp_path / "weighted", body_dir, RandomSamples(4),
                             f"train.loss_weights={json.dumps(weights)}")
    skipped, logged = weighted.train_step(_first_batch(weighted))
    assert skipped is None and logged["loss_smpl_shape"] > 0
    assert logged["loss"] == pytest.approx(2 * logged["loss_smpl_pose"], rel=1e-5)
    weighted.logger.close()


def test_train_state_file_keeps_its_keys_and_reads_older_states(tmp_path, body_dir):
    """last.pt keeps the keys earlier versions wrote (their runs resume); a state written before the optional keys
    existed loads with their defaults; another file is refused plainly."""
    from hap3d.engine.state import TrainState

    trainer = _tiny_trainer(tmp_path, body_dir, RandomSamples(4), "train.end_epoch=1")
    trainer.run()
    raw = _state(trainer.run_dir)
    assert set(raw) == {"format", "model", "optimizer", "scaler", "epoch", "step_in_epoch", "global_step", "epoch_sums",
                        "epoch_count", "bad_steps", "bad_steps_total", "replaced_samples", "pending_eval", "rng",
                        "config", "history"}
    state = TrainState.load(trainer.state_path, trainer.cfg.model)
    assert raw["format"] == "hap3d-train-state" and state.position == (1, 0, 2) and state.history == raw["history"]
    for key in ("epoch_sums", "epoch_count", "bad_steps", "replaced_samples", "pending_eval", "rng"):
        del raw[key]
    model = raw["config"]["model"]  # as written before vit_conv_layer's settings were renamed
    model["lift_dim"], model["lift_trainable"] = model.pop("vit_conv_dim"), model.pop("vit_conv_trainable")
    torch.save(raw, tmp_path / "older.pt")
    older = TrainState.load(tmp_path / "older.pt", trainer.cfg.model)
    assert older.position == state.position and (older.epoch_sums, older.rng, older.pending_eval) == ({}, None, None)
    del raw["optimizer"]
    torch.save(raw, tmp_path / "broken.pt")
    with pytest.raises(Hap3dError, match=r"broken.pt: training state without optimizer; it cannot be resumed"):
        TrainState.load(tmp_path / "broken.pt")
    torch.save({"model": raw["model"]}, tmp_path / "weights.pt")
    with pytest.raises(Hap3dError, match=r"weights.pt: not a hap3d training state"):
        TrainState.load(tmp_path / "weights.pt")


def test_the_test_set_is_the_configured_one_from_the_dataset_registry(tmp_path, body_dir):
    """data.testset names a registered dataset; one the evaluation cannot measure stops training before any work."""
    from hap3d.config import ConfigError
    from hap3d.engine.run import build_test_set, has_test_set, resolve_test_set, train

    cfg = load_config(None, [f"data.root={tmp_path / 'data'}"])
    reader, options, split = resolve_test_set(cfg)
    assert (reader.__name__, options, split) == ("PW3D", {}, "test")
    crowd = load_config(None, [f"data.root={tmp_path / 'data'}", "data.crowd=true"])
    assert resolve_test_set(crowd)[1:] == ({"crowd": True}, "validation")
    assert not has_test_set(cfg) and not has_test_set(crowd)
    (tmp_path / "data" / "PW3D" / "data").mkdir(parents=True)
    (tmp_path / "data" / "PW3D" / "data" / "3DPW_latest_test.json").write_text("{}")
    assert has_test_set(cfg) and not has_test_set(crowd), "the crowd variant reads the validation split"
    with pytest.raises(ConfigError, match=r"^data.testset='MuCo' has no evaluation: the metrics need per-person "
                                          r"gendered SMPL ground truth, which hap3d reads for PW3D$"):
        has_test_set(load_config(None, ["data.testset=MuCo"]))
    with pytest.raises(ConfigError, match=r"^data.testset: unknown dataset 'Nowhere'; known: "):
        build_test_set(load_config(None, ["data.testset=Nowhere"]))
    run_cfg = load_config(None, TINY + [f"data.body_model_dir={body_dir}", "data.testset=MuCo"])
    with pytest.raises(ConfigError, match="has no evaluation"):
        train(run_cfg, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists(), "nothing was started"
