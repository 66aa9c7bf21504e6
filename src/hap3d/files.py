"""The boundary between the program and the file system: reading files that may be hostile, naming outputs.

Everything here holds whatever a file or a file name claims:
* a path is never handed to a C library (OpenCV) in a form that can crash it: images are read by Python and
  decoded from memory, and a path that is not valid UTF-8 (a lone surrogate from undecodable bytes) reaches a C
  library only through a link with a plain name;
* sizes are checked before anything is allocated: the file's length, and an image's dimensions from its header;
* an output name derived from an input (a file stem) can never leave its output folder;
* an output folder is checked (a writable folder, names within the file system's limits) before any work, and a
  failed write (a full disk, a read-only file system) is reported with the path, not as a C++ stream error.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import stat
import tempfile
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from hap3d.utils import Hap3dError, display, write_error

MAX_IMAGE_PIXELS = 100_000_000  # 10k x 10k: far above any dataset or photo, far below what a crafted header claims
MAX_IMAGE_BYTES = 512 * 2**20
MAX_NAME_BYTES = 200  # an output name's length, below every file system's 255-byte limit with room for suffixes
MAX_JSON_BYTES = 2 * 2**30  # the largest annotation file of the datasets (COCO train) is ~0.5 GB


class FileProblem(Hap3dError):
    """A file cannot be used: missing, unreadable, too large or malformed. The message names the file."""


def is_plain(path: str | os.PathLike) -> bool:
    """Whether a path is valid UTF-8 text, i.e. safe to hand to a C library as a string."""
    try:
        os.fspath(path).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def read_bytes(path: str | os.PathLike, limit: int, what: str = "file") -> bytes:
    """The whole file, refused (with its name) when it is not a regular file or larger than ``limit`` bytes.

    Opened without blocking, so a FIFO or a device is refused instead of waiting for a writer or reading forever."""
    try:
        fd = os.open(os.fsencode(path), os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise FileProblem(f"{what} not found: {display(path)}") from None
    except OSError as err:
        raise FileProblem(f"{what} cannot be read ({err.strerror or err}): {display(path)}") from None
    st = os.fstat(fd)
    problem = None
    if stat.S_ISDIR(st.st_mode):
        problem = f"{what} is a folder, not a file: {display(path)}"
    elif not stat.S_ISREG(st.st_mode):
        problem = f"{what} is not a regular file (a device, pipe or socket): {display(path)}"
    elif st.st_size > limit:
        problem = f"{what} is {_mb(st.st_size)}, above the {_mb(limit)} limit: {display(path)}"
    if problem:
        os.close(fd)
        raise FileProblem(problem)
    with os.fdopen(fd, "rb") as f:
        try:
            os.set_blocking(fd, True)
            data = f.read(limit + 1)
        except OSError as err:
            raise FileProblem(f"{what} cannot be read ({err.strerror or err}): {display(path)}") from None
    if len(data) > limit:
        raise FileProblem(f"{what} is larger than the {_mb(limit)} limit: {display(path)}")
    return data


def _mb(n: int) -> str:
    return f"{n / 2**20:.0f} MB"


def read_text(path: str | os.PathLike, limit: int, what: str = "file") -> str:
    """A UTF-8 text file, bounded like :func:`read_bytes`; bytes that are not UTF-8 are named by their offset."""
    data = read_bytes(path, limit, what)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise FileProblem(f"{what} is not UTF-8 text (byte {err.start}: {data[err.start:err.start + 1]!r}): "
                          f"{display(path)}") from None


def parse_json(text: str | bytes, name: str) -> Any:
    """JSON text parsed; nesting deeper than Python's recursion limit is an error naming the file, not a crash."""
    try:
        return json.loads(text)
    except RecursionError:
        raise FileProblem(f"{name}: JSON nested too deeply to read") from None


def image_size(data: bytes, name: str = "image") -> tuple[int, int]:
    """(width, height) from the image header alone (no pixels decoded), or a FileProblem."""
    import warnings

    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            # Only the header is parsed here; the caller checks the size against its own limit and names it.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                return int(im.size[0]), int(im.size[1])
    except Image.DecompressionBombError as err:  # PIL's guard fired first: read the claimed size from its message
        found = re.search(r"\((\d+) pixels\)", str(err))
        side = int(found.group(1)) if found else 2**31 - 1
        return side, 1
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise FileProblem(f"image cannot be decoded (corrupt or unsupported format: no known image header): {name}"
                          ) from None


def decode_image_bgr(data: bytes, name: str = "image", max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """Decode image bytes as OpenCV's imread does (BGR uint8 (H, W, 3), EXIF orientation ignored), after checking
    the header's dimensions against ``max_pixels``: a small file can declare a huge image."""
    import cv2

    w, h = image_size(data, name)
    if w <= 0 or h <= 0 or w * h > max_pixels:
        raise FileProblem(f"image declares {w * h / 1e6:.0f} megapixels ({w} x {h}), above the "
                          f"{max_pixels / 1e6:.0f}-megapixel limit: {name}")
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if not isinstance(img, np.ndarray) or img.ndim != 3:
        raise FileProblem(f"image cannot be decoded (corrupt or unsupported format): {name}")
    return img


def read_image_bgr(path: str | os.PathLike, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """An image file as BGR uint8, read by Python and decoded from memory: bounded, whatever its name or header."""
    return decode_image_bgr(read_bytes(path, MAX_IMAGE_BYTES, "image"), display(path), max_pixels)


@contextlib.contextmanager
def c_path(path: str | os.PathLike) -> Iterator[str]:
    """A string path a C library (OpenCV's video I/O) can take: the path itself when it is plain UTF-8, else a
    symbolic link with a plain name, in a temporary folder, that lives as long as the context."""
    if is_plain(path):
        yield os.fspath(path)
        return
    with tempfile.TemporaryDirectory(prefix="hap3d-") as tmp:
        link = os.path.join(tmp, "file" + safe_suffix(path))
        os.symlink(os.path.abspath(os.fsencode(path)), os.fsencode(link))
        yield link


def safe_suffix(path: str | os.PathLike) -> str:
    """The file's suffix if it is plain ASCII letters and digits (what decoders look at), else ''."""
    suffix = os.path.splitext(os.fsdecode(os.fsencode(path)))[1]
    return suffix if re.fullmatch(r"\.[A-Za-z0-9]{1,8}", suffix) else ""


def safe_name(name: str, fallback: str = "item") -> str:
    """One path component for an output, made from an untrusted name (an input file's stem): no separators, no
    leading dots (so never '.' or '..'), no control characters, no undecodable bytes, at most MAX_NAME_BYTES."""
    text = os.fsencode(name).decode("utf-8", "backslashreplace") if not is_plain(name) else name
    text = unicodedata.normalize("NFC", text)
    text = "".join(c if c.isprintable() and c not in '/\\:*?"<>|' else "_" for c in text).strip()
    text = text.lstrip(".").strip() or fallback
    encoded = text.encode("utf-8")[:MAX_NAME_BYTES]
    return encoded.decode("utf-8", "ignore") or fallback


def check_output_dir(path: str | os.PathLike, what: str = "--out") -> Path:
    """Create the output folder if needed and prove it can be written, before any work starts: a folder that is a
    file, read-only, on a full disk or with a name over the file system's limits fails here, with its name, rather
    than after hours of training or inference."""
    path = Path(os.path.abspath(os.fsencode(path).decode("utf-8", "surrogateescape")))
    raw = os.fsencode(path)
    if len(raw) >= 4000:
        raise FileProblem(f"{what}: the path is {len(raw)} bytes long, above the 4000-byte limit: {display(path)}")
    long = [p for p in raw.split(b"/") if len(p) > 255]
    if long:
        raise FileProblem(f"{what}: the name {display(long[0][:40])}... is {len(long[0])} bytes, above the 255-byte "
                          f"limit of file names: {display(path)}")
    if path.exists() and not path.is_dir():
        raise FileProblem(f"{what} names a file, not a folder: {display(path)}")
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".hap3d-write-check-", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise write_error(err, path, what) from None
    return path



@contextlib.contextmanager
def staged_dir(final: str | os.PathLike) -> Iterator[Path]:
    """A folder built under a temporary name beside ``final`` and renamed to it only when the block completes: a
    set-up killed half-way leaves no ``final`` to be trusted next time, only a stage that the next call removes.
    ``final`` must not exist yet (or be an empty folder)."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{final.name}.partial-"
    for old in final.parent.glob(prefix + "*"):  # left by a killed process (a live one keeps its own)
        pid = old.name[len(prefix):]
        if not (pid.isdigit() and _alive(int(pid))):
            shutil.rmtree(old, ignore_errors=True)
    stage = final.parent / f"{prefix}{os.getpid()}"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir()
    try:
        yield stage
        os.replace(stage, final)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # a stage of this process found at entry is stale (pid reuse after a kill)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
