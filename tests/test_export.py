"""Mesh and parameter export: files reload in trimesh/numpy with the right content, writes are atomic."""

from __future__ import annotations

import json

import numpy as np
import pytest
import trimesh

from hap3d.infer.export import (
    load_person_json,
    save_glb,
    save_obj,
    save_person_json,
    save_person_npz,
    save_ply,
)


@pytest.fixture()
def mesh() -> tuple[np.ndarray, np.ndarray]:
    """An icosphere stretched like a standing person, 5 m in front of an OpenCV camera (head at -y)."""
    m = trimesh.creation.icosphere(subdivisions=3)
    v = np.asarray(m.vertices) * (0.3, 0.9, 0.2) + (0.1, -0.2, 5.0)
    return v.astype(np.float32), np.asarray(m.faces, dtype=np.int64)


def record() -> dict[str, np.ndarray]:
    """The demo's per-person fields, plus a boolean array."""
    rng = np.random.default_rng(1)
    return {
        "person_index": np.array(3),
        "bbox": np.array([10.5, 20.25, 300.0, 400.0]),
        "vertices": rng.normal(size=(6890, 3)).astype(np.float32),
        "joints3d": rng.normal(size=(30, 3)).astype(np.float32),
        "joints2d": rng.normal(size=(30, 2)).astype(np.float32) * 100,
        "smpl_pose": rng.normal(size=72).astype(np.float32),
        "smpl_shape": rng.normal(size=10).astype(np.float32),
        "cam_trans": np.array([0.1, -0.2, 12.5]),
        "focal": np.array(5000.0),
        "princpt": np.array([160.5, 220.25]),
        "input_keypoints": rng.uniform(0, 300, size=(17, 3)),
        "joint_score": rng.uniform(size=15).astype(np.float32),
        "valid": np.array([True, False]),
    }


def no_temp_files(folder) -> bool:
    return not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_obj_has_plain_one_based_faces_and_reloads(tmp_path, mesh):
    v, f = mesh
    path = tmp_path / "person.obj"
    save_obj(path, v, f)
    face_lines = [line for line in path.read_text().splitlines() if line.startswith("f ")]
    assert len(face_lines) == len(f) and "/" not in "".join(face_lines)
    assert face_lines[0] == "f {} {} {}".format(*(f[0] + 1))
    m = trimesh.load(path, process=False)
    assert len(m.vertices) == len(v) and len(m.faces) == len(f)
    np.testing.assert_allclose(m.vertices, v, atol=1e-6)
    np.testing.assert_array_equal(m.faces, f)
    assert no_temp_files(tmp_path)


def test_ply_reloads(tmp_path, mesh):
    v, f = mesh
    save_ply(tmp_path / "person.ply", v, f)
    m = trimesh.load(tmp_path / "person.ply", process=False)
    assert len(m.vertices) == len(v) and len(m.faces) == len(f)
    np.testing.assert_allclose(m.vertices, v, atol=1e-6)
    np.testing.assert_array_equal(m.faces, f)


def test_glb_is_upright_y_up_with_its_colour(tmp_path, mesh):
    v, f = mesh
    save_glb(tmp_path / "person.glb", v, f, colour=(1.0, 0.5, 0.0))
    scene = trimesh.load(tmp_path / "person.glb", process=False)
    (m,) = scene.geometry.values()
    assert len(m.vertices) == len(v) and len(m.faces) == len(f)
    np.testing.assert_allclose(m.vertices, v * (1, -1, -1), atol=1e-6)  # 180 deg about x
    np.testing.assert_array_equal(m.faces, f)
    # The OpenCV head (most negative y) is the glTF top (most positive y); the person is in front (-z) of a viewer.
    assert np.argmax(m.vertices[:, 1]) == np.argmin(v[:, 1]) and m.vertices[:, 2].max() < 0
    np.testing.assert_allclose(np.asarray(m.visual.material.baseColorFactor[:3]) / 255, (1.0, 0.5, 0.0), atol=0.01)


def test_mesh_exports_reject_bad_input(tmp_path, mesh):
    v, f = mesh
    with pytest.raises(ValueError, match="face indices"):
        save_obj(tmp_path / "bad.obj", v, f + len(v))
    with pytest.raises(ValueError, match=r"\(V, 3\)"):
        save_ply(tmp_path / "bad.ply", v[:, :2], f)
    assert not list(tmp_path.iterdir())


def test_npz_round_trips_exactly(tmp_path):
    rec = record()
    save_person_npz(tmp_path / "person.npz", rec)
    with np.load(tmp_path / "person.npz") as data:
        assert set(data.files) == set(rec)
        for key, arr in rec.items():
            assert data[key].shape == arr.shape and data[key].dtype == arr.dtype
            np.testing.assert_array_equal(data[key], arr)
    assert no_temp_files(tmp_path)


def test_json_round_trips_keys_shapes_and_rounded_values(tmp_path):
    rec = record()
    rec["cam_trans"] = np.array([0.1, np.nan, np.inf])
    save_person_json(tmp_path / "person.json", rec)
    raw = json.loads((tmp_path / "person.json").read_text())  # strict JSON: no NaN/Infinity tokens
    assert raw["cam_trans"] == [0.1, None, None] and raw["valid"] == [True, False] and raw["person_index"] == 3
    assert raw["bbox"] == [10.5, 20.25, 300.0, 400.0]
    assert all(len(repr(x)) <= 10 for x in raw["smpl_shape"])  # rounded, no float32 noise like 0.12345699965953827
    back = load_person_json(tmp_path / "person.json")
    assert set(back) == set(rec)
    rec["cam_trans"] = np.array([0.1, np.nan, np.nan])  # every non-finite number comes back as NaN
    for key, arr in rec.items():
        assert back[key].shape == arr.shape, key
        np.testing.assert_allclose(back[key], arr, atol=1e-6, equal_nan=True)
    assert back["valid"].dtype == bool and back["person_index"].dtype.kind == "i"


def test_records_must_be_numeric(tmp_path):
    with pytest.raises(ValueError, match="numeric"):
        save_person_json(tmp_path / "p.json", {"name": np.array(["a"])})
    with pytest.raises(ValueError, match="numeric"):
        save_person_npz(tmp_path / "p.npz", {"obj": np.array([{}], dtype=object)})


def test_written_files_get_the_umask_mode_not_mkstemps_0600(tmp_path, mesh):
    """Atomic writes go through mkstemp (0600); shared run and data folders need the usual 0666 & ~umask."""
    import os
    import stat

    old = os.umask(0o022)
    try:
        save_obj(tmp_path / "a.obj", *mesh)
        assert stat.S_IMODE((tmp_path / "a.obj").stat().st_mode) == 0o644
        os.umask(0o002)
        save_obj(tmp_path / "b.obj", *mesh)
        assert stat.S_IMODE((tmp_path / "b.obj").stat().st_mode) == 0o664
        (tmp_path / "a.obj").chmod(0o640)  # a replaced file keeps the mode its owner gave it
        save_obj(tmp_path / "a.obj", *mesh)
        assert stat.S_IMODE((tmp_path / "a.obj").stat().st_mode) == 0o640
    finally:
        os.umask(old)
