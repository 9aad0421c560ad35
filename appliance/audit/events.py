"""Audit event schemas, one versioned schema per event type, and canonical JSON.

Standard library only: the offline verifier imports this file to check entries.

Privacy by construction (GOVERNANCE G1): every payload field has a declared
scalar kind with a length bound, unknown fields are refused, and no kind can
hold a vector, an image or bytes. An alert carries a subject reference and a
score, never an embedding or a crop; counters carry numbers only. So a
non-match biometric cannot be written to the log, whatever the caller passes.

Entry envelope (the exact bytes hashed into the Merkle tree)::

    {"log": <log id>, "payload": {...}, "schema": <payload schema version>,
     "seq": <0-based position>, "time": <UTC ISO 8601>, "type": <event type>,
     "unit": <unit id>, "v": 1}

The schema table below is documented field by field in docs/audit.md.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass

ENVELOPE_VERSION = 1
ENVELOPE_KEYS = frozenset({"v", "seq", "log", "unit", "time", "type", "schema", "payload"})
MAX_ENTRY_BYTES = 2560
MAX_TEXT = 200
MAX_COUNT = 2 ** 53 - 1      # the largest integer every JSON reader keeps exact
MAX_NUMBER = 1e12            # scores and thresholds lie in [-1, 1], ages in seconds: far below
MAX_INT_DIGITS = 19          # a longer integer literal is refused before int() reads it
MAX_DEPTH = 8                # entries nest 3 deep, export lines 2: anything deeper is not ours

# fullmatch, never re.match with "$": "$" also matches before a trailing newline
ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/+-]{0,63}")
_HASH = re.compile(r"[0-9a-f]{64}")
_LOG = re.compile(r"[0-9a-f]{32}")
TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)")
_PATTERNS = {"id": ID, "hash": _HASH, "time": TIME, "log": _LOG}
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")

FAULT_KINDS = ("camera_lost", "backend_fallback", "broker_down", "disk_low", "audit_write_failed",
               "watchdog", "stage_failed", "other")
DECISIONS = ("confirmed", "rejected", "unable")
RETENTION_REASONS = ("delivered", "retention", "deployment_end", "shutdown")
ADJUDICATION_REFUSALS = ("rate_limited", "retained", "oversized", "malformed_json", "bad_fields", "wrong_unit",
                         "unknown_key", "bad_signature", "unknown_alert", "duplicate", "sink_error")


class EventError(ValueError):
    """An event does not match its schema (unknown type, missing or forbidden field)."""


def canonical(obj: object) -> bytes:
    """Canonical JSON: UTF-8, keys sorted, no whitespace, no NaN/Infinity."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"an integer of {len(text)} digits is out of range")
    return int(text)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:24]} is out of range")
    return value


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set = set()
        twice = next(key for key, _value in pairs if key in seen or seen.add(key))
        raise ValueError(f"key {ascii(twice)[:40]} appears twice")
    return obj


def _check_tree(value: object) -> None:
    """Depth bound and valid Unicode (no lone surrogates from \\u escapes) in every key and string."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
        if isinstance(item, str):
            _check_unicode(item)
        elif isinstance(item, dict):
            for key, inner in item.items():
                _check_unicode(key)
                stack.append((inner, depth + 1))
        elif isinstance(item, list):
            stack.extend((inner, depth + 1) for inner in item)


def _check_unicode(text: str) -> None:
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("a string holds a lone surrogate (not Unicode text)") from None


def loads_strict(data: bytes | str, limit: int, canonical_checked: bool = False) -> object:
    """Parse untrusted JSON of at most ``limit`` bytes; raise ValueError for anything but plain data.

    Refused: NaN and Infinity, numbers out of range (huge integers, 1e999), duplicate keys,
    nesting deeper than MAX_DEPTH, lone surrogates, invalid UTF-8. Standard library only.
    ``canonical_checked``: the caller compares the result's canonical form with the bytes
    (which refuses duplicate keys too), so duplicates need not be looked for here.
    """
    if isinstance(data, (bytes, bytearray)):
        if len(data) > limit:
            raise ValueError(f"longer than {limit} bytes")
        try:
            data = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"not UTF-8: {exc.reason} at byte {exc.start}") from None
    elif len(data) > limit:
        raise ValueError(f"longer than {limit} characters")
    try:
        value = (_STRICT_CANONICAL if canonical_checked else _STRICT).decode(data)
    except RecursionError:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels") from None
    # The walk is needed only where it can find something: a lone surrogate comes only from a
    # \\uD800-\\uDFFF escape (the text itself is valid UTF-8), and a depth over MAX_DEPTH needs
    # more than MAX_DEPTH brackets. Genuine lines have neither, so the verifier's hot path skips it.
    if _SURROGATE_ESCAPE.search(data) or data.count("[") + data.count("{") > MAX_DEPTH:
        _check_tree(value)
    return value


_STRICT = json.JSONDecoder(parse_int=_bounded_int, parse_float=_finite_float, parse_constant=_refuse_constant,
                           object_pairs_hook=_unique_keys)
# for bytes that must also be canonical: re-encoding drops a duplicate key, so the canonical
# comparison refuses duplicates and the (slower) pairs hook is not needed
_STRICT_CANONICAL = json.JSONDecoder(parse_int=_bounded_int, parse_float=_finite_float,
                                     parse_constant=_refuse_constant)


def is_count(value: object) -> bool:
    """A non-negative integer (not a bool) no larger than MAX_COUNT."""
    return type(value) is int and 0 <= value <= MAX_COUNT


def _check_text(value: object, limit: int = MAX_TEXT) -> str | None:
    if not isinstance(value, str):
        return "must be a string"
    if len(value) > limit:
        return f"longer than {limit} characters"
    try:
        _check_unicode(value)
    except ValueError as exc:
        return str(exc)
    return None


def _check(kind: object, value: object) -> str | None:
    """Return why ``value`` is not of ``kind``, or None when it is."""
    if isinstance(kind, tuple):
        return None if value in kind else f"must be one of {', '.join(kind)}"
    if kind == "text":
        return _check_text(value)
    if kind in _PATTERNS:
        ok = isinstance(value, str) and _PATTERNS[kind].fullmatch(value)
        return None if ok else {"id": "must be an identifier (1-64 of A-Z a-z 0-9 . _ : @ / + -)",
                                "hash": "must be 64 lowercase hex digits (SHA-256)",
                                "log": "must be a log id (32 lowercase hex digits)",
                                "time": "must be an ISO 8601 time with zone"}[kind]
    if kind == "count":
        return None if is_count(value) else f"must be a non-negative integer, at most {MAX_COUNT}"
    if kind == "number":
        ok = type(value) in (int, float) and math.isfinite(value) and abs(value) <= MAX_NUMBER
        return None if ok else f"must be a finite number of magnitude at most {MAX_NUMBER:g}"
    if kind == "flag":
        return None if isinstance(value, bool) else "must be true or false"
    return _check_mapping(kind, value)


def check_value(kind: object, value: object) -> str | None:
    """Why ``value`` is not of field kind ``kind`` ("id", "time", "count", "text", ...), or None."""
    return _check(kind, value)


def _check_mapping(kind: object, value: object) -> str | None:
    if kind == "officers":
        if not isinstance(value, list) or not 1 <= len(value) <= 4:
            return "must be a list of 1 to 4 officer ids"
        bad = [v for v in value if _check("id", v)]
        return f"officer id {bad[0]!r} is not an identifier" if bad else None
    if kind in ("counts", "hashes"):
        inner = "count" if kind == "counts" else "hash"
        if not isinstance(value, dict) or len(value) > 32:
            return "must be a mapping of at most 32 names"
        for key, item in value.items():
            why = _check("id", key) or _check(inner, item)
            if why:
                return f"entry {key!r}: {why}"
        return None
    raise EventError(f"schema table names an unknown field kind {kind!r}")


@dataclass(frozen=True)
class EventSchema:
    """One event type: its payload schema version, fields (kind, required) and meaning."""

    version: int
    fields: dict
    doc: str
    older: tuple[int, ...] = ()  # earlier versions whose payloads this one still validates

    def knows(self, version: object) -> bool:
        """True for this version and the earlier ones it reads (they lacked only optional fields)."""
        return version == self.version or version in self.older


def _s(version: int, doc: str, /, older: tuple[int, ...] = (), **fields: object) -> EventSchema:
    """Schema from keyword fields: ``name=kind`` is required, ``name=_opt(kind)`` optional."""
    return EventSchema(version, fields, doc, older)


def _opt(kind: object) -> dict:
    return {"optional": kind}


SCHEMAS: dict[str, EventSchema] = {
    "log_created": _s(1, "first entry of every log: the unit and its public key",
                      public_key="text", key_fingerprint="text"),
    "service_start": _s(1, "the pipeline service started",
                        version="text", config_hash="hash", model_hashes="hashes",
                        backend=_opt("id")),
    "service_stop": _s(1, "the pipeline service stopped", reason="text"),
    "config_change": _s(1, "a configuration value changed",
                        key="text", old="text", new="text", config_hash=_opt("hash"),
                        by=_opt("id")),
    "threshold_change": _s(1, "the match threshold changed (G7)",
                           old="number", new="number", floor="number", model_id="id",
                           by=_opt("id")),
    "deployment_start": _s(1, "a deployment began (G2, G10)",
                           deployment_id="id", authorising_officer="id", location_label="text",
                           not_before="time", not_after="time"),
    "deployment_end": _s(1, "a deployment ended", deployment_id="id", reason="text"),
    "watchlist_load": _s(1, "a watchlist bundle was loaded (hash and size, never entries), with the "
                            "match threshold chosen for its size and that threshold's expected FPIR (G7)",
                         deployment_id="id", bundle_hash="hash", entry_count="count",
                         model_id="id", threshold=_opt("number"), expected_fpir=_opt("number"),
                         target_fpir=_opt("number"), threshold_source=_opt(("card", "configured")),
                         threshold_floor=_opt("number")),
    "watchlist_refused": _s(1, "a watchlist bundle was refused",
                            bundle_hash="hash", reason="text", deployment_id=_opt("id")),
    "watchlist_expired": _s(1, "a loaded watchlist reached its not-after time",
                            deployment_id="id", bundle_hash="hash"),
    "watchlist_purge": _s(1, "a watchlist was purged from memory and disk (G3)",
                          deployment_id="id", bundle_hash="hash", reason="text"),
    "alert": _s(1, "a track cleared the threshold against a watchlist subject",
                alert_id="id", time="time", subject_ref="id", score="number",
                threshold="number", model_id="id", deployment_id=_opt("id"),
                camera_id=_opt("id"), track_id=_opt("count")),
    "repeat_sighting": _s(1, "a subject alerted on this camera within [match] repeat_window_s was seen again: "
                             "no new alarm; its crop is handled as an alert's (outbox, retention)",
                          alert_id="id", original_alert_id="id", time="time", subject_ref="id",
                          score="number", threshold="number", model_id="id", deployment_id=_opt("id"),
                          camera_id=_opt("id"), track_id=_opt("count")),
    "alert_images_deleted": _s(1, "an alert's face crop and reference thumbnail were deleted from the unit "
                                  "(their SHA-256 stay here): delivered, retention window over, deployment ended, shutdown",
                               alert_id="id", reason=RETENTION_REASONS, delivered="flag",
                               image_hashes="hashes", deployment_id=_opt("id")),
    "alert_expired": _s(1, "an alert was not delivered to the broker within the outbox's maximum age",
                        alert_id="id", age_s="number"),
    "adjudication": _s(2, "officers' decision on an alert (G5), signed by a pinned console key",
                       older=(1,), alert_id="id", decision=DECISIONS, officer_ids="officers", time="time",
                       deployment_id=_opt("id"), adjudication_id=_opt("id"), sender=_opt("id"),
                       console_key=_opt("id"), console_sig=_opt("text"), note=_opt("text")),
    "adjudication_refused": _s(1, "an adjudication the unit refused (unknown key, bad signature, ...)",
                               reason=ADJUDICATION_REFUSALS, detail="text", sender=_opt("id"),
                               adjudication_id=_opt("id"), alert_id=_opt("id"), console_key=_opt("id"),
                               deployment_id=_opt("id")),
    "commissioned": _s(1, "the unit was commissioned: the SHA-256 of its signed commissioning record",
                        record_hash="hash", software_version="text", model_hashes="hashes",
                        key_fingerprint="text", selftest="counts"),
    "counters": _s(1, "aggregate counts for one period (numbers only)",
                   period_start="time", period_end="time", faces_seen="count",
                   quality_rejects="counts", non_matches_discarded="count",
                   frames_dropped="count", frames_processed=_opt("count"),
                   matches=_opt("count"), alerts=_opt("count"), no_watchlist=_opt("count"),
                   deployment_id=_opt("id")),
    "fault": _s(1, "a fault: camera lost, backend fallback, broker down, disk low, ...",
                kind=FAULT_KINDS, detail="text"),
}


def _field_kind(spec: object) -> tuple[object, bool]:
    if isinstance(spec, dict):
        return spec["optional"], False
    return spec, True


def validate_payload(event_type: str, payload: object) -> EventSchema:
    """Raise EventError unless ``payload`` matches the schema of ``event_type``; return the schema."""
    schema = SCHEMAS.get(event_type) if isinstance(event_type, str) else None
    if schema is None:
        raise EventError(f"unknown event type {ascii(event_type)[:40]}; known: {', '.join(sorted(SCHEMAS))}")
    if not isinstance(payload, dict):
        raise EventError(f"{event_type}: payload must be a mapping")
    unknown = sorted(set(payload) - set(schema.fields))
    if unknown:
        raise EventError(f"{event_type}: field(s) {', '.join(unknown)} not in schema "
                         f"v{schema.version} (biometrics and images can never be logged)")
    for name, spec in schema.fields.items():
        kind, required = _field_kind(spec)
        if name not in payload:
            if required:
                raise EventError(f"{event_type}: required field {name!r} is missing")
            continue
        why = _check(kind, payload[name])
        if why:
            raise EventError(f"{event_type}: field {name!r} {why}")
    return schema


def encode_entry(seq: int, log_id: str, unit: str, time: str, event_type: str,
                 payload: dict) -> bytes:
    """Validate ``payload`` and return the canonical entry bytes (the Merkle leaf data)."""
    schema = validate_payload(event_type, payload)
    data = canonical({"v": ENVELOPE_VERSION, "seq": seq, "log": log_id, "unit": unit,
                      "time": time, "type": event_type, "schema": schema.version,
                      "payload": payload})
    if len(data) > MAX_ENTRY_BYTES:
        raise EventError(f"{event_type}: entry larger than {MAX_ENTRY_BYTES} bytes")
    return data


_ENVELOPE_KINDS = {"seq": "count", "log": "log", "unit": "id", "time": "time"}


def decode_entry(data: bytes | str) -> dict:
    """Parse entry bytes and check the envelope and payload schema; raise EventError.

    The bytes must be exactly the canonical form the log writes, so no two readers
    can see different fields in the same signed bytes.
    """
    try:
        raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        entry = loads_strict(raw, MAX_ENTRY_BYTES, canonical_checked=True)
    except ValueError as exc:
        raise EventError(f"not an audit entry: {exc}") from None
    if not isinstance(entry, dict) or set(entry) != ENVELOPE_KEYS:
        raise EventError("not an audit entry envelope")
    if type(entry["v"]) is not int or entry["v"] != ENVELOPE_VERSION:
        raise EventError(f"envelope version {ascii(entry['v'])[:20]} unsupported")
    for name, kind in _ENVELOPE_KINDS.items():
        why = _check(kind, entry[name])
        if why:
            raise EventError(f"envelope field {name!r} {why}")
    if not isinstance(entry["type"], str):
        raise EventError("envelope field 'type' must be a string")
    schema = validate_payload(entry["type"], entry["payload"])
    if type(entry["schema"]) is not int or not schema.knows(entry["schema"]):
        raise EventError(f"{entry['type']}: schema v{ascii(entry['schema'])[:20]} unsupported "
                         f"(this verifier knows v{schema.version})")
    if canonical(entry) != raw:
        raise EventError("entry bytes are not the canonical JSON the log writes")
    return entry
