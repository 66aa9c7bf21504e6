"""Every shipped config loads and validates."""

from pathlib import Path

import pytest

from hap3d.config import load_config

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_shipped_config_validates(path):
    cfg = load_config(path)
    assert cfg.train.end_epoch == 11
    assert cfg.model.reference_compat == (path.name != "hap_vit_b_improved.yaml")
