"""The bundle file: one self-describing container.

Layout (all integers big-endian)::

    offset  size  field
    0       8     magic  b"LFRWLB\\x00\\x01"  (container version 1)
    8       4     M = manifest length in bytes (1 .. 65536)
    12      M     manifest, canonical JSON (see manifest.py)
    12+M    64    Ed25519 signature by the authority over
                  b"lfr-watchlist-manifest/1\\x00" + manifest
    76+M    rest  age ciphertext (binary age v1 file) of the payload

The manifest binds the ciphertext (``ciphertext_sha256``) and the plaintext
(``payload_sha256``), so neither can be swapped without breaking the signature.
The whole file is bounded by ``[watchlist] max_bundle_bytes`` (checked from the
file size before anything is read).
"""
from __future__ import annotations

import hashlib
import os
import stat
import struct
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ..errors import WatchlistError
from .manifest import MAX_MANIFEST_BYTES, Manifest, parse_manifest

MAGIC = b"LFRWLB\x00\x01"
SIGNATURE_BYTES = 64
HEADER = struct.Struct(">I")
SUFFIX = ".lfrwl"
_FIX = "copy the bundle again from the back office; if it still fails, ask for a rebuilt bundle"


@dataclass(frozen=True)
class Bundle:
    """A parsed (not yet verified, not decrypted) bundle."""

    manifest: Manifest
    manifest_bytes: bytes
    signature: bytes
    ciphertext: bytes | memoryview
    sha256: str
    size: int
    ciphertext_sha256: str = ""


def pack_head(manifest_bytes: bytes, signature: bytes) -> bytes:
    """Everything before the ciphertext."""
    if len(signature) != SIGNATURE_BYTES:
        raise WatchlistError("an Ed25519 signature is 64 bytes", fix="sign with an Ed25519 authority key")
    return MAGIC + HEADER.pack(len(manifest_bytes)) + manifest_bytes + signature


def pack(manifest_bytes: bytes, signature: bytes, ciphertext: bytes) -> bytes:
    """Assemble the container bytes."""
    return pack_head(manifest_bytes, signature) + ciphertext


def unpack(data: bytes) -> Bundle:
    """Split container bytes into manifest, signature and ciphertext; no crypto yet."""
    if data[:len(MAGIC)] != MAGIC:
        raise WatchlistError("not a watchlist bundle (wrong magic bytes: garbage or another file type)",
                             fix=_FIX)
    start = len(MAGIC) + HEADER.size
    if len(data) < start:
        raise WatchlistError("bundle is truncated (no manifest length)", fix=_FIX)
    (length,) = HEADER.unpack_from(data, len(MAGIC))
    if not 1 <= length <= MAX_MANIFEST_BYTES:
        raise WatchlistError(f"bundle manifest length {length} is out of bounds", fix=_FIX)
    if len(data) < start + length + SIGNATURE_BYTES + 1:
        raise WatchlistError(f"bundle is truncated ({len(data)} bytes; the manifest and signature "
                             "alone need more)", fix=_FIX)
    manifest_bytes = data[start:start + length]
    signature = data[start + length:start + length + SIGNATURE_BYTES]
    ciphertext = memoryview(data)[start + length + SIGNATURE_BYTES:]  # no copy of the largest part
    manifest = parse_manifest(manifest_bytes)
    file_hash, ciphertext_hash = parallel_sha256(data, ciphertext)
    return Bundle(manifest, manifest_bytes, signature, ciphertext, file_hash, len(data), ciphertext_hash)


def parallel_sha256(*blobs: bytes) -> list[str]:
    """Hex SHA-256 of each blob, in threads (hashlib releases the GIL, so 2 cores hash at once)."""
    if sum(len(b) for b in blobs) < 1 << 20:
        return [hashlib.sha256(b).hexdigest() for b in blobs]
    with ThreadPoolExecutor(max_workers=len(blobs)) as pool:
        return list(pool.map(lambda b: hashlib.sha256(b).hexdigest(), blobs))


def _check_size(info: os.stat_result, path: Path, max_bytes: int) -> None:
    if not stat.S_ISREG(info.st_mode):
        raise WatchlistError(f"{path} is not a regular file", fix="pass the path of a .lfrwl file")
    if info.st_size > max_bytes:
        raise WatchlistError(f"bundle {path.name} is {info.st_size} bytes, over the bound of {max_bytes} bytes",
                             fix="split the watchlist, or raise [watchlist] max_bundle_bytes "
                                 "if the operation really needs it")


def read_bundle(path: Path, max_bytes: int) -> Bundle:
    """Read and unpack a bundle file, refusing one over ``max_bytes`` before reading it.

    Only a regular file is read (a FIFO or a device could block or never end).
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise WatchlistError(f"no bundle at {path}", fix="pass the path of a .lfrwl file") from None
    except OSError as exc:
        raise WatchlistError(f"cannot read bundle {path}: {exc.strerror}", fix=_FIX) from None
    try:
        _check_size(os.fstat(fd), path, max_bytes)
    except WatchlistError:
        os.close(fd)
        raise
    with os.fdopen(fd, "rb") as fh:
        data = fh.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise WatchlistError(f"bundle {path.name} grew past {max_bytes} bytes while being read", fix=_FIX)
    return unpack(data)
