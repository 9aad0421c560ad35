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

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@/+-]{0,63}$")
_HASH = re.compile(r"^[0-9a-f]{64}$")
_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)$")
_PATTERNS = {"id": _ID, "hash": _HASH, "time": _TIME}

FAULT_KINDS = ("camera_lost", "backend_fallback", "broker_down", "disk_low", "audit_write_failed",
               "watchdog", "stage_failed", "other")
DECISIONS = ("confirmed", "rejected", "unable")
RETENTION_REASONS = ("delivered", "retention", "deployment_end", "shutdown")


class EventError(ValueError):
    """An event does not match its schema (unknown type, missing or forbidden field)."""


def canonical(obj: object) -> bytes:
    """Canonical JSON: UTF-8, keys sorted, no whitespace, no NaN/Infinity."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def _check_text(value: object, limit: int = MAX_TEXT) -> str | None:
    if not isinstance(value, str):
        return "must be a string"
    return f"longer than {limit} characters" if len(value) > limit else None


def _check(kind: object, value: object) -> str | None:
    """Return why ``value`` is not of ``kind``, or None when it is."""
    if isinstance(kind, tuple):
        return None if value in kind else f"must be one of {', '.join(kind)}"
    if kind == "text":
        return _check_text(value)
    if kind in _PATTERNS:
        ok = isinstance(value, str) and _PATTERNS[kind].match(value)
        return None if ok else {"id": "must be an identifier (1-64 of A-Z a-z 0-9 . _ : @ / + -)",
                                "hash": "must be 64 lowercase hex digits (SHA-256)",
                                "time": "must be an ISO 8601 time with zone"}[kind]
    if kind == "count":
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
        return None if ok else "must be a non-negative integer"
    if kind == "number":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        return None if ok else "must be a finite number"
    if kind == "flag":
        return None if isinstance(value, bool) else "must be true or false"
    return _check_mapping(kind, value)


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


def _s(version: int, doc: str, /, **fields: object) -> EventSchema:
    """Schema from keyword fields: ``name=kind`` is required, ``name=_opt(kind)`` optional."""
    return EventSchema(version, fields, doc)


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
    "watchlist_load": _s(1, "a watchlist bundle was loaded (hash and size, never entries)",
                         deployment_id="id", bundle_hash="hash", entry_count="count",
                         model_id="id"),
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
    "alert_images_deleted": _s(1, "an alert's face crop and reference thumbnail were deleted from the unit "
                                  "(their SHA-256 stay here): delivered, retention window over, deployment ended, shutdown",
                               alert_id="id", reason=RETENTION_REASONS, delivered="flag",
                               image_hashes="hashes", deployment_id=_opt("id")),
    "alert_expired": _s(1, "an alert was not delivered to the broker within the outbox's maximum age",
                        alert_id="id", age_s="number"),
    "adjudication": _s(1, "an officer's decision on an alert (G5)",
                       alert_id="id", decision=DECISIONS, officer_ids="officers", time="time",
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
    schema = SCHEMAS.get(event_type)
    if schema is None:
        raise EventError(f"unknown event type {event_type!r}; known: {', '.join(sorted(SCHEMAS))}")
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


def decode_entry(data: bytes | str) -> dict:
    """Parse entry bytes and check the envelope and payload schema; raise EventError."""
    if len(data) > MAX_ENTRY_BYTES:
        raise EventError(f"entry larger than {MAX_ENTRY_BYTES} bytes")
    try:
        entry = json.loads(data)
    except ValueError as exc:
        raise EventError(f"not JSON: {exc}") from None
    if not isinstance(entry, dict) or set(entry) != ENVELOPE_KEYS:
        raise EventError("not an audit entry envelope")
    if entry["v"] != ENVELOPE_VERSION:
        raise EventError(f"envelope version {entry['v']!r} unsupported")
    schema = validate_payload(entry["type"], entry["payload"])
    if entry["schema"] != schema.version:
        raise EventError(f"{entry['type']}: schema v{entry['schema']} unsupported "
                         f"(this verifier knows v{schema.version})")
    return entry
