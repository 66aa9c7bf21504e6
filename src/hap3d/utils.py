"""Small shared helpers: errors, atomic writes (with failures named), deterministic rule-based tensors."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
import zlib
from pathlib import Path
from typing import Callable, Collection, Iterator, Mapping, Sequence

import numpy as np


class Hap3dError(RuntimeError):
    """An error with a message meant for the user (the CLI prints it without a traceback)."""

    exit_code = 2  # what the command line exits with


class WriteError(Hap3dError):
    """A file or folder could not be written (full disk, read-only file system, permissions): names the path."""


def display(path: str | os.PathLike) -> str:
    """A path for messages: undecodable bytes shown as \\xNN instead of breaking the terminal or the log."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


_CAUSES = {
    errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded", errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied", errno.EPERM: "permission denied", errno.ENAMETOOLONG: "file name too long",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
}


def write_error(err: OSError, path: str | os.PathLike, what: str = "output") -> WriteError:
    """A failed write as a message naming the path and a cause a user can act on."""
    cause = _CAUSES.get(err.errno, err.strerror or str(err))
    return WriteError(f"cannot write {what} ({cause}): {display(getattr(err, 'filename', None) or path)}")


@contextlib.contextmanager
def reported_writes(path: str | os.PathLike, what: str = "output") -> Iterator[None]:
    """Failed writes inside the block as :func:`write_error`. torch.save's C++ writer reports a full disk as
    ``RuntimeError: ... iostream error`` (no errno): that case is told apart by the free space left."""
    try:
        yield
    except OSError as err:
        raise write_error(err, path, what) from None
    except RuntimeError as err:
        if isinstance(err, Hap3dError) or "iostream" not in str(err):
            raise
        folder = os.path.dirname(os.path.abspath(os.fsencode(path)))
        cause = OSError(errno.EIO, f"write failed: {err}")
        with contextlib.suppress(OSError):
            st = os.statvfs(folder)
            if st.f_bavail * st.f_frsize < 64 * 2**20:
                cause = OSError(errno.ENOSPC, "no space left on device")
        raise write_error(cause, path, what) from None


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


TMP_SUFFIX = ".tmp"


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Write a file through ``write(tmp_path)`` and rename it into place, so a crash never leaves half a file.

    The file gets the permissions ``open()`` would give it (0666 minus the umask), or keeps those of the file it
    replaces, so shared run and data folders stay readable by the group.
    """
    path = Path(path)
    tmp = None
    try:
        with reported_writes(path, "file"):
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
            os.close(fd)
            write(tmp)
            # mkstemp creates 0600 files; give the result the mode a plain open() would (or keep the old file's).
            os.chmod(tmp, path.stat().st_mode & 0o7777 if path.exists() else 0o666 & ~_umask())
            os.replace(tmp, path)
    except BaseException:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def remove_stale_temporaries(folder: str | os.PathLike, name: str) -> list[Path]:
    """Delete what a killed :func:`atomic_write` of ``folder/name`` left behind (``.name.XXXX.tmp``); call it only
    where no other process writes that file (a run folder, under its lock)."""
    removed = []
    for tmp in Path(folder).glob(f".{name}.*{TMP_SUFFIX}"):
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
            removed.append(tmp)
    return removed


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
