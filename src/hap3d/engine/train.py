"""Training: single process or torchrun DDP, mixed precision, atomic checkpoints and exact resume.

A run directory holds ``config.yaml``, ``train.log``, ``history.json``, plots, ``checkpoints/last.pt`` (full
training state, rewritten atomically at every epoch end and every ``ckpt_every_steps`` steps) and
``checkpoints/epoch_N.safetensors`` (the model after epoch N, in the hap3d format). ``--resume`` continues from
``last.pt``: same epoch, same position in the epoch's sample order, same optimizer and scaler state.
"""

from __future__ import annotations

import contextlib
import math
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
import yaml
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from hap3d.config import Config, to_dict
from hap3d.data.mix import set_epoch
from hap3d.engine.distributed import DistInfo, all_reduce_mean
from hap3d.engine.logging import RunLogger
from hap3d.model.checkpoint import NUMPY_SAFE_GLOBALS, save_model_checkpoint
from hap3d.model.hap import HapModel
from hap3d.model.losses import loss_terms, reduce_losses
from hap3d.utils import Hap3dError, atomic_write

TRAIN_STATE_FORMAT = "hap3d-train-state"


class TrainingDiverged(Hap3dError):
    """The loss stayed non-finite for too many consecutive steps."""


def param_groups(model: HapModel, cfg: Config) -> list[dict[str, Any]]:
    """The reference's four groups (backbone, pose2feat, position_net, rotation_net) plus the lift if trained."""
    lr_backbone = cfg.train.lr if (cfg.train.lr_backbone is None or cfg.model.reference_compat) else cfg.train.lr_backbone
    groups = [
        ("backbone", model.backbone, lr_backbone),
        ("pose2feat", model.pose2feat, cfg.train.lr),
        ("position_net", model.position_net, cfg.train.lr),
        ("rotation_net", model.rotation_net, cfg.train.lr),
    ]
    if model.vit_conv_layer is not None:
        groups.append(("lift", model.vit_conv_layer, cfg.train.lr))
    out = []
    for name, module, lr in groups:
        params = [p for p in module.parameters() if p.requires_grad]
        if params:
            out.append({"name": name, "params": params, "lr": lr, "base_lr": lr})
    return out


def build_optimizer(model: HapModel, cfg: Config) -> torch.optim.Optimizer:
    groups = param_groups(model, cfg)
    t = cfg.train
    if t.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay or 0.0)
    if t.optimizer == "adam":
        return torch.optim.Adam(groups, lr=t.lr, weight_decay=t.weight_decay or 0.0)
    return torch.optim.AdamW(groups, lr=t.lr, weight_decay=0.1 if t.weight_decay is None else t.weight_decay)


def lr_factor(cfg: Config, epoch: int, step: int, steps_per_epoch: int) -> float:
    """Multiplier of each group's base lr: step decay by milestones (reference) or cosine, with linear warm-up."""
    t = cfg.train
    global_step = epoch * steps_per_epoch + step
    if t.schedule == "step":
        f = 1.0 / t.lr_dec_factor ** sum(epoch >= m for m in t.lr_dec_epoch)
    else:
        total = max(1, t.end_epoch * steps_per_epoch)
        f = 0.5 * (1 + math.cos(math.pi * min(global_step, total) / total))
    if t.warmup_steps and global_step < t.warmup_steps:
        f *= (global_step + 1) / t.warmup_steps
    return f


class ResumableSampler(torch.utils.data.Sampler[int]):
    """The epoch's shuffled order for this rank (identical to DistributedSampler's), optionally from position k.

    One process with batch B and N processes with batch B/N see the same global batches, so runs compare across
    world sizes; skipping the first k samples resumes a killed run where it stopped.
    """

    def __init__(self, length: int, rank: int, world_size: int, seed: int, batch_size: int) -> None:
        self.length, self.rank, self.world, self.seed, self.batch = length, rank, world_size, seed, batch_size
        self.epoch = 0
        self.skip = 0
        self.per_rank = (length // (world_size * batch_size)) * batch_size  # full global batches only

    def set_epoch(self, epoch: int, skip_batches: int = 0) -> None:
        self.epoch, self.skip = epoch, skip_batches * self.batch

    def order(self) -> list[int]:
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        perm = torch.randperm(self.length, generator=g).tolist()
        return perm[: self.per_rank * self.world][self.rank :: self.world]

    def __iter__(self) -> Iterator[int]:
        return iter(self.order()[self.skip :])

    def __len__(self) -> int:
        return self.per_rank - self.skip


class Trainer:
    def __init__(
        self,
        cfg: Config,
        model: HapModel,
        train_set: torch.utils.data.Dataset,
        run_dir: str | Path,
        info: DistInfo,
        evaluate_fn=None,
        progress: bool = True,
    ) -> None:
        self.cfg, self.info, self.run_dir = cfg, info, Path(run_dir)
        self.evaluate_fn = evaluate_fn
        self.progress = progress and info.is_main
        self.model = model.to(info.device)
        self.ddp: torch.nn.Module = self.model
        if info.distributed:
            ids = [info.device.index] if info.device.type == "cuda" else None
            self.ddp = DistributedDataParallel(self.model, device_ids=ids)
        self.optimizer = build_optimizer(self.model, cfg)
        amp = cfg.train.amp
        self.scaler = torch.amp.GradScaler(info.device.type, init_scale=cfg.train.init_scale, enabled=amp == "fp16")
        self.train_set = train_set
        b = cfg.train.train_batch_size
        if len(train_set) < b * info.world_size:
            raise Hap3dError(f"training set has {len(train_set)} samples, fewer than one global batch ({b} x {info.world_size})")
        self.sampler = ResumableSampler(len(train_set), info.rank, info.world_size, cfg.train.seed, b)
        self.loader = torch.utils.data.DataLoader(
            train_set, batch_size=b, sampler=self.sampler, num_workers=cfg.data.num_workers, drop_last=True,
            pin_memory=info.device.type == "cuda", persistent_workers=False, worker_init_fn=_worker_init,
        )
        self.epoch, self.step_in_epoch, self.global_step = 0, 0, 0
        self.bad_steps = 0
        self.bad_steps_total = 0
        self.replaced_samples = 0  # unreadable samples replaced by others (counted on this process)
        self.logger = RunLogger(self.run_dir, enabled=info.is_main)

    # ----------------------------------------------------------------- checkpoints
    @property
    def state_path(self) -> Path:
        return self.run_dir / "checkpoints" / "last.pt"

    def save_state(self) -> None:
        if not self.info.is_main:
            return
        state = {
            "format": TRAIN_STATE_FORMAT,
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "global_step": self.global_step,
            "bad_steps_total": self.bad_steps_total,
            "torch_rng": torch.get_rng_state(),
            "config": to_dict(self.cfg),
            "history": self.logger.history,
        }
        atomic_write(self.state_path, lambda p: torch.save(state, p))

    def load_state(self, path: str | Path | None = None) -> bool:
        """Restore the full training state; False if there is nothing to resume from."""
        path = Path(path) if path else self.state_path
        if not path.is_file():
            return False
        with torch.serialization.safe_globals(NUMPY_SAFE_GLOBALS):
            state = torch.load(path, map_location="cpu", weights_only=True)
        if state.get("format") != TRAIN_STATE_FORMAT:
            raise Hap3dError(f"{path}: not a hap3d training state (use `hap3d convert` for model checkpoints)")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.step_in_epoch = state["epoch"], state["step_in_epoch"]
        self.global_step, self.bad_steps_total = state["global_step"], state["bad_steps_total"]
        torch.set_rng_state(state["torch_rng"])
        self.logger.history = state["history"]
        self.logger.info(f"resumed from {path}: epoch {self.epoch}, step {self.step_in_epoch}")
        return True

    # ----------------------------------------------------------------- loop
    def autocast(self):
        amp = self.cfg.train.amp
        if amp == "none":
            return contextlib.nullcontext()
        return torch.autocast(self.info.device.type, dtype=torch.bfloat16 if amp == "bf16" else torch.float16)

    def set_lr(self, factor: float) -> None:
        for g in self.optimizer.param_groups:
            g["lr"] = g["base_lr"] * factor

    def train_step(self, batch: dict) -> tuple[bool, dict[str, float]]:
        dev = self.info.device
        inp = {k: v.to(dev, non_blocking=True) for k, v in batch["inputs"].items()}
        targets = {k: v.to(dev, non_blocking=True) for k, v in batch["targets"].items()}
        meta = {k: v.to(dev, non_blocking=True) for k, v in batch["meta"].items()}
        self.optimizer.zero_grad(set_to_none=True)
        with self.autocast():
            pred = self.ddp(inp["img"], inp["joints"], inp["joints_mask"])
            total, means = reduce_losses(loss_terms(pred, targets, meta, self.model.graph_index), self.cfg.train.loss_reduction)
        finite = torch.isfinite(total.detach()).float()
        if all_reduce_mean(finite, self.info).item() < 1.0:  # every rank skips together, or DDP would hang
            return False, {}
        self.scaler.scale(total).backward()
        if self.cfg.train.grad_clip:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.trainable_parameters(), self.cfg.train.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update(self.cfg.train.init_scale if self.cfg.train.loss_scale == "fixed" else None)
        values = all_reduce_mean(torch.stack([total.detach().float()] + [v.detach().float() for v in means.values()]), self.info)
        logged = dict(zip(["loss"] + [f"loss_{k}" for k in means], values.tolist()))
        return True, logged

    def run(self) -> dict[str, float]:
        cfg = self.cfg
        if self.info.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            atomic_write(self.run_dir / "config.yaml", lambda p: Path(p).write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False)))
        steps_per_epoch = len(self.sampler.order()) // cfg.train.train_batch_size
        if cfg.train.max_steps_per_epoch:
            steps_per_epoch = min(steps_per_epoch, cfg.train.max_steps_per_epoch)
        final: dict[str, float] = {}
        while self.epoch < cfg.train.end_epoch:
            epoch = self.epoch
            self.sampler.set_epoch(epoch, self.step_in_epoch)
            set_epoch(self.train_set, epoch)  # workers are started per epoch, so their copies see it
            self.ddp.train()
            if cfg.train.freeze_bn:  # running statistics instead of per-process batch statistics
                for m in self.model.modules():
                    if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                        m.eval()
            bar = tqdm(total=steps_per_epoch, initial=self.step_in_epoch, desc=f"epoch {epoch + 1}/{cfg.train.end_epoch}",
                       disable=not self.progress, unit="step", dynamic_ncols=True)
            sums: dict[str, float] = {}
            count, t0 = 0, time.time()
            for batch in self.loader:
                if self.step_in_epoch >= steps_per_epoch:
                    break
                if "replaced" in batch["meta"]:
                    self.replaced_samples += int(batch["meta"].pop("replaced").sum())
                self.set_lr(lr_factor(cfg, epoch, self.step_in_epoch, steps_per_epoch))
                ok, logged = self.train_step(batch)
                self.step_in_epoch += 1
                self.global_step += 1
                if not ok:
                    self.bad_steps += 1
                    self.bad_steps_total += 1
                    self.logger.info(f"non-finite loss at epoch {epoch} step {self.step_in_epoch}: step skipped")
                    if self.bad_steps >= cfg.train.max_bad_steps:
                        raise TrainingDiverged(
                            f"the loss was non-finite for {self.bad_steps} consecutive steps (epoch {epoch}); stopping. "
                            "Lower the learning rate, use amp=bf16 instead of fp16, or check the data (hap3d data check)."
                        )
                else:
                    self.bad_steps = 0
                    count += 1
                    for k, v in logged.items():
                        sums[k] = sums.get(k, 0.0) + v
                    if self.global_step % cfg.train.log_every == 0 or self.step_in_epoch == steps_per_epoch:
                        self.logger.step(self.global_step, epoch, logged | {"lr": self.optimizer.param_groups[0]["lr"]})
                n_img = count * cfg.train.train_batch_size * self.info.world_size
                bar.set_postfix(loss=f"{logged.get('loss', float('nan')):.4f}", img_s=f"{n_img / max(time.time() - t0, 1e-9):.1f}")
                bar.update(1)
                if cfg.train.ckpt_every_steps and self.global_step % cfg.train.ckpt_every_steps == 0:
                    self.save_state()
            bar.close()
            epoch_stats = {k: v / max(count, 1) for k, v in sums.items()} | {
                "skipped_steps": self.bad_steps_total, "replaced_samples": self.replaced_samples}
            self.epoch, self.step_in_epoch = epoch + 1, 0
            if self.info.is_main:
                save_model_checkpoint(self.run_dir / "checkpoints" / f"epoch_{epoch}.safetensors", self.model, cfg.model,
                                      {"epoch": epoch, "global_step": self.global_step})
            if self.evaluate_fn is not None and (cfg.train.eval_every_epoch or self.epoch == cfg.train.end_epoch) and self.info.is_main:
                result = self.evaluate_fn(self.model)
                result.write(self.run_dir, f"eval_epoch_{epoch}")
                epoch_stats |= {f"eval_{k}": v for k, v in result.means.items()}
                self.logger.info(f"epoch {epoch} eval: {result.summary()}")
                final = result.means
            self.logger.info(f"epoch {epoch} done: " + ", ".join(f"{k}={v:.4f}" for k, v in epoch_stats.items()))
            self.logger.epoch(epoch, epoch_stats)
            self.save_state()
        self.logger.info(
            f"finished {cfg.train.end_epoch} epochs: {self.bad_steps_total} non-finite steps skipped, "
            f"{self.replaced_samples} unreadable samples replaced (see train.log warnings for the files)"
        )
        if self.info.is_main and (self.bad_steps_total or self.replaced_samples):
            print(f"warning: {self.bad_steps_total} steps skipped, {self.replaced_samples} unreadable samples replaced")
        self.logger.close()
        return final


def _worker_init(worker_id: int) -> None:
    torch.set_num_threads(1)
    np.random.seed((torch.initial_seed() + worker_id) % 2**32)

