"""Build, sign, validate and verify MQTT payloads.

Canonical form (what the signature covers, so a tablet in any language can check it):
the payload object without its "sig" member, serialised by RFC 8785 (JSON
Canonicalization Scheme: keys sorted by UTF-16 code units, no whitespace, ECMAScript
number formatting, UTF-8). "sig" is the standard base64 (with padding) of the
64-byte Ed25519 signature over those bytes.
"""
from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json
import uuid
from functools import lru_cache
from typing import Any

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from jsonschema import Draft202012Validator

from ..clock import utc_text
from ..errors import InputError
from ..keyid import key_id
from .schemas import SCHEMAS

ALERT_FIELDS = ("camera", "deployment_id", "subject_ref", "category", "score", "threshold",
                "model_id", "track_id", "quality")


def new_alert_id() -> str:
    """A fresh alert id (UUID4); the caller puts it in the audit entry before submitting."""
    return str(uuid.uuid4())


def canonical_bytes(payload: dict) -> bytes:
    """RFC 8785 canonical JSON of ``payload`` without its "sig" member: the signed bytes."""
    return rfc8785.dumps({k: v for k, v in payload.items() if k != "sig"})


@lru_cache(maxsize=None)
def validator(kind: str) -> Draft202012Validator:
    """The compiled JSON Schema validator for a payload kind (alert, status, ...)."""
    return Draft202012Validator(SCHEMAS[kind])


def schema_errors(kind: str, payload: Any) -> list[str]:
    """Every schema violation of ``payload`` as 'path: message' strings (empty when valid)."""
    return [f"{'/'.join(str(p) for p in err.absolute_path) or '(root)'}: {err.message[:200]}"
            for err in validator(kind).iter_errors(payload)]


class Signer:
    """Signs payloads with the unit's Ed25519 key (from the key store)."""

    def __init__(self, unit: str, signing_key: Ed25519PrivateKey) -> None:
        self.unit = unit
        self._key = signing_key
        self.key_id = key_id(signing_key.public_key())

    def sign(self, kind: str, body: dict) -> dict:
        """Add schema tag, unit, key id and signature to ``body``; validate; return the payload."""
        payload = {"schema": f"lfr/v1/{kind}", "unit": self.unit, "key_id": self.key_id,
                   "time": body.get("time") or utc_text(digits=3), **{k: v for k, v in body.items() if k != "time"}}
        payload["sig"] = "A" * 86 + "=="  # placeholder so the schema check sees a complete object
        errors = schema_errors(kind, payload)
        if errors:
            raise InputError(f"{kind} payload invalid: {'; '.join(errors[:5])}",
                             fix="pass the fields documented in docs/mqtt.md with the types of "
                                 f"docs/schemas/{kind}.json")
        payload["sig"] = base64.b64encode(self._key.sign(canonical_bytes(payload))).decode("ascii")
        return payload


def _jpeg_b64(value: Any, name: str) -> str:
    if isinstance(value, (bytes, bytearray)):
        if value and not bytes(value[:3]) == b"\xff\xd8\xff":
            raise InputError(f"alert field '{name}' is not a JPEG", fix="pass JPEG bytes (cv2.imencode('.jpg', crop))")
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, str):
        return value
    raise InputError(f"alert field '{name}' must be JPEG bytes or base64 text", fix="pass JPEG bytes")


def _utc_z(value: str) -> str:
    """An ISO 8601 time with an offset, as UTC with a Z suffix (the schema's form)."""
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        raise InputError(f"alert time {value!r} is not ISO 8601", fix="use datetime.isoformat()") from None
    if parsed.tzinfo is None:
        raise InputError(f"alert time {value!r} has no UTC offset", fix="use an aware UTC datetime")
    return utc_text(parsed, digits=3)


def alert_fields(alert: Any) -> dict:
    """The alert as a plain dict: accepts a dict or the pipeline's Alert dataclass."""
    if dataclasses.is_dataclass(alert) and not isinstance(alert, type):
        return dataclasses.asdict(alert)
    if isinstance(alert, dict):
        return alert
    raise InputError(f"cannot publish a {type(alert).__name__} as an alert",
                     fix="pass appliance.pipeline.alert.Alert or a dict with the fields of docs/mqtt.md")


def alert_body(alert: Any, unit: str) -> dict:
    """Turn the pipeline's alert into the unsigned alert body (JPEGs base64, id and time set).

    Required: camera, deployment_id, subject_ref, category, score, threshold, model_id,
    track_id, quality, face_jpeg, reference_jpeg (JPEG bytes or base64 text; the reference
    may be empty when the watchlist entry has no thumbnail). Optional: alert_id (set it
    before writing the audit entry), time, unit (must be this unit), kind and
    original_alert_id (a repeat sighting: kind "repeat_sighting" and the original's id). Other fields, such
    as frame_seq, stay on the unit.
    """
    alert = alert_fields(alert)
    missing = [k for k in (*ALERT_FIELDS, "face_jpeg", "reference_jpeg") if k not in alert]
    if missing:
        raise InputError(f"alert lacks {', '.join(missing)}", fix="see docs/mqtt.md, 'Alert'")
    if alert.get("unit", unit) != unit:
        raise InputError(f"alert from unit {alert['unit']!r} given to the publisher of {unit!r}",
                         fix="set [unit] id consistently")
    body = {k: alert[k] for k in ALERT_FIELDS}
    body["score"], body["threshold"] = float(alert["score"]), float(alert["threshold"])
    body["quality"] = {k: float(v) for k, v in dict(alert["quality"]).items()}
    body["alert_id"] = alert.get("alert_id") or new_alert_id()
    body["time"] = _utc_z(alert["time"]) if alert.get("time") else utc_text(digits=3)
    body["face_jpeg"] = _jpeg_b64(alert["face_jpeg"], "face_jpeg")
    body["reference_jpeg"] = _jpeg_b64(alert["reference_jpeg"], "reference_jpeg")
    if alert.get("kind", "alert") != "alert":  # alarms keep their revision-1 form
        body["kind"], body["original_alert_id"] = alert["kind"], alert.get("original_alert_id", "")
    return body


def encode(payload: dict) -> bytes:
    """Wire bytes of a payload (compact JSON, UTF-8)."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def verify(kind: str, data: bytes | dict, public_key: Ed25519PublicKey) -> dict:
    """Parse, schema-check and signature-check a unit payload; return it or raise InputError.

    This is what a tablet or console does with every alert, status and heartbeat.
    """
    payload = json.loads(data) if isinstance(data, (bytes, bytearray, str)) else data
    errors = schema_errors(kind, payload)
    if errors:
        raise InputError(f"{kind} payload does not match its schema: {'; '.join(errors[:3])}",
                         fix=f"compare with docs/schemas/{kind}.json")
    if payload["key_id"] != key_id(public_key):
        raise InputError(f"{kind} signed by key {payload['key_id']}, not the unit key given",
                         fix="provision the unit's current public key on the tablet")
    try:
        public_key.verify(base64.b64decode(payload["sig"]), canonical_bytes(payload))
    except InvalidSignature:
        raise InputError(f"{kind} signature does not verify (forged or altered)",
                         fix="discard it; never show an unverified alert") from None
    return payload
