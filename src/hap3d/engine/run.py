"""Wiring from a config to datasets, model, trainer and evaluator (used by the CLI and the quickstart)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch

from hap3d.body.smpl import find_smpl_file
from hap3d.config import Config, ConfigError
from hap3d.data import build_fit_model, dataset_class, dataset_root
from hap3d.data.io import DataError
from hap3d.engine.distributed import DistInfo, cleanup, init_distributed, resolve_device
from hap3d.engine.evaluate import TEST_SETS, EvalResult, Evaluator
from hap3d.engine.logging import run_log
from hap3d.engine.rundir import claim_run_dir
from hap3d.engine.train import Trainer
from hap3d.model import build_model
from hap3d.model.checkpoint import infer_model_config, load_backbone_checkpoint, load_model_checkpoint, read_checkpoint
from hap3d.model.hap import HapModel
from hap3d.utils import Hap3dError


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
    """Fail before any work when train.pretrained names no file, saying how to set it or train without it."""
    path = cfg.train.pretrained
    if path and not Path(path).is_file():
        raise Hap3dError(
            f"backbone checkpoint not found: {path} (resolved: {Path(path).resolve()}), set by train.pretrained. "
            "Point it at the 2D-pose / pre-trained checkpoint with train.pretrained=PATH, or pass "
            "train.pretrained=null to train the backbone from scratch."
        )


def make_model(cfg: Config, info: DistInfo) -> HapModel:
    model = build_model(cfg.model, cfg.data.body_model_dir)
    if cfg.train.pretrained:
        report = load_backbone_checkpoint(model.backbone, cfg.train.pretrained)
        if info.is_main:
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
    final epoch, or every epoch with ``train.eval_every_epoch``. Returns the last evaluation's means (rank 0).

    ``model`` is a network to train in place instead of building one from ``cfg`` (and ``train.pretrained``): the
    quickstart evaluates it before and after. ``resume`` continues from the run's ``last.pt`` if there is one;
    a folder that holds a run needs ``resume`` or ``overwrite`` (engine/rundir.py: checks, lock, clean-up).
    The run's text log is open from the start, so the readers' load-time warnings and tallies land in it too."""
    resolve_device(cfg.eval.device)  # a device that does not exist here stops the run before any work
    require_pretrained(cfg)
    require_body_model(cfg)
    resolve_test_set(cfg)  # a test set without an evaluation stops the run before any work
    info = init_distributed(cfg.eval.device, cfg.train.dist_timeout_minutes)
    try:
        claim = claim_run_dir(run_dir, resume, overwrite) if info.is_main else contextlib.nullcontext()
        with claim, run_log(Path(run_dir), info.rank):
            if model is None:  # the same initial weights in every process (the Trainer then reseeds per rank)
                torch.manual_seed(cfg.train.seed)
                model = make_model(cfg, info)
            train_set = build_train_set(cfg)
            evaluate_fn = None
            if info.is_main and has_test_set(cfg):  # only rank 0 evaluates
                test_set = build_test_set(cfg)
                evaluator = Evaluator(cfg.data.body_model_dir, info.device)

                def evaluate_fn(m: HapModel) -> EvalResult:
                    return evaluator.run(m, test_set, cfg.eval.test_batch_size, amp=cfg.eval.amp, progress=progress)

            trainer = Trainer(cfg, model, train_set, run_dir, info, evaluate_fn, progress=progress)
            if resume and not trainer.load_state() and info.is_main:
                print(f"nothing to resume in {run_dir}; starting from scratch")
            return trainer.run()
    finally:
        cleanup(info)


def load_for_eval(ckpt: str | Path, cfg: Config, device: torch.device) -> HapModel:
    """A model from any full checkpoint (ours or a reference snapshot), configured from the checkpoint."""
    raw = read_checkpoint(ckpt)
    model_cfg = infer_model_config(raw)
    require_body_model(cfg)
    model = build_model(model_cfg, cfg.data.body_model_dir, vposer_dir=False)
    report = load_model_checkpoint(model, ckpt)
    print(report.summary())
    return model.to(device).eval()


def evaluate(cfg: Config, ckpt: str | Path, out_dir: str | Path, progress: bool = True) -> EvalResult:
    info = init_distributed(cfg.eval.device)
    model = load_for_eval(ckpt, cfg, info.device)
    result = Evaluator(cfg.data.body_model_dir, info.device).run(
        model, build_test_set(cfg), cfg.eval.test_batch_size, cfg.data.num_workers, cfg.eval.amp, progress
    )
    result.extra = {"checkpoint": str(ckpt), "testset": cfg.data.testset, "crowd": cfg.data.crowd}
    result.write(out_dir, "eval")
    return result
