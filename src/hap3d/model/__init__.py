"""Networks, losses and checkpoint conversion."""

from __future__ import annotations

from pathlib import Path

from hap3d.body.regressors import find_regressor, load_regressor, smpl30_regressor
from hap3d.body.smpl import SMPL
from hap3d.body.vposer import load_vposer_decoder_state
from hap3d.config import ModelConfig
from hap3d.model.hap import HapModel

__all__ = ["HapModel", "ModelConfig", "build_model"]


def build_model(
    cfg: ModelConfig, body_model_dir: str | Path, vposer_dir: str | Path | bool | None = None
) -> HapModel:
    """Build the network with the neutral SMPL model and its 30-joint regressor from ``body_model_dir``.

    VPoser weights are read from ``vposer_dir`` (default ``<body_model_dir>/vposer``); pass ``vposer_dir=False``
    when a full checkpoint will provide them.
    """
    body_model_dir = Path(body_model_dir)
    smpl = SMPL.from_dir(body_model_dir, "neutral")
    extra = load_regressor(find_regressor(body_model_dir, "J_regressor_extra"))
    model = HapModel(cfg, smpl, smpl30_regressor(smpl.th_J_regressor.numpy(), extra))
    if vposer_dir is not False:
        model.vposer.load_state_dict(load_vposer_decoder_state(vposer_dir or body_model_dir / "vposer"))
    return model
