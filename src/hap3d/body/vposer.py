"""VPoser v1 pose-prior decoder: a 32-d latent code -> 21 SMPL body-joint rotations.

Only the decoder runs; weights come from an official ``VPOSER_CKPT`` folder (``snapshots/*.pt``, a plain
state dict) read with ``torch.load(weights_only=True)``. The ``vposer_smpl.py`` shipped beside the snapshot is
never imported or executed.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from hap3d.body.rotations import rot6d_to_rotmat, rotmat_to_axis_angle
from hap3d.utils import Hap3dError

DECODER_KEYS = tuple(f"bodyprior_dec_{n}.{p}" for n in ("fc1", "fc2", "out") for p in ("weight", "bias"))
OBTAIN_HINT = (
    "VPoser v1.0 is licensed and not shipped: download vposer_v1_0 from https://smpl-x.is.tue.mpg.de and "
    "unzip it so that <dir>/snapshots/TR00_E096.pt exists, or run `hap3d body synth --out DIR` for a "
    "procedural stand-in (DIR/vposer)."
)


class VPoserDecoder(nn.Module):
    """The VPoser v1 decoder MLP with its continuous-rotation output (parameter names as in the checkpoint)."""

    def __init__(self, latent_dim: int = 32, hidden: int = 512, num_joints: int = 21, dropout: float = 0.1) -> None:
        super().__init__()
        self.num_joints = num_joints
        self.bodyprior_dec_fc1 = nn.Linear(latent_dim, hidden)
        self.bodyprior_dec_fc2 = nn.Linear(hidden, hidden)
        self.bodyprior_dec_out = nn.Linear(hidden, num_joints * 6)
        self.dropout = nn.Dropout(dropout)
        for p in self.parameters():
            p.requires_grad_(False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """(B, 32) latent -> (B, 21, 3) axis-angle for SMPL joints 1..21."""
        x = self.dropout(F.leaky_relu(self.bodyprior_dec_fc1(z), 0.2))
        x = F.leaky_relu(self.bodyprior_dec_fc2(x), 0.2)
        x = self.bodyprior_dec_out(x).reshape(z.shape[0], self.num_joints, 6)
        return rotmat_to_axis_angle(rot6d_to_rotmat(x))


def find_vposer_snapshot(ckpt_dir: str | Path) -> Path:
    """The newest ``snapshots/*.pt`` of a VPoser v1 folder (the file the official loader picks)."""
    root = Path(ckpt_dir)
    if root.is_file():
        return root
    snaps = sorted((root / "snapshots").glob("*.pt"), key=lambda p: (p.stat().st_mtime, p.name))
    if not snaps:
        raise Hap3dError(f"no VPoser snapshot found: expected {root / 'snapshots' / '*.pt'}.\n{OBTAIN_HINT}")
    return snaps[-1]


def load_vposer_decoder_state(ckpt_dir: str | Path) -> dict[str, torch.Tensor]:
    """Read the decoder weights of a VPoser v1 snapshot; the encoder weights are checked for but unused."""
    path = find_vposer_snapshot(ckpt_dir)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for corrupt or code-carrying files
        raise Hap3dError(f"{path}: not a loadable VPoser state dict ({err}).\n{OBTAIN_HINT}") from err
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise Hap3dError(f"{path}: expected a state dict, found {type(state).__name__}")
    missing = [k for k in DECODER_KEYS if k not in state]
    if missing:
        raise Hap3dError(f"{path}: not a VPoser v1 snapshot, missing {missing}.\n{OBTAIN_HINT}")
    with torch.device("meta"):  # the expected shapes, without allocating a decoder
        expected = VPoserDecoder().state_dict()
    for key in DECODER_KEYS:
        problem = _tensor_problem(state[key], tuple(expected[key].shape))
        if problem:
            raise Hap3dError(f"{path}: tensor '{key}' {problem}.\n{OBTAIN_HINT}")
    return {k: state[k] for k in DECODER_KEYS}


def _tensor_problem(value: object, shape: tuple[int, ...]) -> str | None:
    """What is wrong with a snapshot entry that should be a finite float tensor of ``shape`` (None if nothing)."""
    if not isinstance(value, torch.Tensor):
        return f"should be a tensor of shape {shape}, found {type(value).__name__}"
    if not value.is_floating_point():
        return f"should hold floating-point values, found {value.dtype}"
    if tuple(value.shape) != shape:
        return f"has shape {tuple(value.shape)}, expected {shape}"
    bad = value.numel() - int(torch.isfinite(value).sum())
    if bad:
        return f"holds {bad} non-finite values (NaN or Inf)"
    return None
