"""The training state of a run, ``<run>/checkpoints/last.pt``: its one writer and its one full reader.

``--resume`` continues from it exactly: the same epoch and position in the epoch's sample order, the same
optimizer, loss scaler and per-process RNG state, and the epoch's running loss sums (so the epoch's means cover
every step). The learning rate is not stored: the schedule recomputes it from (epoch, step). docs/training.md
("Checkpoints and resuming") says what is stored and why.

On disk it is a ``torch.save`` dict of tensors and plain values (so ``torch.load(weights_only=True)`` reads it
without running code), tagged ``format: hap3d-train-state``. Besides :meth:`TrainState.load`,
:mod:`hap3d.model.checkpoint` reads its ``model`` weights, ``config["model"]`` and ``epoch`` so that ``hap3d eval``,
``demo``, ``convert`` and ``inspect`` take a ``last.pt`` like any model checkpoint: keep those keys when changing
the layout.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from hap3d.config import ModelConfig, to_dict
from hap3d.model.checkpoint import (
    NUMPY_SAFE_GLOBALS,
    TRAIN_STATE_FORMAT,
    RawCheckpoint,
    check_config_fits,
    load_problem,
    train_state_model_config,
)
from hap3d.utils import Hap3dError, atomic_write

Position = tuple[int, int, int]  # (epochs completed, steps into the next epoch, global step)


def _count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _str_dict(v: Any) -> bool:
    return isinstance(v, dict) and all(isinstance(k, str) for k in v)


# What each stored field must be, checked at load so that a damaged or crafted state is named here rather than
# failing inside the optimizer, the scaler or the RNG restore (the model config is checked by the reader of 'config').
_FIELD_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "model": (lambda v: _str_dict(v) and all(isinstance(t, torch.Tensor) for t in v.values()), "a dict of tensors"),
    "optimizer": (lambda v: isinstance(v, dict) and isinstance(v.get("state"), dict)
                  and isinstance(v.get("param_groups"), list) and all(isinstance(g, dict) for g in v["param_groups"]),
                  "an optimizer state dict ('state' and 'param_groups')"),
    "scaler": (lambda v: isinstance(v, dict), "a dict"),
    "config": (_str_dict, "a dict"),
    "history": (_str_dict, "a dict"),
    "epoch_sums": (lambda v: _str_dict(v) and all(isinstance(x, (int, float)) for x in v.values()),
                   "a dict of numbers"),
    "pending_eval": (lambda v: v is None or _count(v), "an epoch number or None"),
    "rng": (lambda v: v is None or (isinstance(v, list) and all(isinstance(r, dict) for r in v)),
            "a list of dicts or None"),
    **{k: (_count, "a count >= 0") for k in ("epoch", "step_in_epoch", "global_step", "bad_steps_total",
                                              "epoch_count", "bad_steps", "replaced_samples")},
}


def _clip(text: str, n: int = 60) -> str:
    return text if len(text) <= n else text[:n] + "..."


@dataclass
class TrainState:
    """Everything a run needs to continue where it stopped; one per run, written by rank 0 for all processes."""

    model: dict[str, torch.Tensor]  # state dict, on the CPU
    optimizer: dict[str, Any]
    scaler: dict[str, Any]  # the fp16 loss scaler (a disabled scaler's empty state otherwise)
    epoch: int  # epochs completed, i.e. the 0-based epoch to run next
    step_in_epoch: int  # steps already taken in that epoch
    global_step: int
    config: dict[str, Any]  # the run's whole config, paths absolute
    history: dict[str, Any]  # RunLogger.history: logged steps and epoch summaries
    bad_steps_total: int = 0  # non-finite steps skipped over the run
    # Written since the first release; a state from before has the defaults.
    epoch_sums: dict[str, float] = field(default_factory=dict)  # the epoch's summed step losses (taken steps) ...
    epoch_count: int = 0  # ... and their number, so the epoch means survive a resume
    bad_steps: int = 0  # consecutive non-finite steps up to here
    replaced_samples: int = 0  # unreadable samples replaced by others, on all processes
    pending_eval: int | None = None  # an epoch whose evaluation was due but had not finished
    rng: list[dict[str, Any]] | None = None  # per rank: {"cpu": generator state, "cuda": [one per device]}

    @property
    def position(self) -> Position:
        return self.epoch, self.step_in_epoch, self.global_step

    def save(self, path: str | Path) -> None:
        """Write atomically: a kill while writing leaves the previous state in place, never half a file."""
        state = {"format": TRAIN_STATE_FORMAT, **{f.name: getattr(self, f.name) for f in dataclasses.fields(self)}}
        atomic_write(path, lambda p: torch.save(state, p))

    @classmethod
    def load(cls, path: str | Path, model_cfg: ModelConfig | None = None) -> TrainState:
        """Read a state safely (tensors and plain values only). With ``model_cfg``, refuse a state written for
        another network: its weights and optimizer groups would not fit (see :meth:`model_changes`)."""
        path = Path(path)
        try:
            with torch.serialization.safe_globals(NUMPY_SAFE_GLOBALS):
                raw = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # UnpicklingError for code-carrying files, RuntimeError for corrupt archives, ...
            raise Hap3dError(f"{path}: cannot be read as a training state ({load_problem(err)})") from err
        if not isinstance(raw, dict) or raw.get("format") != TRAIN_STATE_FORMAT:
            raise Hap3dError(f"{path}: not a hap3d training state (use `hap3d convert` for model checkpoints)")
        names = {f.name for f in dataclasses.fields(cls)}
        required = {f.name for f in dataclasses.fields(cls)
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
        missing = sorted(required - raw.keys())
        if missing:
            raise Hap3dError(f"{path}: training state without {', '.join(missing)}; it cannot be resumed")
        for key, (valid, what) in _FIELD_RULES.items():
            if key in raw and not valid(raw[key]):
                found = type(raw[key]).__name__
                raise Hap3dError(f"{path}: training state field '{key}' must be {what}, found {found} "
                                 f"{_clip(repr(raw[key]))}; it cannot be resumed")
        train_state_model_config(path, raw)
        state = cls(**{k: v for k, v in raw.items() if k in names})
        if model_cfg is not None:
            refused, _ = state.model_changes(model_cfg)
            if refused:
                raise Hap3dError(
                    f"{path} was written by a run with another model configuration ({'; '.join(refused)}); resume "
                    f"with the run's own config (only {', '.join(sorted(ModelConfig.TRAINING_ONLY))} may change), or "
                    "train into a new run directory"
                )
            check_config_fits(RawCheckpoint(path, TRAIN_STATE_FORMAT, state.model, {}), model_cfg)
        return state

    def model_changes(self, model_cfg: ModelConfig) -> tuple[list[str], list[tuple[str, Any, Any]]]:
        """How ``model_cfg`` differs from the state's model config: the changes that forbid resuming ("depth 2 ->
        3"), and the training-only ones (key, saved, now), which may change: no weight, optimizer group or target
        depends on them. A key saved under an older name counts under its current one (ModelConfig.ALIASES); keys
        one of the two versions does not know are left out."""
        saved = {ModelConfig.ALIASES.get(k, k): v for k, v in self.config["model"].items()}
        ours = to_dict(model_cfg)
        changed = [k for k, v in saved.items() if k in ours and ours[k] != v]
        refused = [f"{k} {saved[k]!r} -> {ours[k]!r}" for k in changed if k not in ModelConfig.TRAINING_ONLY]
        allowed = [(k, saved[k], ours[k]) for k in sorted(changed) if k in ModelConfig.TRAINING_ONLY]
        return refused, allowed
