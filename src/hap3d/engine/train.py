"""Training: single process or torchrun DDP, mixed precision, atomic checkpoints and exact resume.

A run directory holds ``config.yaml``, ``train.log``, ``history.json``, plots, ``checkpoints/last.pt`` (the full
training state, :class:`hap3d.engine.state.TrainState`, rewritten atomically at every epoch end, before the epoch's
evaluation, and every ``ckpt_every_steps`` steps) and ``checkpoints/epoch_N.safetensors`` (the model after epoch N,
in the hap3d format; N counts from 0 like the reference's ``snapshot_N``, while log lines and the progress bar
count from 1: ``epoch_0`` is written at the end of "epoch 1/T"). ``--resume`` continues from ``last.pt``. The loop
reads top to bottom in :meth:`Trainer._run`; docs/training.md describes the run from the user's side.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import torch
import yaml
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from hap3d.config import Config, to_dict, with_absolute_paths
from hap3d.data.mix import set_epoch
from hap3d.engine.distributed import (
    DistInfo,
    all_gather_object,
    all_reduce_mean,
    all_reduce_sum,
    barrier,
    broadcast_object,
    loader_workers,
)
from hap3d.engine.logging import RunLogger, attach_file_handler
from hap3d.engine.rundir import StopSignals
from hap3d.engine.schedule import LossScaler, ResumableSampler, derived_seed, lr_factor
from hap3d.engine.state import Position, TrainState
from hap3d.model.checkpoint import save_model_checkpoint
from hap3d.model.hap import HapModel
from hap3d.model.losses import loss_terms, reduce_losses
from hap3d.precision import autocast, check_amp
from hap3d.utils import Hap3dError, atomic_write

if TYPE_CHECKING:
    from hap3d.engine.evaluate import EvalResult

LOADER_STREAM = 1  # seed-stream tag of the DataLoader's worker seeds


class TrainingDiverged(Hap3dError):
    """The loss stayed non-finite for too many consecutive steps."""


def param_groups(model: HapModel, cfg: Config) -> list[dict[str, Any]]:
    """The reference's four groups (backbone, pose2feat, position_net, rotation_net) plus vit_conv_layer if trained."""
    own_lr = cfg.train.lr_backbone is not None and not cfg.model.reference_compat
    lr_backbone = cfg.train.lr_backbone if own_lr else cfg.train.lr
    groups = [
        ("backbone", model.backbone, lr_backbone),
        ("pose2feat", model.pose2feat, cfg.train.lr),
        ("position_net", model.position_net, cfg.train.lr),
        ("rotation_net", model.rotation_net, cfg.train.lr),
    ]
    if model.vit_conv_layer is not None:
        groups.append(("vit_conv_layer", model.vit_conv_layer, cfg.train.lr))
    out = []
    for name, module, lr in groups:
        params = [p for p in module.parameters() if p.requires_grad]
        if params:
            out.append({"name": name, "params": params, "lr": lr, "base_lr": lr})
    return out


def build_optimizer(model: HapModel, cfg: Config) -> torch.optim.Optimizer:
    """Fused kernels: one pass over all parameters instead of a loop of small ops per tensor, the same update up
    to rounding; 4x (SGD) to 5x (AdamW) faster steps for ViT-B on CPU (docs/benchmarks.md)."""
    groups = param_groups(model, cfg)
    t = cfg.train
    if t.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay or 0.0, fused=True)
    if t.optimizer == "adam":
        return torch.optim.Adam(groups, lr=t.lr, weight_decay=t.weight_decay or 0.0, fused=True)
    decay = 0.1 if t.weight_decay is None else t.weight_decay
    return torch.optim.AdamW(groups, lr=t.lr, weight_decay=decay, fused=True)


def plural(n: int, word: str, many: str | None = None) -> str:
    """'1 epoch', '2 epochs' ('1 process', '2 processes' with ``many``)."""
    return f"{n} {word if n == 1 else many or word + 's'}"


def describe_position(epoch: int, step: int, global_step: int) -> str:
    """A training position for people: epochs completed, then steps into the next (which log lines call epoch+1)."""
    into = f", {plural(step, 'step')} into epoch {epoch + 1}" if step else ""
    return f"{plural(epoch, 'epoch')} completed{into} (global step {global_step})"


class Trainer:
    """The training loop of one process: :meth:`run` trains to ``train.end_epoch``, from where :meth:`load_state`
    left it. Under torchrun every process runs one, in lockstep (the collectives are noted where they happen)."""

    def __init__(
        self,
        cfg: Config,
        model: HapModel,
        train_set: torch.utils.data.Dataset,
        run_dir: str | Path,
        info: DistInfo,
        evaluate_fn: Callable[[HapModel], EvalResult] | None = None,
        progress: bool = True,
    ) -> None:
        """``evaluate_fn`` is needed on rank 0 only: it evaluates alone while the other processes wait."""
        self.cfg, self.info, self.run_dir = cfg, info, Path(run_dir)
        self.evaluate_fn = evaluate_fn
        self.eval_enabled = bool(broadcast_object(evaluate_fn is not None, info))
        self.progress = progress and info.is_main
        self.model = model.to(info.device)
        self.ddp: torch.nn.Module = self.model
        if info.distributed:
            ids = [info.device.index] if info.device.type == "cuda" else None
            self.ddp = DistributedDataParallel(self.model, device_ids=ids)
        # After the build and DDP's broadcast of rank 0's weights: each process draws its own drop-path and
        # dropout masks from here on (a shared seed would repeat the same masks on every rank).
        torch.manual_seed(derived_seed(cfg.train.seed, info.rank))
        self.optimizer = build_optimizer(self.model, cfg)
        self.amp = check_amp(cfg.train.amp, info.device.type, "train.amp")
        self.scaler = LossScaler(info.device.type, cfg.train.loss_scale, cfg.train.init_scale,
                                 enabled=self.amp == "fp16")
        self.train_set = train_set
        b = cfg.train.train_batch_size
        if len(train_set) < b * info.world_size:
            fits = len(train_set) // info.world_size
            smallest = 1 if cfg.train.freeze_bn else 2  # BatchNorm needs two samples to train (config/schema.py)
            fix = (f"lower train.train_batch_size (per process), e.g. train.train_batch_size={fits}"
                   if fits >= smallest else "use fewer processes or more data")
            raise Hap3dError(
                f"training set has {len(train_set)} samples, fewer than one global batch (train.train_batch_size {b} x "
                f"{plural(info.world_size, 'process', 'processes')}); {fix}"
            )
        self.logger = RunLogger(self.run_dir, info.rank)
        self.sampler = ResumableSampler(len(train_set), info.rank, info.world_size, cfg.train.seed, b)
        # Worker seeds come from the loader's own generator, reseeded per epoch, not from the global RNG: a
        # resumed run then draws the same dropout masks as an uninterrupted one.
        workers = loader_workers(cfg.data.num_workers, announce=info.is_main)
        self.loader = torch.utils.data.DataLoader(
            train_set, batch_size=b, sampler=self.sampler, num_workers=workers, drop_last=True,
            pin_memory=info.device.type == "cuda", persistent_workers=False, generator=torch.Generator(),
            worker_init_fn=functools.partial(_worker_init, log_file=self.logger.file, level=self.logger.level),
        )
        self.steps_per_epoch = 0  # set by run(): the full global batches of an epoch, capped by max_steps_per_epoch
        # The position and counters below are what TrainState saves.
        self.epoch, self.step_in_epoch, self.global_step = 0, 0, 0
        self.epoch_sums: dict[str, float] = {}  # the current epoch's summed step losses (taken steps) ...
        self.epoch_count = 0  # ... and their number
        self.bad_steps = 0  # consecutive non-finite steps
        self.bad_steps_total = 0
        self.pending_eval: int | None = None  # an epoch whose evaluation is due (saved: a kill during it reruns it)
        self.replaced_samples = 0  # unreadable samples replaced by others, on this process since the (re)start
        self.replaced_before = 0  # ... on all processes before a resume
        self.signals = StopSignals()  # SIGTERM / Ctrl-C: save at the next step and stop

    # ----------------------------------------------------------------- the loop
    def run(self) -> dict[str, float]:
        """Train to ``end_epoch``; returns the last evaluation's means (rank 0; empty if none ran)."""
        try:
            with self.signals:
                return self._run()
        finally:
            self.logger.close()

    def _run(self) -> dict[str, float]:
        """Epoch after epoch: train it, close it (model file, summary, last.pt), evaluate it when due."""
        self._begin()
        final: dict[str, float] = {}
        if self.pending_eval is not None and self.eval_enabled:  # killed during that evaluation: run it first
            final = self._evaluate(self.pending_eval)
        while self.epoch < self.cfg.train.end_epoch:
            self._end_epoch(self._train_epoch())
            if self.pending_eval is not None:  # this epoch is to be evaluated
                final = self._evaluate(self.pending_eval)
        self._report()
        return final

    def _begin(self) -> None:
        """Write the run's config, open TensorBoard (dropping the events a resumed run replays), size the epoch."""
        cfg = self.cfg
        if self.info.is_main:
            dump = yaml.safe_dump(to_dict(with_absolute_paths(cfg)), sort_keys=False)
            atomic_write(self.run_dir / "config.yaml", lambda p: Path(p).write_text(dump))
        self.logger.open_tensorboard(purge_step=self.global_step + 1 if self.global_step else None)
        self.steps_per_epoch = len(self.sampler.order()) // cfg.train.train_batch_size
        if cfg.train.max_steps_per_epoch:
            self.steps_per_epoch = min(self.steps_per_epoch, cfg.train.max_steps_per_epoch)
        self._check_warmup()

    def _train_epoch(self) -> dict[str, float]:
        """Train the current epoch from the current position; returns its mean losses and the run's counters."""
        t, epoch, steps = self.cfg.train, self.epoch, self.steps_per_epoch
        self._start_epoch()
        bar = tqdm(total=steps, initial=self.step_in_epoch, desc=f"epoch {epoch + 1}/{t.end_epoch}",
                   disable=not self.progress, unit="step", dynamic_ncols=True)
        taken, t0 = 0, time.time()  # steps taken by this process in this epoch, for images/s
        self.signals.deferred = True
        for batch in self.loader:
            if self.step_in_epoch >= steps:
                break
            logged = self._step(batch)
            taken += logged is not None
            img_s = taken * t.train_batch_size * self.info.world_size / max(time.time() - t0, 1e-9)
            if logged is not None and (self.global_step % t.log_every == 0 or self.step_in_epoch == steps):
                self._log_step(logged, img_s)
            bar.set_postfix(loss=f"{(logged or {}).get('loss', float('nan')):.4f}", img_s=f"{img_s:.1f}")
            bar.update(1)
            if t.ckpt_every_steps and self.global_step % t.ckpt_every_steps == 0:
                self.save_state()
            if self._stop_requested():
                bar.close()
                self._stop()
        self.signals.deferred = False
        bar.close()
        means = {k: v / max(self.epoch_count, 1) for k, v in self.epoch_sums.items()}
        return means | {"skipped_steps": self.bad_steps_total, "replaced_samples": self.replaced_total()}

    def _stop_requested(self) -> bool:
        """Whether any process got a stop signal (a collective under DDP, so that all stop at the same step)."""
        flag = torch.tensor(int(self.signals.signum is not None), device=self.info.device)
        return bool(all_reduce_sum(flag, self.info).item()) if self.info.distributed else bool(flag)

    def _stop(self) -> None:
        """Save the state where the loop stands and stop with a message saying how to continue."""
        self.signals.deferred = False
        self.save_state()
        where = describe_position(self.epoch, self.step_in_epoch, self.global_step)
        message = (f" at {where}: training state saved to {self.state_path}; continue with "
                   f"`hap3d train --out {self.run_dir} --resume` (same config)")
        self.logger.info("stopped by a signal" + message)
        raise self.signals.stopped(message)

    def _start_epoch(self) -> None:
        """The epoch's sample order (from the current step on), loader seeds and training mode."""
        epoch = self.epoch  # 0-based, as in the file names; people read "epoch {epoch + 1}/{end}"
        self.sampler.set_epoch(epoch, self.step_in_epoch)
        self.loader.generator.manual_seed(derived_seed(self.cfg.train.seed, self.info.rank, epoch, LOADER_STREAM))
        set_epoch(self.train_set, epoch)  # workers are started per epoch, so their copies see it
        self.ddp.train()
        if self.cfg.train.freeze_bn:  # running statistics instead of per-process batch statistics
            for m in self.model.modules():
                if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                    m.eval()

    def _step(self, batch: dict) -> dict[str, float] | None:
        """One step at the scheduled learning rate, counted; its losses, or None when it was skipped."""
        if "replaced" in batch["meta"]:
            self.replaced_samples += int(batch["meta"].pop("replaced").sum())
        self.set_lr(lr_factor(self.cfg, self.epoch, self.step_in_epoch, self.steps_per_epoch))
        skipped, logged = self.train_step(batch)
        self.step_in_epoch += 1
        self.global_step += 1
        if skipped:
            self._skipped(skipped)
            return None
        self.bad_steps = 0
        self.epoch_count += 1
        for k, v in logged.items():
            self.epoch_sums[k] = self.epoch_sums.get(k, 0.0) + v
        return logged

    def _skipped(self, why: str) -> None:
        """Count a skipped step; too many in a row stop the run rather than train on garbage."""
        self.bad_steps += 1
        self.bad_steps_total += 1
        where = f"epoch {self.epoch + 1}/{self.cfg.train.end_epoch}"
        self.logger.info(f"{why} at {where} step {self.step_in_epoch}: step skipped")
        if self.bad_steps >= self.cfg.train.max_bad_steps:
            raise TrainingDiverged(
                f"the loss or its gradients were non-finite for {self.bad_steps} consecutive steps ({where}); "
                "stopping. Lower the learning rate, use amp=bf16 instead of fp16, or check the data (hap3d data check)."
            )

    def _log_step(self, logged: dict[str, float], img_s: float) -> None:
        """A step's losses and lr into the history, TensorBoard and a train.log line."""
        lr = self.optimizer.param_groups[0]["lr"]
        self.logger.step(self.global_step, self.epoch, logged | {"lr": lr})
        self.logger.info(
            f"epoch {self.epoch + 1}/{self.cfg.train.end_epoch} step {self.step_in_epoch}/{self.steps_per_epoch} "
            f"(global {self.global_step}): "
            + ", ".join(f"{k} {v:.4f}" for k, v in logged.items()) + f", lr {lr:.2e}, {img_s:.1f} img/s"
        )

    def _end_epoch(self, stats: dict[str, float]) -> None:
        """Close the epoch just trained: its model file and summary, then last.pt, written before its evaluation
        (which it marks pending) so that a kill during a long evaluation does not redo the epoch."""
        epoch, end = self.epoch, self.cfg.train.end_epoch
        self.epoch, self.step_in_epoch = epoch + 1, 0
        self.epoch_sums, self.epoch_count = {}, 0
        if self.info.is_main:
            info = {"epoch": epoch, "epochs_completed": epoch + 1, "global_step": self.global_step}
            save_model_checkpoint(self.run_dir / "checkpoints" / f"epoch_{epoch}.safetensors", self.model,
                                  self.cfg.model, info)
        self.logger.info(f"epoch {epoch + 1}/{end} done: " + ", ".join(f"{k}={v:.4f}" for k, v in stats.items()))
        self.logger.epoch(epoch, stats)
        due = self.eval_enabled and (self.cfg.train.eval_every_epoch or self.epoch == end)
        self.pending_eval = epoch if due else None
        self.save_state()

    def _evaluate(self, epoch: int) -> dict[str, float]:
        """Rank 0 evaluates the model after ``epoch``; the others wait at a barrier (see dist_timeout_minutes)."""
        means: dict[str, float] = {}
        if self.info.is_main:
            assert self.evaluate_fn is not None  # eval_enabled is rank 0's evaluate_fn, broadcast
            result = self.evaluate_fn(self.model)
            result.write(self.run_dir, f"{result.name}_epoch_{epoch}")  # val_epoch_N for data.valset
            self.logger.info(f"epoch {epoch + 1}/{self.cfg.train.end_epoch} eval: {result.summary()}")
            self.logger.epoch(epoch, {f"eval_{k}": v for k, v in result.means.items()})
            means = result.means
        barrier(self.info)
        self.pending_eval = None
        self.save_state()  # the metrics into the history, and no evaluation pending
        return means

    def _report(self) -> None:
        """The closing line: skipped steps and replaced samples over the run (a collective under DDP)."""
        replaced = self.replaced_total()
        where = "train.log" + (" and train.rank<N>.log" if self.info.distributed else "")
        files = f" (each named in a 'skipped' warning in {self.run_dir / where})" if replaced else ""
        self.logger.info(
            f"finished {plural(self.cfg.train.end_epoch, 'epoch')}: {self.bad_steps_total} non-finite steps skipped, "
            f"{replaced} unreadable samples replaced{files}"
        )
        if self.info.is_main and (self.bad_steps_total or replaced):
            print(f"warning: {self.bad_steps_total} steps skipped, {replaced} unreadable samples replaced{files}")

    def _check_warmup(self) -> None:
        """Warn (not change the schedule) when the linear warm-up covers the whole run: the lr never reaches its
        configured value, so a short run barely trains."""
        t = self.cfg.train
        total = t.end_epoch * self.steps_per_epoch
        if t.warmup_steps and t.warmup_steps > total and self.info.is_main:
            self.logger.warn_user(
                f"train.warmup_steps={t.warmup_steps} > the run's {total} training steps "
                f"({plural(t.end_epoch, 'epoch')} x {plural(self.steps_per_epoch, 'step')}): the learning rate never "
                f"leaves its linear warm-up and reaches at most {total / t.warmup_steps:.1%} of its configured value. "
                f"Lower train.warmup_steps (e.g. train.warmup_steps={max(1, total // 10)}) or train longer"
            )

    # ----------------------------------------------------------------- one optimizer step
    def set_lr(self, factor: float) -> None:
        for g in self.optimizer.param_groups:
            g["lr"] = g["base_lr"] * factor

    def train_step(self, batch: dict) -> tuple[str | None, dict[str, float]]:
        """One optimizer step. Returns why it was skipped (None if taken) and the losses averaged over processes."""
        dev = self.info.device
        inp = {k: v.to(dev, non_blocking=True) for k, v in batch["inputs"].items()}
        targets = {k: v.to(dev, non_blocking=True) for k, v in batch["targets"].items()}
        meta = {k: v.to(dev, non_blocking=True) for k, v in batch["meta"].items()}
        self.optimizer.zero_grad(set_to_none=True)
        with autocast(self.info.device.type, self.amp):
            pred = self.ddp(inp["img"], inp["joints"], inp["joints_mask"])
            terms = loss_terms(pred, targets, meta, self.model.graph_index)
            total, means = reduce_losses(terms, self.cfg.train.loss_reduction, self.cfg.train.loss_weights)
        finite = torch.isfinite(total.detach()).float()
        if all_reduce_mean(finite, self.info).item() < 1.0:  # every rank skips together, or DDP would hang
            return "non-finite loss", {}
        self.scaler.scale(total).backward()
        params = [p for p in self.model.trainable_parameters() if p.grad is not None]
        norm = None
        if self.cfg.train.grad_clip:
            self.scaler.unscale_(self.optimizer)
            norm = torch.nn.utils.clip_grad_norm_(params, self.cfg.train.grad_clip)
        elif not self.scaler.is_enabled():
            norm = torch.nn.utils.get_total_norm([p.grad for p in params])
        # DDP has averaged the gradients, so every rank sees the same norm and skips together. Under fp16 the
        # scaler skips such steps itself (and lowers its scale): overflow is expected there.
        if norm is not None and not self.scaler.is_enabled() and not torch.isfinite(norm):
            return "non-finite gradients", {}
        self.scaler.step(self.optimizer)
        self.scaler.update()
        values = all_reduce_mean(torch.stack([total.detach().float(), *(v.detach().float() for v in means.values())]),
                                 self.info)
        logged = dict(zip(["loss"] + [f"loss_{k}" for k in means], values.tolist()))
        return None, logged

    # ----------------------------------------------------------------- the training state (last.pt)
    @property
    def state_path(self) -> Path:
        return self.run_dir / "checkpoints" / "last.pt"

    def replaced_total(self) -> int:
        """Unreadable samples replaced on all processes over the whole run (a collective under DDP)."""
        local = torch.tensor(self.replaced_samples, dtype=torch.int64, device=self.info.device)
        return self.replaced_before + int(all_reduce_sum(local, self.info).item())

    def save_state(self) -> None:
        """Write last.pt atomically. A collective: every process contributes its RNG state and replaced count."""
        cuda = torch.cuda.get_rng_state_all() if self.info.device.type == "cuda" else []
        rng = all_gather_object({"cpu": torch.get_rng_state(), "cuda": cuda}, self.info)
        replaced = self.replaced_total()
        if not self.info.is_main:
            return
        TrainState(
            model={k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            optimizer=self.optimizer.state_dict(), scaler=self.scaler.state_dict(),
            epoch=self.epoch, step_in_epoch=self.step_in_epoch, global_step=self.global_step,
            config=to_dict(with_absolute_paths(self.cfg)), history=self.logger.history,
            bad_steps_total=self.bad_steps_total, epoch_sums=self.epoch_sums, epoch_count=self.epoch_count,
            bad_steps=self.bad_steps, replaced_samples=replaced, pending_eval=self.pending_eval, rng=rng,
        ).save(self.state_path)

    def load_state(self, path: str | Path | None = None) -> bool:
        """Restore the full training state; False if there is nothing to resume from.

        A collective under DDP: every process reads the file itself, so all must find the same one; otherwise the
        collectives of the resumed run would pair different steps. A disagreement stops every process with the
        mismatch named."""
        path = Path(path) if path else self.state_path
        state, problem = None, None
        if path.is_file():
            try:
                state = TrainState.load(path, self.cfg.model)
            except Exception as err:  # reported by every process together below, so that none waits for the others
                problem = (str(err) if isinstance(err, Hap3dError)
                           else f"{path} cannot be read ({type(err).__name__}: {err})")
        position = None if state is None else state.position
        self._check_same_state(all_gather_object((position, problem), self.info), path)
        if state is None:
            return False
        self._restore(state, path)
        self.logger.info(f"resumed from {path}: {describe_position(*state.position)}")
        return True

    def _restore(self, state: TrainState, path: Path) -> None:
        if self.info.is_main:
            for key, before, now in state.model_changes(self.cfg.model)[1]:
                self.logger.warning(f"resuming {path} with model.{key} {before!r} -> {now!r} (training-only: "
                                    "takes effect from here)")
        for part, target, saved in (("model", self.model, state.model), ("optimizer", self.optimizer, state.optimizer),
                                    ("scaler", self.scaler, state.scaler)):
            try:
                target.load_state_dict(saved)
            except (RuntimeError, ValueError, KeyError, TypeError) as err:  # a state from another config or version
                first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                raise Hap3dError(f"{path}: its {part} state does not fit this run's {part} ({first}); resume with the "
                                 "run's own config, or start a new run with --overwrite") from None
        self.epoch, self.step_in_epoch, self.global_step = state.position
        self.epoch_sums, self.epoch_count = state.epoch_sums, state.epoch_count
        self.bad_steps, self.bad_steps_total = state.bad_steps, state.bad_steps_total
        self.pending_eval = state.pending_eval
        self.replaced_before = state.replaced_samples if self.info.is_main else 0  # counted once in the sum
        self.replaced_samples = 0
        self._restore_rng(state.rng, path)
        self.logger.history = state.history

    def _check_same_state(self, seen: list[tuple[Position | None, str | None]], path: Path) -> None:
        """Raise, on every process alike, if one could not read the state or the processes found different ones."""
        problems = [(rank, p) for rank, (_, p) in enumerate(seen) if p is not None]
        if problems:
            rank, problem = problems[0]
            raise Hap3dError(f"rank {rank}: {problem}" if len(seen) > 1 else problem)
        groups: dict[Position | None, list[int]] = {}
        for rank, (position, _) in enumerate(seen):
            groups.setdefault(position, []).append(rank)
        if len(groups) == 1:
            return
        found = "; ".join(
            f"rank{'s' if len(ranks) > 1 else ''} {', '.join(map(str, ranks))}: "
            + ("no such file" if pos is None else describe_position(*pos))
            for pos, ranks in groups.items()
        )
        what = "some processes cannot find" if None in groups else "the processes found different training states in"
        raise Hap3dError(
            f"cannot resume: {what} {path} ({found}). Every process reads the run directory itself, so it must be on "
            "storage all nodes share (not a node-local disk), and no other run may write to it."
        )

    def _restore_rng(self, saved: list[dict[str, Any]] | None, path: Path) -> None:
        """Each process takes its own saved RNG state; with another process count, fresh per-rank seeds."""
        if saved is None or len(saved) != self.info.world_size:
            torch.manual_seed(derived_seed(self.cfg.train.seed, self.info.rank, self.global_step))
            if self.info.is_main:
                self.logger.warning(
                    f"{path} holds the RNG state of {len(saved) if saved else 'no'} processes, this run has "
                    f"{self.info.world_size}: dropout / drop-path masks are reseeded per process, so the run does not "
                    "repeat exactly what an uninterrupted one would have done"
                )
            return
        mine = saved[self.info.rank]
        torch.set_rng_state(mine["cpu"])
        if self.info.device.type == "cuda":
            if len(mine["cuda"]) == torch.cuda.device_count():
                torch.cuda.set_rng_state_all(mine["cuda"])
            else:
                torch.cuda.manual_seed(derived_seed(self.cfg.train.seed, self.info.rank, self.global_step))
                self.logger.warning(f"{path}: saved CUDA RNG states of {len(mine['cuda'])} devices, "
                                    f"{torch.cuda.device_count()} visible now; CUDA RNG reseeded")


def _worker_init(worker_id: int, log_file: Path, level: int) -> None:
    torch.set_num_threads(1)
    np.random.seed(torch.initial_seed() % 2**32)  # the worker's torch seed: base seed + worker_id already
    attach_file_handler(log_file, level)  # inherited when forked; spawned workers need their own
