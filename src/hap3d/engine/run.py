"""Wiring from a config to datasets, model, trainer and evaluator (used by the CLI and the quickstart)."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import torch

from hap3d.body.smpl import find_smpl_file
from hap3d.config import Config, ConfigError
from hap3d.data import build_fit_model, dataset_class, dataset_root
from hap3d.data.io import DataError
from hap3d.data.layout import Variant
from hap3d.engine.distributed import DistInfo, barrier, cleanup, init_distributed, resolve_device
from hap3d.engine.evaluate import TEST_SETS, EvalResult, Evaluator
from hap3d.engine.logging import run_log
from hap3d.engine.rundir import claim_run_dir
from hap3d.engine.train import Trainer
from hap3d.model import build_model
from hap3d.model.checkpoint import (
    LoadReport,
    infer_model_config,
    load_backbone_checkpoint,
    load_model_checkpoint,
    read_checkpoint,
)
from hap3d.model.hap import HapModel
from hap3d.utils import Hap3dError

T = TypeVar("T")

log = logging.getLogger(__name__)

# Test sets with an evaluation of their own, run by `hap3d eval` only (not during training)
EVAL_ONLY_SETS = {
    "Human36M": "Human3.6M is evaluated by `hap3d eval --testset Human36M` (protocols 1 and 2), not during training; "
                "training evaluates PW3D",
    "MuPoTS": "MuPoTS-3D is evaluated by `hap3d eval --testset MuPoTS` (3DPCK), not during training; training "
              "evaluates PW3D",
}


def build_train_set(cfg: Config) -> torch.utils.data.Dataset:
    """The reference's mix: 3D sets and 2D sets as two groups, balanced per epoch (weights configurable)."""
    from hap3d.data.mix import BalancedMix

    fit = build_fit_model(cfg.data.body_model_dir)
    compat = cfg.model.reference_compat

    def group(names: list[str]) -> torch.utils.data.Dataset | None:
        sets = [
            dataset_class(n)(dataset_root(cfg.data.root, n), fit, reference_compat=compat, seed=cfg.train.seed,
                             strict=cfg.data.strict, bbox_3d_size=cfg.model.bbox_3d_size)
            for n in names
        ]
        return torch.utils.data.ConcatDataset(sets) if sets else None

    groups = [g for g in (group(cfg.data.trainset_3d), group(cfg.data.trainset_2d)) if g is not None]
    weights = cfg.data.group_weights[: len(groups)] if len(groups) == len(cfg.data.group_weights) else None
    return BalancedMix(groups, weights=weights, seed=cfg.train.seed)


def resolve_test_set(cfg: Config) -> tuple[type, dict[str, bool], str]:
    """The reader of ``data.testset`` from the dataset registry, its options from the config (``crowd=True`` for
    3DPW-Crowd, a variant of its layout) and the split they select. A ConfigError, before any work, for a dataset
    the evaluation cannot measure or a variant it does not have."""
    name = cfg.data.testset
    try:
        reader = dataset_class(name)
    except ValueError as err:  # not a registered dataset: the registry's message lists them
        raise ConfigError(f"data.testset: {err}", "data.testset") from None
    if name in EVAL_ONLY_SETS:
        raise ConfigError(f"data.testset={name!r}: {EVAL_ONLY_SETS[name]}", "data.testset")
    if name not in TEST_SETS:
        raise ConfigError(
            f"data.testset={name!r} has no evaluation: the metrics need per-person gendered SMPL ground truth, which "
            f"hap3d reads for {', '.join(TEST_SETS)}", "data.testset")
    variants = [v for v in reader.layout.variants if getattr(cfg.data, v.option, False)]
    if cfg.data.crowd and not any(v.option == "crowd" for v in variants):
        raise ConfigError(f"data.crowd=true, but the test set {name} has no crowd variant", "data.crowd")
    split = variants[0].split if variants else reader.layout.default_split
    return reader, {v.option: True for v in variants}, split


def build_test_set(cfg: Config) -> torch.utils.data.Dataset:
    """The configured test set and split, read from its folder under ``data.root``."""
    reader, options, _ = resolve_test_set(cfg)
    return reader(dataset_root(cfg.data.root, cfg.data.testset), **options)


def resolve_val_set(cfg: Config) -> tuple[type, Variant] | None:
    """The reader of ``data.valset`` and its validation variant (None when unset). A ConfigError, before any work,
    for a dataset without a validation split, or one whose files the test split reads too (3DPW-Crowd is drawn
    from the 3DPW validation split: selecting the model on it would select on the test people)."""
    name = cfg.data.valset
    if name is None:
        return None
    try:
        reader = dataset_class(name)
    except ValueError as err:
        raise ConfigError(f"data.valset: {err}", "data.valset") from None
    variant = next((v for v in reader.layout.variants if v.option == "validation"), None)
    if name not in TEST_SETS or variant is None:
        raise ConfigError(f"data.valset={name!r} has no validation split hap3d evaluates; PW3D has one (the 3DPW "
                          "validation split)", "data.valset")
    if name == cfg.data.testset:
        _, _, test_split = resolve_test_set(cfg)
        shared = set(reader.layout.own_files(test_split)) & set(reader.layout.own_files(variant.split))
        if shared:
            raise ConfigError(
                f"data.valset={name!r} reads {', '.join(sorted(f.rel for f in shared))}, which the test set "
                f"({'3DPW-Crowd' if cfg.data.crowd else name}) is drawn from too: selecting the model on it would "
                "select it on the test people; drop data.valset or data.crowd", "data.valset")
    return reader, variant


def build_eval_set(cfg: Config, validation: bool = False) -> tuple[torch.utils.data.Dataset, str]:
    """The test set (``validation`` False) or ``data.valset``'s validation split, and its name for people
    ("" for the test set, whose summary has always been unlabelled)."""
    if not validation:
        return build_test_set(cfg), ""
    found = resolve_val_set(cfg)
    if found is None:
        raise ConfigError("evaluating the validation split needs data.valset (e.g. data.valset=PW3D)", "data.valset")
    reader, variant = found
    return reader(dataset_root(cfg.data.root, cfg.data.valset), **{variant.option: True}), variant.title


def require_body_model(cfg: Config) -> None:
    """Fail early, naming the setting to change, when data.body_model_dir holds no neutral SMPL model."""
    try:
        find_smpl_file(cfg.data.body_model_dir)
    except Hap3dError as err:
        raise Hap3dError(
            f"{err}\nThe body-model folder is data.body_model_dir = {cfg.data.body_model_dir!r} (resolved: "
            f"{Path(cfg.data.body_model_dir).resolve()}); point it at yours with --body-model-dir DIR or "
            "data.body_model_dir=DIR."
        ) from None


def require_pretrained(cfg: Config) -> None:
    """Fail before any work when train.pretrained or train.init_from names no file, saying how to set it."""
    path = cfg.train.pretrained
    if path and not Path(path).is_file():
        raise Hap3dError(
            f"backbone checkpoint not found: {path} (resolved: {Path(path).resolve()}), set by train.pretrained. "
            "Point it at the 2D-pose / pre-trained checkpoint with train.pretrained=PATH, or pass "
            "train.pretrained=null to train the backbone from scratch."
        )
    path = cfg.train.init_from
    if path and not Path(path).is_file():
        raise Hap3dError(
            f"checkpoint not found: {path} (resolved: {Path(path).resolve()}), set by train.init_from. Point it at "
            "a full 3D checkpoint (hap3d .safetensors, <run>/checkpoints/last.pt or a reference snapshot_N.pth.tar), "
            "or pass train.init_from=null."
        )


def init_from_checkpoint(model: HapModel, cfg: Config) -> LoadReport:
    """Load the whole network from ``train.init_from``, strictly (every tensor, same shapes). Model settings that
    differ from the ones the checkpoint was trained with without changing a shape are logged as warnings."""
    raw = read_checkpoint(cfg.train.init_from)
    trained = infer_model_config(raw)
    for f in dataclasses.fields(trained):
        before, now = getattr(trained, f.name), getattr(cfg.model, f.name)
        if before != now and f.name not in cfg.model.TRAINING_ONLY:
            log.warning("train.init_from %s was trained with model.%s=%r; this run uses %r", raw.path, f.name,
                        before, now)
    return load_model_checkpoint(model, raw.path)


def make_model(cfg: Config, info: DistInfo) -> HapModel:
    """The network of ``cfg``: backbone from ``train.pretrained``, or everything from ``train.init_from``; the load
    report goes to the console and the run's train.log."""
    model = build_model(cfg.model, cfg.data.body_model_dir)
    report = None
    if cfg.train.pretrained:
        report = load_backbone_checkpoint(model.backbone, cfg.train.pretrained)
    elif cfg.train.init_from:
        report = init_from_checkpoint(model, cfg)
    if report is not None and info.is_main:
        setting = "train.pretrained" if cfg.train.pretrained else "train.init_from"
        log.info("%s: %s", setting, report.summary())
        print(report.summary())
    return model


def has_test_set(cfg: Config) -> bool:
    """Whether the configured test split is on disk (training then evaluates on it): a file that only this split
    reads is there. The reader names whatever else is missing."""
    reader, _, split = resolve_test_set(cfg)
    try:
        root = dataset_root(cfg.data.root, cfg.data.testset)
    except DataError:
        return False
    return any(f.find(root) is not None for f in reader.layout.own_files(split))


def train(
    cfg: Config, run_dir: str | Path, resume: bool = False, progress: bool = True, model: HapModel | None = None,
    overwrite: bool = False,
) -> dict[str, float]:
    """Train (single process or under torchrun) and evaluate on the configured test set, when it is on disk: the
    final epoch, or every epoch with ``train.eval_every_epoch``. With ``data.valset`` those evaluations score the
    validation split instead, and the test set is scored once after the last epoch (:func:`final_test`). Returns
    the last evaluation's means (rank 0).

    ``model`` is a network to train in place instead of building one from ``cfg`` (and ``train.pretrained``): the
    quickstart evaluates it before and after. ``resume`` continues from the run's ``last.pt`` if there is one;
    a folder that holds a run needs ``resume`` or ``overwrite`` (engine/rundir.py: checks, lock, clean-up).
    The run's text log is open from the start, so the readers' load-time warnings and tallies land in it too."""
    resolve_device(cfg.eval.device)  # a device that does not exist here stops the run before any work
    require_pretrained(cfg)
    require_body_model(cfg)
    resolve_test_set(cfg)  # a test set without an evaluation stops the run before any work
    resolve_val_set(cfg)  # as does a validation split that cannot be one
    info = init_distributed(cfg.eval.device, cfg.train.dist_timeout_minutes)
    try:
        claim = claim_run_dir(run_dir, resume, overwrite) if info.is_main else contextlib.nullcontext()
        with claim, run_log(Path(run_dir), info.rank):
            if model is None:  # the same initial weights in every process (the Trainer then reseeds per rank)
                torch.manual_seed(cfg.train.seed)
                model = make_model(cfg, info)
            train_set = build_train_set(cfg)
            evaluate_fn = None
            # only rank 0 evaluates: the validation split when data.valset is set (it must be there), else the test
            # set when it is on disk
            if info.is_main and (cfg.data.valset or has_test_set(cfg)):
                evaluator = Evaluator(cfg.data.body_model_dir, info.device)
                eval_set, label = build_eval_set(cfg, validation=bool(cfg.data.valset))

                def evaluate_fn(m: HapModel) -> EvalResult:
                    result = evaluator.run(m, eval_set, cfg.eval.test_batch_size, amp=cfg.eval.amp, progress=progress,
                                           runtime=cfg.eval.runtime)
                    result.name, result.label = ("val", label) if cfg.data.valset else ("eval", label)
                    return result

            trainer = Trainer(cfg, model, train_set, run_dir, info, evaluate_fn, progress=progress)
            if resume and not trainer.load_state() and info.is_main:
                print(f"nothing to resume in {run_dir}; starting from scratch")
            means = trainer.run()
            if cfg.data.valset:
                final_test(cfg, trainer, progress)
            return means
    finally:
        cleanup(info)


def final_test(cfg: Config, trainer: Trainer, progress: bool) -> None:
    """With a validation split, the test set is scored once, on the final model: ``test_epoch_N.*`` in the run
    directory (kept when already there, e.g. for a finished run resumed again). Rank 0 evaluates, the others wait."""
    info, run_dir = trainer.info, trainer.run_dir
    name = f"test_epoch_{cfg.train.end_epoch - 1}"
    if info.is_main and has_test_set(cfg) and not (run_dir / f"{name}.json").is_file():
        result = Evaluator(cfg.data.body_model_dir, info.device).run(
            trainer.model, build_test_set(cfg), cfg.eval.test_batch_size, amp=cfg.eval.amp, progress=progress,
            runtime=cfg.eval.runtime)
        result.label = "test set, scored once after the last epoch"
        result.write(run_dir, name)
        with run_log(run_dir, info.rank):  # the Trainer closed its log handler when it finished
            log.info("%s", result.summary())
    barrier(info)


def load_for_eval(ckpt: str | Path, cfg: Config, device: torch.device, report: bool = True) -> HapModel:
    """A model from any full checkpoint (ours or a reference snapshot), configured from the checkpoint; ``report``
    prints the load report."""
    raw = read_checkpoint(ckpt)
    model_cfg = infer_model_config(raw)
    require_body_model(cfg)
    model = build_model(model_cfg, cfg.data.body_model_dir, vposer_dir=False)
    loaded = load_model_checkpoint(model, ckpt)
    if report:
        print(loaded.summary())
    return model.to(device).eval()


def evaluate_human36m(
    cfg: Config, ckpt: str | Path, out_dir: str | Path, keypoints: str | Path | None = None, progress: bool = True
) -> dict[int, EvalResult]:
    """Human3.6M protocols 1 and 2 of a checkpoint (engine/h36m_eval.py), from a COCO keypoint-results file or, as
    an oracle, the ground-truth 2D joints; results into ``out_dir``."""
    from hap3d.engine.h36m_eval import evaluate_h36m

    return _on_checkpoint(cfg, ckpt, lambda model, info: evaluate_h36m(cfg, model, out_dir, info, keypoints, progress))


def evaluate_mupots(
    cfg: Config, ckpt: str | Path, out_dir: str | Path, detector: str = "hhrnet", progress: bool = True
) -> tuple[dict[str, dict[str, float]], EvalResult]:
    """MuPoTS-3D 3DPCK of a checkpoint (engine/mupots_eval.py) with HigherHRNet or OpenPose input."""
    from hap3d.engine.mupots_eval import evaluate_mupots as run_mupots

    return _on_checkpoint(cfg, ckpt, lambda model, info: run_mupots(cfg, model, out_dir, info, detector, progress))


def evaluate(
    cfg: Config, ckpt: str | Path, out_dir: str | Path, progress: bool = True, validation: bool = False
) -> EvalResult:
    """Evaluate a checkpoint on the test set, or on ``data.valset``'s validation split; results into ``out_dir``.

    Under torchrun the processes share the samples (:meth:`Evaluator.run`), every one returns the whole result,
    and rank 0 writes it (the others wait for the files)."""
    def run(model: torch.nn.Module, info: DistInfo) -> EvalResult:
        dataset, label = build_eval_set(cfg, validation)
        result = Evaluator(cfg.data.body_model_dir, info.device).run(
            model, dataset, cfg.eval.test_batch_size, cfg.data.num_workers, cfg.eval.amp, progress and info.is_main,
            runtime=cfg.eval.runtime, info=info,
        )
        result.label = label
        result.extra |= {"checkpoint": str(ckpt)} | ({"valset": cfg.data.valset} if validation else
                                                     {"testset": cfg.data.testset, "crowd": cfg.data.crowd})
        if info.is_main:
            result.write(out_dir, "eval")
        return result

    return _on_checkpoint(cfg, ckpt, run)


def _on_checkpoint(cfg: Config, ckpt: str | Path, run: Callable[[torch.nn.Module, DistInfo], T]) -> T:
    """``run(model, info)`` on ``ckpt`` loaded for evaluation on this process's device (every process under
    torchrun), then wait for all processes, so that no rank exits while another still writes the results."""
    info = init_distributed(cfg.eval.device)
    model = load_for_eval(ckpt, cfg, info.device, report=info.is_main)
    out = run(model, info)
    barrier(info)
    return out
