"""A procedural body model in the SMPL file format, so everything runs and is tested without licensed files.

The model is deterministic and roughly human-shaped: vertices scattered on capsules around the 24 SMPL bones
(1.7 m tall, T-pose), linear skinning weights between each bone's two joints, a linear shape space, sparse pose
correctives, and a 24-joint regressor averaging the 32 vertices nearest each joint. It follows the generation
rule of the golden fixtures exactly, so its arrays equal theirs. It is written in every official form: SMPL
pickles (latin1-readable, with a scipy.sparse regressor), the auxiliary ``.npy`` regressors, and a VPoser v1
snapshot folder. It is **not** SMPL: poses look plausible, surfaces do not.
"""

from __future__ import annotations

import configparser
import pickle
from pathlib import Path

import numpy as np
import scipy.sparse
import torch

from hap3d.utils import Hap3dError, atomic_write, rule_array, rule_normal, rule_state_dict

NUM_VERTICES = 6890
NUM_FACES = 13776
PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21)
JOINTS_TPOSE = (
    (0.0, 0.0, 0.0), (0.09, -0.08, 0.0), (-0.09, -0.08, 0.0), (0.0, 0.11, -0.01), (0.1, -0.48, 0.01),
    (-0.1, -0.48, 0.01), (0.0, 0.24, 0.0), (0.1, -0.88, -0.02), (-0.1, -0.88, -0.02), (0.0, 0.3, 0.01),
    (0.11, -0.94, 0.1), (-0.11, -0.94, 0.1), (0.0, 0.5, -0.01), (0.07, 0.42, -0.005), (-0.07, 0.42, -0.005),
    (0.0, 0.6, 0.02), (0.17, 0.44, -0.01), (-0.17, 0.44, -0.01), (0.43, 0.44, -0.02), (-0.43, 0.44, -0.02),
    (0.68, 0.44, -0.01), (-0.68, 0.44, -0.01), (0.77, 0.44, -0.01), (-0.77, 0.44, -0.01),
)
BONE_RADIUS = (
    None, 0.1, 0.1, 0.13, 0.08, 0.08, 0.13, 0.055, 0.055, 0.14, 0.045, 0.045, 0.07, 0.07, 0.07, 0.055, 0.055,
    0.055, 0.045, 0.045, 0.035, 0.035, 0.03, 0.03,
)
LEAF_JOINTS = (10, 11, 15, 22, 23)
LEAF_RADIUS = (0.04, 0.04, 0.11, 0.04, 0.04)
FACE_VERTICES = {331: (0.0, 0.62, 0.125), 2802: (0.035, 0.65, 0.1), 6262: (-0.035, 0.65, 0.1), 3489: (0.105, 0.62, 0.02), 3990: (-0.105, 0.62, 0.02)}
GENDER_SCALE = {"neutral": 1.0, "male": 1.04, "female": 0.96}
DEFAULT_SEEDS = {"neutral": 1000, "male": 1001, "female": 1002}
DEFAULT_BODY_RULES = {
    "num_vertices": NUM_VERTICES, "parents": list(PARENTS), "joints_tpose_neutral": [list(j) for j in JOINTS_TPOSE],
    "bone_radius_by_child_joint": list(BONE_RADIUS), "leaf_joints": list(LEAF_JOINTS), "leaf_radius": list(LEAF_RADIUS),
    "face_vertices": [[k, list(v)] for k, v in FACE_VERTICES.items()], "gender_scale": GENDER_SCALE, "k_nearest": 32,
    "num_groups": 28, "radius_jitter": 0.05, "child_weight_slope": 0.4, "shapedirs_linear_scale": 0.03,
    "shapedirs_noise_scale": 0.002, "posedirs_scale": 0.01,
}
# Targets (neutral T-pose, metres) of the auxiliary regressors, in their official row orders.
REGRESSOR_TARGETS = {
    "J_regressor_extra": [  # SPIN: R hip, L hip, neck, head top, pelvis, thorax, spine, jaw, head
        (-0.09, -0.08, 0.0), (0.09, -0.08, 0.0), (0.0, 0.5, -0.01), (0.0, 0.71, 0.02), (0.0, 0.0, 0.0),
        (0.0, 0.4, 0.0), (0.0, 0.24, 0.0), (0.0, 0.54, 0.08), (0.0, 0.6, 0.02)],
    "J_regressor_h36m_correct": [
        (0.0, 0.0, 0.0), (-0.09, -0.08, 0.0), (-0.1, -0.48, 0.01), (-0.1, -0.88, -0.02), (0.09, -0.08, 0.0),
        (0.1, -0.48, 0.01), (0.1, -0.88, -0.02), (0.0, 0.24, 0.0), (0.0, 0.5, -0.01), (0.0, 0.62, 0.125),
        (0.0, 0.71, 0.02), (0.17, 0.44, -0.01), (0.43, 0.44, -0.02), (0.68, 0.44, -0.01), (-0.17, 0.44, -0.01),
        (-0.43, 0.44, -0.02), (-0.68, 0.44, -0.01)],
    "J_regressor_coco_hip_smpl": [
        (0.0, 0.62, 0.125), (0.035, 0.65, 0.1), (-0.035, 0.65, 0.1), (0.105, 0.62, 0.02), (-0.105, 0.62, 0.02),
        (0.17, 0.44, -0.01), (-0.17, 0.44, -0.01), (0.43, 0.44, -0.02), (-0.43, 0.44, -0.02), (0.68, 0.44, -0.01),
        (-0.68, 0.44, -0.01), (0.09, -0.08, 0.0), (-0.09, -0.08, 0.0), (0.1, -0.48, 0.01), (-0.1, -0.48, 0.01),
        (0.1, -0.88, -0.02), (-0.1, -0.88, -0.02)],
}
VPOSER_SHAPES = {
    "bodyprior_enc_bn1.weight": (63,), "bodyprior_enc_bn1.bias": (63,), "bodyprior_enc_bn1.running_mean": (63,),
    "bodyprior_enc_bn1.running_var": (63,), "bodyprior_enc_bn1.num_batches_tracked": (),
    "bodyprior_enc_fc1.weight": (512, 63), "bodyprior_enc_fc1.bias": (512,),
    "bodyprior_enc_bn2.weight": (512,), "bodyprior_enc_bn2.bias": (512,), "bodyprior_enc_bn2.running_mean": (512,),
    "bodyprior_enc_bn2.running_var": (512,), "bodyprior_enc_bn2.num_batches_tracked": (),
    "bodyprior_enc_fc2.weight": (512, 512), "bodyprior_enc_fc2.bias": (512,),
    "bodyprior_enc_mu.weight": (32, 512), "bodyprior_enc_mu.bias": (32,),
    "bodyprior_enc_logvar.weight": (32, 512), "bodyprior_enc_logvar.bias": (32,),
    "bodyprior_dec_fc1.weight": (512, 32), "bodyprior_dec_fc1.bias": (512,),
    "bodyprior_dec_fc2.weight": (512, 512), "bodyprior_dec_fc2.bias": (512,),
    "bodyprior_dec_out.weight": (126, 512), "bodyprior_dec_out.bias": (126,),
}
SMPL_PICKLE_NAMES = {
    "neutral": "basicModel_neutral_lbs_10_207_0_v1.0.0.pkl",
    "male": "basicModel_m_lbs_10_207_0_v1.0.0.pkl",
    "female": "basicModel_f_lbs_10_207_0_v1.0.0.pkl",
}


def _nearest_rows(v: np.ndarray, targets: np.ndarray, k: int) -> np.ndarray:
    """(T, V) regressor averaging the k vertices nearest each target point (stable tie order)."""
    reg = np.zeros((len(targets), len(v)))
    for i, t in enumerate(np.asarray(targets, np.float64)):
        d = np.linalg.norm(v - t, axis=1)
        reg[i, np.argsort(d, kind="stable")[:k]] = 1.0 / k
    return reg


def _strip_faces(n: int) -> np.ndarray:
    """The fixtures' placeholder faces: a triangle strip over the vertex order (not a surface)."""
    k = np.arange(NUM_FACES)
    base = k // 2
    return np.where((k % 2 == 0)[:, None], np.stack([base, base + 1, base + 2], 1), np.stack([base + 1, base + 3, base + 2], 1)) % n


def _hull_faces(v: np.ndarray, num_groups: int, face_vertex_ids: list[int]) -> np.ndarray:
    """A renderable surface: the outward-oriented convex hull of each limb's vertex group, padded with
    degenerate triangles to SMPL's 13776 faces so the file keeps the official shape."""
    from scipy.spatial import ConvexHull

    groups = np.arange(len(v)) % num_groups
    groups[face_vertex_ids] = num_groups - 3  # the head sphere's group (leaf joint 15)
    tris = []
    for g in range(num_groups):
        idx = np.flatnonzero(groups == g)
        simplices = idx[ConvexHull(v[idx]).simplices]
        normals = np.cross(v[simplices[:, 1]] - v[simplices[:, 0]], v[simplices[:, 2]] - v[simplices[:, 0]])
        outward = np.einsum("fc,fc->f", normals, v[simplices].mean(1) - v[idx].mean(0)) >= 0
        tris.append(np.where(outward[:, None], simplices, simplices[:, ::-1]))
    faces = np.concatenate(tris)[:NUM_FACES]
    pad = np.repeat(faces[-1:, :1], 3, axis=1)
    return np.concatenate([faces, np.repeat(pad, NUM_FACES - len(faces), axis=0)])


def synth_smpl_arrays(
    gender: str = "neutral", seed: int | None = None, body_rules: dict | None = None, faces_kind: str = "hull"
) -> dict[str, np.ndarray]:
    """SMPL-format arrays of the procedural model (npz key names and dtypes of the golden fixtures).

    ``faces_kind='strip'`` gives the golden fixtures' placeholder faces; the default 'hull' gives a surface
    that renders as a body. Nothing else depends on the faces.
    """
    r = body_rules or DEFAULT_BODY_RULES
    seed = DEFAULT_SEEDS[gender] if seed is None else seed
    s = float(r["gender_scale"][gender])
    n = int(r["num_vertices"])
    parents = np.asarray(r["parents"])
    rng = np.random.default_rng(seed)
    u = rng.random(n)
    phi = 2 * np.pi * rng.random(n)
    rn = rng.standard_normal(n)
    dirs = rng.standard_normal((n, 3))
    a_mat = rng.standard_normal((10, 3, 3))
    sn = rng.standard_normal((n, 3, 10))
    pz = rng.standard_normal((n, 3, 9))

    joints = s * np.asarray(r["joints_tpose_neutral"], np.float64)
    v = np.zeros((n, 3))
    w = np.zeros((n, 24))
    owner = np.zeros(n, dtype=np.int64)
    jitter, slope = r["radius_jitter"], r["child_weight_slope"]
    for i in range(n):
        g = i % r["num_groups"]
        if g < 23:
            c = g + 1
            p = parents[c]
            bone = joints[c] - joints[p]
            d = bone / np.linalg.norm(bone)
            ref = np.array([0.0, 0.0, 1.0]) if abs(d[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
            e1 = np.cross(d, ref)
            e1 = e1 / np.linalg.norm(e1)
            e2 = np.cross(d, e1)
            t = u[i]
            rad = r["bone_radius_by_child_joint"][c] * s * (1 + jitter * rn[i])
            v[i] = joints[p] + t * bone + rad * (np.cos(phi[i]) * e1 + np.sin(phi[i]) * e2)
            w[i, p] = 1 - slope * t
            w[i, c] = slope * t
            owner[i] = p
        else:
            j = r["leaf_joints"][g - 23]
            rad = r["leaf_radius"][g - 23] * s * (1 + jitter * rn[i])
            v[i] = joints[j] + rad * dirs[i] / np.linalg.norm(dirs[i])
            w[i, j] = 1.0
            owner[i] = j
    for idx, pos in r["face_vertices"]:
        v[idx] = s * np.asarray(pos, np.float64)
        w[idx] = 0.0
        w[idx, 15] = 1.0
        owner[idx] = 15
    shapedirs = r["shapedirs_linear_scale"] * np.einsum("kab,vb->vak", a_mat, v - joints[0]) + r["shapedirs_noise_scale"] * sn
    posedirs = np.zeros((n, 3, 207))
    for i in range(n):
        o = owner[i]
        if o >= 1:
            posedirs[i, :, 9 * (o - 1) : 9 * o] = r["posedirs_scale"] * pz[i]
    j_reg = _nearest_rows(v, joints, int(r["k_nearest"]))
    faces = _strip_faces(n) if faces_kind == "strip" else _hull_faces(v, int(r["num_groups"]), list(dict(r["face_vertices"])))
    kintree = np.stack([np.where(parents < 0, 4294967295, parents), np.arange(24)]).astype(np.uint32)
    return {
        "v_template": v.astype(np.float32), "shapedirs": shapedirs.astype(np.float32), "posedirs": posedirs.astype(np.float32),
        "J_regressor": j_reg.astype(np.float32), "weights": w.astype(np.float32), "kintree_table": kintree,
        "f": faces.astype(np.int32),
    }


def synth_regressors(v_template_neutral: np.ndarray, targets: dict | None = None, k: int = 32) -> dict[str, np.ndarray]:
    """The three auxiliary regressors (float64, as the official .npy files), from the neutral template."""
    targets = targets or REGRESSOR_TARGETS
    v = np.asarray(v_template_neutral, np.float64)
    return {name: _nearest_rows(v, np.asarray(t, np.float64), k) for name, t in targets.items()}


def synth_vposer_state_dict(salt: str = "") -> dict[str, torch.Tensor]:
    """A full VPoser v1 state dict by the fixtures' weight rule; decoded poses are small rotations."""
    vsalt = salt + "vposer/"
    state = rule_state_dict(VPOSER_SHAPES, vsalt)
    state["bodyprior_dec_out.weight"] = rule_array("bodyprior_dec_out.weight", (126, 512), vsalt, gain=0.3)
    bias = np.tile([1.0, 0.0, 0.0, 1.0, 0.0, 0.0], 21) + 0.01 * rule_normal("bodyprior_dec_out.bias", 126, vsalt)
    state["bodyprior_dec_out.bias"] = bias.astype(np.float32)
    return {k: torch.from_numpy(np.asarray(v)) for k, v in state.items()}


def smpl_pickle_dict(arrays: dict[str, np.ndarray]) -> dict:
    """The official pickle's content for npz-style arrays (sparse regressor, int64 kintree, uint32 faces)."""
    return {
        "v_template": arrays["v_template"], "shapedirs": arrays["shapedirs"], "posedirs": arrays["posedirs"],
        "J_regressor": scipy.sparse.csc_matrix(arrays["J_regressor"].astype(np.float64)),
        "weights": arrays["weights"], "kintree_table": arrays["kintree_table"].astype(np.int64),
        "f": arrays["f"].astype(np.uint32),
        "J": arrays["J_regressor"].astype(np.float64) @ arrays["v_template"].astype(np.float64),
        "bs_type": "lrotmin", "bs_style": "lbs",
    }


def write_body_model_dir(out: str | Path, salt: str = "", seeds: dict[str, int] | None = None, overwrite: bool = False) -> Path:
    """Write the procedural model in the standard body-model folder layout (see the README)."""
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise Hap3dError(f"{out} exists and is not empty; pass overwrite=True (CLI: --overwrite) to replace its files")
    seeds = seeds or DEFAULT_SEEDS
    arrays = {g: synth_smpl_arrays(g, seeds[g]) for g in SMPL_PICKLE_NAMES}
    for g, name in SMPL_PICKLE_NAMES.items():
        payload = pickle.dumps(smpl_pickle_dict(arrays[g]), protocol=2)
        atomic_write(out / "smpl" / name, lambda p, b=payload: Path(p).write_bytes(b))
    for name, reg in synth_regressors(arrays["neutral"]["v_template"]).items():
        atomic_write(out / f"{name}.npy", lambda p, a=reg: np.save(open(p, "wb"), a))
    state = synth_vposer_state_dict(salt)
    atomic_write(out / "vposer" / "snapshots" / "TR00_E096.pt", lambda p: torch.save(state, p))
    ini = configparser.ConfigParser()
    ini["All"] = {"num_neurons": "512", "latentD": "32", "data_shape": "[1, 21, 3]"}

    def write_ini(p: str) -> None:
        with open(p, "w") as f:
            f.write("# procedural VPoser v1 stand-in written by hap3d (not the licensed VPoser)\n")
            ini.write(f)

    atomic_write(out / "vposer" / "TR00_004_00_WO_accad.ini", write_ini)
    readme = (
        "Procedural body model written by `hap3d body synth`. It is NOT the SMPL model and NOT VPoser: a\n"
        "deterministic, roughly human-shaped stand-in in exactly their file formats, so hap3d runs without\n"
        "licensed files. For real results replace smpl/*.pkl with the official SMPL files, the J_regressor_*.npy\n"
        "with the SPIN / 3DCrowdNet ones, and vposer/ with the official vposer_v1_0 folder.\n"
    )
    atomic_write(out / "README.txt", lambda p: Path(p).write_text(readme))
    return out
