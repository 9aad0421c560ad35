"""The deployment record: computed from one deployment's audit entries with the report's own
counting, signed, and published retained on lfr/v1/<unit>/record, surviving a broker outage."""
from __future__ import annotations

import time

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from appliance.audit.log import AuditLog
from appliance.audit.record import deployment_record, record_from_db
from appliance.audit.report import build_report, entries_from_db
from appliance.mqtt import AlertPublisher, verify
from appliance.mqtt.payload import Signer, schema_errors

try:
    from tests import mqtt_helpers as mh
    from tests.mqtt_helpers import van_certs  # noqa: F401  (fixture)
except ImportError:  # tests/ is not a package: pytest put it on sys.path
    import mqtt_helpers as mh
    from mqtt_helpers import van_certs  # noqa: F401

UNIT = "van-dev-01"
DEP = "op-kestrel-1"
MODEL = "mobilefacenet@d8ba40c0127f"


def _alert(i: int, dep: str = DEP) -> dict:
    return {"alert_id": f"00000000-0000-4000-8000-{i:012d}", "time": "2026-11-28T09:12:00Z",
            "subject_ref": f"S-{i}", "score": 0.7, "threshold": 0.65, "model_id": MODEL, "deployment_id": dep}


def _adjudication(i: int, decision: str, dep: str = DEP) -> dict:
    return {"alert_id": f"00000000-0000-4000-8000-{i:012d}", "decision": decision, "officer_ids": ["PC-1"],
            "time": "2026-11-28T09:13:00Z", "deployment_id": dep}


def _counters(faces: int, dep: str = DEP) -> dict:
    return {"period_start": "2026-11-28T09:00:00Z", "period_end": "2026-11-28T09:01:00Z", "faces_seen": faces,
            "quality_rejects": {}, "non_matches_discarded": faces, "frames_dropped": 0, "deployment_id": dep}


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    db = tmp_path_factory.mktemp("record") / "audit.db"
    log = AuditLog.open(db, Ed25519PrivateKey.generate(), UNIT, head_every_n=100, head_every_s=3600)
    append = log.append
    append("deployment_start", {"deployment_id": DEP, "authorising_officer": "supt-0042",
                                "location_label": "High Street, north end", "not_before": "2026-11-28T08:00:00+00:00",
                                "not_after": "2026-11-28T18:00:00Z"})
    append("watchlist_load", {"deployment_id": DEP, "bundle_hash": "ab" * 32, "entry_count": 120, "model_id": MODEL})
    append("counters", _counters(1500))
    for i in range(5):
        append("alert", _alert(i))
    append("counters", _counters(500))
    for i, original in enumerate((0, 3)):  # seen again within the repeat window: not alarms
        append("repeat_sighting", dict(_alert(50 + i), original_alert_id=_alert(original)["alert_id"],
                                       subject_ref=f"S-{original}"))
    append("adjudication", _adjudication(50, "rejected"))  # a decision on a sighting counts for no alert
    for i, decision in [(0, "confirmed"), (1, "rejected"), (2, "unable"), (3, "confirmed"), (1, "confirmed")]:
        append("adjudication", _adjudication(i, decision))  # alert 1: the later decision stands
    append("deployment_end", {"deployment_id": DEP, "reason": "ended by operator"})
    append("adjudication", _adjudication(4, "rejected"))  # decided after the end: still this deployment's
    append("deployment_start", {"deployment_id": "op-other", "authorising_officer": "supt-0042",
                                "location_label": "Station Road", "not_before": "2026-11-29T08:00:00Z",
                                "not_after": "2026-11-29T18:00:00Z"})
    append("counters", _counters(9999, "op-other"))
    append("alert", _alert(99, "op-other"))
    log.close()
    return entries_from_db(db)[0], db


@pytest.fixture(scope="module")
def entries(logged):
    return logged[0]


def test_record_fields_from_one_deployment(entries, logged):
    record = deployment_record(entries, DEP)
    assert record_from_db(logged[1], DEP) == record
    assert record["location"] == "High Street, north end" and record["date"] == record["started"][:10]
    assert record["not_before"] == "2026-11-28T08:00:00.000000Z" and record["not_after"].startswith("2026-11-28T18")
    assert record["ended"] and record["ended"] >= record["started"]
    assert (record["watchlist_size"], record["model_id"], record["threshold"]) == (120, MODEL, 0.65)
    assert (record["faces_seen"], record["alerts"], record["repeat_sightings"]) == (2000, 5, 2)
    assert (record["confirmed_true"], record["confirmed_false"], record["unable"], record["not_adjudicated"]) == \
        (3, 1, 1, 0)
    assert record["verified_alert_rate"] == 0.6 and record["false_alerts_per_1000_faces"] == 0.5


def test_record_and_report_count_alike(entries):
    record, report = deployment_record(entries, DEP), build_report(entries, DEP)
    assert (record["confirmed_true"], record["confirmed_false"], record["unable"]) == \
        (report["confirmed"], report["rejected"], report["unable"])
    assert record["verified_alert_rate"] == report["verified_alert_rate"]


def test_record_of_a_deployment_with_no_alerts_uses_the_given_threshold(entries):
    other = deployment_record(entries[:-1], "op-other", threshold=0.66)
    assert other["alerts"] == 0 and other["threshold"] == 0.66 and other["ended"] is None
    assert other["verified_alert_rate"] is None and other["faces_seen"] == 9999
    with pytest.raises(ValueError, match="no audit entry"):
        deployment_record(entries, "op-never")


def test_signed_record_matches_its_schema(entries):
    key = Ed25519PrivateKey.generate()
    payload = Signer(UNIT, key).sign("record", deployment_record(entries, DEP))
    assert schema_errors("record", payload) == []
    back = verify("record", payload, key.public_key())
    assert (back["alerts"], back["repeat_sightings"]) == (5, 2)


def test_record_published_during_a_broker_outage_reaches_a_late_tablet_retained(entries, tmp_path, van_certs):
    mh.require_mosquitto()
    broker = mh.VanBroker(tmp_path / "broker", van_certs)
    broker.start()
    keys = mh.new_keystore(tmp_path / "keys")
    unit = AlertPublisher.open(mh.unit_config(van_certs, broker.unit_port, UNIT), keys, tmp_path / "o.db")
    try:
        assert _wait(lambda: unit.stats()["connected"])
        broker.stop()
        sent = unit.publish_record(deployment_record(entries, DEP))  # the link is down
        broker.start()
        tablet = mh.Subscriber(van_certs, broker.lan_port, [f"lfr/v1/{UNIT}/record"], identity="tablet-02")
        try:
            tablet.wait_connected()
            assert tablet.wait_for(lambda t: t.payloads("record"), 15), "record not re-published on reconnect"
            got = verify("record", tablet.payloads("record")[-1], keys.verify_key())
        finally:
            tablet.close()
        assert got == sent and got["deployment_id"] == DEP
    finally:
        unit.close()
        broker.stop()


def _wait(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.02)
    return bool(predicate())
