"""The console's state: alerts survive a restart encrypted at rest, repeat sightings join a card,
decisions follow the two-officer rule and stay queued until the broker acknowledges them, images
are forgotten at deployment end (key shredded) and after retention."""
from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from appliance.console.keys import sign_adjudication
from appliance.console.store import ConsoleStore, DecisionRefused
from appliance.mqtt.payload import alert_body, verify
from mqtt_helpers import jpeg, make_alert

UNIT = "van-dev-01"
KEY = Ed25519PrivateKey.generate()


def sign(unit, alert_id, decision, officers, note):
    return sign_adjudication(KEY, unit, alert_id, decision, officers, note)


def alert(**overrides) -> dict:
    return alert_body(make_alert(**overrides), UNIT)


def test_alert_survives_a_restart_encrypted_at_rest(tmp_path):
    store = ConsoleStore(tmp_path)
    a = alert()
    assert store.add_alert(UNIT, a)[0] == "alert"
    assert store.add_alert(UNIT, a) is None  # a re-delivery changes nothing
    store.close()
    again = ConsoleStore(tmp_path)
    [card] = again.cards(decided=False)
    assert card["alert_ids"] == [a["alert_id"]] and card["latest"]["subject_ref"] == a["subject_ref"]
    assert again.images(a["alert_id"]) == (jpeg(64), jpeg(96))
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("console.db*"))
    assert a["face_jpeg"][:40].encode() not in raw and base64.b64decode(a["face_jpeg"])[:64] not in raw


def test_repeat_sightings_join_the_open_card_and_a_decision_covers_them(tmp_path):
    store = ConsoleStore(tmp_path)
    first, second = alert(track_id=1), alert(track_id=2)
    other = alert(subject_ref="WL-OTHER")
    assert store.add_alert(UNIT, first)[0] == "alert"
    kind, card = store.add_alert(UNIT, second)
    assert kind == "sighting" and card["sightings"] == 2 and card["card_id"] == first["alert_id"]
    assert store.add_alert(UNIT, other)[0] == "alert"
    store.decide(first["alert_id"], "PC-1", "confirm", "", False, sign)
    unsent = store.unsent()
    assert len(unsent) == 2 and len({u[0] for u in unsent}) == 2
    for _id, _unit, payload in unsent:
        verify("adjudication", payload, KEY.public_key())
    assert store.add_alert(UNIT, alert(track_id=3))[0] == "alert"  # the subject's card is decided: a new one


def test_two_officer_rule(tmp_path):
    store = ConsoleStore(tmp_path)
    a = alert()
    store.add_alert(UNIT, a)
    card = store.decide(a["alert_id"], "PC-1", "confirm", "same scar", True, sign)
    assert card["state"] == "awaiting_second" and store.unsent() == []
    with pytest.raises(DecisionRefused, match="second, different officer"):
        store.decide(a["alert_id"], "PC-1", "confirm", "", True, sign)
    card = store.decide(a["alert_id"], "PC-2", "confirm", "checked ID", True, sign)
    assert card["state"] == "decided" and card["officer_ids"] == ["PC-1", "PC-2"]
    assert card["note"] == "same scar; checked ID"
    with pytest.raises(DecisionRefused, match="already decided"):
        store.decide(a["alert_id"], "PC-3", "reject", "", True, sign)
    with pytest.raises(DecisionRefused):
        store.decide(a["alert_id"], "PC-3", "arrest", "", True, sign)


def test_unsent_adjudications_survive_a_restart_until_acknowledged(tmp_path):
    store = ConsoleStore(tmp_path)
    a = alert()
    store.add_alert(UNIT, a)
    store.decide(a["alert_id"], "PC-1", "reject", "", False, sign)
    store.close()
    again = ConsoleStore(tmp_path)
    [(adjudication_id, unit, _payload)] = again.unsent()
    again.mark_sent(adjudication_id)
    assert unit == UNIT and again.unsent() == []


def test_images_forgotten_at_deployment_end_and_after_retention(tmp_path):
    store = ConsoleStore(tmp_path)
    ended, running = alert(), alert(deployment_id="dep-b", subject_ref="WL-B")
    store.add_alert(UNIT, ended)
    store.add_alert(UNIT, running, now=1000.0)
    keys_before = sorted(p.name for p in store.vault.root.iterdir())
    assert len(keys_before) == 2
    assert store.add_record(UNIT, {"deployment_id": ended["deployment_id"], "alerts": 1}) == 1
    assert store.images(ended["alert_id"]) is None and len(list(store.vault.root.iterdir())) == 1
    assert store.card(ended["alert_id"])["image_alert"] is None  # the card stays, its images do not
    assert store.images(running["alert_id"]) is not None
    assert store.forget_older(3600, now=1000.0 + 3601) == 1
    assert store.images(running["alert_id"]) is None


def test_a_units_repeat_sighting_joins_its_original_alerts_card_even_once_decided(tmp_path):
    """kind "repeat_sighting": the card of original_alert_id, no new card (no alarm), counted."""
    store = ConsoleStore(tmp_path)
    first = alert(track_id=1)
    assert store.add_alert(UNIT, first)[0] == "alert"
    store.decide(first["alert_id"], "PC-1", "confirm", "", False, sign)
    repeat = alert(track_id=4, kind="repeat_sighting", original_alert_id=first["alert_id"])
    kind, card = store.add_alert(UNIT, repeat)
    assert kind == "sighting" and card["card_id"] == first["alert_id"] and card["state"] == "decided"
    assert card["repeat_sightings"] == 1 and card["sightings"] == 2
    assert store.cards(decided=False) == []
    unknown = alert(track_id=5, kind="repeat_sighting", original_alert_id="00000000-0000-4000-8000-000000000777")
    assert store.add_alert(UNIT, unknown)[0] == "alert", "a sighting of an alert the console never had is shown"
