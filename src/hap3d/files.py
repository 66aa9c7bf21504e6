"""The boundary between the program and the file system: reading files that may be hostile, naming outputs.

Everything here holds whatever a file or a file name claims:
* a path is never handed to a C library (OpenCV) in a form that can crash it: images are read by Python and
  decoded from memory, and a path that is not valid UTF-8 (a lone surrogate from undecodable bytes) reaches a C
  library only through a link with a plain name;
* sizes are checked before anything is allocated: the file's length, and an image's dimensions from its header;
* an output name derived from an input (a file stem) can never leave its output folder.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import tempfile
import unicodedata
from collections.abc import Iterator

import numpy as np

from hap3d.utils import Hap3dError

MAX_IMAGE_PIXELS = 100_000_000  # 10k x 10k: far above any dataset or photo, far below what a crafted header claims
MAX_IMAGE_BYTES = 512 * 2**20
MAX_NAME_BYTES = 200  # an output name's length, below every file system's 255-byte limit with room for suffixes


class FileProblem(Hap3dError):
    """A file cannot be used: missing, unreadable, too large or malformed. The message names the file."""


def display(path: str | os.PathLike) -> str:
    """A path for messages: undecodable bytes shown as \\xNN instead of breaking the terminal or the log."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def is_plain(path: str | os.PathLike) -> bool:
    """Whether a path is valid UTF-8 text, i.e. safe to hand to a C library as a string."""
    try:
        os.fspath(path).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def read_bytes(path: str | os.PathLike, limit: int, what: str = "file") -> bytes:
    """The whole file, refused (with its name) when it is not a regular file or larger than ``limit`` bytes."""
    try:
        with open(os.fsencode(path), "rb") as f:
            st = os.fstat(f.fileno())
            if not _is_regular(st.st_mode):
                raise FileProblem(f"{what} is not a regular file: {display(path)}")
            if st.st_size > limit:
                raise FileProblem(f"{what} is {st.st_size / 2**20:.0f} MB, above the {limit / 2**20:.0f} MB limit: "
                                  f"{display(path)}")
            data = f.read(limit + 1)
    except FileNotFoundError:
        raise FileProblem(f"{what} not found: {display(path)}") from None
    except IsADirectoryError:
        raise FileProblem(f"{what} is a folder, not a file: {display(path)}") from None
    except OSError as err:
        raise FileProblem(f"{what} cannot be read ({err.strerror or err}): {display(path)}") from None
    if len(data) > limit:
        raise FileProblem(f"{what} is larger than the {limit / 2**20:.0f} MB limit: {display(path)}")
    return data


def _is_regular(mode: int) -> bool:
    import stat

    return stat.S_ISREG(mode)


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
