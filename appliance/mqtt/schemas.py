"""JSON Schemas (draft 2020-12) of every MQTT payload under lfr/v1/<unit>/.

These dicts are the source of truth; docs/schemas/*.json are written from them
(`appliance mqtt schemas --out docs/schemas`) and a test fails when the two differ,
so the tablet and console teams always read what the unit enforces.
"""
from __future__ import annotations

import json
from pathlib import Path

SCHEMA_BASE = "https://lfr-appliance.invalid/schemas/v1/"
UUID = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
TIME = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$"
UNIT = r"^[a-z0-9][a-z0-9-]{1,62}$"
JPEG_B64 = r"^/9j/[A-Za-z0-9+/]*={0,2}$"
JPEG_B64_OR_EMPTY = r"^(/9j/[A-Za-z0-9+/]*={0,2})?$"
SIG_B64 = r"^[A-Za-z0-9+/]{86}==$"
KEY_ID = r"^[0-9a-f]{4}(:[0-9a-f]{4}){7}$"
MAX_JPEG_B64 = 262144
OFFICER = r"^[A-Za-z0-9._-]{1,64}$"


def _text(max_len: int, min_len: int = 1) -> dict:
    return {"type": "string", "minLength": min_len, "maxLength": max_len}


def _envelope(kind: str, title: str, props: dict, optional: dict | None = None,
              signer: str = "the unit's") -> dict:
    """A signed, versioned payload: schema tag, unit, time, key id, signature; ``optional``
    properties may be absent."""
    common = {
        "schema": {"const": f"lfr/v1/{kind}", "description": "payload type and version"},
        "unit": {"type": "string", "pattern": UNIT, "description": "unit id (same as in the topic)"},
        "time": {"type": "string", "pattern": TIME, "description": "UTC, RFC 3339, Z suffix"},
        "key_id": {"type": "string", "pattern": KEY_ID,
                   "description": f"fingerprint of {signer} Ed25519 key: first 16 bytes of "
                                  "SHA-256(raw public key), hex in groups of 4"},
        "sig": {"type": "string", "pattern": SIG_B64,
                "description": "base64 Ed25519 signature over the RFC 8785 canonical JSON of "
                               "this object without 'sig' (see docs/mqtt.md)"},
    }
    required = {**common, **props}
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"{SCHEMA_BASE}{kind}.json", "title": title, "type": "object",
            "additionalProperties": False, "required": sorted(required),
            "properties": {**required, **(optional or {})}}


ALERT = _envelope("alert", "Alert: a watchlist match decided on one track", {
    "alert_id": {"type": "string", "pattern": UUID, "description": "UUID; re-sends keep it, consumers de-duplicate"},
    "camera": {"type": "string", "pattern": r"^[A-Za-z0-9_-]{1,32}$"},
    "deployment_id": _text(64),
    "subject_ref": _text(128),
    "category": {**_text(64, 0), "description": "offence/category from the watchlist entry (G4)"},
    "reference_jpeg": {"type": "string", "pattern": JPEG_B64_OR_EMPTY, "maxLength": MAX_JPEG_B64,
                       "description": "watchlist reference thumbnail, JPEG, base64; empty only when "
                                      "the watchlist entry has none"},
    "face_jpeg": {"type": "string", "pattern": JPEG_B64, "maxLength": MAX_JPEG_B64,
                  "description": "the matched face crop only, JPEG, base64"},
    "score": {"type": "number", "minimum": -1, "maximum": 1},
    "threshold": {"type": "number", "minimum": -1, "maximum": 1},
    "model_id": _text(128),
    "track_id": {"type": "integer", "minimum": 0},
    "quality": {"type": "object", "maxProperties": 16,
                "propertyNames": {"pattern": r"^[a-z_]{1,32}$"},
                "additionalProperties": {"type": "number"},
                "description": "quality measures of the matched face (size_px, sharpness, ...)"},
}, optional={
    "kind": {"enum": ["alert", "repeat_sighting"],
             "description": "revision 2. Absent or 'alert': a new alarm. 'repeat_sighting': the subject was "
                            "alerted on this camera within [match] repeat_window_s; attach it to the original "
                            "alert's card, no new alarm"},
    "original_alert_id": {"type": "string", "pattern": UUID,
                          "description": "revision 2; repeat sightings only: the alert this sighting repeats"},
})
ALERT["$comment"] = (
    "revision 2 (adds 'kind' and 'original_alert_id' for repeat sightings); alarms are unchanged from revision 1, "
    "and a revision-1 consumer refuses repeat sightings rather than show them as alarms")
ALERT["if"] = {"required": ["kind"], "properties": {"kind": {"const": "repeat_sighting"}}}
ALERT["then"] = {"required": ["original_alert_id"]}
ALERT["else"] = {"not": {"required": ["original_alert_id"]}}

STATUS = _envelope("status", "Status: retained; the broker publishes the last will (offline)", {
    "state": {"enum": ["online", "offline", "degraded"]},
    "reason": _text(200, 0),
})

HEARTBEAT = _envelope("heartbeat", "Heartbeat: liveness, outbox depth and the unit's status", {
    "seq": {"type": "integer", "minimum": 0},
    "uptime_s": {"type": "number", "minimum": 0},
    "outbox_pending": {"type": "integer", "minimum": 0},
}, optional={
    "state": {"enum": ["starting", "running", "camera_lost", "stopping", "stopped", "faulted"],
              "description": "the pipeline's state (Unit.status())"},
    "reason": _text(200, 0),
    "frames_per_s": {"type": "number", "minimum": 0, "description": "frames finished per second, last 5 s"},
    "deployment_id": _text(64),
    "seconds_left": {"type": "number", "minimum": 0, "description": "until the deployment's not-after"},
    "watchlist_entries": {"type": "integer", "minimum": 0},
    "threshold": {"type": "number", "minimum": -1, "maximum": 1,
                  "description": "the match threshold in force (the accuracy card's rule for this list's size)"},
    "expected_fpir": {"type": "number", "minimum": 0, "maximum": 1,
                      "description": "expected false-positive identification rate at that threshold and list size"},
})

ADJUDICATION = _envelope("adjudication", "Adjudication: officers' decision on one alert, signed by the "
                         "console (console -> unit)", {
    "adjudication_id": {"type": "string", "pattern": UUID, "description": "UUID; the unit de-duplicates on it"},
    "alert_id": {"type": "string", "pattern": UUID},
    "decision": {"enum": ["confirm", "reject", "unable"]},
    "officer_ids": {"type": "array", "minItems": 1, "maxItems": 2, "uniqueItems": True,
                    "items": {"type": "string", "pattern": OFFICER},
                    "description": "the signed-in officer, or two distinct officers for a two-person "
                                   "confirmation (AI Act Art 14(5))"},
}, optional={"note": _text(200, 0)}, signer="the console's")

_COUNT = {"type": "integer", "minimum": 0}
_RATE = {"type": ["number", "null"], "minimum": 0, "description": "null when the divisor is 0"}

RECORD = _envelope("record", "Deployment record: the figures a force publishes per deployment (G8), "
                   "computed by the unit from its audit log when the deployment ends", {
    "deployment_id": _text(64),
    "date": {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$", "description": "UTC date of the start"},
    "location": _text(200, 0),
    "started": {"type": "string", "pattern": TIME},
    "ended": {"type": ["string", "null"], "pattern": TIME, "description": "null while still running"},
    "not_before": {"type": ["string", "null"], "pattern": TIME, "description": "authorised window start"},
    "not_after": {"type": ["string", "null"], "pattern": TIME, "description": "authorised window end"},
    "watchlist_size": {"type": ["integer", "null"], "minimum": 0},
    "faces_seen": _COUNT, "alerts": _COUNT, "confirmed_true": _COUNT, "confirmed_false": _COUNT,
    "unable": _COUNT, "not_adjudicated": _COUNT,
    "verified_alert_rate": {**_RATE, "maximum": 1},
    "false_alerts_per_1000_faces": _RATE,
    "threshold": {"type": ["number", "null"], "minimum": -1, "maximum": 1},
    "model_id": {"type": ["string", "null"], "maxLength": 128},
}, optional={
    "repeat_sightings": {**_COUNT, "description": "revision 2: repeat sightings (not alarms): a subject seen "
                                                  "again on a camera within [match] repeat_window_s of its alert"},
})

SCHEMAS: dict[str, dict] = {"alert": ALERT, "status": STATUS, "heartbeat": HEARTBEAT,
                            "adjudication": ADJUDICATION, "record": RECORD}


def write_schema_files(out_dir: Path) -> list[Path]:
    """Write docs/schemas/<kind>.json from SCHEMAS; return the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for kind, schema in SCHEMAS.items():
        path = out_dir / f"{kind}.json"
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
        paths.append(path)
    return paths
