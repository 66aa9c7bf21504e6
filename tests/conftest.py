"""Shared fixtures: a body-model folder in the standard layout, and tiny model configs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))  # the golden helpers

torch.set_num_threads(2)


@pytest.fixture(autouse=True)
def _seeded_rngs():
    """Every test starts from the same random state, so a randomly initialised model is the same whatever ran
    before it (an unseeded tiny model once drew weights whose bf16 error crossed a tolerance on one CI run)."""
    import random

    import numpy as np

    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def body_dir(tmp_path_factory) -> Path:
    """The procedural body model written by the project itself (smpl/, regressors, vposer/).

    Set HAP3D_TEST_BODY_DIR to run the suite against another body-model folder (e.g. the real SMPL files).
    """
    import os

    if os.environ.get("HAP3D_TEST_BODY_DIR"):
        return Path(os.environ["HAP3D_TEST_BODY_DIR"])
    from hap3d.synth import write_body_model_dir

    return write_body_model_dir(tmp_path_factory.mktemp("body") / "body_model")


@pytest.fixture(scope="session")
def fit_model(body_dir):
    """The SMPL-fit target model of the readers (read-only), built once for all data tests."""
    from hap3d.data import build_fit_model

    return build_fit_model(body_dir)


TINY_VIT = dict(backbone="vit_b", depth=2, embed_dim=64, num_heads=2, vit_conv_dim=96)
