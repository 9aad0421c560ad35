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

MAGIC = b"LFRWLP\x00\x02"
_LEN = struct.Struct(">I")
ENTRY_FIELDS = ("subject_ref", "category", "image_source", "capture_date", "review_by")
MAX_THUMBNAIL_BYTES = 64 * 1024
MAX_THUMBNAIL_PIXELS = 512 * 512
NORM_TOLERANCE = 1e-3      # |L2 norm - 1| allowed per embedding row (float32 normalising errs by ~1e-7)
MAX_INDEX_BYTES = 64 * 1024 * 1024
MAX_TEXT = 200
_KEYS = frozenset((*ENTRY_FIELDS, "thumbnail_bytes"))
_INDEX_KEYS = frozenset({"models", "count", "entries"})
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
    """The back office's check before sealing: the same rules the unit applies at start, on the
    matrix of every model the bundle carries."""
    if not entries:
        return None
    records = [{**{name: getattr(e, name) for name in ENTRY_FIELDS}, "thumbnail": e.thumbnail} for e in entries]
    for model_id in entries[0].embeddings:
        if any(model_id not in e.embeddings for e in entries):
            return f"an entry has no {model_id} embedding (every entry needs one per model)"
        why = entries_problem(records, np.stack([np.asarray(e.embeddings[model_id], np.float32) for e in entries]))
        if why:
            return f"{model_id}: {why}"
    return None


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
    why = entries_problem(records, matrix)
    if why:
        _wipe(matrix, records)
        raise _refuse(why)
    refs = [e["subject_ref"] for e in records]
    return Watchlist(refs, matrix, model_id, records, deployment_id)


def _wipe(matrix: np.ndarray, records: list[dict]) -> None:
    """Overwrite what a refused payload decoded into (the same care as Watchlist.purge)."""
    matrix.fill(0.0)
    for record in records:
        record["thumbnail"][:] = bytes(len(record["thumbnail"]))
