"""Hostile files read by the program: SMPL models, VPoser snapshots, checkpoints and training states.

Every reader checks type, shape, range and finiteness before use and names the file and the field; sizes a file
claims are checked before anything is allocated. Command-line cases run in a subprocess (a crash fails the test)
under an address-space limit where memory is the point."""

from __future__ import annotations

import gzip
import io
import json
import os
import pickle
import resource
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import scipy.sparse
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from hap3d.body import smpl as smpl_module
from hap3d.body.smpl import load_smpl_arrays
from hap3d.body.vposer import load_vposer_decoder_state
from hap3d.config import ModelConfig, to_dict
from hap3d.engine.state import TrainState
from hap3d.model import build_model
from hap3d.model.checkpoint import CheckpointError, infer_model_config, read_checkpoint, save_model_checkpoint
from hap3d.utils import Hap3dError

from conftest import TINY_VIT
from golden import golden_dir, npz

MEMORY_LIMIT = 3 << 30  # the child's address space: torch fits, an unchecked huge allocation does not


# ------------------------------------------------------------------------------------------------ helpers


@pytest.fixture(scope="module")
def arrays() -> dict[str, np.ndarray]:
    return load_smpl_arrays(golden_dir() / "body" / "smpl_neutral.npz")


def _kintree(parents: np.ndarray) -> np.ndarray:
    return np.stack([np.where(parents < 0, 4294967295, parents), np.arange(len(parents))]).astype(np.int64)


def _smpl_fields(arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """The fields of an SMPL file, as the official pickles name them."""
    out: dict[str, Any] = {k: arrays[k].astype(np.float64) for k in
                           ("v_template", "shapedirs", "posedirs", "J_regressor", "weights")}
    out["f"] = arrays["faces"].astype(np.uint32)
    out["kintree_table"] = _kintree(arrays["parents"])
    return out


def _write_pickle(path: Path, fields: dict[str, Any]) -> Path:
    data = pickle.dumps(fields, protocol=2)
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def _with(key: str, make: Callable[[dict[str, Any]], Any]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def mutate(fields: dict[str, Any]) -> dict[str, Any]:
        fields = dict(fields)
        fields[key] = make(fields)
        return fields

    return mutate


def _set_at(key: str, index: tuple, value: float) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def make(fields: dict[str, Any]) -> np.ndarray:
        arr = np.array(fields[key])
        arr[index] = value
        return arr

    return _with(key, make)


def _parents(change: dict[int, int]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def make(fields: dict[str, Any]) -> np.ndarray:
        table = np.array(fields["kintree_table"])
        for joint, parent in change.items():
            table[0, joint] = parent
        return table

    return _with("kintree_table", make)


def _csr_with(**state: Any) -> Callable[[dict[str, Any]], Any]:
    def make(fields: dict[str, Any]) -> Any:
        m = scipy.sparse.csr_matrix(fields["J_regressor"])
        for name, change in state.items():
            setattr(m, name, change(getattr(m, name)))
        return m

    return make


def _bad_indices(indices: np.ndarray) -> np.ndarray:
    indices = indices.copy()
    indices[3] = 10**6
    return indices


def _huge_header_npz(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    """An .npz whose v_template header claims 10^12 float64 values while holding 16 bytes."""
    with zipfile.ZipFile(path, "w") as z:
        for key, value in _smpl_fields(arrays).items():
            buf = io.BytesIO()
            if key == "v_template":
                np.lib.format.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False,
                                                           "shape": (10**6, 10**6)})
                buf.write(b"\0" * 16)
            else:
                np.save(buf, value)
            z.writestr(key + ".npy", buf.getvalue())
    return path


def _body_dir_with(root: Path, body_dir: Path, smpl_name: str, write: Callable[[Path], Any]) -> Path:
    """A body-model folder with the regressors of ``body_dir`` and a hostile neutral SMPL file."""
    (root / "smpl").mkdir(parents=True)
    for name in ("J_regressor_extra.npy", "J_regressor_h36m_correct.npy", "J_regressor_coco_hip_smpl.npy"):
        os.symlink(body_dir / name, root / name)
    write(root / "smpl" / smpl_name)
    return root


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def _cli(*args: str | Path) -> subprocess.CompletedProcess:
    """``hap3d ARGS`` in a child limited to MEMORY_LIMIT of address space (and a time limit)."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "hap3d.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=300, env=env, preexec_fn=_limit_memory)


def _assert_refused(done: subprocess.CompletedProcess, *names: str) -> None:
    """Exit 2 with a one-line 'hap3d: error:' naming every one of ``names``, no traceback."""
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and "hap3d: error:" in done.stderr, done.stderr
    for name in names:
        assert name in done.stderr, (name, done.stderr)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, body_dir) -> tuple[Path, dict[str, torch.Tensor], dict[str, str]]:
    """A tiny hap3d checkpoint: its path, tensors and metadata."""
    model = build_model(ModelConfig(**TINY_VIT), body_dir)
    path = save_model_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.safetensors", model, model.cfg)
    with safe_open(str(path), framework="pt") as st:
        meta = dict(st.metadata())
    return path, load_file(path), meta


def _resave(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, str]) -> Path:
    save_file(tensors, str(path), metadata=meta)
    return path


# ------------------------------------------------------------------------------------------------ 1. SMPL files


MALFORMED_SMPL = {
    "template is a string": (_with("v_template", lambda f: "not an array"), "v_template", "found str"),
    "shapedirs is a dict": (_with("shapedirs", lambda f: {"x": 1}), "shapedirs", "found dict"),
    "weights is an object": (_with("weights", lambda f: object()), "weights", "found object"),
    "posedirs holds text": (_with("posedirs", lambda f: np.array(["a", "b"])), "posedirs", "<U1"),
    "regressor index out of range": (_with("J_regressor", _csr_with(indices=_bad_indices)), "J_regressor",
                                     "outside its shape"),
    "regressor indptr too short": (_with("J_regressor", _csr_with(indptr=lambda p: p[:-3])), "J_regressor",
                                   "indptr"),
    "regressor values missing": (_with("J_regressor", _csr_with(data=lambda d: d[:-5])), "J_regressor",
                                  "values for"),
    "regressor claims a huge shape": (_with("J_regressor", lambda f: scipy.sparse.csc_matrix((10**7, 24))),
                                      "J_regressor", "limit"),
    "1-D kintree_table": (_with("kintree_table", lambda f: f["kintree_table"][0]), "kintree_table", "(2, J)"),
    "parent out of range": (_parents({5: 99}), "kintree_table", "joint 5 has parent 99"),
    "cyclic parents": (_parents({1: 2, 2: 1}), "kintree_table", "joint 1 has parent 2"),
    "no root first": (_parents({0: 3}), "kintree_table", "root"),
    "joint ids repeated": (_set_at("kintree_table", (1, 4), 3), "kintree_table", "once each"),
    "NaN template": (_set_at("v_template", (7, 1), np.nan), "v_template", "not finite"),
    "NaN shapedirs": (_set_at("shapedirs", (7, 1, 2), np.nan), "shapedirs", "not finite"),
    "Inf posedirs": (_set_at("posedirs", (7, 1, 2), np.inf), "posedirs", "not finite"),
    "NaN regressor": (_set_at("J_regressor", (3, 7), np.nan), "J_regressor", "not finite"),
    "-Inf weights": (_set_at("weights", (7, 3), -np.inf), "weights", "not finite"),
    "face index too large": (_set_at("f", (4, 2), 6890), "'f'", "[0, 6890)"),
    "faces as floats": (_with("f", lambda f: f["f"].astype(np.float64)), "'f'", "integer"),
    "weights for 23 joints": (_with("weights", lambda f: f["weights"][:, :23]), "weights", "(6890, 24)"),
    "2-D shapedirs": (_with("shapedirs", lambda f: f["shapedirs"][..., 0]), "shapedirs", "(6890, 3, K)"),
    "template of 100 vertices": (_with("v_template", lambda f: f["v_template"][:100]), "posedirs", "(100, 3, 207)"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED_SMPL))
def test_malformed_smpl_pickle_is_named_by_file_and_field(tmp_path, arrays, case):
    mutate, field, problem = MALFORMED_SMPL[case]
    path = _write_pickle(tmp_path / "SMPL_NEUTRAL.pkl", mutate(_smpl_fields(arrays)))
    with pytest.raises(Hap3dError) as info:
        load_smpl_arrays(path)
    message = str(info.value)
    assert str(path) in message and field in message and problem in message, message


@pytest.mark.parametrize("name", ["smpl_neutral.npz", "SMPL_NEUTRAL.pkl.gz"])
def test_nan_template_is_refused_in_every_file_format(tmp_path, arrays, name):
    fields = _set_at("v_template", (0, 0), np.nan)(_smpl_fields(arrays))
    path = tmp_path / name
    if name.endswith(".npz"):
        np.savez(path, **fields)
    else:
        _write_pickle(path, fields)
    with pytest.raises(Hap3dError, match=r"v_template.*not finite"):
        load_smpl_arrays(path)


def test_sizes_a_file_claims_are_checked_before_allocating(tmp_path, arrays, monkeypatch):
    path = _huge_header_npz(tmp_path / "smpl_neutral.npz", arrays)
    with pytest.raises(Hap3dError, match=r"smpl_neutral\.npz: cannot be read.*declares shape \(1000000, 1000000\)"):
        load_smpl_arrays(path)
    bomb = tmp_path / "SMPL_NEUTRAL.pkl.gz"
    bomb.write_bytes(gzip.compress(b"\0" * (3 << 20)))
    monkeypatch.setattr(smpl_module, "MAX_FILE_BYTES", 2 << 20)
    with pytest.raises(Hap3dError, match=r"SMPL_NEUTRAL\.pkl\.gz: cannot be read.*decompresses to more than 2 MB"):
        load_smpl_arrays(bomb)


def test_cli_names_the_smpl_file_and_field_of_a_nan_template(tmp_path, body_dir, tiny):
    bad = _body_dir_with(tmp_path / "body", body_dir, "smpl_neutral.npz",
                         lambda p: np.savez(p, **_set_at("v_template", (0, 0), np.nan)(_smpl_fields(
                             load_smpl_arrays(body_dir / "smpl" / "basicModel_neutral_lbs_10_207_0_v1.0.0.pkl")))))
    done = _cli("convert", tiny[0], tmp_path / "out.safetensors", "--body-model-dir", bad)
    _assert_refused(done, "smpl_neutral.npz", "v_template")
    assert not (tmp_path / "out.safetensors").exists()


def test_cli_refuses_an_smpl_header_claiming_terabytes_in_bounded_memory(tmp_path, body_dir, arrays, tiny):
    bad = _body_dir_with(tmp_path / "body", body_dir, "smpl_neutral.npz", lambda p: _huge_header_npz(p, arrays))
    done = _cli("convert", tiny[0], tmp_path / "out.safetensors", "--body-model-dir", bad)
    _assert_refused(done, "smpl_neutral.npz", "declares shape")


# ------------------------------------------------------------------------------------------------ 2. VPoser


def _vposer_folder(root: Path, state: Any) -> Path:
    (root / "snapshots").mkdir(parents=True)
    torch.save(state, root / "snapshots" / "TR00_E096.pt")
    return root


def _decoder_state() -> dict[str, Any]:
    return {k: torch.from_numpy(v) for k, v in npz("vposer_decoder.npz").items()}


def _nan_fc2(state: dict[str, Any]) -> dict[str, Any]:
    state["bodyprior_dec_fc2.weight"] = state["bodyprior_dec_fc2.weight"].clone()
    state["bodyprior_dec_fc2.weight"][3, 4] = float("nan")
    return state


MALFORMED_VPOSER = {
    "wrong shape": (lambda s: {**s, "bodyprior_dec_fc1.weight": torch.zeros(512, 31)}, "bodyprior_dec_fc1.weight",
                    "has shape (512, 31), expected (512, 32)"),
    "missing key": (lambda s: {k: v for k, v in s.items() if k != "bodyprior_dec_out.bias"},
                    "bodyprior_dec_out.bias", "missing"),
    "a list, not a tensor": (lambda s: {**s, "bodyprior_dec_fc2.bias": [0.0] * 512}, "bodyprior_dec_fc2.bias",
                             "found list"),
    "integer tensor": (lambda s: {**s, "bodyprior_dec_fc1.bias": torch.zeros(512, dtype=torch.int64)},
                       "bodyprior_dec_fc1.bias", "torch.int64"),
    "NaN weight": (_nan_fc2, "bodyprior_dec_fc2.weight", "non-finite"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED_VPOSER))
def test_malformed_vposer_snapshot_names_the_file_and_tensor(tmp_path, case):
    mutate, tensor, problem = MALFORMED_VPOSER[case]
    root = _vposer_folder(tmp_path / "vposer", mutate(_decoder_state()))
    with pytest.raises(Hap3dError) as info:
        load_vposer_decoder_state(root)
    message = str(info.value)
    assert "TR00_E096.pt" in message and tensor in message and problem in message, message


# ------------------------------------------------------------------------------------------------ 3. checkpoints


@pytest.mark.parametrize(
    ("model_config", "problem"),
    [("{not json", "'model_config' is not valid JSON"), ("[1, 2]", "'model_config' must be a JSON object"),
     (None, "without 'model_config'")],
)
def test_safetensors_metadata_must_hold_a_model_config_object(tmp_path, tiny, model_config, problem):
    _, tensors, meta = tiny
    meta = {k: v for k, v in meta.items() if k != "model_config"}
    if model_config is not None:
        meta["model_config"] = model_config
    path = _resave(tmp_path / "meta.safetensors", tensors, meta)
    with pytest.raises(CheckpointError, match=problem) as info:
        read_checkpoint(path)
    assert str(path) in str(info.value)
    _assert_refused(_cli("inspect", path), str(path), "model_config")


def test_a_pytorch_file_claiming_a_huge_storage_is_refused_in_bounded_memory(tmp_path):
    """A .pt whose pickle claims 8 GB for a 4 MB record: refused before any allocation, naming the file (torch's
    loader checks record sizes; this pins that for the torch versions the lock file moves to)."""
    import struct

    good = tmp_path / "good.pt"
    torch.save({"w": torch.zeros(1_000_003)}, good)
    evil = tmp_path / "evil.pt"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(evil, "w", zipfile.ZIP_STORED) as dst:
        for name in src.namelist():
            data = src.read(name)
            if name.endswith("data.pkl"):  # the storage's element count, a pickle BININT
                data = data.replace(b"J" + struct.pack("<i", 1_000_003), b"J" + struct.pack("<i", 2_000_000_000), 1)
            dst.writestr(name, data)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(CheckpointError) as info:
        read_checkpoint(evil)
    assert str(evil) in str(info.value)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 500 * 1024  # KB: far below the claimed 8 GB


def _with_config(tiny: tuple, path: Path, **changes: Any) -> Path:
    _, tensors, meta = tiny
    config = {**to_dict(ModelConfig(**TINY_VIT)), **changes}
    return _resave(path, tensors, {**meta, "model_config": json.dumps(config)})


@pytest.mark.parametrize(("changes", "key"), [({"patch_size": 0}, "patch_size"), ({"num_heads": 0}, "num_heads"),
                                              ({"num_heads": 3}, "num_heads"), ({"depth": 10**9}, "depth")])
def test_invalid_model_config_in_metadata_names_the_file_and_key(tmp_path, tiny, changes, key):
    path = _with_config(tiny, tmp_path / "bad.safetensors", **changes)
    with pytest.raises(CheckpointError) as info:
        infer_model_config(read_checkpoint(path))
    assert str(path) in str(info.value) and key in str(info.value), str(info.value)


@pytest.mark.parametrize(
    ("arch", "problem"),
    [({"depth": 40, "embed_dim": 8192, "num_heads": 16}, "depth"),  # over the config's own size limit
     ({"depth": 20, "embed_dim": 4096, "num_heads": 32}, "shape mismatch")],  # 16 GB: only the tensors refute it
)
def test_a_huge_claimed_architecture_fails_fast_in_bounded_memory(tmp_path, tiny, body_dir, arch, problem):
    huge = _with_config(tiny, tmp_path / "huge.safetensors", **arch)
    with pytest.raises(CheckpointError, match=problem):
        infer_model_config(read_checkpoint(huge))
    _assert_refused(_cli("convert", huge, tmp_path / "a.safetensors", "--body-model-dir", body_dir),
                    str(huge), problem)
    sets = [a for k, v in arch.items() for a in ("--set", f"{k}={v}")]
    done = _cli("convert", tiny[0], tmp_path / "b.safetensors", "--body-model-dir", body_dir, *sets)
    _assert_refused(done, str(tiny[0]), problem)
    assert not list(tmp_path.glob("[ab].safetensors"))


def test_non_finite_weights_are_refused_at_load(tmp_path, tiny, body_dir):
    _, tensors, meta = tiny
    key = "backbone.blocks.0.attn.qkv.weight"
    nan = _resave(tmp_path / "nan.safetensors", {**tensors, key: torch.full_like(tensors[key], float("nan"))}, meta)
    _assert_refused(_cli("convert", nan, tmp_path / "out.safetensors", "--body-model-dir", body_dir),
                    str(nan), key, "NaN or Inf")


# ------------------------------------------------------------------------------------------------ 4. training states


@pytest.fixture()
def train_state(tmp_path, tiny) -> dict[str, Any]:
    """The content of a valid last.pt (saved and read back, as the trainer writes it)."""
    TrainState(
        model=tiny[1], optimizer={"state": {}, "param_groups": [{"lr": 1e-3, "params": [0]}]}, scaler={}, epoch=1,
        step_in_epoch=0, global_step=4, config={"model": to_dict(ModelConfig(**TINY_VIT))}, history={},
    ).save(tmp_path / "good.pt")
    return torch.load(tmp_path / "good.pt", weights_only=True)


def _drop(key: str) -> Callable[[dict], dict]:
    return lambda s: {k: v for k, v in s.items() if k != key}


MALFORMED_STATES = {
    "no epoch": (_drop("epoch"), "epoch"),
    "no optimizer": (_drop("optimizer"), "optimizer"),
    "no config": (_drop("config"), "config"),
    "no model": (_drop("model"), "model"),
    "epoch as text": (lambda s: {**s, "epoch": "3"}, "'epoch' must be a count"),
    "negative step": (lambda s: {**s, "global_step": -1}, "'global_step' must be a count"),
    "optimizer as a list": (lambda s: {**s, "optimizer": [1, 2]}, "'optimizer' must be an optimizer state dict"),
    "model of numbers": (lambda s: {**s, "model": {"a": 1.0}}, "'model' must be a dict of tensors"),
    "config without model": (lambda s: {**s, "config": {"train": {}}}, "'config.model' is missing"),
    "rng as a dict": (lambda s: {**s, "rng": {"cpu": 1}}, "'rng' must be a list"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED_STATES))
def test_malformed_training_state_names_the_file_and_key(tmp_path, train_state, case):
    mutate, problem = MALFORMED_STATES[case]
    path = tmp_path / "last.pt"
    torch.save(mutate(train_state), path)
    with pytest.raises(Hap3dError) as info:
        TrainState.load(path, ModelConfig(**TINY_VIT))
    assert str(path) in str(info.value) and problem in str(info.value), str(info.value)


def test_training_state_with_misshaped_weights_or_garbage_is_refused(tmp_path, train_state, body_dir):
    key = "backbone.pos_embed"
    model = {**train_state["model"], key: torch.zeros(1, 3, 64)}
    path = tmp_path / "last.pt"
    torch.save({**train_state, "model": model}, path)
    with pytest.raises(Hap3dError, match=rf"{path}.*{key}"):
        TrainState.load(path, ModelConfig(**TINY_VIT))
    path.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(Hap3dError, match=rf"{path}: cannot be read as a training state"):
        TrainState.load(path)
    torch.save(_drop("config")(train_state), path)
    _assert_refused(_cli("convert", path, tmp_path / "out.safetensors", "--body-model-dir", body_dir),
                    str(path), "config")
