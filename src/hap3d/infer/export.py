"""Writing demo results: meshes (OBJ, PLY, GLB) and per-person parameters (NPZ, JSON).

Units and frames
----------------
* Lengths are metres; 2D coordinates are pixels of the original (uncropped) input image.
* 3D quantities are in the OpenCV camera frame (x right, y down, z forward) of the virtual camera the reference
  demo renders with: focal length 5000 px and principal point at the centre of the person's crop box in the
  original image. Each person therefore has their own ``focal``/``princpt``; projecting ``vertices`` with them
  lands on that person in the photo.
* Rotations are axis-angle vectors in radians (SMPL convention: direction = axis, norm = angle).
* OBJ and PLY keep the camera frame unchanged (the reference's ``.obj`` convention, with valid ``f a b c`` face
  lines instead of its dangling ``f a/a b/b c/c`` texture references). GLB is the exception: glTF is y-up and
  viewers look along -z, so :func:`save_glb` rotates the mesh 180 deg about x (``(x, y, z) -> (x, -y, -z)``, a
  proper rotation, so face winding is unchanged) and the person stands upright facing the viewer in Blender and
  web viewers.

Person records
--------------
:func:`save_person_npz` and :func:`save_person_json` take ``dict[str, array-like]`` (numeric or boolean; any
keys are accepted). The demo writes the fields of ``hap3d.infer.predictor.PersonPrediction``:

====================  ============  ==========================================================================
key                   shape         meaning
====================  ============  ==========================================================================
``person_index``      ()            the person's index in the input keypoint list
``bbox``              (4,)          crop box ``x, y, w, h`` in the original image, pixels
``vertices``          (6890, 3)     SMPL mesh, metres, camera frame
``joints3d``          (30, 3)       SMPL-30 joints, metres, camera frame
``joints2d``          (30, 2)       ``joints3d`` projected into the original image, pixels
``smpl_pose``         (72,)         24 joint rotations, axis-angle radians: root (camera frame) then 23 body
                                    joints relative to their parents
``smpl_shape``        (10,)         SMPL shape coefficients (unitless)
``cam_trans``         (3,)          translation of the body model in the camera frame, metres
``focal``             () or (2,)    focal length of the virtual camera, pixels (5000)
``princpt``           (2,)          ``cx, cy`` of the virtual camera (crop-box centre), pixels
``input_keypoints``   (17, 3)       the COCO keypoints used: ``x, y`` pixels and score
``joint_score``       (15,)         per-joint confidence: the probability mass at the predicted joint in its
                                    softmax over the 8x8x8 position volume, from 1/512 (no opinion) to 1
====================  ============  ==========================================================================

NPZ keeps full precision and dtypes; JSON rounds floats to ``decimals`` places (default 6: micrometres,
microradians, micro-pixels), writes arrays as nested lists and non-finite numbers as ``null``.
All files are written atomically (temporary file + rename).
"""

from __future__ import annotations

import json
import os
from typing import Any, Mapping

import numpy as np
import trimesh

from hap3d.utils import atomic_write

_CV_TO_GLTF = np.diag([1.0, -1.0, -1.0])  # 180 deg about x: OpenCV camera (y down, z forward) -> glTF (y up)


def _mesh_arrays(vertices: Any, faces: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validated (V,3) float and (F,3) int arrays; a bad index would otherwise produce a file viewers reject."""
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces)
    if v.ndim != 2 or v.shape[1] != 3:
        raise ValueError(f"vertices must be (V, 3), got {v.shape}")
    if f.ndim != 2 or f.shape[1] != 3 or (f.size and f.dtype.kind not in "iu"):
        raise ValueError(f"faces must be integer (F, 3), got {f.dtype} {f.shape}")
    f = f.astype(np.int64)
    if f.size and (f.min() < 0 or f.max() >= len(v)):
        raise ValueError(f"face indices must lie in [0, {len(v)}), got [{f.min()}, {f.max()}]")
    return v, f


def _trimesh(vertices: np.ndarray, faces: np.ndarray, **kwargs: Any) -> trimesh.Trimesh:
    # process=False: merging or reordering vertices would break the SMPL vertex correspondence.
    return trimesh.Trimesh(vertices=vertices, faces=faces, process=False, **kwargs)


def save_obj(path: str | os.PathLike, vertices: Any, faces: Any) -> None:
    """Wavefront OBJ: ``v x y z`` (metres, camera frame) and 1-based ``f a b c`` lines."""
    v, f = _mesh_arrays(vertices, faces)

    # One %-format over the whole array: about 10x faster than np.savetxt, which formats row by row.
    text = ("v %.6f %.6f %.6f\n" * len(v)) % tuple(v.ravel().tolist())
    text += ("f %d %d %d\n" * len(f)) % tuple((f + 1).ravel().tolist())

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="ascii") as fh:
            fh.write(text)

    atomic_write(path, write)


def save_ply(path: str | os.PathLike, vertices: Any, faces: Any) -> None:
    """Binary little-endian PLY in the camera frame (metres)."""
    v, f = _mesh_arrays(vertices, faces)
    data = _trimesh(v, f).export(file_type="ply", encoding="binary")
    atomic_write(path, lambda tmp: _write_bytes(tmp, data))


def save_glb(path: str | os.PathLike, vertices: Any, faces: Any, colour: Any = (0.7, 0.7, 0.7)) -> None:
    """Binary glTF with one opaque, double-sided PBR material of ``colour`` (RGB floats in [0, 1] or 0..255 ints).

    The mesh is rotated from the OpenCV camera frame to glTF's y-up frame (see the module docstring). No normals
    are stored, so viewers flat-shade it, like the demo overlay.
    """
    v, f = _mesh_arrays(vertices, faces)
    c = np.asarray(colour)
    rgb = c / 255.0 if c.dtype.kind in "iu" else c.astype(np.float64)
    if rgb.shape != (3,):
        raise ValueError(f"colour must be one RGB triple, got shape {rgb.shape}")
    material = trimesh.visual.material.PBRMaterial(
        baseColorFactor=[*np.clip(rgb, 0, 1), 1.0], metallicFactor=0.0, roughnessFactor=0.8, doubleSided=True
    )
    mesh = _trimesh(v @ _CV_TO_GLTF.T, f, visual=trimesh.visual.TextureVisuals(material=material))
    data = mesh.export(file_type="glb")
    atomic_write(path, lambda tmp: _write_bytes(tmp, data))


def _write_bytes(tmp: str, data: bytes) -> None:
    with open(tmp, "wb") as fh:
        fh.write(data)


def _numeric(record: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Arrays of the record, refusing object arrays (they would need pickle to load back)."""
    out = {}
    for key, value in record.items():
        if not isinstance(key, str) or not key:
            raise ValueError(f"record keys must be non-empty strings, got {key!r}")
        arr = np.asarray(value.detach().cpu() if hasattr(value, "detach") else value)
        if arr.dtype.kind not in "biuf":
            raise ValueError(f"record[{key!r}] must be numeric or boolean, got dtype {arr.dtype}")
        out[key] = arr
    return out


def save_person_npz(path: str | os.PathLike, record: Mapping[str, Any]) -> None:
    """Compressed NPZ of the record's arrays at full precision; read back with ``np.load(path)``."""
    arrays = _numeric(record)

    def write(tmp: str) -> None:
        with open(tmp, "wb") as fh:  # a file object stops numpy from appending ".npz" to the temporary name
            np.savez_compressed(fh, **arrays)

    atomic_write(path, write)


def _to_json(arr: np.ndarray, decimals: int) -> Any:
    if arr.dtype.kind in "biu":
        return arr.tolist()
    values = np.round(arr.astype(np.float64), decimals)
    finite = np.isfinite(values)
    if finite.all():
        return values.tolist()
    return np.where(finite, values, None).tolist()  # JSON has no NaN/inf


def save_person_json(path: str | os.PathLike, record: Mapping[str, Any], decimals: int = 6) -> None:
    """Human-readable JSON object of the record: one key per line, arrays as nested lists, rounded floats."""
    lines = [
        f" {json.dumps(key)}: {json.dumps(_to_json(arr, decimals), allow_nan=False)}"
        for key, arr in _numeric(record).items()
    ]
    text = "{\n" + ",\n".join(lines) + "\n}\n"

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)

    atomic_write(path, write)


def load_person_json(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read :func:`save_person_json` output back as arrays (``null`` becomes NaN)."""
    with open(path, encoding="utf-8") as fh:
        doc = json.load(fh)
    out = {}
    for key, value in doc.items():
        arr = np.asarray(value)
        out[key] = arr.astype(np.float64) if arr.dtype == object else arr
    return out
