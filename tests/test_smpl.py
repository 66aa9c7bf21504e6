"""SMPL files (pickles without chumpy, npz) and the LBS forward against a direct numpy implementation."""

from __future__ import annotations

import os
import pickle
import sys
import types

import numpy as np
import pytest
import scipy.sparse
import torch

from hap3d.body.smpl import SMPL, find_smpl_file, load_pickle_restricted, load_smpl_arrays
from hap3d.utils import Hap3dError

from golden import golden_dir


@pytest.fixture(scope="module")
def arrays():
    return load_smpl_arrays(golden_dir() / "body" / "smpl_neutral.npz")


def _fake_chumpy_module():
    mod = types.ModuleType("chumpy.ch")

    class Ch:  # what chumpy arrays look like to pickle: a class whose state holds the array in 'x'
        def __init__(self, x):
            self.x = x

    Ch.__module__ = "chumpy.ch"
    Ch.__qualname__ = "Ch"
    mod.Ch = Ch
    return mod


def write_chumpy_style_pickle(path, arrays, sparse=scipy.sparse.csc_matrix) -> None:
    """An SMPL pickle as the official files are: chumpy arrays, a scipy.sparse regressor (CSC in the official
    files; other formats are what current scipy writes when someone re-saves one), latin1-safe."""
    mod = _fake_chumpy_module()
    pkg = types.ModuleType("chumpy")
    saved = {k: sys.modules.get(k) for k in ("chumpy", "chumpy.ch")}
    sys.modules["chumpy"], sys.modules["chumpy.ch"] = pkg, mod
    try:
        data = {
            "v_template": mod.Ch(arrays["v_template"].astype(np.float64)),
            "shapedirs": mod.Ch(arrays["shapedirs"].astype(np.float64)),
            "posedirs": arrays["posedirs"].astype(np.float64),
            "J_regressor": sparse(arrays["J_regressor"].astype(np.float64)),
            "weights": mod.Ch(arrays["weights"].astype(np.float64)),
            "f": arrays["faces"].astype(np.uint32),
            "kintree_table": np.stack(
                [np.where(arrays["parents"] < 0, 4294967295, arrays["parents"]), np.arange(24)]
            ).astype(np.int64),
            "bs_type": "lrotmin",
        }
        path.write_bytes(pickle.dumps(data, protocol=2))
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


def test_chumpy_style_pickle_loads_without_chumpy(tmp_path, arrays):
    path = tmp_path / "basicModel_neutral_lbs_10_207_0_v1.0.0.pkl"
    write_chumpy_style_pickle(path, arrays)
    assert "chumpy" not in sys.modules
    loaded = load_smpl_arrays(path)
    for k, v in arrays.items():
        np.testing.assert_allclose(loaded[k], v, rtol=0, atol=1e-7 if v.dtype.kind == "f" else 0)


@pytest.mark.parametrize("sparse", ["csr_matrix", "coo_matrix", "csc_array", "csr_array", "coo_array"])
def test_regressor_in_any_scipy_sparse_format_loads(tmp_path, arrays, sparse):
    path = tmp_path / "SMPL_NEUTRAL.pkl"
    write_chumpy_style_pickle(path, arrays, getattr(scipy.sparse, sparse))
    np.testing.assert_allclose(load_smpl_arrays(path)["J_regressor"], arrays["J_regressor"], rtol=0, atol=1e-7)


def test_coo_duplicates_add_up_and_bad_sparse_content_is_named(tmp_path, arrays):
    dense = arrays["J_regressor"].astype(np.float64)
    r, c = np.nonzero(dense)
    half = dense[r, c] / 2  # every entry stored twice, as halves: scipy sums duplicates
    entries = (np.concatenate([half, half]), (np.concatenate([r, r]), np.concatenate([c, c])))
    dup = scipy.sparse.coo_matrix(entries, dense.shape)
    path = tmp_path / "SMPL_NEUTRAL.pkl"
    write_chumpy_style_pickle(path, arrays, lambda _: dup)
    np.testing.assert_allclose(load_smpl_arrays(path)["J_regressor"], dense, rtol=0, atol=1e-7)

    bad = scipy.sparse.csr_matrix(dense)
    bad.indices[3] = 10**6  # outside the 6890 columns
    write_chumpy_style_pickle(path, arrays, lambda _: bad)
    with pytest.raises(Hap3dError, match=r"SMPL_NEUTRAL\.pkl: field 'J_regressor'.*outside its shape"):
        load_smpl_arrays(path)


def test_fewer_betas_than_the_model_has(arrays):
    smpl = SMPL(arrays)
    betas = torch.tensor([[0.5, -1.0, 0.3]])
    padded = torch.cat([betas, torch.zeros(1, 7)], dim=1)
    pose = 0.2 * torch.ones(1, 72)
    torch.testing.assert_close(smpl(pose, betas).vertices, smpl(pose, padded).vertices)
    with pytest.raises(ValueError, match="betas"):
        smpl(pose, torch.zeros(1, 10, 2))


def test_golden_gzipped_pickle_equals_npz(arrays):
    loaded = load_smpl_arrays(golden_dir() / "body" / "basicModel_neutral_lbs_10_207_0_v1.0.0.pkl.gz")
    for k, v in arrays.items():
        np.testing.assert_array_equal(loaded[k], v)


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_pickle_that_runs_code_is_refused(tmp_path):
    path = tmp_path / "SMPL_NEUTRAL.pkl"
    path.write_bytes(pickle.dumps({"v_template": _Evil()}, protocol=2))
    with pytest.raises(Hap3dError, match="refusing to load 'posix.system'|refusing to load 'os.system'"):
        load_smpl_arrays(path)
    with pytest.raises(pickle.UnpicklingError):
        load_pickle_restricted(pickle.dumps(_Evil()))


def test_missing_file_and_wrong_content_errors(tmp_path):
    with pytest.raises(Hap3dError, match="(?s)not found.*smpl.is.tue.mpg.de"):
        load_smpl_arrays(tmp_path / "SMPL_NEUTRAL.pkl")
    bad = tmp_path / "SMPL_MALE.pkl"
    bad.write_bytes(pickle.dumps({"weights": np.zeros(3)}, protocol=2))
    with pytest.raises(Hap3dError, match="missing keys"):
        load_smpl_arrays(bad)
    with pytest.raises(Hap3dError, match="no neutral SMPL model found"):
        find_smpl_file(tmp_path, "neutral")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(Hap3dError, match="cannot be read"):
        load_smpl_arrays(tmp_path / "junk.npz")


def test_wrong_shapes_are_reported(tmp_path, arrays):
    bad = dict(arrays)
    bad["posedirs"] = arrays["posedirs"][..., :100]
    path = tmp_path / "smpl_neutral.npz"
    np.savez(path, f=bad.pop("faces"), kintree_table=np.stack([bad["parents"], np.arange(24)]),
             **{k: v for k, v in bad.items() if k != "parents"})
    with pytest.raises(Hap3dError, match="posedirs"):
        load_smpl_arrays(path)


def numpy_lbs(a: dict, pose: np.ndarray, betas: np.ndarray, trans: np.ndarray) -> np.ndarray:
    """Textbook SMPL in float64 with exact Rodrigues, one sample at a time."""
    from scipy.spatial.transform import Rotation

    v_shaped = a["v_template"] + a["shapedirs"] @ betas
    j = a["J_regressor"] @ v_shaped
    rots = Rotation.from_rotvec(pose.reshape(24, 3)).as_matrix()
    v_posed = v_shaped + a["posedirs"] @ (rots[1:] - np.eye(3)).reshape(-1)
    world = [None] * 24
    for i in range(24):
        local = np.eye(4)
        local[:3, :3] = rots[i]
        p = a["parents"][i]
        local[:3, 3] = j[i] - (j[p] if p >= 0 else 0)
        world[i] = local if p < 0 else world[p] @ local
    skin = np.stack(world)
    skin[:, :3, 3] -= np.einsum("jrc,jc->jr", skin[:, :3, :3], j)
    t = np.einsum("vj,jrc->vrc", a["weights"], skin)
    return np.einsum("vrc,vc->vr", t[:, :3, :3], v_posed) + t[:, :3, 3] + trans


def test_lbs_matches_numpy(arrays):
    rng = np.random.default_rng(0)
    pose = 0.4 * rng.standard_normal((3, 72))
    betas = rng.standard_normal((3, 10))
    trans = rng.standard_normal((3, 3))
    a64 = {k: v.astype(np.float64) if v.dtype.kind == "f" else v for k, v in arrays.items()}
    smpl = SMPL(arrays).double()
    out = smpl(torch.from_numpy(pose), torch.from_numpy(betas), torch.from_numpy(trans))
    for i in range(3):
        np.testing.assert_allclose(out.vertices[i].numpy(), numpy_lbs(a64, pose[i], betas[i], trans[i]), atol=1e-7)


def test_lbs_zero_pose_is_template_and_float32_close(arrays):
    smpl = SMPL(arrays)
    out = smpl(torch.zeros(2, 72), torch.zeros(2, 10))
    template = torch.from_numpy(arrays["v_template"]).expand(2, -1, -1)
    torch.testing.assert_close(out.vertices, template, atol=2e-6, rtol=0)
    j = torch.from_numpy(arrays["J_regressor"] @ arrays["v_template"])
    torch.testing.assert_close(out.joints[0], j, atol=2e-6, rtol=0)
