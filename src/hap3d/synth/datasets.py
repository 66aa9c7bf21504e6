"""``write_synthetic_datasets``: every synthetic dataset under one data root, marked as synthetic by its README.

Each dataset draws from its own random stream of the seed, so a dataset's files do not depend on which others are
written, and the same size, seed and body model always give the same bytes.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from hap3d.data import written_dataset_root
from hap3d.synth.coco import write_coco
from hap3d.synth.crowdpose import write_crowdpose
from hap3d.synth.human36m import write_human36m
from hap3d.synth.mpii import write_mpii
from hap3d.synth.muco import write_muco
from hap3d.synth.mupots import write_mupots
from hap3d.synth.people import BodyKit
from hap3d.synth.pw3d import write_pw3d
from hap3d.synth.records import README_HEADER
from hap3d.utils import Hap3dError, atomic_write

# Images (or frames) per dataset. 'tiny' is for tests, 'small' for the default quickstart, 'medium' for its longer
# budget, 'large' for a few thousand training samples (about 4000 across Human3.6M, MuCo, MSCOCO and MPII, plus
# ~600 3DPW test people; a few minutes to write). Human3.6M: frames per training subject and cameras per frame;
# 3DPW: frames per sequence.
SIZES: dict[str, dict[str, int]] = {
    "tiny": dict(h36m_frames=1, h36m_cameras=1, muco=3, coco=4, mpii=3, pw3d_sequences=2, pw3d_frames=2, crowdpose=3,
                 mupots_sequences=2, mupots_frames=1),
    "small": dict(h36m_frames=5, h36m_cameras=2, muco=40, coco=40, mpii=30, pw3d_sequences=4, pw3d_frames=8,
                  crowdpose=20, mupots_sequences=3, mupots_frames=3),
    "medium": dict(h36m_frames=16, h36m_cameras=4, muco=250, coco=250, mpii=200, pw3d_sequences=6, pw3d_frames=25,
                   crowdpose=100, mupots_sequences=6, mupots_frames=6),
    "large": dict(h36m_frames=40, h36m_cameras=4, muco=800, coco=700, mpii=600, pw3d_sequences=6, pw3d_frames=60,
                  crowdpose=200, mupots_sequences=20, mupots_frames=10),
}

# One writer per dataset, by reader name. The order is part of the output: a writer's random stream is
# ``default_rng([seed, position in this table])``, so appending a dataset keeps every existing one's files.
WRITERS = {
    "Human36M": write_human36m,
    "MuCo": write_muco,
    "MSCOCO": write_coco,
    "MPII": write_mpii,
    "PW3D": write_pw3d,
    "CrowdPose": write_crowdpose,
    "MuPoTS": write_mupots,
}

README = """\
{header}

These are NOT Human3.6M, MuCo-3DHP, MSCOCO, MPII, 3DPW, CrowdPose or MuPoTS-3D. They are small synthetic
stand-ins written in exactly those datasets' file names, folder layout and JSON schemas, so that every hap3d reader,
`hap3d data check`, training and evaluation run without the licensed data. Numbers computed on them say nothing
about real accuracy.

size {size!r}, seed {seed}; datasets: {datasets}. The same size, seed and body model always give the same files.

How they are made: bodies of the body model in {body} in natural standing/walking poses, standing on a floor 3-8 m
in front of a pinhole camera, rendered with flat shading over procedural backgrounds. 3D joints are
regressed from the meshes (Human3.6M: the H36M regressor, so the SMPL fits match the joints; elsewhere the SMPL30
regressor renamed to each joint set); 2D keypoints are their projections, with visibility from the image bounds and
the depth buffer. SMPL fits are the generating parameters; some are left out or perturbed on purpose so that the
readers' filters have work to do. 3DPW's OpenPose/HigherHRNet inputs are projected ground truth plus detector-like
noise, low confidences and misses.

Deliberate format details:
* Images are smaller than the real ones (Human3.6M 500x500, MuCo 512x512, 3DPW 540x960, COCO/MPII/CrowdPose
  photo-like sizes up to 640 px), all JPEG.
* CrowdPose: crowdpose_train.json stores each image's width and height swapped, as the release 3DCrowdNet was built
  on did (upstream corrected its file in 2021, jeffffffli/CrowdPose#12); the reference reader swaps them back.
* CrowdPose fit_err is the fit's mean reprojection error in pixels over the labeled joints (fits carry random pose
  noise), so fits fall on both sides of the reader's 5.0 threshold.
* Betas are N(0, 1), except for the Human3.6M and MuCo subjects (0.1 N(0, 1)): their readers check each fit against
  the joints on flipped samples too, which only works for a left/right-symmetric shape space (SMPL's nearly is, the
  procedural body model's is not).
* Keypoint flags: COCO and CrowdPose 0/1/2 (unlabeled / hidden / visible, integer pixel clicks), MPII 0/1
  (unlabeled / labeled). Hidden = the depth buffer shows a surface more than 0.2 m in front of the joint.
* 3DPW bbox = extent of the 30 projected joints +- 10 px (the rule of the golden fixtures' 3DPW example).
"""


class SynthCounts(dict[str, int]):
    """Annotations written per dataset; also path-like (``os.fspath``) for the data root it was written to."""

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = root

    def __fspath__(self) -> str:
        return str(self.root)


def _claim(out: Path, folders: Sequence[Path], text: str) -> None:
    """Make ``out`` a synthetic data root: refuse to mix into dataset folders hap3d did not write, clear the ones it
    did (no stale files from a larger earlier run), and write the README that marks the root as synthetic."""
    marker = out / "README.txt"
    ours = marker.is_file() and marker.read_text(encoding="utf-8", errors="replace").startswith(README_HEADER)
    busy = [f for f in folders if f.is_dir() and any(f.iterdir())]
    if busy and not ours:
        raise Hap3dError(
            f"{out} already holds dataset folders not written by `hap3d data synth` "
            f"({', '.join(str(b) for b in busy)}); refusing to mix synthetic files into them. "
            "Choose another --out folder."
        )
    for f in busy:
        shutil.rmtree(f)
    atomic_write(marker, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def write_synthetic_datasets(
    out: str | os.PathLike,
    body_model_dir: str | os.PathLike,
    size: str = "small",
    seed: int = 0,
    datasets: Sequence[str] | None = None,
) -> SynthCounts:
    """Write synthetic datasets under ``out`` and return the annotations per dataset.

    Each dataset goes to the folder :func:`hap3d.data.written_dataset_root` names, in the layout docs/data.md
    describes, so the readers find it there.

    ``datasets`` takes the reader names (Human36M, MuCo, MSCOCO, MPII, PW3D, CrowdPose, MuPoTS; default all). Each
    dataset draws from its own stream of ``seed``, so a dataset's files do not depend on which others are written.
    """
    if size not in SIZES:
        raise Hap3dError(f"unknown size {size!r}; choose one of {', '.join(SIZES)}")
    names = list(WRITERS) if datasets is None else list(datasets)
    unknown = [n for n in names if n not in WRITERS]
    if unknown:
        raise Hap3dError(f"unknown dataset(s) {', '.join(unknown)}; known: {', '.join(WRITERS)}")
    out = Path(out)
    kit = BodyKit(Path(body_model_dir))
    text = README.format(header=README_HEADER, size=size, seed=seed, datasets=", ".join(names),
                         body=Path(body_model_dir).resolve())
    _claim(out, [written_dataset_root(out, n) for n in names], text)
    counts = SynthCounts(out)
    for index, name in enumerate(WRITERS):
        if name in names:
            rng = np.random.default_rng([seed, index])
            counts[name] = WRITERS[name](kit, written_dataset_root(out, name), SIZES[size], rng)
    return counts
