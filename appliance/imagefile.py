"""Image files read with bounds: size and pixel count checked from the header before decoding.

A decompression bomb is a small file whose header announces a huge image (a 40 kB
PNG of 50,000 x 50,000 pixels decodes to 7.5 GB). OpenCV would allocate for it, so
the width and height are read here from the JPEG, PNG, BMP or WebP header first
(no decoder involved), and anything else, or anything over the pixel limit, is
refused before OpenCV sees a byte. The caller turns :class:`ImageRefused` into its
own typed error (InputError, CaptureError, WatchlistError).
"""
from __future__ import annotations

import os
import stat
import struct
from pathlib import Path

import cv2
import numpy as np

MAX_IMAGE_PIXELS = 40_000_000     # above an 8K frame (33 MP); a decoded BGR image of 120 MB at most
MAX_IMAGE_BYTES = 64 * 1024 * 1024
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # frame headers (not DHT, JPG, DAC)
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})


class ImageRefused(ValueError):
    """An image file is not one the appliance decodes (format, size or pixel count)."""


def _u16be(data: bytes | memoryview, at: int) -> int:
    return struct.unpack_from(">H", data, at)[0]


def _jpeg_size(data: bytes | memoryview) -> tuple[int, int]:
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise ImageRefused("JPEG segment marker expected")
        marker = data[pos + 1]
        if marker == 0xFF:
            pos += 1
            continue
        if marker in _STANDALONE:
            pos += 2
            continue
        if marker in _SOF:
            if pos + 9 > len(data):
                break
            height, width = _u16be(data, pos + 5), _u16be(data, pos + 7)
            if not width or not height:
                raise ImageRefused("JPEG frame header without a size")
            return width, height
        if marker in (0xDA, 0xD9):
            raise ImageRefused("JPEG scan before any frame header")
        length = _u16be(data, pos + 2)
        if length < 2:
            raise ImageRefused("JPEG segment length below 2")
        pos += 2 + length
    raise ImageRefused("JPEG ends before its frame header")


def _png_size(data: bytes) -> tuple[int, int]:
    if len(data) < 24 or data[12:16] != b"IHDR":
        raise ImageRefused("PNG without its IHDR header")
    return struct.unpack_from(">II", data, 16)


def _bmp_size(data: bytes) -> tuple[int, int]:
    if len(data) < 26:
        raise ImageRefused("BMP header truncated")
    if struct.unpack_from("<I", data, 14)[0] == 12:
        return struct.unpack_from("<HH", data, 18)
    width, height = struct.unpack_from("<ii", data, 18)
    return abs(width), abs(height)


def _webp_size(data: bytes) -> tuple[int, int]:
    chunk = data[12:16]
    if chunk == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack_from("<HH", data, 26)
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(data) >= 30:
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    raise ImageRefused("WebP header not recognised")


def image_size(data: bytes | memoryview) -> tuple[str, int, int]:
    """(format, width, height) from the header of a JPEG, PNG, BMP or WebP; ImageRefused otherwise."""
    head = bytes(data[:64 * 1024])
    if head[:3] == b"\xff\xd8\xff":
        return ("jpeg", *_jpeg_size(data))
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return ("png", *_png_size(head))
    if head[:2] == b"BM":
        return ("bmp", *_bmp_size(head))
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return ("webp", *_webp_size(head))
    raise ImageRefused("not a JPEG, PNG, BMP or WebP file")


def check_header(data: bytes | memoryview, max_pixels: int = MAX_IMAGE_PIXELS, formats: tuple[str, ...] | None = None
                 ) -> tuple[str, int, int]:
    """The header's (format, width, height) if within ``max_pixels`` (and of ``formats``); ImageRefused else."""
    kind, width, height = image_size(data)
    if formats is not None and kind not in formats:
        raise ImageRefused(f"a {kind.upper()} where {' or '.join(f.upper() for f in formats)} is required")
    if width * height > max_pixels:
        raise ImageRefused(f"{width} x {height} pixels is over the limit of {max_pixels:,} "
                           "(a decompression bomb, or a far larger image than a camera frame)")
    return kind, width, height


def decode(data: bytes | np.ndarray, flags: int = cv2.IMREAD_COLOR, max_pixels: int = MAX_IMAGE_PIXELS,
           formats: tuple[str, ...] | None = None) -> np.ndarray:
    """Decode image bytes after the header check; the result has the header's size, or ImageRefused."""
    buf = data if isinstance(data, np.ndarray) else np.frombuffer(data, np.uint8)
    _kind, width, height = check_header(memoryview(buf), max_pixels, formats)
    image = cv2.imdecode(buf, flags)
    if image is None or image.size == 0:
        raise ImageRefused("the decoder cannot read it (damaged or truncated)")
    if image.shape[:2] not in ((height, width), (width, height)):  # EXIF orientation may turn it
        raise ImageRefused(f"decoded to {image.shape[1]} x {image.shape[0]}, its header says {width} x {height}")
    return image


def read_file(path: str | Path, flags: int = cv2.IMREAD_COLOR, max_pixels: int = MAX_IMAGE_PIXELS,
              max_bytes: int = MAX_IMAGE_BYTES) -> np.ndarray:
    """Read and decode an image file: a regular file, at most ``max_bytes``, header within ``max_pixels``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise ImageRefused(f"cannot open it: {exc.strerror}") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_size > max_bytes:
        os.close(fd)
        raise ImageRefused("not a regular file" if not stat.S_ISREG(info.st_mode)
                           else f"{info.st_size} bytes is over the limit of {max_bytes}")
    with os.fdopen(fd, "rb") as fh:
        data = fh.read(max_bytes + 1)
    if not data:
        raise ImageRefused("the file is empty")
    if len(data) > max_bytes:
        raise ImageRefused(f"over the limit of {max_bytes} bytes")
    return decode(data, flags, max_pixels)


def check_jpeg(data: bytes | bytearray, max_pixels: int) -> tuple[int, int]:
    """(width, height) of a complete JPEG within ``max_pixels``; ImageRefused otherwise.

    Header size and pixel limit first, then the end-of-image marker (OpenCV decodes a
    truncated JPEG without complaint), then the whole entropy-coded stream is decoded
    at 1/8 scale (every coefficient is read; only the inverse DCT is skipped: ~4x faster).
    """
    view = memoryview(data)
    _kind, width, height = check_header(view, max_pixels, ("jpeg",))
    if bytes(view[-2:]) != b"\xff\xd9":
        raise ImageRefused("JPEG without its end-of-image marker (truncated)")
    image = cv2.imdecode(np.frombuffer(view, np.uint8), cv2.IMREAD_REDUCED_GRAYSCALE_8)
    if image is None or image.shape != (-(-height // 8), -(-width // 8)):
        raise ImageRefused("the JPEG decoder cannot read it (damaged)")
    image.fill(0)  # a reference face, even at 1/8 scale, is not left in freed memory
    return width, height
