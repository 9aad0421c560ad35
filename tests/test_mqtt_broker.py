"""Alerts through a real mosquitto with the project's config, ACL and certificates."""
from __future__ import annotations

import json
import time
import uuid

import pytest

from appliance.mqtt import AlertPublisher, verify
from appliance.mqtt.payload import schema_errors

try:
    from tests import mqtt_helpers as mh
    from tests.mqtt_helpers import van_broker, van_certs  # noqa: F401  (fixtures)
except ImportError:  # tests/ is not a package: pytest put it on sys.path
    import mqtt_helpers as mh
    from mqtt_helpers import van_broker, van_certs  # noqa: F401

A, B = "van-dev-01", "van-dev-02"
TABLET_TOPICS = [f"lfr/v1/{u}/{k}" for u in (A, B) for k in ("alert", "status", "heartbeat")]


@pytest.fixture
def keys(tmp_path):
    return mh.new_keystore(tmp_path / "keys")


@pytest.fixture
def tablet(van_broker, van_certs):
    sub = mh.Subscriber(van_certs, van_broker.lan_port, TABLET_TOPICS, client_id=f"tablet-{uuid.uuid4().hex[:8]}")
    sub.wait_connected()
    yield sub
    sub.close()


def open_unit(van_certs, van_broker, keys, tmp_path, unit=A, cert_as=None, **callbacks):
    cfg = mh.unit_config(van_certs, van_broker.unit_port, unit, cert_as)
    return AlertPublisher.open(cfg, keys, tmp_path / f"{unit}.db", **callbacks)


def alert_ids(sub, unit=A) -> set[str]:
    return {p["alert_id"] for p in sub.payloads("alert") if p["unit"] == unit}


def test_end_to_end_alerts_reach_a_tls_tablet_signed_and_valid(van_broker, van_certs, keys, tablet, tmp_path):
    with open_unit(van_certs, van_broker, keys, tmp_path) as unit:
        sent = [unit.submit(mh.make_alert(track_id=i)) for i in range(25)]
        assert unit.flush(10)
        assert tablet.wait_for(lambda s: alert_ids(s) >= set(sent), 10)
    for payload in tablet.payloads("alert"):
        assert schema_errors("alert", payload) == []
        verify("alert", payload, keys.verify_key())
    assert sorted(p["track_id"] for p in tablet.payloads("alert")) == list(range(25))


def test_status_online_heartbeat_and_last_will_offline(van_broker, van_certs, keys, tablet, tmp_path):
    cfg = mh.unit_config(van_certs, van_broker.unit_port)
    out = mh.run_unit_then_crash(cfg, keys.root, tmp_path / "u.db", [mh.make_alert()], wait_connected=True)
    assert out["stats"]["connected"]
    assert tablet.wait_for(lambda s: [p["state"] for p in s.payloads("status")][-1:] == ["offline"], 10)
    states = [verify("status", p, keys.verify_key())["state"] for p in tablet.payloads("status")]
    assert states[0] == "online" and states[-1] == "offline"
    assert tablet.payloads("status")[-1]["reason"] == "connection lost"  # the broker sent the will
    # the will is retained: a tablet connecting later still sees "offline"
    late = mh.Subscriber(van_certs, van_broker.lan_port, [f"lfr/v1/{A}/status"], identity="tablet-02",
                         client_id="late-tablet")
    try:
        late.wait_connected()
        assert late.wait_for(lambda s: s.payloads("status"), 5)
        assert late.payloads("status")[-1]["state"] == "offline"
    finally:
        late.close()


def test_heartbeats_are_signed_and_count_the_outbox(van_broker, van_certs, keys, tablet, tmp_path):
    with open_unit(van_certs, van_broker, keys, tmp_path):
        assert tablet.wait_for(lambda s: len(s.payloads("heartbeat")) >= 2, 5)
    beats = [verify("heartbeat", p, keys.verify_key()) for p in tablet.payloads("heartbeat")]
    assert [b["seq"] for b in beats[:2]] == [0, 1] and beats[0]["outbox_pending"] == 0


# --- ACL and TLS ---

def _publish_as(van_certs, port, identity, topic, payload=b'{"forged":true}'):
    """Publish once as ``identity``; return the PUBACK reason code."""
    codes = []
    client = mh.tls_client(van_certs, identity, f"probe-{uuid.uuid4().hex[:8]}")
    client.on_publish = lambda c, u, mid, rc, p: codes.append(rc)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        client.publish(topic, payload, qos=1)
        deadline = time.monotonic() + 5
        while not codes and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        client.disconnect()
        client.loop_stop()
    return codes[0]


def test_tablet_cannot_publish_an_alert(van_broker, van_certs, keys, tablet, tmp_path):
    code = _publish_as(van_certs, van_broker.lan_port, "tablet-02", f"lfr/v1/{A}/alert")
    assert code.is_failure and "authori" in str(code).lower()
    code = _publish_as(van_certs, van_broker.lan_port, "console-01", f"lfr/v1/{A}/status")
    assert code.is_failure
    time.sleep(0.5)
    assert tablet.payloads("alert") == [] and tablet.payloads("status") == []
    with open_unit(van_certs, van_broker, keys, tmp_path) as unit:  # the listener does receive real ones
        real = unit.submit(mh.make_alert())
        assert tablet.wait_for(lambda s: real in alert_ids(s), 5)
    assert [p["alert_id"] for p in tablet.payloads("alert")] == [real]


def test_unit_a_cannot_publish_as_unit_b(van_broker, van_certs, keys, tablet, tmp_path):
    code = _publish_as(van_certs, van_broker.unit_port, "van-dev-01", f"lfr/v1/{B}/alert")
    assert code.is_failure
    # a unit configured as B but holding A's certificate: the broker refuses, the outbox keeps it
    with open_unit(van_certs, van_broker, keys, tmp_path, unit=B, cert_as=A) as impostor:
        aid = impostor.submit(mh.make_alert())
        deadline = time.monotonic() + 5
        while not impostor.counters["refused"] and time.monotonic() < deadline:
            time.sleep(0.02)
        assert impostor.counters["refused"] >= 1
        assert impostor.outbox.state(aid) == "pending" and impostor.outbox.pending_count() == 1
    # ... while the real unit A still gets through, so the tablet was listening
    with open_unit(van_certs, van_broker, keys, tmp_path) as unit:
        real = unit.submit(mh.make_alert())
        assert tablet.wait_for(lambda s: real in alert_ids(s), 5)
    assert alert_ids(tablet, B) == set()


def test_client_without_certificate_cannot_connect(van_broker, van_certs):
    for port in (van_broker.lan_port, van_broker.unit_port):
        connected = []
        client = mh.tls_client(van_certs, None, f"nocert-{port}")
        client.on_connect = lambda c, u, f, rc, p: connected.append(rc)
        try:
            client.connect("127.0.0.1", port)
            client.loop_start()
            time.sleep(1.0)
        except OSError:
            pass  # refused during the handshake: also a pass
        finally:
            client.loop_stop()
        assert not any(not rc.is_failure for rc in connected)
        assert not client.is_connected()


def test_certificate_from_another_ca_cannot_connect(van_broker, tmp_path):
    rogue = mh.make_certs(tmp_path / "rogue")
    client = mh.tls_client(rogue, "tablet-01", "rogue-tablet")
    with pytest.raises(OSError):  # the rogue CA does not vouch for the broker either
        client.connect("127.0.0.1", van_broker.lan_port)
