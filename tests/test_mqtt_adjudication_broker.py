"""Console adjudications through a real mosquitto with the project's config, ACL and certificates:
accepted with the sending certificate's CN, refused and audited when signed by an unknown key,
never acted on when retained, kept by the broker while the unit is offline."""
from __future__ import annotations

import json
import time
import uuid

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from appliance.audit.log import AuditLog
from appliance.audit.report import entries_from_db
from appliance.audit.sink import adjudication_callbacks
from appliance.console.keys import sign_adjudication
from appliance.keyid import public_string
from appliance.mqtt import AlertPublisher

try:
    from tests import mqtt_helpers as mh
    from tests.mqtt_helpers import van_certs  # noqa: F401  (fixture)
except ImportError:  # tests/ is not a package: pytest put it on sys.path
    import mqtt_helpers as mh
    from mqtt_helpers import van_certs  # noqa: F401

UNIT = "van-dev-01"
CONSOLE = Ed25519PrivateKey.generate()
STRANGER = Ed25519PrivateKey.generate()
INBOX = f"lfr/v1/{UNIT}/adjudication/console-01"


@pytest.fixture(scope="module")
def broker(tmp_path_factory, van_certs):
    mh.require_mosquitto()
    running = mh.VanBroker(tmp_path_factory.mktemp("adj-broker"), van_certs)
    running.start()
    yield running
    running.stop()


@pytest.fixture
def keys(tmp_path):
    return mh.new_keystore(tmp_path / "keys")


class Rig:
    """A unit whose adjudication callbacks write a real audit log, and the console's MQTT client."""

    def __init__(self, broker, certs, keys, tmp_path) -> None:
        self.broker, self.certs, self.keys, self.tmp = broker, certs, keys, tmp_path
        self.log = AuditLog.open(tmp_path / "audit.db", keys.signing_key(), UNIT, head_every_n=100,
                                 head_every_s=3600)
        self.unit: AlertPublisher | None = None

    def open_unit(self) -> AlertPublisher:
        cfg = mh.unit_config(self.certs, self.broker.unit_port, UNIT, console_keys=[public_string(CONSOLE.public_key())])
        self.unit = AlertPublisher.open(cfg, self.keys, self.tmp / "outbox.db", **adjudication_callbacks(self.log))
        assert wait(lambda: self.unit.stats()["connected"], 10)
        return self.unit

    def entries(self, kind: str) -> list[dict]:
        entries, _ = entries_from_db(self.tmp / "audit.db")
        return [e["payload"] for e in entries if e["type"] == kind]

    def close(self) -> None:
        if self.unit:
            self.unit.close()
        self.log.close()


@pytest.fixture
def rig(broker, van_certs, keys, tmp_path):
    made = Rig(broker, van_certs, keys, tmp_path)
    yield made
    made.close()


def wait(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return bool(predicate())


def publish(certs, port, identity: str, topic: str, payloads: list[bytes], retain: bool = False) -> list:
    """Publish as ``identity`` (QoS 1); return the PUBACK reason codes."""
    codes: list = []
    client = mh.tls_client(certs, identity, f"probe-{uuid.uuid4().hex[:8]}")
    client.on_publish = lambda c, u, mid, rc, p: codes.append(rc)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        for data in payloads:
            client.publish(topic, data, qos=1, retain=retain)
        assert wait(lambda: len(codes) == len(payloads), 10)
    finally:
        client.disconnect()
        client.loop_stop()
    return codes


def decision(alert_id: str, key=CONSOLE, verdict: str = "confirm", officers=("PC-4411",)) -> bytes:
    return json.dumps(sign_adjudication(key, UNIT, alert_id, verdict, list(officers))).encode()


def test_signed_confirm_is_audited_with_sender_and_an_unknown_key_is_refused_and_audited(rig, van_certs, broker):
    unit = rig.open_unit()
    aid = unit.submit(mh.make_alert())
    garbage = [b"", b"{", b"[]", b"\x00" * 10] + [bytes([i]) * i for i in range(1, 97)]
    messages = [decision(aid), decision(aid, STRANGER)] + garbage
    codes = publish(van_certs, broker.lan_port, "console-01", INBOX, messages)
    assert not any(c.is_failure for c in codes)
    counters = unit.intake.counters
    assert wait(lambda: sum(counters.values()) == len(messages), 10), dict(counters)
    assert counters["accepted"] == 1 and counters["unknown_key"] == 1
    assert counters["rate_limited"] > 0  # 102 messages at once exceed one sender's burst of 50
    confirmed = rig.entries("adjudication")
    assert [(e["alert_id"], e["officer_ids"], e["sender"], e["deployment_id"]) for e in confirmed] == \
        [(aid, ["PC-4411"], "console-01", "dep-2026-11-28-a")]
    refused = rig.entries("adjudication_refused")
    assert refused[0]["reason"] == "unknown_key" and refused[0]["sender"] == "console-01"
    limited = [e for e in refused if e["reason"] == "rate_limited"]
    assert len(limited) == 1  # one entry for the burst, not one per message
    assert len(refused) == len(messages) - 1 - counters["rate_limited"] + 1


def test_only_the_certificate_named_in_the_topic_may_publish_there(broker, van_certs):
    for identity, topic in [("console-01", f"lfr/v1/{UNIT}/adjudication/tablet-01"),
                            ("console-01", f"lfr/v1/{UNIT}/adjudication"),
                            ("tablet-01", f"lfr/v1/{UNIT}/adjudication/tablet-01"),
                            ("van-dev-02", f"lfr/v1/{UNIT}/adjudication/van-dev-02")]:
        [code] = publish(van_certs, broker.lan_port if identity != "van-dev-02" else broker.unit_port,
                         identity, topic, [b"{}"])
        assert code.is_failure and "authori" in str(code).lower(), (identity, topic)


def test_retained_reject_is_never_acted_on_and_not_audited_again_on_reconnect(rig, van_certs, broker):
    unit = rig.open_unit()
    aid = unit.submit(mh.make_alert())
    publish(van_certs, broker.lan_port, "console-01", INBOX, [decision(aid)])
    assert wait(lambda: unit.intake.counters["accepted"] == 1, 10)
    unit.close()
    rig.unit = None
    # an old "reject" left retained at the broker while the unit is away
    publish(van_certs, broker.lan_port, "console-01", INBOX, [decision(aid, verdict="reject")], retain=True)
    for _ in range(2):  # two reconnects: the retained message is refused once, never acted on
        unit = rig.open_unit()
        time.sleep(1.0)
        unit.close()
        rig.unit = None
    assert [e["decision"] for e in rig.entries("adjudication")] == ["confirmed"]
    assert [e["reason"] for e in rig.entries("adjudication_refused")] == ["retained"]
    publish(van_certs, broker.lan_port, "console-01", INBOX, [b""], retain=True)  # clear it for later tests


def test_adjudication_sent_while_the_unit_is_offline_arrives_when_it_returns(rig, van_certs, broker):
    unit = rig.open_unit()
    aid = unit.submit(mh.make_alert())
    assert unit.flush(10)
    unit.close()
    rig.unit = None
    publish(van_certs, broker.lan_port, "console-01", INBOX, [decision(aid, officers=("PC-1", "PS-2"))])
    unit = rig.open_unit()  # same certificate, so the same client id and the broker's stored session
    assert wait(lambda: unit.intake.counters["accepted"] == 1, 10), dict(unit.intake.counters)
    assert [e["officer_ids"] for e in rig.entries("adjudication")] == [["PC-1", "PS-2"]]
