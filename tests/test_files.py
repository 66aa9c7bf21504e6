"""The file boundary: images read from memory with their size checked first, names that cannot escape a folder,
and paths with undecodable bytes kept away from C libraries (each crash case in a subprocess)."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import zlib

import cv2
import numpy as np
import pytest

from hap3d.files import MAX_NAME_BYTES, FileProblem, c_path, read_bytes, read_image_bgr, safe_name

BAD = os.fsdecode(b"bad\xff.png")  # a file name that is not UTF-8: its str holds a lone surrogate


def _png(tmp_path, name="a.png", shape=(20, 30, 3)):
    img = np.random.default_rng(0).integers(0, 255, shape, dtype=np.uint8)
    path = os.path.join(os.fsencode(tmp_path), os.fsencode(name))
    with open(path, "wb") as f:
        f.write(cv2.imencode(".png", img)[1].tobytes())
    return os.fsdecode(path), img


def _huge_png_header(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares width x height: what a decompression bomb looks like to a reader."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_image_equals_opencv_imread(tmp_path):
    path, img = _png(tmp_path)
    np.testing.assert_array_equal(read_image_bgr(path), cv2.imread(path))
    np.testing.assert_array_equal(read_image_bgr(path), img)


def test_undecodable_file_name_is_read_without_a_crash(tmp_path):
    path, img = _png(tmp_path, name=os.fsencode(BAD))
    # In a subprocess: the unguarded OpenCV call on such a name takes the process down (a segfault on some builds).
    code = ("import sys, numpy as np; from hap3d.files import read_image_bgr; "
            "img = read_image_bgr(sys.argv[1].encode('utf-8', 'surrogateescape').decode('utf-8', 'surrogateescape')); "
            "print(img.shape)")
    out = subprocess.run([sys.executable, "-c", code, path], capture_output=True, text=True, timeout=60,
                         errors="surrogateescape")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(img.shape)
    with c_path(path) as plain:
        plain.encode("utf-8")
        assert plain.endswith(".png") and os.path.samefile(plain, os.fsencode(path))


def test_missing_folder_huge_and_corrupt_images_are_named(tmp_path):
    with pytest.raises(FileProblem, match=r"image not found: .*nope\.png"):
        read_image_bgr(tmp_path / "nope.png")
    with pytest.raises(FileProblem, match="is a folder"):
        read_image_bgr(tmp_path)
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_huge_png_header(60000, 60000))
    with pytest.raises(FileProblem, match=r"declares 3600 megapixels .*, above the 100-megapixel limit: .*bomb\.png"):
        read_image_bgr(bomb)
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"\xff\xd8\xff garbage")
    with pytest.raises(FileProblem, match=r"junk\.jpg"):
        read_image_bgr(junk)
    with pytest.raises(FileProblem, match="above the 0 MB limit"):
        read_bytes(bomb, limit=10)


@pytest.mark.parametrize("name, expected", [
    ("..", "item"), (".", "item"), ("...", "item"), ("../../etc/passwd", "_.._etc_passwd"), ("a/b", "a_b"),
    ("photo", "photo"), ("", "item"), ("x\ny", "x_y"), (".hidden", "hidden"),
])
def test_safe_name_stays_inside_its_folder(tmp_path, name, expected):
    got = safe_name(name)
    assert got == expected
    assert (tmp_path / got).resolve().parent == tmp_path.resolve()


def test_safe_name_of_undecodable_and_long_names():
    assert safe_name(BAD) == "bad_xff.png"  # backslash replaced: it is a separator on Windows
    long = safe_name("é" * 500)
    assert len(long.encode("utf-8")) <= MAX_NAME_BYTES and long
