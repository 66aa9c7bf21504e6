"""What several commands share: loading a config with the command-line flags applied, argument types."""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def load_cfg(args: argparse.Namespace, path: str | Path | None):
    """The config at ``path`` (None: the built-in defaults) with the path flags and the KEY=VALUE overrides applied."""
    from hap3d.config import load_config

    overrides = list(args.overrides)
    for flag, key in (("data_root", "data.root"), ("body_model_dir", "data.body_model_dir"), ("device", "eval.device")):
        if getattr(args, flag, None):
            overrides.append(f"{key}={getattr(args, flag)}")
    return load_config(path, overrides)


def run_config_of(ckpt: str | Path) -> Path | None:
    """``<run>/config.yaml`` when ``ckpt`` lies in a run's ``checkpoints/`` folder: that run's data root, body model
    and test set are the natural defaults for evaluating it."""
    folder = Path(os.path.abspath(ckpt)).parent
    config = folder.parent / "config.yaml"
    return config if folder.name == "checkpoints" and config.is_file() else None


def main_process() -> bool:
    """False in the other processes of a torchrun launch, whose summary lines would repeat rank 0's."""
    return os.environ.get("RANK", "0") == "0"


def positive_int(text: str) -> int:
    """argparse type for counts such as --batch-size: a clear message instead of a crash later."""
    try:
        value = int(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from err
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def non_negative_int(text: str) -> int:
    """argparse type for seeds and counts that may be 0."""
    try:
        value = int(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from err
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"expected an integer in [0, 2^32), got {value}")
    return value
