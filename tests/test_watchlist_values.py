"""Signed is not sane: the values inside a bundle are checked at start, and by the back office before sealing.

Each bad bundle here is signed by the trusted authority (as a faulty or compromised back
office would sign it) and must be refused by `deployment start` with a WatchlistError
(exit 9) and a `watchlist_refused` audit entry, nothing loaded; the back office's
`seal_entries` refuses the same entries first (InputError).
"""
from __future__ import annotations

import dataclasses
import re
import struct

import numpy as np
import pytest

from appliance.errors import InputError, WatchlistError
from appliance.watchlist import payload
from lfr_tools.backoffice.authority import load_authority
from lfr_tools.backoffice.seal import Operation, seal_payload
from test_watchlist_refusals import refused
from watchlist_helpers import DIM, MODEL_ID, make_unit, seal, synthetic_entries, window, write_bundle


@pytest.fixture()
def unit(tmp_path):
    return make_unit(tmp_path)


@pytest.fixture(scope="module")
def entries():
    return synthetic_entries(5, seed=7)


def _row(entries, index: int, vector) -> list:
    out = list(entries)
    model_id, = entries[index].embeddings
    out[index] = dataclasses.replace(entries[index], embeddings={model_id: np.asarray(vector, np.float32)})
    return out


def _field(entries, index: int, **values) -> list:
    out = list(entries)
    out[index] = dataclasses.replace(entries[index], **values)
    return out


def _scaled(entries, index: int, factor: float) -> list:
    return _row(entries, index, entries[index].embedding * factor)


def _with(entries, index: int, value: float) -> list:
    vector = entries[index].embedding.copy()
    vector[3] = value
    return _row(entries, index, vector)


def _sof_patched(jpeg: bytes, width: int, height: int) -> bytes:
    """The same JPEG with its frame header claiming another size (a decompression bomb's trick)."""
    at = jpeg.index(b"\xff\xc0")
    return jpeg[:at + 5] + struct.pack(">HH", height, width) + jpeg[at + 9:]


BAD = {
    "NaN row": (lambda e: _with(e, 2, float("nan")), "embedding is not finite"),
    "infinite row": (lambda e: _with(e, 1, float("inf")), "embedding is not finite"),
    "norm-6 row": (lambda e: _scaled(e, 3, 6.0), "L2 norm 6"),
    "norm 1.01 row": (lambda e: _scaled(e, 0, 1.01), "L2 norm 1.01"),
    "zero row": (lambda e: _row(e, 4, np.zeros(DIM)), "L2 norm 0"),
    "subject ref with a space": (lambda e: _field(e, 1, subject_ref="S 0007"), "subject_ref 'S 0007'"),
    "subject ref with a newline": (lambda e: _field(e, 1, subject_ref="S-0007\n"), "subject_ref"),
    "subject ref of 65 characters": (lambda e: _field(e, 1, subject_ref="S" * 65), "subject_ref"),
    "empty category": (lambda e: _field(e, 2, category=""), "category"),
    "category with spaces": (lambda e: _field(e, 2, category="wanted: burglary"), "category"),
    "image source with an escape sequence": (lambda e: _field(e, 0, image_source="custody\x1b[2J"),
                                             "image_source"),
    "image source of 201 characters": (lambda e: _field(e, 0, image_source="x" * 201), "image_source"),
    "impossible date": (lambda e: _field(e, 0, capture_date="2026-13-45"), "capture_date"),
    "thumbnail that is a PNG": (lambda e: _field(e, 2, thumbnail=b"\x89PNG\r\n\x1a\n" + bytes(40)),
                                "thumbnail is not a usable JPEG"),
    "truncated thumbnail": (lambda e: _field(e, 2, thumbnail=e[2].thumbnail[:-300]), "end-of-image"),
    "thumbnail bomb header": (lambda e: _field(e, 2, thumbnail=_sof_patched(e[2].thumbnail, 20000, 20000)),
                              "over the limit"),
    "thumbnail of garbage after a JPEG header": (
        lambda e: _field(e, 2, thumbnail=e[2].thumbnail[:200] + bytes(1200) + b"\xff\xd9"), "JPEG"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_the_unit_refuses_a_signed_bundle_with_bad_values(unit, entries, tmp_path, case):
    change, reason = BAD[case]
    bad = change(entries)
    bundle = write_bundle(tmp_path, seal(unit, unit.authority_dir, bad, checked=False))
    error = refused(unit, bundle, "payload refused")
    assert reason in error.message, error.message
    assert unit.events[-1][1]["reason"].startswith("payload refused")


# our encoder cannot even write this one; on the unit the escaped form is refused (INDEX_EDITS below)
BACK_OFFICE_ONLY = {"subject ref with a lone surrogate": (lambda e: _field(e, 1, subject_ref="S-\udcff"),
                                                          "subject_ref")}


@pytest.mark.parametrize("case", sorted({**BAD, **BACK_OFFICE_ONLY}))
def test_the_back_office_refuses_them_before_sealing(unit, entries, case):
    change, reason = {**BAD, **BACK_OFFICE_ONLY}[case]
    with pytest.raises(InputError, match="refused before sealing") as info:
        seal(unit, unit.authority_dir, change(entries))
    assert reason in info.value.message


def test_the_bounds_leave_genuine_values_alone(unit, entries, tmp_path):
    """The control: float32 rounding of a normalised row and the engine's own thumbnails pass."""
    nudged = _scaled(entries, 0, 1.0 + 1e-5)
    dep = unit.deployment()
    dep.start(write_bundle(tmp_path, seal(unit, unit.authority_dir, nudged)), "Test Street")
    watchlist = dep.current_watchlist()
    assert watchlist is not None and len(watchlist) == 5
    assert np.all(np.isfinite(watchlist.matrix))


def _signed_plaintext(unit, plaintext: bytes, count: int) -> bytes:
    start, end = window()
    operation = Operation("OP-TEST-1", "PS-4521", start, end, unit.recipient, 1)
    return seal_payload(operation, plaintext, count, [(MODEL_ID, DIM)], load_authority(unit.authority_dir))


def _payload_with_index(entries, change) -> bytes:
    """A payload whose JSON index was edited by ``change`` (text in, text out)."""
    good = payload.encode(entries, [(MODEL_ID, DIM)])
    length = struct.unpack_from(">I", good, len(payload.MAGIC))[0]
    start = len(payload.MAGIC) + 4
    index = change(good[start:start + length].decode())
    raw = index.encode("utf-8", "surrogatepass")
    return payload.MAGIC + struct.pack(">I", len(raw)) + raw + good[start + length:]


INDEX_EDITS = {
    "extra key in an entry": (lambda t: t.replace('"review_by"', '"note":"x","review_by"', 1), "must hold exactly"),
    "extra top-level key": (lambda t: t.replace('{"models"', '{"extra":1,"models"', 1), "must hold exactly"),
    "5000-digit count": (lambda t: t.replace('"count":5', '"count":' + "9" * 5000, 1), "not plain UTF-8 JSON"),
    "deeply nested index": (lambda t: '{"x":' + "[" * 3000 + "]" * 3000 + "}", "not plain UTF-8 JSON"),
    "lone surrogate in the index": (lambda t: t.replace("WL-007-00001", "WL-\\udcff", 1), "not plain UTF-8 JSON"),
    "duplicate key in the index": (lambda t: t.replace('{"models"', '{"count":3,"models"', 1), "not plain"),
    "thumbnail size as text": (lambda t: re.sub(r'"thumbnail_bytes":(\d+)', r'"thumbnail_bytes":"\1"', t, count=1),
                               "thumbnail size is out of bounds"),
}


@pytest.mark.parametrize("case", sorted(INDEX_EDITS))
def test_a_signed_payload_index_of_any_shape_is_refused_cleanly(unit, entries, tmp_path, case):
    change, reason = INDEX_EDITS[case]
    plaintext = _payload_with_index(entries, change)
    error = refused(unit, write_bundle(tmp_path, _signed_plaintext(unit, plaintext, len(entries))), "payload refused")
    assert reason in error.message, error.message


def test_a_refused_payload_is_wiped(unit, entries, monkeypatch):
    """The buffers decoded for a refused payload are overwritten, as a purge would."""
    seen = []
    real = payload._wipe

    def spy(matrix, records):
        real(matrix, records)
        seen.append((matrix, records))
    monkeypatch.setattr(payload, "_wipe", spy)
    buf = bytearray(payload.encode(_with(entries, 2, float("nan")), [(MODEL_ID, DIM)]))
    with pytest.raises(WatchlistError, match="not finite"):
        payload.decode(buf, "OP-TEST-1", MODEL_ID)
    matrix, records = seen[0]
    assert not matrix.any() and all(not any(r["thumbnail"]) for r in records)
