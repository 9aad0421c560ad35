"""The encrypted payload: entries, embeddings and thumbnails, serialised without pickle.

Layout (inside the age ciphertext; integers big-endian)::

    0       8     magic b"LFRWLP\\x00\\x01"
    8       4     J = length of the JSON index
    12      J     JSON {"model_id", "dim", "count", "entries": [
                          {"subject_ref", "category", "image_source", "capture_date",
                           "review_by", "thumbnail_bytes"}, ...]}
    12+J    4*count*dim   float32 little-endian embedding matrix, row i = entries[i]
    ...     sum(thumbnail_bytes)   the entries' JPEG thumbnails, concatenated in order

Decoding copies the matrix and each thumbnail into buffers the process owns
(a numpy array and bytearrays) so :meth:`Watchlist.purge` can overwrite them.
"""
from __future__ import annotations

import json
import struct
from collections import Counter
from dataclasses import dataclass
from operator import itemgetter

import numpy as np

from ..errors import WatchlistError
from ..pipeline.match import Watchlist

MAGIC = b"LFRWLP\x00\x01"
_LEN = struct.Struct(">I")
ENTRY_FIELDS = ("subject_ref", "category", "image_source", "capture_date", "review_by")
MAX_THUMBNAIL_BYTES = 64 * 1024
_KEYS = frozenset((*ENTRY_FIELDS, "thumbnail_bytes"))
_FIELDS_OF = itemgetter(*ENTRY_FIELDS)
_FIX = "rebuild the bundle with `appliance watchlist build`"


@dataclass
class Entry:
    """One watchlist entry as the back office builds it."""

    subject_ref: str
    category: str
    image_source: str
    capture_date: str
    review_by: str
    embedding: np.ndarray
    thumbnail: bytes

    def index(self) -> dict:
        """The entry's JSON index record (no biometric)."""
        record = {name: getattr(self, name) for name in ENTRY_FIELDS}
        record["thumbnail_bytes"] = len(self.thumbnail)
        return record


def encode(entries: list[Entry], model_id: str, dim: int) -> bytes:
    """Serialise entries into payload bytes (no duplicate check: that is build's and load's job)."""
    index = json.dumps({"model_id": model_id, "dim": dim, "count": len(entries),
                        "entries": [e.index() for e in entries]},
                       separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    matrix = np.zeros((len(entries), dim), "<f4")
    for row, entry in enumerate(entries):
        matrix[row] = entry.embedding
    return b"".join([MAGIC, _LEN.pack(len(index)), index, matrix.tobytes(),
                     *(e.thumbnail for e in entries)])


def _refuse(reason: str) -> WatchlistError:
    return WatchlistError(f"payload refused: {reason}", fix=_FIX)


def _read_index(buf: memoryview) -> tuple[dict, int]:
    if bytes(buf[:len(MAGIC)]) != MAGIC or len(buf) < len(MAGIC) + _LEN.size:
        raise _refuse("wrong payload magic")
    (length,) = _LEN.unpack_from(buf, len(MAGIC))
    start = len(MAGIC) + _LEN.size
    if start + length > len(buf):
        raise _refuse("payload index runs past the end")
    try:
        index = json.loads(bytes(buf[start:start + length]).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise _refuse("payload index is not UTF-8 JSON") from None
    return index, start + length


def _check_index(index: dict) -> list[dict]:
    entries = index.get("entries") if isinstance(index, dict) else None
    if not isinstance(entries, list) or index.get("count") != len(entries):
        raise _refuse("entry count does not match the entries listed")
    for pos, entry in enumerate(entries):
        values = _FIELDS_OF(entry) if type(entry) is dict and _KEYS <= entry.keys() else ("",)
        if not all(values) or set(map(type, values)) != {str}:
            raise _refuse(f"entry {pos} lacks one of {', '.join(ENTRY_FIELDS)}")
        size = entry["thumbnail_bytes"]
        if type(size) is not int or not 0 < size <= MAX_THUMBNAIL_BYTES:
            raise _refuse(f"entry {pos} thumbnail size is out of bounds")
    refs = [e["subject_ref"] for e in entries]
    if len(set(refs)) != len(refs):
        dupes = sorted(ref for ref, n in Counter(refs).items() if n > 1)
        raise _refuse(f"duplicate subject refs ({len(dupes)} refs appear more than once)")
    return entries


def decode(buf: bytearray, deployment_id: str) -> Watchlist:
    """Parse payload bytes into a Watchlist whose matrix and thumbnails the process owns."""
    view = memoryview(buf)
    try:
        index, offset = _read_index(view)
        entries = _check_index(index)
        dim, count = index.get("dim"), len(entries)
        if type(dim) is not int or not 1 <= dim <= 4096:
            raise _refuse("embedding dimension out of bounds")
        matrix_end = offset + 4 * count * dim
        thumbs_end = matrix_end + sum(e["thumbnail_bytes"] for e in entries)
        if thumbs_end != len(view):
            raise _refuse(f"payload is {len(view)} bytes, its index describes {thumbs_end}")
        matrix = np.frombuffer(view[offset:matrix_end], "<f4").reshape(count, dim).astype(np.float32)
        records, pos = [], matrix_end
        for entry in entries:
            size = entry.pop("thumbnail_bytes")
            records.append({**entry, "thumbnail": bytearray(view[pos:pos + size])})
            pos += size
    finally:
        view.release()
    refs = [e["subject_ref"] for e in records]
    return Watchlist(refs, matrix, str(index.get("model_id", "")), records, deployment_id)
