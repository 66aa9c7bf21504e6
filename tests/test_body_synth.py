"""The procedural body model equals the golden fixtures' synthetic SMPL files and is written in the official forms.

Seeds, salt and tables come from the golden directory (HAP3D_GOLDEN), never from this file.
"""

from __future__ import annotations

import configparser
import gzip
import json
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse
import torch

from hap3d.synth.body import (
    BODY_RULES,
    REGRESSOR_TARGETS,
    SMPL_PICKLE_NAMES,
    VPOSER_RULES,
    VPOSER_SHAPES,
    synth_regressors,
    synth_smpl_arrays,
    synth_vposer_state_dict,
    write_body_model_dir,
)
from hap3d.utils import Hap3dError

GENDERS = ("neutral", "male", "female")
PKL_TAG = {"neutral": "neutral", "male": "m", "female": "f"}
REGRESSORS = ("J_regressor_extra", "J_regressor_h36m_correct", "J_regressor_coco_hip_smpl")


def _golden_dir() -> Path:
    default = Path(__file__).resolve().parents[1].parent / "shared" / "golden"
    d = Path(os.environ.get("HAP3D_GOLDEN", default))
    if not (d / "manifest.json").is_file():
        pytest.fail(f"golden fixtures not found at {d} (set HAP3D_GOLDEN)")
    return d


@pytest.fixture(scope="module")
def golden() -> Path:
    return _golden_dir()


@pytest.fixture(scope="module")
def params(golden) -> dict:
    return json.loads((golden / "manifest.json").read_text())["params"]


@pytest.fixture(scope="module")
def rules(golden) -> dict:
    return json.loads((golden / "rules.json").read_text())


@pytest.fixture(scope="module")
def vposer_keys(golden) -> list[dict]:
    return json.loads((golden / "keys.json").read_text())["vposer_state_dict"]


@pytest.fixture(scope="module")
def generated(params, rules) -> dict[str, dict[str, np.ndarray]]:
    return {g: synth_smpl_arrays(g, params["body_seeds"][g], rules["body"]) for g in GENDERS}


@pytest.fixture(scope="module")
def written(tmp_path_factory, params, rules) -> Path:
    return write_body_model_dir(
        tmp_path_factory.mktemp("synth") / "body_model",
        salt=params["weight_salt"],
        seeds=params["body_seeds"],
        body_rules=rules["body"],
        regressor_targets=rules["regressor_targets_neutral"],
        weight_rules=rules["weights"],
        surface=False,
    )


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def _assert_float_close(ours: np.ndarray, ref: np.ndarray, name: str) -> None:
    """A few float32 ulps: the fixtures allow last-bit differences from another operation order."""
    assert ours.dtype == ref.dtype and ours.shape == ref.shape, (name, ours.dtype, ref.dtype, ours.shape, ref.shape)
    err = np.abs(ours.astype(np.float64) - ref.astype(np.float64)).max()
    assert err <= 1e-6 * max(np.abs(ref).max(), 1e-12), f"{name}: max|diff| {err:.3g}"


def test_default_tables_equal_golden_rules(params, rules, vposer_keys):
    """The built-in defaults (used when no golden directory exists) are the fixtures' tables."""
    assert json.loads(json.dumps(BODY_RULES)) == rules["body"]
    assert json.loads(json.dumps(REGRESSOR_TARGETS)) == rules["regressor_targets_neutral"]
    assert VPOSER_RULES == {k: rules["weights"][k] for k in VPOSER_RULES}
    assert [(k, list(s)) for k, s in VPOSER_SHAPES.items()] == [(e["key"], e["shape"]) for e in vposer_keys]


@pytest.mark.parametrize("gender", GENDERS)
def test_arrays_equal_golden(generated, golden, gender):
    ref = _load_npz(golden / "body" / f"smpl_{gender}.npz")
    ours = generated[gender]
    assert set(ours) == set(ref)
    for key, value in ref.items():
        if value.dtype.kind == "f":
            _assert_float_close(ours[key], value, f"{gender}/{key}")
        else:
            assert ours[key].dtype == value.dtype, key
            np.testing.assert_array_equal(ours[key], value, err_msg=key)


def test_model_invariants(generated):
    a = generated["neutral"]
    np.testing.assert_allclose(a["weights"].sum(1), 1, atol=1e-6)
    np.testing.assert_allclose(a["J_regressor"].sum(1), 1, atol=1e-6)
    assert (a["weights"] >= 0).all() and (a["J_regressor"] >= 0).all()
    assert a["f"].min() >= 0 and a["f"].max() < len(a["v_template"])
    assert a["kintree_table"][0, 0] == np.iinfo(np.uint32).max
    np.testing.assert_array_equal(a["kintree_table"][1], np.arange(24))


def test_regressors_equal_golden(generated, golden, rules):
    ref = _load_npz(golden / "body" / "regressors.npz")
    ours = synth_regressors(generated["neutral"]["v_template"], rules["regressor_targets_neutral"],
                            rules["body"]["k_nearest"])
    assert set(ours) == set(ref) == set(REGRESSORS)
    for key, value in ref.items():
        assert ours[key].dtype == np.float64 == value.dtype, key
        np.testing.assert_array_equal(ours[key], value, err_msg=key)


def test_vposer_equals_golden(golden, params, rules, vposer_keys):
    ours = synth_vposer_state_dict(params["weight_salt"], weight_rules=rules["weights"])
    assert [(k, list(v.shape)) for k, v in ours.items()] == [(e["key"], e["shape"]) for e in vposer_keys]
    for key, value in _load_npz(golden / "vposer_decoder.npz").items():
        _assert_float_close(ours[key].numpy(), value, key)
    assert ours["bodyprior_enc_bn1.num_batches_tracked"].dtype == torch.int64


@pytest.mark.parametrize("gender", GENDERS)
def test_written_pickle_equals_golden(written, golden, gender):
    name = f"basicModel_{PKL_TAG[gender]}_lbs_10_207_0_v1.0.0.pkl"
    with open(written / "smpl" / name, "rb") as f:
        ours = pickle.load(f, encoding="latin1")
    ref = pickle.loads(gzip.decompress((golden / "body" / f"{name}.gz").read_bytes()), encoding="latin1")
    assert type(ours) is dict and list(ours) == list(ref)
    for key, value in ref.items():
        mine = ours[key]
        if isinstance(value, str):
            assert mine == value, key
        elif scipy.sparse.issparse(value):
            assert isinstance(mine, scipy.sparse.csc_matrix) and mine.dtype == value.dtype == np.float64
            np.testing.assert_array_equal(mine.toarray(), value.toarray())
        elif value.dtype.kind == "f":
            _assert_float_close(mine, value, f"{gender}/{key}")
        else:
            assert mine.dtype == value.dtype, key
            np.testing.assert_array_equal(mine, value, err_msg=key)


def test_written_folder_layout(written, params, rules):
    expected = {f"smpl/basicModel_{t}_lbs_10_207_0_v1.0.0.pkl" for t in PKL_TAG.values()}
    expected |= {f"{k}.npy" for k in REGRESSORS}
    expected |= {"vposer/snapshots/TR00_E096.pt", "vposer/TR00_004_00_WO_accad.ini", "README.txt"}
    assert {p.relative_to(written).as_posix() for p in written.rglob("*") if p.is_file()} == expected

    for key in REGRESSORS:
        assert np.load(written / f"{key}.npy", allow_pickle=False).dtype == np.float64

    state = torch.load(written / "vposer" / "snapshots" / "TR00_E096.pt", weights_only=True)
    expected_state = synth_vposer_state_dict(params["weight_salt"], weight_rules=rules["weights"])
    assert type(state) is dict and list(state) == list(expected_state)
    for key, value in expected_state.items():
        torch.testing.assert_close(state[key], value, rtol=0, atol=0)

    text = (written / "vposer" / "TR00_004_00_WO_accad.ini").read_text()
    ini = configparser.ConfigParser()
    ini.read_string(text)
    assert dict(ini["All"]) == {"num_neurons": "512", "latentd": "32", "data_shape": "[1, 21, 3]"}
    assert text.startswith("#") and "procedural" in text.lower()
    readme = (written / "README.txt").read_text()
    assert "NOT the SMPL" in readme and "deterministic" in readme


def test_refuses_to_overwrite_non_empty_dir(tmp_path):
    out = tmp_path / "occupied"
    out.mkdir()
    (out / "keep.txt").write_text("user data")
    with pytest.raises(Hap3dError, match="not empty"):
        write_body_model_dir(out)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    write_body_model_dir(out, overwrite=True)
    assert (out / "keep.txt").read_text() == "user data"
    assert (out / "smpl" / "basicModel_neutral_lbs_10_207_0_v1.0.0.pkl").is_file()


def test_empty_existing_dir_is_accepted(tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    assert write_body_model_dir(out) == out
    assert not list(out.rglob(".*.tmp")), "atomic writes must leave no temporary files"


def test_writing_is_byte_deterministic(tmp_path):
    """Two runs give identical files, the VPoser snapshot included (a zip whose inner folder torch.save would name
    after the temporary file it writes to)."""
    first, second = write_body_model_dir(tmp_path / "a"), write_body_model_dir(tmp_path / "b")
    files = sorted(p.relative_to(first).as_posix() for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(second).as_posix() for p in second.rglob("*") if p.is_file())
    for rel in files:
        assert (first / rel).read_bytes() == (second / rel).read_bytes(), rel
    with zipfile.ZipFile(first / "vposer" / "snapshots" / "TR00_E096.pt") as snapshot:
        assert {name.split("/")[0] for name in snapshot.namelist()} == {"archive"}


def test_default_folder_has_a_renderable_surface(tmp_path):
    import trimesh

    from hap3d.body.smpl import load_smpl_arrays

    out = write_body_model_dir(tmp_path / "body")
    arrays = load_smpl_arrays(out / "smpl" / SMPL_PICKLE_NAMES["neutral"])
    assert arrays["faces"].shape == (13776, 3)
    mesh = trimesh.Trimesh(arrays["v_template"], arrays["faces"], process=True)
    assert mesh.area > 1.0 and mesh.volume > 0.01  # roughly a person: ~2 m^2 of skin, tens of litres
