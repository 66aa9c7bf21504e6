"""VPoser v1 decoder: loading an official-layout folder safely, and its decode."""

from __future__ import annotations

import os
import pickle
import time

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from hap3d.body.vposer import VPoserDecoder, find_vposer_snapshot, load_vposer_decoder_state
from hap3d.utils import Hap3dError

from golden import npz


def _decoder_state() -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(v) for k, v in npz("vposer_decoder.npz").items()}


def _write_folder(root, state, name="TR00_E096.pt"):
    (root / "snapshots").mkdir(parents=True, exist_ok=True)
    torch.save(state, root / "snapshots" / name)
    # An official folder also ships the model's source; it must never be imported or executed.
    (root / "vposer_smpl.py").write_text("raise SystemExit('vposer_smpl.py must not be executed')\n")
    (root / "TR00_004_00_WO_accad.ini").write_text("[All]\nnum_neurons = 512\nlatentD = 32\n")
    return root


def test_loads_decoder_from_official_layout_without_running_its_code(tmp_path):
    full = dict(_decoder_state())
    full["bodyprior_enc_fc1.weight"] = torch.zeros(512, 63)  # encoder keys exist in real snapshots
    root = _write_folder(tmp_path / "VPOSER_CKPT", full)
    state = load_vposer_decoder_state(root)
    assert sorted(state) == sorted(_decoder_state())
    dec = VPoserDecoder()
    dec.load_state_dict(state)


def test_newest_snapshot_is_used(tmp_path):
    root = _write_folder(tmp_path / "v", _decoder_state(), "TR00_E010.pt")
    time.sleep(0.01)
    torch.save(_decoder_state(), root / "snapshots" / "TR00_E096.pt")
    os.utime(root / "snapshots" / "TR00_E010.pt", (1, 1))
    assert find_vposer_snapshot(root).name == "TR00_E096.pt"


def test_missing_and_malformed_snapshots(tmp_path):
    with pytest.raises(Hap3dError, match="no VPoser snapshot found"):
        load_vposer_decoder_state(tmp_path)
    root = _write_folder(tmp_path / "bad", {"something": torch.zeros(1)})
    with pytest.raises(Hap3dError, match="not a VPoser v1 snapshot"):
        load_vposer_decoder_state(root)

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    evil = tmp_path / "evil" / "snapshots"
    evil.mkdir(parents=True)
    with open(evil / "x.pt", "wb") as f:
        pickle.dump({"bodyprior_dec_fc1.weight": Evil()}, f, protocol=2)
    with pytest.raises(Hap3dError, match="not a loadable VPoser state dict"):
        load_vposer_decoder_state(tmp_path / "evil")


def test_decode_gives_21_valid_rotations_and_dropout_only_in_training():
    dec = VPoserDecoder()
    dec.load_state_dict(_decoder_state())
    z = torch.randn(5, 32, generator=torch.Generator().manual_seed(0))
    dec.eval()
    aa = dec(z)
    assert aa.shape == (5, 21, 3)
    assert torch.equal(aa, dec(z))
    angles = Rotation.from_rotvec(aa.reshape(-1, 3).double().numpy()).magnitude()
    assert np.all(angles <= np.pi + 1e-6)
    dec.train()
    torch.manual_seed(0)
    assert not torch.equal(dec(z), dec(z))
    assert not any(p.requires_grad for p in dec.parameters())
