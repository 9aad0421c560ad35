"""The encrypted payload: entries, embeddings and thumbnails, serialised without pickle.

Layout (inside the age ciphertext; integers big-endian)::

    0       8     magic b"LFRWLP\\x00\\x02"
    8       4     J = length of the JSON index
    12      J     JSON {"models": [{"model_id", "dim"}, ...], "count", "entries": [
                          {"subject_ref", "category", "image_source", "capture_date",
                           "review_by", "thumbnail_bytes"}, ...]}
    12+J    4*count*dim per model, in "models" order: float32 little-endian embedding
                  matrices, row i = entries[i]
    ...     sum(thumbnail_bytes)   the entries' JPEG thumbnails, concatenated in order

Embeddings of different models are not comparable, so a bundle may carry each entry's
vector for every model the unit can run (the NPU's and the CPU fallback's); the unit
decodes only the matrix of the model it runs. Decoding copies that matrix and each
thumbnail into buffers the process owns (a numpy array and bytearrays) so
:meth:`Watchlist.purge` can overwrite them; the other models' vectors stay in the
plaintext buffer, which the caller wipes.
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

MAGIC = b"LFRWLP\x00\x02"
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
    embeddings: dict[str, np.ndarray]  # model id -> L2-normalised vector, one per model carried
    thumbnail: bytes

    @property
    def embedding(self) -> np.ndarray:
        """The vector of an entry enrolled with one model (ValueError when it carries several)."""
        (vector,) = self.embeddings.values()
        return vector

    def index(self) -> dict:
        """The entry's JSON index record (no biometric)."""
        record = {name: getattr(self, name) for name in ENTRY_FIELDS}
        record["thumbnail_bytes"] = len(self.thumbnail)
        return record


def encode(entries: list[Entry], models: list[tuple[str, int]]) -> bytes:
    """Serialise entries with their vectors for each ``(model_id, dim)`` (no duplicate check:
    that is build's and load's job). Every entry must carry a vector of every model."""
    index = json.dumps({"models": [{"model_id": m, "dim": d} for m, d in models], "count": len(entries),
                        "entries": [e.index() for e in entries]},
                       separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    matrices = []
    for model_id, dim in models:
        matrix = np.zeros((len(entries), dim), "<f4")
        for row, entry in enumerate(entries):
            if model_id not in entry.embeddings:
                raise WatchlistError(f"entry {entry.subject_ref} has no {model_id} embedding",
                                     fix="enrol every entry with every model of the bundle")
            matrix[row] = entry.embeddings[model_id]
        matrices.append(matrix.tobytes())
    return b"".join([MAGIC, _LEN.pack(len(index)), index, *matrices, *(e.thumbnail for e in entries)])


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


def _models(index: dict) -> list[tuple[str, int]]:
    models = index.get("models")
    if not isinstance(models, list) or not models:
        raise _refuse("payload index lists no embedding model")
    pairs = [(m.get("model_id"), m.get("dim")) if type(m) is dict else (None, None) for m in models]
    if any(type(i) is not str or type(d) is not int or not 1 <= d <= 4096 for i, d in pairs):
        raise _refuse("each payload model needs a model_id and a dimension in 1..4096")
    if len({i for i, _ in pairs}) != len(pairs):
        raise _refuse("payload names a model twice")
    return pairs


def _matrix_of(view: memoryview, offset: int, count: int, models: list[tuple[str, int]],
               model_id: str) -> tuple[np.ndarray, int]:
    """A private copy of ``model_id``'s matrix, and where the thumbnails start."""
    if model_id not in {m for m, _ in models}:
        raise _refuse(f"payload carries no {model_id} embeddings (it has {', '.join(m for m, _ in models)})")
    matrix = None
    for name, dim in models:
        end = offset + 4 * count * dim
        if name == model_id and end <= len(view):
            matrix = np.frombuffer(view[offset:end], "<f4").reshape(count, dim).astype(np.float32)
        offset = end
    return matrix, offset


def decode(buf: bytearray, deployment_id: str, model_id: str) -> Watchlist:
    """Parse payload bytes into a Watchlist of ``model_id``'s vectors whose matrix and thumbnails
    the process owns (the other models' vectors are not copied out of ``buf``)."""
    view = memoryview(buf)
    try:
        index, offset = _read_index(view)
        entries = _check_index(index)
        models, count = _models(index), len(entries)
        matrix, matrix_end = _matrix_of(view, offset, count, models, model_id)
        thumbs_end = matrix_end + sum(e["thumbnail_bytes"] for e in entries)
        if thumbs_end != len(view):
            raise _refuse(f"payload is {len(view)} bytes, its index describes {thumbs_end}")
        records, pos = [], matrix_end
        for entry in entries:
            size = entry.pop("thumbnail_bytes")
            records.append({**entry, "thumbnail": bytearray(view[pos:pos + size])})
            pos += size
    finally:
        view.release()
    refs = [e["subject_ref"] for e in records]
    return Watchlist(refs, matrix, model_id, records, deployment_id)
