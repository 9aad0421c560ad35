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

Signed is not the same as sane: every value is checked before a watchlist exists
(:func:`entry_problem`, :func:`embedding_problem`, :func:`thumbnail_problem`), on the
unit at start and in the back office before sealing. A NaN row would silence every
match, an infinite one crash the matcher, a row of norm 6 make strangers alert, and a
subject ref the audit log cannot record would stop the run at the first alert.
"""
from __future__ import annotations

import json
import re
import struct
from collections import Counter
from dataclasses import dataclass
from datetime import date

import numpy as np

from .. import imagefile
from ..audit.events import ID, loads_strict
from ..errors import WatchlistError
from ..pipeline.match import Watchlist

MAGIC = b"LFRWLP\x00\x01"
_LEN = struct.Struct(">I")
ENTRY_FIELDS = ("subject_ref", "category", "image_source", "capture_date", "review_by")
MAX_THUMBNAIL_BYTES = 64 * 1024
MAX_THUMBNAIL_PIXELS = 512 * 512
NORM_TOLERANCE = 1e-3      # |L2 norm - 1| allowed per embedding row (float32 normalising errs by ~1e-7)
MAX_INDEX_BYTES = 64 * 1024 * 1024
MAX_TEXT = 200
_KEYS = frozenset((*ENTRY_FIELDS, "thumbnail_bytes"))
_INDEX_KEYS = frozenset({"model_id", "dim", "count", "entries"})
_DATE = re.compile(r"\d{4}-\d\d-\d\d")
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


def _text_problem(value: str) -> str | None:
    if not 1 <= len(value) <= MAX_TEXT or not value.isprintable():
        return f"must be 1-{MAX_TEXT} printable characters"
    return None


def _date_problem(value: str) -> str | None:
    try:
        ok = bool(_DATE.fullmatch(value)) and date.fromisoformat(value) is not None
    except ValueError:
        ok = False
    return None if ok else "must be a date YYYY-MM-DD"


def _id_problem(value: str) -> str | None:
    return None if ID.fullmatch(value) else "must be an identifier (1-64 of A-Z a-z 0-9 . _ : @ / + -)"


_FIELD_CHECKS = {"subject_ref": _id_problem, "category": _id_problem, "image_source": _text_problem,
                 "capture_date": _date_problem, "review_by": _date_problem}


def field_problem(record: dict) -> tuple[str, str] | None:
    """(field, why) for the first unusable metadata field of an entry, or None.

    Subject ref and category are audit identifiers (an alert's subject ref goes into the
    audit log and the tablet's payload), the source is printable text, dates are dates.
    """
    for name, check in _FIELD_CHECKS.items():
        value = record.get(name)
        why = check(value) if type(value) is str else "must be text"
        if why:
            return name, f"{name} {ascii(value)[:40]} {why}"
    return None


def entry_problem(record: dict) -> str | None:
    """Why an entry's metadata is unusable (see :func:`field_problem`), or None."""
    found = field_problem(record)
    return found[1] if found else None


def embedding_problem(matrix: np.ndarray) -> str | None:
    """Why the embedding rows are unusable, or None: every value finite, every row of unit L2 norm."""
    finite = np.isfinite(matrix).all(axis=1)
    if not finite.all():
        return f"entry {int(np.argmin(finite))} embedding is not finite (NaN or infinity)"
    norms = np.linalg.norm(matrix.astype(np.float64), axis=1)
    off = np.abs(norms - 1.0) > NORM_TOLERANCE
    if off.any():
        row = int(np.argmax(off))
        return f"entry {row} embedding has L2 norm {norms[row]:.6g}, not 1 (tolerance {NORM_TOLERANCE})"
    return None


def thumbnail_problem(data: bytes | bytearray) -> str | None:
    """Why a reference thumbnail is unusable, or None: a complete JPEG within the size and pixel bounds."""
    if not 0 < len(data) <= MAX_THUMBNAIL_BYTES:
        return f"thumbnail of {len(data)} bytes is outside 1..{MAX_THUMBNAIL_BYTES}"
    try:
        imagefile.check_jpeg(data, MAX_THUMBNAIL_PIXELS)
    except imagefile.ImageRefused as exc:
        return f"thumbnail is not a usable JPEG: {exc}"
    return None


def entries_problem(records: list[dict], matrix: np.ndarray) -> str | None:
    """The first problem of a whole watchlist (metadata, duplicates, embeddings, thumbnails), or None."""
    for pos, record in enumerate(records):
        why = entry_problem(record) or thumbnail_problem(record["thumbnail"])
        if why:
            return f"entry {pos}: {why}"
    refs = [r["subject_ref"] for r in records]
    if len(set(refs)) != len(refs):
        dupes = sorted(ref for ref, n in Counter(refs).items() if n > 1)
        return f"duplicate subject refs ({len(dupes)} refs appear more than once)"
    return embedding_problem(matrix)


def check_entries(entries: list[Entry]) -> str | None:
    """The back office's check before sealing: the same rules the unit applies at start."""
    if not entries:
        return None
    matrix = np.stack([np.asarray(e.embedding, np.float32) for e in entries])
    records = [{**{name: getattr(e, name) for name in ENTRY_FIELDS}, "thumbnail": e.thumbnail} for e in entries]
    return entries_problem(records, matrix)


def _read_index(buf: memoryview) -> tuple[dict, int]:
    if bytes(buf[:len(MAGIC)]) != MAGIC or len(buf) < len(MAGIC) + _LEN.size:
        raise _refuse("wrong payload magic")
    (length,) = _LEN.unpack_from(buf, len(MAGIC))
    start = len(MAGIC) + _LEN.size
    if start + length > len(buf):
        raise _refuse("payload index runs past the end")
    try:
        index = loads_strict(bytes(buf[start:start + length]), MAX_INDEX_BYTES)
    except ValueError as exc:
        raise _refuse(f"payload index is not plain UTF-8 JSON: {exc}") from None
    return index, start + length


def _check_index(index: dict) -> list[dict]:
    if not isinstance(index, dict) or set(index) != _INDEX_KEYS:
        raise _refuse(f"payload index must hold exactly {', '.join(sorted(_INDEX_KEYS))}")
    entries = index["entries"]
    if not isinstance(entries, list) or index["count"] != len(entries):
        raise _refuse("entry count does not match the entries listed")
    for pos, entry in enumerate(entries):
        if type(entry) is not dict or set(entry) != _KEYS:
            raise _refuse(f"entry {pos} must hold exactly {', '.join(sorted(_KEYS))}")
        why = entry_problem(entry)
        if why:
            raise _refuse(f"entry {pos}: {why}")
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
        dim, count = index["dim"], len(entries)
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
    why = entries_problem(records, matrix)
    if why:
        _wipe(matrix, records)
        raise _refuse(why)
    refs = [e["subject_ref"] for e in records]
    return Watchlist(refs, matrix, str(index["model_id"]), records, deployment_id)


def _wipe(matrix: np.ndarray, records: list[dict]) -> None:
    """Overwrite what a refused payload decoded into (the same care as Watchlist.purge)."""
    matrix.fill(0.0)
    for record in records:
        record["thumbnail"][:] = bytes(len(record["thumbnail"]))
