"""Dataset readers (one module per dataset), the shared sample pipeline, mixing and synthetic data.

Dataset folders sit under one data root, laid out as the seed README describes.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np

# name (as the reference's configs spell it) -> (module, class, folder under the data root)
DATASETS = {
    "Human36M": ("hap3d.data.human36m", "Human36M", "Human36M"),
    "MuCo": ("hap3d.data.muco", "MuCo", "MuCo"),
    "MSCOCO": ("hap3d.data.coco", "MSCOCO", "coco"),
    "MPII": ("hap3d.data.mpii", "MPII", "mpii"),
    "CrowdPose": ("hap3d.data.crowdpose", "CrowdPose", "CrowdPose"),
    "PW3D": ("hap3d.data.pw3d", "PW3D", "PW3D/data"),
}


def dataset_class(name: str) -> type:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    module, cls, _ = DATASETS[name]
    return getattr(importlib.import_module(module), cls)


def dataset_root(data_root: str | Path, name: str) -> Path:
    return Path(data_root) / DATASETS[name][2]


def build_fit_model(body_model_dir: str | Path):
    """The restricted SMPL used by every training reader for fit targets (SMPL30 + H36M joints)."""
    from hap3d.body.regressors import find_regressor, load_regressor, smpl30_regressor
    from hap3d.body.smpl import find_smpl_file, load_smpl_arrays
    from hap3d.data.fit import FitModel

    arrays = load_smpl_arrays(find_smpl_file(body_model_dir, "neutral"))
    extra = load_regressor(find_regressor(body_model_dir, "J_regressor_extra"))
    h36m = load_regressor(find_regressor(body_model_dir, "J_regressor_h36m_correct"))
    return FitModel(arrays, {"smpl30": smpl30_regressor(arrays["J_regressor"], extra), "h36m": np.asarray(h36m, np.float32)})
