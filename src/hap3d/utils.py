"""Small shared helpers: errors, atomic writes, deterministic rule-based tensors."""

from __future__ import annotations

import os
import tempfile
import zlib
from pathlib import Path
from typing import Callable, Collection, Mapping, Sequence

import numpy as np


class Hap3dError(RuntimeError):
    """An error with a message meant for the user (the CLI prints it without a traceback)."""


def _umask() -> int:
    """The process umask: from /proc on Linux, else by setting it and straight back (not thread-safe there)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Write a file through ``write(tmp_path)`` and rename it into place, so a crash never leaves half a file.

    The file gets the permissions ``open()`` would give it (0666 minus the umask), or keeps those of the file it
    replaces, so shared run and data folders stay readable by the group.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        # mkstemp creates 0600 files; give the result the mode a plain open() would (or keep the old file's).
        os.chmod(tmp, path.stat().st_mode & 0o7777 if path.exists() else 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def rule_normal(key: str, n: int, salt: str = "") -> np.ndarray:
    """The float64 standard normals behind :func:`rule_array`, seeded by crc32(salt + key)."""
    return np.random.default_rng(zlib.crc32((salt + key).encode("utf-8"))).standard_normal(n)


def rule_array(
    key: str,
    shape: Sequence[int],
    salt: str = "",
    one_d_keys: Collection[str] = (),
    gain: float = 1.0,
) -> np.ndarray:
    """Deterministic pseudo-weights for one state-dict entry (the golden fixtures' weight rule).

    The value depends only on the key, shape, salt and the key's sibling set, which lets tests and the
    procedural assets produce large, well-scaled weights without storing them. ``one_d_keys`` are the keys
    of the 1-D tensors of the same state dict (a bias whose sibling weight is 1-D belongs to a LayerNorm or
    BatchNorm). Returns float32 (int64 zeros for ``num_batches_tracked``).
    """
    shape = tuple(int(s) for s in shape)
    if key.endswith("num_batches_tracked"):
        return np.zeros(shape, dtype=np.int64)
    z = rule_normal(key, int(np.prod(shape)) if shape else 1, salt)
    leaf = key.rsplit(".", 1)[-1]
    if leaf == "running_mean":
        v = 0.1 * z
    elif leaf == "running_var":
        v = 1 + 0.1 * np.abs(z)
    elif leaf in ("pos_embed", "cls_token"):
        v = 0.02 * z
    elif leaf == "weight" and len(shape) == 1:
        v = 1 + 0.1 * z
    elif leaf == "bias" and key[: -len("bias")] + "weight" in one_d_keys:
        v = 0.1 * z
    elif leaf == "weight":
        v = gain * z / np.sqrt(np.prod(shape[1:]))
    else:
        v = 0.01 * z
    return v.astype(np.float32).reshape(shape)


def rule_state_dict(
    shapes: Mapping[str, Sequence[int]],
    salt: str = "",
    gains: Mapping[str, float] | None = None,
) -> dict[str, np.ndarray]:
    """Apply :func:`rule_array` to every key of ``shapes`` (key -> shape), with the key set as siblings."""
    gains = gains or {}
    one_d = {k for k, s in shapes.items() if len(s) == 1}
    out = {}
    for key, shape in shapes.items():
        out[key] = rule_array(key, shape, salt, one_d, gains.get(key, 1.0))
    return out
