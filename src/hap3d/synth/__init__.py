"""Licence-free stand-ins for the licensed inputs: a procedural body model and synthetic datasets.

SMPL, VPoser, Human3.6M, MuCo-3DHP, MSCOCO, MPII, 3DPW and CrowdPose may not be redistributed, yet every loader,
reader, the data check, training and evaluation have to run and be tested without them. This package writes
stand-ins with the real file names, folder layout (docs/data.md) and file formats, so all of those take their
real code paths. Nothing in it is needed to use hap3d on real data; only the command line (``hap3d body synth``,
``hap3d data synth``, ``hap3d quickstart``), the tests and the benchmarks import it.

Modules, from the bottom up:

* ``body``: the procedural body model and VPoser prior in the official file forms (``write_body_model_dir``);
* ``people``: bodies of a body model (the procedural one or the real SMPL) with each dataset's joint regressors,
  natural standing/walking poses, placement on a floor 3-8 m in front of a pinhole camera;
* ``scene``: procedural backgrounds, clothing colours, and all people of an image in one z-buffer
  (:mod:`hap3d.render`), whose depth gives every keypoint's visibility;
* ``records``: deterministic JSON and JPEG writing and the annotation records several datasets share;
* ``human36m``, ``muco``, ``coco``, ``mpii``, ``crowdpose``, ``pw3d``: one writer per dataset;
* ``datasets``: ``write_synthetic_datasets``, which runs the writers into one data root.

Every annotation is derived from the rendered bodies: 3D joints through the joint regressors, 2D keypoints as
their projections with visibility from the image bounds and the depth buffer, SMPL fits as the generating
parameters (a few deliberately perturbed or left out to exercise the readers' filters), and 3DPW's OpenPose and
HigherHRNet inputs as the projected ground truth with detector-like noise and occlusion. Output is deterministic:
one random stream per (seed, dataset), JSON with sorted keys and fixed rounding, images encoded by OpenCV from
deterministic pixels.
"""

from __future__ import annotations

from hap3d.synth.body import write_body_model_dir
from hap3d.synth.datasets import SIZES, WRITERS, SynthCounts, write_synthetic_datasets
from hap3d.synth.records import README_HEADER

__all__ = ["README_HEADER", "SIZES", "WRITERS", "SynthCounts", "write_body_model_dir", "write_synthetic_datasets"]
