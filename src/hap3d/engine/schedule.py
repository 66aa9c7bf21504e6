"""The parts of the training recipe that need no loop: seeds per process and purpose, the learning-rate
schedule, fp16 loss scaling and the resumable, rank-sharded sample order."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import torch

from hap3d.config import Config


def derived_seed(*keys: int) -> int:
    """A reproducible 63-bit seed for a tuple of keys (run seed, rank, ...): one stream per process and purpose."""
    return int(np.random.SeedSequence(list(keys)).generate_state(2, np.uint64)[0] >> np.uint64(1))


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


class LossScaler(torch.amp.GradScaler):
    """fp16 loss scaling: 'dynamic' (halve on overflow, grow after a run of good steps) or 'fixed', the reference's
    reset to ``init_scale`` after every step (an overflowing step is still skipped). Disabled, it is a no-op."""

    def __init__(self, device_type: str, mode: str, init_scale: float, enabled: bool = True) -> None:
        super().__init__(device_type, init_scale=init_scale, enabled=enabled)
        self.mode, self.reset_scale = mode, init_scale

    def update(self, new_scale: float | torch.Tensor | None = None) -> None:
        super().update(self.reset_scale if new_scale is None and self.mode == "fixed" else new_scale)


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
