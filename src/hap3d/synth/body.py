"""A procedural, licence-free body model and VPoser prior in the official file formats.

SMPL and VPoser may not be redistributed, yet the project has to install, run and be tested without them. This
module builds a deterministic stand-in and writes it in exactly the forms the real assets come in (SMPL latin1
pickles with a ``scipy.sparse`` regressor, the auxiliary ``J_regressor_*.npy`` files, a VPoser v1 snapshot
folder), so every loader and every downstream step runs on the real code path.

The body is a rough 1.7 m T-pose: vertices scattered on capsules around the 24 SMPL bones plus spheres at the
hands, feet and head, two-joint linear skinning weights, a random linear shape space, sparse pose correctives and
joint regressors that average the 32 vertices nearest each joint. The rule is fixed down to the order of the
random draws, because the golden parity fixtures (``tests/test_parity_golden.py``) were computed with this very
body; ``tests/test_body_synth.py`` checks the arrays against theirs. The fixtures' faces are a placeholder triangle
strip over the vertex order; :func:`write_body_model_dir` writes a coarse closed surface instead unless asked for
the fixtures' files. It is **not** SMPL.
"""

from __future__ import annotations

import configparser
import io
import pickle
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse
import torch

from hap3d.files import staged_dir
from hap3d.utils import Hap3dError, atomic_write, rule_normal, rule_state_dict

GENDERS = ("neutral", "male", "female")
DEFAULT_SEEDS: dict[str, int] = {"neutral": 1000, "male": 1001, "female": 1002}
NUM_FACES = 13776
NUM_JOINTS = 24
NUM_BETAS = 10
ROOT_PARENT = 4294967295  # the official files store the root's parent as uint32 -1

# The body's construction table (the same numbers as the golden parity fixtures' body model, so they must not be
# tuned). Joint positions are the neutral T-pose in metres: y up, x towards the body's left, z forward.
BODY_RULES: dict[str, Any] = {
    "num_vertices": 6890,
    "parents": [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21],
    "joints_tpose_neutral": [
        [0.0, 0.0, 0.0], [0.09, -0.08, 0.0], [-0.09, -0.08, 0.0], [0.0, 0.11, -0.01], [0.1, -0.48, 0.01],
        [-0.1, -0.48, 0.01], [0.0, 0.24, 0.0], [0.1, -0.88, -0.02], [-0.1, -0.88, -0.02], [0.0, 0.3, 0.01],
        [0.11, -0.94, 0.1], [-0.11, -0.94, 0.1], [0.0, 0.5, -0.01], [0.07, 0.42, -0.005], [-0.07, 0.42, -0.005],
        [0.0, 0.6, 0.02], [0.17, 0.44, -0.01], [-0.17, 0.44, -0.01], [0.43, 0.44, -0.02], [-0.43, 0.44, -0.02],
        [0.68, 0.44, -0.01], [-0.68, 0.44, -0.01], [0.77, 0.44, -0.01], [-0.77, 0.44, -0.01],
    ],
    "bone_radius_by_child_joint": [
        None, 0.1, 0.1, 0.13, 0.08, 0.08, 0.13, 0.055, 0.055, 0.14, 0.045, 0.045, 0.07, 0.07, 0.07, 0.055,
        0.055, 0.055, 0.045, 0.045, 0.035, 0.035, 0.03, 0.03,
    ],
    "leaf_joints": [10, 11, 15, 22, 23],
    "leaf_radius": [0.04, 0.04, 0.11, 0.04, 0.04],
    "face_vertices": [  # nose, L eye, R eye, L ear, R ear: vertices the joint sets read as keypoints
        [331, [0.0, 0.62, 0.125]], [2802, [0.035, 0.65, 0.1]], [6262, [-0.035, 0.65, 0.1]],
        [3489, [0.105, 0.62, 0.02]], [3990, [-0.105, 0.62, 0.02]],
    ],
    "head_top": [0.0, 0.71, 0.02],
    "gender_scale": {"neutral": 1.0, "male": 1.04, "female": 0.96},
    "k_nearest": 32,
    "num_groups": 28,
    "radius_jitter": 0.05,
    "child_weight_slope": 0.4,
    "shapedirs_linear_scale": 0.03,
    "shapedirs_noise_scale": 0.002,
    "posedirs_scale": 0.01,
}

# Target points (neutral T-pose) of the auxiliary regressors, rows in the joint orders of the official files.
REGRESSOR_TARGETS: dict[str, list[list[float]]] = {
    # SPIN order: R hip, L hip, neck, head top, pelvis, thorax, spine, jaw, head
    "J_regressor_extra": [
        [-0.09, -0.08, 0.0], [0.09, -0.08, 0.0], [0.0, 0.5, -0.01], [0.0, 0.71, 0.02], [0.0, 0.0, 0.0],
        [0.0, 0.4, 0.0], [0.0, 0.24, 0.0], [0.0, 0.54, 0.08], [0.0, 0.6, 0.02],
    ],
    # Human3.6M 17-joint order
    "J_regressor_h36m_correct": [
        [0.0, 0.0, 0.0], [-0.09, -0.08, 0.0], [-0.1, -0.48, 0.01], [-0.1, -0.88, -0.02], [0.09, -0.08, 0.0],
        [0.1, -0.48, 0.01], [0.1, -0.88, -0.02], [0.0, 0.24, 0.0], [0.0, 0.5, -0.01], [0.0, 0.62, 0.125],
        [0.0, 0.71, 0.02], [0.17, 0.44, -0.01], [0.43, 0.44, -0.02], [0.68, 0.44, -0.01], [-0.17, 0.44, -0.01],
        [-0.43, 0.44, -0.02], [-0.68, 0.44, -0.01],
    ],
    # COCO 17-keypoint order
    "J_regressor_coco_hip_smpl": [
        [0.0, 0.62, 0.125], [0.035, 0.65, 0.1], [-0.035, 0.65, 0.1], [0.105, 0.62, 0.02], [-0.105, 0.62, 0.02],
        [0.17, 0.44, -0.01], [-0.17, 0.44, -0.01], [0.43, 0.44, -0.02], [-0.43, 0.44, -0.02], [0.68, 0.44, -0.01],
        [-0.68, 0.44, -0.01], [0.09, -0.08, 0.0], [-0.09, -0.08, 0.0], [0.1, -0.48, 0.01], [-0.1, -0.48, 0.01],
        [0.1, -0.88, -0.02], [-0.1, -0.88, -0.02],
    ],
}

# State-dict keys and shapes of human_body_prior 0.8.5's VPoser(num_neurons=512, latentD=32, data_shape=[1,21,3]).
VPOSER_SHAPES: dict[str, tuple[int, ...]] = {
    "bodyprior_enc_bn1.weight": (63,),
    "bodyprior_enc_bn1.bias": (63,),
    "bodyprior_enc_bn1.running_mean": (63,),
    "bodyprior_enc_bn1.running_var": (63,),
    "bodyprior_enc_bn1.num_batches_tracked": (),
    "bodyprior_enc_fc1.weight": (512, 63),
    "bodyprior_enc_fc1.bias": (512,),
    "bodyprior_enc_bn2.weight": (512,),
    "bodyprior_enc_bn2.bias": (512,),
    "bodyprior_enc_bn2.running_mean": (512,),
    "bodyprior_enc_bn2.running_var": (512,),
    "bodyprior_enc_bn2.num_batches_tracked": (),
    "bodyprior_enc_fc2.weight": (512, 512),
    "bodyprior_enc_fc2.bias": (512,),
    "bodyprior_enc_mu.weight": (32, 512),
    "bodyprior_enc_mu.bias": (32,),
    "bodyprior_enc_logvar.weight": (32, 512),
    "bodyprior_enc_logvar.bias": (32,),
    "bodyprior_dec_fc1.weight": (512, 32),
    "bodyprior_dec_fc1.bias": (512,),
    "bodyprior_dec_fc2.weight": (512, 512),
    "bodyprior_dec_fc2.bias": (512,),
    "bodyprior_dec_out.weight": (126, 512),
    "bodyprior_dec_out.bias": (126,),
}

# How the stand-in VPoser weights are drawn: the decoder output layer is biased towards the identity rotation
# (6D layout: the first two columns of the 3x3 matrix, row-major 3x2), so decoded poses are small rotations.
VPOSER_RULES: dict[str, Any] = {
    "vposer_salt_suffix": "vposer/",
    "vposer_dec_out_weight_scale": 0.3,
    "vposer_dec_out_bias_base_6d": [1.0, 0.0, 0.0, 1.0, 0.0, 0.0],
    "vposer_dec_out_bias_noise": 0.01,
}

SMPL_PICKLE_NAMES = {
    "neutral": "basicModel_neutral_lbs_10_207_0_v1.0.0.pkl",
    "male": "basicModel_m_lbs_10_207_0_v1.0.0.pkl",
    "female": "basicModel_f_lbs_10_207_0_v1.0.0.pkl",
}
VPOSER_SNAPSHOT = Path("vposer") / "snapshots" / "TR00_E096.pt"
VPOSER_INI = Path("vposer") / "TR00_004_00_WO_accad.ini"

_README = """\
Procedural body model written by hap3d (`hap3d body synth`).

This is NOT the SMPL body model and NOT the VPoser prior. It is a licence-free, deterministic stand-in in exactly
their file formats, so hap3d installs, runs and tests without licensed files. Results computed with it are
meaningless as human meshes.

How it is made: vertices scattered on capsules around the 24 SMPL bones of a 1.7 m T-pose (plus spheres at the
hands, feet and head) from fixed random seeds (neutral {neutral}, male {male}, female {female}); two-joint skinning
weights; random shape and pose blend shapes; joint regressors averaging the 32 vertices nearest each joint; the
faces are the convex hulls of the limb vertex groups (a coarse closed surface). VPoser weights are seeded \
pseudo-random numbers
(salt {salt!r}). The same inputs always give the same files.

To use the real assets, keep this layout and replace:
  smpl/basicModel_{{neutral,m,f}}_lbs_10_207_0_v1.0.0.pkl   the official SMPL pickles (smpl.is.tue.mpg.de)
  J_regressor_extra.npy                                   SPIN's data file
  J_regressor_h36m_correct.npy                            3DCrowdNet's data/Human36M file
  J_regressor_coco_hip_smpl.npy                           3DCrowdNet's data/MSCOCO file
  vposer/                                                 the official vposer_v1_0 folder
                                                          (TR00_004_00_WO_accad.ini, snapshots/TR00_E096.pt)
"""


def nearest_vertex_regressor(vertices: np.ndarray, points: np.ndarray, k: int = 32) -> np.ndarray:
    """(P, V) float64 regressor whose row p averages the k vertices nearest ``points[p]``.

    Distances are float64 Euclidean; ties keep the lower vertex index (stable argsort).
    """
    v = np.asarray(vertices, np.float64)
    reg = np.zeros((len(points), len(v)))
    for row, point in enumerate(np.asarray(points, np.float64)):
        dist = np.sqrt(((v - point) ** 2).sum(axis=1))
        reg[row, np.argsort(dist, kind="stable")[:k]] = 1.0 / k
    return reg


def strip_faces(num_vertices: int, num_faces: int = NUM_FACES) -> np.ndarray:
    """(F, 3) int64 placeholder faces: a triangle strip over the vertex order, indices mod ``num_vertices``."""
    i = np.arange(num_faces) // 2
    even = np.stack([i, i + 1, i + 2], axis=1)
    odd = np.stack([i + 1, i + 3, i + 2], axis=1)
    return np.where((np.arange(num_faces) % 2 == 0)[:, None], even, odd) % num_vertices


def hull_faces(
    vertices: np.ndarray, num_groups: int, face_vertex_ids: Sequence[int], num_faces: int = NUM_FACES
) -> np.ndarray:
    """A renderable surface for the procedural model: the outward-oriented convex hull of each limb's vertex
    group (vertex i belongs to group i mod num_groups; the face keypoints to the head sphere), padded with
    degenerate triangles to ``num_faces`` so the file keeps SMPL's face count. Interior vertices stay unused."""
    from scipy.spatial import ConvexHull

    v = np.asarray(vertices, np.float64)
    groups = np.arange(len(v)) % num_groups
    groups[list(face_vertex_ids)] = num_groups - 3  # the head sphere's group (leaf joint 15)
    tris = []
    for g in range(num_groups):
        idx = np.flatnonzero(groups == g)
        simplices = idx[ConvexHull(v[idx]).simplices]
        normals = np.cross(v[simplices[:, 1]] - v[simplices[:, 0]], v[simplices[:, 2]] - v[simplices[:, 0]])
        outward = np.einsum("fc,fc->f", normals, v[simplices].mean(1) - v[idx].mean(0)) >= 0
        tris.append(np.where(outward[:, None], simplices, simplices[:, ::-1]))
    faces = np.concatenate(tris)[:num_faces]
    pad = np.repeat(faces[-1:, :1], 3, axis=1)
    return np.concatenate([faces, np.repeat(pad, num_faces - len(faces), axis=0)])


def synth_smpl_arrays(
    gender: str = "neutral", seed: int | None = None, body_rules: Mapping[str, Any] | None = None
) -> dict[str, np.ndarray]:
    """The procedural model of one gender as npz-style SMPL arrays.

    Arithmetic is float64 in a fixed order, cast at the end, so the arrays are bit-identical on every machine.
    Returns ``v_template`` (V,3), ``shapedirs`` (V,3,10), ``posedirs`` (V,3,207), dense ``J_regressor`` (24,V),
    ``weights`` (V,24) as float32, ``kintree_table`` (2,24) uint32 and ``f`` (13776,3) int32.
    """
    if gender not in GENDERS:
        raise Hap3dError(f"unknown gender {gender!r}; expected one of {', '.join(GENDERS)}")
    r = BODY_RULES if body_rules is None else body_rules
    seed = DEFAULT_SEEDS[gender] if seed is None else int(seed)
    n = int(r["num_vertices"])
    s = float(r["gender_scale"][gender])
    parents = [int(p) for p in r["parents"]]
    jitter = float(r["radius_jitter"])
    slope = float(r["child_weight_slope"])

    rng = np.random.default_rng(seed)
    u = rng.random(n)
    phi = 2 * np.pi * rng.random(n)
    rn = rng.standard_normal(n)
    dirs = rng.standard_normal((n, 3))
    basis = rng.standard_normal((NUM_BETAS, 3, 3))
    sn = rng.standard_normal((n, 3, NUM_BETAS))
    pz = rng.standard_normal((n, 3, 9))

    joints = s * np.asarray(r["joints_tpose_neutral"], np.float64)
    v = np.zeros((n, 3))
    weights = np.zeros((n, NUM_JOINTS))
    owner = np.zeros(n, dtype=np.int64)
    groups = np.arange(n) % int(r["num_groups"])
    num_bones = NUM_JOINTS - 1
    for g in range(num_bones):  # capsule around the bone from p to its child c
        idx = np.flatnonzero(groups == g)
        c = g + 1
        p = parents[c]
        bone = joints[c] - joints[p]
        d = bone / np.sqrt((bone**2).sum())
        a = np.array([0.0, 0.0, 1.0]) if abs(d[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
        e1 = np.cross(d, a)
        e1 = e1 / np.sqrt((e1**2).sum())
        e2 = np.cross(d, e1)
        t = u[idx, None]
        radius = float(r["bone_radius_by_child_joint"][c]) * s * (1 + jitter * rn[idx, None])
        ring = np.cos(phi[idx, None]) * e1 + np.sin(phi[idx, None]) * e2
        v[idx] = joints[p] + t * bone + radius * ring
        weights[idx, p] = 1 - slope * u[idx]
        weights[idx, c] = slope * u[idx]
        owner[idx] = p
    for leaf, (j, leaf_radius) in enumerate(zip(r["leaf_joints"], r["leaf_radius"])):  # spheres at leaf joints
        idx = np.flatnonzero(groups == num_bones + leaf)
        unit = dirs[idx] / np.sqrt((dirs[idx] ** 2).sum(axis=1))[:, None]
        radius = float(leaf_radius) * s * (1 + jitter * rn[idx, None])
        v[idx] = joints[j] + radius * unit
        weights[idx, j] = 1.0
        owner[idx] = j
    head = 15
    for i, pos in r["face_vertices"]:  # fixed keypoint vertices on the head
        v[i] = s * np.asarray(pos, np.float64)
        weights[i] = 0.0
        weights[i, head] = 1.0
        owner[i] = head

    centred = v - joints[0]
    shapedirs = float(r["shapedirs_linear_scale"]) * np.einsum("kab,vb->vak", basis, centred)
    shapedirs = shapedirs + float(r["shapedirs_noise_scale"]) * sn
    posedirs = np.zeros((n, 3, 9 * num_bones))
    scale = float(r["posedirs_scale"])
    for o in range(1, NUM_JOINTS):
        idx = np.flatnonzero(owner == o)
        posedirs[idx, :, 9 * (o - 1) : 9 * o] = scale * pz[idx]
    j_regressor = nearest_vertex_regressor(v, joints, int(r["k_nearest"]))
    kintree = np.array([[ROOT_PARENT if p < 0 else p for p in parents], list(range(NUM_JOINTS))], dtype=np.uint32)
    return {
        "v_template": v.astype(np.float32),
        "shapedirs": shapedirs.astype(np.float32),
        "posedirs": posedirs.astype(np.float32),
        "J_regressor": j_regressor.astype(np.float32),
        "weights": weights.astype(np.float32),
        "kintree_table": kintree,
        "f": strip_faces(n).astype(np.int32),
    }


def synth_regressors(
    v_template_neutral: np.ndarray, targets: Mapping[str, Sequence[Sequence[float]]] | None = None, k: int = 32
) -> dict[str, np.ndarray]:
    """The auxiliary joint regressors (extra, H36M, COCO), float64 like the official ``.npy`` files.

    Each row averages the ``k`` vertices of the neutral template nearest its target point.
    """
    targets = REGRESSOR_TARGETS if targets is None else targets
    return {
        name: nearest_vertex_regressor(v_template_neutral, np.asarray(pts, np.float64), k)
        for name, pts in targets.items()
    }


def synth_vposer_state_dict(
    salt: str = "",
    shapes: Mapping[str, Sequence[int]] | None = None,
    weight_rules: Mapping[str, Any] | None = None,
) -> dict[str, torch.Tensor]:
    """A full VPoser v1 state dict: every tensor from :func:`hap3d.utils.rule_state_dict` with salt
    ``salt + 'vposer/'``, then a decoder output layer biased towards identity rotations.

    ``weight_rules`` overrides :data:`VPOSER_RULES` (same keys, plus optional per-key ``weight_gain``).
    """
    shapes = VPOSER_SHAPES if shapes is None else shapes
    w = VPOSER_RULES if weight_rules is None else weight_rules
    vsalt = salt + w["vposer_salt_suffix"]
    state = rule_state_dict(shapes, vsalt, w.get("weight_gain"))
    out_w, out_b = "bodyprior_dec_out.weight", "bodyprior_dec_out.bias"
    rows, cols = (int(x) for x in shapes[out_w])
    z = rule_normal(out_w, rows * cols, vsalt)
    state[out_w] = (w["vposer_dec_out_weight_scale"] * z / np.sqrt(cols)).astype(np.float32).reshape(rows, cols)
    n_out = int(shapes[out_b][0])
    base = np.asarray(w["vposer_dec_out_bias_base_6d"], np.float64)
    bias = np.tile(base, n_out // len(base)) + w["vposer_dec_out_bias_noise"] * rule_normal(out_b, n_out, vsalt)
    state[out_b] = bias.astype(np.float32)
    return {k: torch.from_numpy(v.copy()) for k, v in state.items()}


def smpl_pickle_dict(arrays: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """The official SMPL pickle content for npz-style arrays: sparse float64 regressor, int64 kintree, uint32
    faces, float64 rest joints ``J``, and the blend-shape tags (plain arrays, no chumpy)."""
    j_regressor = np.asarray(arrays["J_regressor"], np.float64)
    return {
        "v_template": np.asarray(arrays["v_template"], np.float32),
        "shapedirs": np.asarray(arrays["shapedirs"], np.float32),
        "posedirs": np.asarray(arrays["posedirs"], np.float32),
        "J_regressor": scipy.sparse.csc_matrix(j_regressor),
        "weights": np.asarray(arrays["weights"], np.float32),
        "f": np.asarray(arrays["f"]).astype(np.uint32),
        "kintree_table": np.asarray(arrays["kintree_table"]).astype(np.int64),
        "J": j_regressor @ np.asarray(arrays["v_template"], np.float64),
        "bs_type": "lrotmin",
        "bs_style": "lbs",
    }


def write_smpl_pickle(path: str | Path, arrays: Mapping[str, np.ndarray]) -> Path:
    """Write npz-style arrays as an official-form SMPL pickle (protocol 2, readable with encoding='latin1')."""
    payload = pickle.dumps(smpl_pickle_dict(arrays), protocol=2)
    return atomic_write(path, lambda tmp: Path(tmp).write_bytes(payload))


def _write_npy(path: Path, array: np.ndarray) -> Path:
    """``np.save`` written atomically (no half-written regressor after an interrupted run)."""
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.save(f, array)

    return atomic_write(path, write)


def _write_torch(path: Path, obj: Any) -> Path:
    """``torch.save`` made byte-deterministic, written atomically.

    ``torch.save`` to a path names the zip archive's inner folder after the file, which under
    :func:`~hap3d.utils.atomic_write` is a random temporary name. Serialised to memory, the folder is always
    ``archive``, so equal contents give equal bytes; the bytes are then written and renamed into place.
    """
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    payload = buffer.getvalue()
    return atomic_write(path, lambda tmp: Path(tmp).write_bytes(payload))


def _write_vposer_ini(path: Path) -> Path:
    """The VPoser v1 snapshot's ini file, which the loader reads the network's sizes from."""
    ini = configparser.ConfigParser()
    ini.optionxform = str  # keep 'latentD' as written in the official file
    ini["All"] = {"num_neurons": "512", "latentD": "32", "data_shape": "[1, 21, 3]"}

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write("# Procedural VPoser v1 stand-in written by hap3d: NOT the licensed VPoser weights.\n")
            ini.write(f)

    return atomic_write(path, write)


def write_body_model_dir(
    out: str | Path,
    salt: str = "",
    seeds: Mapping[str, int] | None = None,
    overwrite: bool = False,
    *,
    body_rules: Mapping[str, Any] | None = None,
    regressor_targets: Mapping[str, Sequence[Sequence[float]]] | None = None,
    weight_rules: Mapping[str, Any] | None = None,
    surface: bool = True,
) -> Path:
    """Write the procedural body model in the standard body-model folder layout and return ``out``.

    Layout: ``smpl/basicModel_{neutral,m,f}_lbs_10_207_0_v1.0.0.pkl``, ``J_regressor_extra.npy``,
    ``J_regressor_h36m_correct.npy``, ``J_regressor_coco_hip_smpl.npy``, ``vposer/snapshots/TR00_E096.pt``,
    ``vposer/TR00_004_00_WO_accad.ini`` and ``README.txt``. Every file is written atomically, and the same arguments
always give the same bytes. An existing
    non-empty ``out`` is refused unless ``overwrite`` is true (then the files above are replaced).
    ``surface`` replaces the placeholder strip faces by :func:`hull_faces`, so renders show a body;
    ``surface=False`` keeps the strip, which is what the golden parity fixtures were made with.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise Hap3dError(f"{out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise Hap3dError(f"{out} exists and is not empty; refusing to overwrite it (pass overwrite=True / --overwrite)")
    args = (salt, {**DEFAULT_SEEDS, **(seeds or {})}, BODY_RULES if body_rules is None else body_rules,
            regressor_targets, weight_rules, surface)
    if out.is_dir() and any(out.iterdir()):  # overwrite: the files are replaced one by one, each atomically
        return _write_body_files(out, *args)
    with staged_dir(out) as stage:  # a new folder appears complete or not at all (a kill leaves no half model)
        _write_body_files(stage, *args)
    return out


def _write_body_files(
    out: Path, salt: str, seeds: Mapping[str, int], r: Mapping[str, Any],
    regressor_targets: Mapping[str, Sequence[Sequence[float]]] | None, weight_rules: Mapping[str, Any] | None,
    surface: bool,
) -> Path:
    arrays = {g: synth_smpl_arrays(g, seeds[g], r) for g in GENDERS}
    if surface:
        face_ids = [int(i) for i, _ in r["face_vertices"]]
        for g in GENDERS:
            arrays[g]["f"] = hull_faces(arrays[g]["v_template"], int(r["num_groups"]), face_ids).astype(np.int32)
    for g in GENDERS:
        write_smpl_pickle(out / "smpl" / SMPL_PICKLE_NAMES[g], arrays[g])
    regressors = synth_regressors(arrays["neutral"]["v_template"], regressor_targets, int(r["k_nearest"]))
    for name, reg in regressors.items():
        _write_npy(out / f"{name}.npy", reg)
    state = synth_vposer_state_dict(salt, weight_rules=weight_rules)
    _write_torch(out / VPOSER_SNAPSHOT, state)
    _write_vposer_ini(out / VPOSER_INI)
    readme = _README.format(salt=salt, **seeds)
    atomic_write(out / "README.txt", lambda tmp: Path(tmp).write_text(readme, encoding="utf-8"))
    return out
