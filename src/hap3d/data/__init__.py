"""Dataset readers (one module per dataset), the shared sample pipeline, mixing and synthetic data.

Dataset folders sit under one data root, in one of two trees: the reference's ``data/`` folder (``MSCOCO/``,
``MPII/data/``, as its README's symlink steps build it) or the lowercase tree beside the project (``coco/``,
``mpii/data/``), both described in docs/data.md. Each reader declares its files once, in its ``layout``
(:mod:`hap3d.data.layout`); :data:`DATASETS` names the readers, and :func:`dataset_root` finds a dataset in
either tree from its layout, for the readers' callers and for ``hap3d data check``.

Adding a dataset: a reader module whose class has a ``layout``, and one line in :data:`DATASETS`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hap3d.data.io import DataError
from hap3d.data.layout import DatasetLayout


@dataclass(frozen=True)
class DatasetSpec:
    """A registry entry: the module and class of a dataset's reader. Everything about its files (accepted
    folders, marker file, the folder ``hap3d data synth`` writes) is the reader's ``layout``."""

    module: str
    cls: str

    @property
    def reader(self) -> type:
        """The reader class; a class without a ``layout`` cannot be registered, so every caller can rely on it."""
        cls = getattr(importlib.import_module(self.module), self.cls)
        if not isinstance(getattr(cls, "layout", None), DatasetLayout):
            raise TypeError(f"{self.module}.{self.cls} declares no file layout: give the class a `layout = "
                            "DatasetLayout(...)` attribute (hap3d.data.layout)")
        return cls

    @property
    def layout(self) -> DatasetLayout[Any]:
        return self.reader.layout

    @property
    def folders(self) -> tuple[str, ...]:
        """Accepted dataset folders under the data root, in the order they are tried."""
        return self.layout.folders

    @property
    def marker(self) -> str:
        """A path every copy of the dataset has, relative to its folder: tells the candidate folders apart."""
        return self.layout.marker

    @property
    def written(self) -> str:
        """The folder ``hap3d data synth`` writes."""
        return self.layout.written


# Names as the reference's configs spell them (trainset_3d, trainset_2d, testset).
DATASETS: dict[str, DatasetSpec] = {
    "Human36M": DatasetSpec("hap3d.data.human36m", "Human36M"),
    "MuCo": DatasetSpec("hap3d.data.muco", "MuCo"),
    "MSCOCO": DatasetSpec("hap3d.data.coco", "MSCOCO"),
    "MPII": DatasetSpec("hap3d.data.mpii", "MPII"),
    "CrowdPose": DatasetSpec("hap3d.data.crowdpose", "CrowdPose"),
    "PW3D": DatasetSpec("hap3d.data.pw3d", "PW3D"),
    "MuPoTS": DatasetSpec("hap3d.data.mupots", "MuPoTS"),
}


def _spec(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    return DATASETS[name]


def dataset_class(name: str) -> type:
    return _spec(name).reader


def dataset_layout(name: str) -> DatasetLayout[Any]:
    """The declared files of a registered dataset (see :class:`~hap3d.data.layout.DatasetLayout`)."""
    return _spec(name).layout


def dataset_candidates(data_root: str | Path, name: str) -> list[Path]:
    """Every folder the dataset is looked for in, in order."""
    return [Path(data_root) / f for f in _spec(name).folders]


def find_dataset_root(data_root: str | Path, name: str) -> Path | None:
    """The first candidate folder holding the dataset's marker; else the first candidate that exists (so that
    the reader can name the file missing in it); None when no candidate exists."""
    candidates = dataset_candidates(data_root, name)
    marker = _spec(name).marker
    with_marker = next((c for c in candidates if (c / marker).exists()), None)
    return with_marker or next((c for c in candidates if c.is_dir()), None)


def dataset_root(data_root: str | Path, name: str) -> Path:
    """The dataset's folder under ``data_root`` (see :func:`find_dataset_root`), or a DataError listing every
    candidate tried."""
    found = find_dataset_root(data_root, name)
    if found is None:
        tried = ", ".join(str(c) for c in dataset_candidates(data_root, name))
        raise DataError(f"{name} not found under {data_root}: none of these folders exists: {tried}")
    return found


def written_dataset_root(data_root: str | Path, name: str) -> Path:
    """Where ``hap3d data synth`` puts the dataset (the lowercase tree for MSCOCO and MPII: ``coco/``,
    ``mpii/data/``)."""
    return Path(data_root) / _spec(name).written


def dataset_file(data_root: str | Path, name: str, key: str) -> Path:
    """Where the declared file ``key`` of dataset ``name`` belongs in the tree ``hap3d data synth`` writes:
    ``written_dataset_root(data_root, name) / <its rel>``."""
    return dataset_layout(name).path(written_dataset_root(data_root, name), key)


def pw3d_annotation_file(crowd: bool) -> str:
    """The 3DPW annotation file's name: the test split, or the validation split that 3DPW-Crowd evaluates on."""
    layout = dataset_layout("PW3D")
    return layout.file(layout.splits["validation" if crowd else "test"].annotations).rel


def build_fit_model(body_model_dir: str | Path):
    """The restricted SMPL used by every training reader for fit targets (SMPL30 + H36M joints)."""
    from hap3d.body.regressors import find_regressor, load_regressor, smpl30_regressor
    from hap3d.body.smpl import find_smpl_file, load_smpl_arrays
    from hap3d.data.fit import FitModel

    arrays = load_smpl_arrays(find_smpl_file(body_model_dir, "neutral"))
    extra = load_regressor(find_regressor(body_model_dir, "J_regressor_extra"))
    h36m = load_regressor(find_regressor(body_model_dir, "J_regressor_h36m_correct"))
    regressors = {"smpl30": smpl30_regressor(arrays["J_regressor"], extra), "h36m": np.asarray(h36m, np.float32)}
    return FitModel(arrays, regressors)
