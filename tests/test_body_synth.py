"""The procedural body model equals the golden fixtures' synthetic SMPL files, and is written in every official form."""

from __future__ import annotations

import gzip
import pickle

import numpy as np
import pytest
import scipy.sparse
import torch

from hap3d.body.smpl import load_smpl_arrays
from hap3d.body.synth import DEFAULT_BODY_RULES, synth_regressors, synth_smpl_arrays, synth_vposer_state_dict, write_body_model_dir
from hap3d.body.vposer import load_vposer_decoder_state
from hap3d.utils import Hap3dError

from golden import golden_dir, keys, npz, params, rules

GENDERS = ("neutral", "male", "female")


@pytest.fixture(scope="module")
def generated():
    r = dict(DEFAULT_BODY_RULES) | rules()["body"]
    return {g: synth_smpl_arrays(g, params()["body_seeds"][g], r, faces_kind="strip") for g in GENDERS}


@pytest.mark.parametrize("gender", GENDERS)
def test_arrays_equal_golden(generated, gender):
    ref = npz(f"body/smpl_{gender}.npz")
    ours = generated[gender]
    assert set(ours) == set(ref)
    for k, v in ref.items():
        assert ours[k].dtype == v.dtype and ours[k].shape == v.shape, k
        if v.dtype.kind == "f":
            assert np.abs(ours[k] - v).max() <= 1e-6 * max(np.abs(v).max(), 1e-12), k
        else:
            np.testing.assert_array_equal(ours[k], v)


def test_regressors_equal_golden(generated):
    ref = npz("body/regressors.npz")
    ours = synth_regressors(generated["neutral"]["v_template"], rules()["regressor_targets_neutral"])
    for k, v in ref.items():
        assert ours[k].dtype == np.float64
        np.testing.assert_array_equal(ours[k], v)


def test_vposer_equals_golden():
    ours = synth_vposer_state_dict(params()["weight_salt"])
    assert {k: list(v.shape) for k, v in ours.items()} == {e["key"]: e["shape"] for e in keys()["vposer_state_dict"]}
    for k, v in npz("vposer_decoder.npz").items():
        np.testing.assert_allclose(ours[k].numpy(), v, rtol=0, atol=1e-7)


def test_written_folder_matches_official_forms(tmp_path):
    out = write_body_model_dir(tmp_path / "body")
    for g, name in (("neutral", "neutral"), ("male", "m"), ("female", "f")):
        ours = pickle.loads((out / "smpl" / f"basicModel_{name}_lbs_10_207_0_v1.0.0.pkl").read_bytes(), encoding="latin1")
        ref = pickle.loads(gzip.decompress((golden_dir() / "body" / f"basicModel_{name}_lbs_10_207_0_v1.0.0.pkl.gz").read_bytes()), encoding="latin1")
        assert set(ours) == set(ref)
        assert isinstance(ours["J_regressor"], scipy.sparse.csc_matrix)
        for k in ("v_template", "shapedirs", "weights", "kintree_table"):
            assert ours[k].dtype == ref[k].dtype and np.allclose(ours[k], ref[k], atol=1e-6), (g, k)
        loaded = load_smpl_arrays(out / "smpl" / f"basicModel_{name}_lbs_10_207_0_v1.0.0.pkl")
        assert loaded["faces"].shape == (13776, 3) and ours["f"].dtype == ref["f"].dtype
    for k in ("J_regressor_extra", "J_regressor_h36m_correct", "J_regressor_coco_hip_smpl"):
        assert np.load(out / f"{k}.npy").dtype == np.float64
    assert set(load_vposer_decoder_state(out / "vposer")) == {f"bodyprior_dec_{n}.{p}" for n in ("fc1", "fc2", "out") for p in ("weight", "bias")}
    assert (out / "vposer" / "TR00_004_00_WO_accad.ini").is_file() and "NOT the SMPL" in (out / "README.txt").read_text()
    with pytest.raises(Hap3dError, match="not empty"):
        write_body_model_dir(out)
    write_body_model_dir(out, overwrite=True)
    torch.testing.assert_close(torch.load(out / "vposer" / "snapshots" / "TR00_E096.pt", weights_only=True)["bodyprior_dec_fc1.bias"],
                               synth_vposer_state_dict()["bodyprior_dec_fc1.bias"])


def test_hull_faces_make_a_closed_outward_surface(generated):
    import trimesh

    arrays = synth_smpl_arrays("neutral")
    assert arrays["f"].shape == (13776, 3) and arrays["f"].max() < 6890
    np.testing.assert_array_equal(arrays["v_template"], generated["neutral"]["v_template"])
    mesh = trimesh.Trimesh(arrays["v_template"], arrays["f"], process=True)
    assert mesh.area > 1.0 and mesh.volume > 0.01  # roughly a person: ~2 m^2 of skin, tens of litres
