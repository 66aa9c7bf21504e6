"""Dataset readers (one module per dataset), the shared sample pipeline, mixing and synthetic data.

Dataset folders sit under one data root. Users have them in one of two trees: the reference's ``data/`` folder
(``MSCOCO/``, ``MPII/data/``, as its README's symlink steps build it) or the seed README's dataset tree beside
the project (``coco/``, ``mpii/data/``). :func:`dataset_root` finds a dataset in either; it is the one place
that knows the accepted folder names, used by the readers' callers and by ``hap3d data check``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hap3d.data.io import DataError


@dataclass(frozen=True)
class DatasetSpec:
    """Where a dataset's reader lives and where its folder may sit under a data root."""

    module: str
    cls: str
    folders: tuple[str, ...]  # accepted dataset folders under the data root, in the order they are tried
    marker: str  # a path every copy of the dataset has, relative to its folder: tells the candidates apart
    written: str  # the folder `hap3d data synth` writes: the seed README's tree


def pw3d_annotation_file(crowd: bool) -> str:
    """The 3DPW annotation file's name: the test split, or the validation split that 3DPW-Crowd evaluates on."""
    return f"3DPW_latest_{'validation' if crowd else 'test'}.json"


# Names as the reference's configs spell them (trainset_3d, trainset_2d, testset).
DATASETS: dict[str, DatasetSpec] = {
    "Human36M": DatasetSpec("hap3d.data.human36m", "Human36M", ("Human36M",), "annotations", "Human36M"),
    "MuCo": DatasetSpec("hap3d.data.muco", "MuCo", ("MuCo",), "data/MuCo-3DHP.json", "MuCo"),
    # reference data/ tree: MSCOCO/{annotations,images} (symlinks); seed tree: coco/{annotations,images}
    "MSCOCO": DatasetSpec("hap3d.data.coco", "MSCOCO", ("MSCOCO", "coco"), "annotations/person_keypoints_train2017.json", "coco"),
    # reference: MPII/data/{annotations,images}; seed tree: mpii/data/...; its symlink step links mpii/{images,annotations}
    "MPII": DatasetSpec("hap3d.data.mpii", "MPII", ("MPII/data", "MPII", "mpii/data", "mpii"), "annotations/train.json", "mpii/data"),
    "CrowdPose": DatasetSpec("hap3d.data.crowdpose", "CrowdPose", ("CrowdPose",), "annotations/crowdpose_train.json", "CrowdPose"),
    "PW3D": DatasetSpec("hap3d.data.pw3d", "PW3D", ("PW3D/data",), pw3d_annotation_file(crowd=False), "PW3D/data"),
}


def _spec(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    return DATASETS[name]


def dataset_class(name: str) -> type:
    spec = _spec(name)
    return getattr(importlib.import_module(spec.module), spec.cls)


def dataset_candidates(data_root: str | Path, name: str) -> list[Path]:
    """Every folder the dataset is looked for in, in order."""
    return [Path(data_root) / f for f in _spec(name).folders]


def find_dataset_root(data_root: str | Path, name: str) -> Path | None:
    """The first candidate folder holding the dataset's marker; else the first candidate that exists (so that
    the reader can name the file missing in it); None when no candidate exists."""
    candidates = dataset_candidates(data_root, name)
    marker = _spec(name).marker
    return next((c for c in candidates if (c / marker).exists()), None) or next((c for c in candidates if c.is_dir()), None)


def dataset_root(data_root: str | Path, name: str) -> Path:
    """The dataset's folder under ``data_root`` (see :func:`find_dataset_root`), or a DataError listing every
    candidate tried."""
    found = find_dataset_root(data_root, name)
    if found is None:
        tried = ", ".join(str(c) for c in dataset_candidates(data_root, name))
        raise DataError(f"{name} not found under {data_root}: none of these folders exists: {tried}")
    return found


def written_dataset_root(data_root: str | Path, name: str) -> Path:
    """Where ``hap3d data synth`` puts the dataset: the seed README's tree."""
    return Path(data_root) / _spec(name).written


def build_fit_model(body_model_dir: str | Path):
    """The restricted SMPL used by every training reader for fit targets (SMPL30 + H36M joints)."""
    from hap3d.body.regressors import find_regressor, load_regressor, smpl30_regressor
    from hap3d.body.smpl import find_smpl_file, load_smpl_arrays
    from hap3d.data.fit import FitModel

    arrays = load_smpl_arrays(find_smpl_file(body_model_dir, "neutral"))
    extra = load_regressor(find_regressor(body_model_dir, "J_regressor_extra"))
    h36m = load_regressor(find_regressor(body_model_dir, "J_regressor_h36m_correct"))
    return FitModel(arrays, {"smpl30": smpl30_regressor(arrays["J_regressor"], extra), "h36m": np.asarray(h36m, np.float32)})
