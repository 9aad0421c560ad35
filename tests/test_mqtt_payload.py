"""MQTT payloads: canonical JSON, Ed25519 signatures, JSON Schemas (no broker needed)."""
from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from appliance.errors import InputError
from appliance.mqtt.payload import Signer, alert_body, canonical_bytes, encode, schema_errors, verify
from appliance.mqtt.schemas import SCHEMAS

try:
    from tests import mqtt_helpers as mh
except ImportError:  # tests/ is not a package: pytest put it on sys.path
    import mqtt_helpers as mh

REPO = Path(__file__).resolve().parents[1]
UNIT = "van-dev-01"


@pytest.fixture(scope="module")
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def signed_alert(key, **overrides) -> dict:
    return Signer(UNIT, key).sign("alert", alert_body(mh.make_alert(**overrides), UNIT))


def test_canonical_form_is_rfc8785_without_sig():
    payload = {"sig": "x", "b": 1.0, "a": [1e-7, 0.5, "é"], "c": {"z": 1, "y": None}}
    assert canonical_bytes(payload) == '{"a":[1e-7,0.5,"é"],"b":1,"c":{"y":null,"z":1}}'.encode()


def test_signed_alert_verifies_and_matches_schema(key):
    payload = signed_alert(key)
    assert schema_errors("alert", payload) == []
    wire = encode(payload)
    back = verify("alert", wire, key.public_key())
    assert back["alert_id"] == payload["alert_id"]
    assert base64.b64decode(back["face_jpeg"]) == mh.jpeg(64)
    assert back["time"].endswith("Z") and back["unit"] == UNIT


@pytest.mark.parametrize("field,value", [("score", 0.99), ("subject_ref", "WL-999"), ("unit", "van-dev-02"),
                                         ("face_jpeg", base64.b64encode(mh.jpeg(32)).decode())])
def test_altered_alert_is_refused(key, field, value):
    payload = signed_alert(key)
    payload[field] = value
    with pytest.raises(InputError, match="signature does not verify"):
        verify("alert", payload, key.public_key())


def test_other_key_is_refused(key):
    with pytest.raises(InputError, match="not the unit key"):
        verify("alert", signed_alert(key), Ed25519PrivateKey.generate().public_key())


def test_tablet_can_verify_from_wire_bytes_alone(key):
    """What the tablet does: parse, drop sig, RFC 8785, Ed25519 verify (docs/mqtt.md)."""
    import rfc8785

    msg = json.loads(encode(signed_alert(key)))
    sig = base64.b64decode(msg.pop("sig"))
    key.public_key().verify(sig, rfc8785.dumps(msg))  # raises if wrong


@pytest.mark.parametrize("overrides,message", [
    ({"face_jpeg": b"\x89PNG not a jpeg"}, "not a JPEG"),
    ({"score": 1.5}, "score"),
    ({"track_id": -1}, "track_id"),
    ({"camera": "cam 0/../"}, "camera"),
    ({"quality": {"Size": 1.0}}, "quality"),
    ({"time": "yesterday"}, "ISO 8601"),
    ({"unit": "van-dev-02"}, "van-dev-02"),
])
def test_bad_alert_fields_are_refused_before_the_outbox(key, overrides, message):
    with pytest.raises(InputError, match=message):
        signed_alert(key, **overrides)


def test_missing_alert_field_is_named(key):
    alert = mh.make_alert()
    del alert["subject_ref"]
    with pytest.raises(InputError, match="subject_ref"):
        alert_body(alert, UNIT)


def test_pipeline_alert_dataclass_is_accepted(key):
    alert_mod = pytest.importorskip("appliance.pipeline.alert")
    fields = mh.make_alert()
    alert = alert_mod.Alert(unit=UNIT, frame_seq=7, capture_t_mono=1.0, **fields)
    payload = Signer(UNIT, key).sign("alert", alert_body(alert, UNIT))
    assert payload["alert_id"] == alert.alert_id
    assert payload["time"].endswith("Z") and "frame_seq" not in payload
    verify("alert", payload, key.public_key())


def test_status_and_heartbeat_are_signed(key):
    signer = Signer(UNIT, key)
    verify("status", encode(signer.sign("status", {"state": "offline", "reason": "connection lost"})),
           key.public_key())
    verify("heartbeat", signer.sign("heartbeat", {"seq": 3, "uptime_s": 1.5, "outbox_pending": 0}),
           key.public_key())


def test_schema_files_in_docs_match_the_code():
    for kind, schema in SCHEMAS.items():
        path = REPO / "docs" / "schemas" / f"{kind}.json"
        assert path.exists(), f"{path} missing: run `appliance mqtt schemas --out docs/schemas`"
        assert json.loads(path.read_text()) == schema, f"{path} is stale: regenerate it"


def test_repeat_sighting_is_an_alert_payload_naming_its_original_alarms_keep_revision_1(key):
    """Alert schema revision 2: a repeat sighting carries kind and original_alert_id (both or
    neither); an alarm carries neither, so its bytes are what a revision-1 consumer expects."""
    original = signed_alert(key)
    assert "kind" not in original and "original_alert_id" not in original
    alert_mod = pytest.importorskip("appliance.pipeline.alert")
    repeat = alert_mod.Alert(unit=UNIT, frame_seq=9, capture_t_mono=2.0, kind="repeat_sighting",
                             original_alert_id=original["alert_id"], **mh.make_alert())
    payload = verify("alert", Signer(UNIT, key).sign("alert", alert_body(repeat, UNIT)), key.public_key())
    assert (payload["kind"], payload["original_alert_id"]) == ("repeat_sighting", original["alert_id"])
    lacking = {k: v for k, v in payload.items() if k != "original_alert_id"}
    assert any("original_alert_id" in e for e in schema_errors("alert", lacking))
    stray = dict(original, original_alert_id=original["alert_id"])
    assert schema_errors("alert", stray) != [], "an alarm must not name an original"
    assert "revision 2" in SCHEMAS["alert"]["$comment"]
