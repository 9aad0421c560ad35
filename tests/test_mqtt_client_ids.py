"""A client cannot take over the unit's client id: the broker replaces every client id by the
certificate CN (use_username_as_clientid with use_identity_as_username, mosquitto 2.0.11).

The same attack against the config without that line shows what it prevents: the unit is
kicked off and the broker publishes its last will "offline" to the tablets.
"""
from __future__ import annotations

import time

from appliance.mqtt import AlertPublisher

try:
    from tests import mqtt_helpers as mh
    from tests.mqtt_helpers import van_certs  # noqa: F401  (fixture)
except ImportError:  # tests/ is not a package: pytest put it on sys.path
    import mqtt_helpers as mh
    from mqtt_helpers import van_certs  # noqa: F401

UNIT = "van-dev-01"
DIRECTIVE = "use_username_as_clientid true\n"


def _broker(root, certs, tie_ids: bool):
    mh.require_mosquitto()
    broker = mh.VanBroker(root, certs)
    text = broker.conf.read_text()
    assert text.count(DIRECTIVE) == 2, "both listeners must tie client ids to certificate CNs"
    if not tie_ids:
        broker.conf.write_text(text.replace(DIRECTIVE, ""))
    broker.start()
    return broker


def _attack(certs, broker, tries: int) -> None:
    """tablet-02 connects with the unit's client ids (configured and CN) ``tries`` times."""
    for i in range(tries):
        client = mh.tls_client(certs, "tablet-02", ("lfr-" + UNIT, UNIT)[i % 2])
        try:
            client.connect("127.0.0.1", broker.lan_port)
            client.loop_start()
            time.sleep(0.1)
        finally:
            client.disconnect()
            client.loop_stop()


def _run(tmp_path, certs, tie_ids: bool, tries: int) -> tuple[dict, list[str]]:
    broker = _broker(tmp_path / "broker", certs, tie_ids)
    tablet = mh.Subscriber(certs, broker.lan_port, [f"lfr/v1/{UNIT}/status"], identity="tablet-01")
    cfg = mh.unit_config(certs, broker.unit_port, UNIT, client_id="")  # default client id lfr-<unit>
    unit = AlertPublisher.open(cfg, mh.new_keystore(tmp_path / "keys"), tmp_path / "outbox.db")
    try:
        tablet.wait_connected()
        assert tablet.wait_for(lambda t: [p["state"] for p in t.payloads("status")][-1:] == ["online"], 10)
        _attack(certs, broker, tries)
        time.sleep(0.5)
        return dict(unit.counters), [p["state"] for p in tablet.payloads("status")]
    finally:
        unit.close()
        tablet.close()
        broker.stop()


def test_a_tablet_using_the_units_client_id_cannot_kick_it_off(tmp_path, van_certs):
    counters, states = _run(tmp_path, van_certs, tie_ids=True, tries=20)
    assert counters.get("disconnects", 0) == 0 and counters["connects"] == 1
    assert "offline" not in states


def test_without_the_directive_the_same_attack_kicks_the_unit_off(tmp_path, van_certs):
    counters, states = _run(tmp_path, van_certs, tie_ids=False, tries=2)
    assert counters.get("disconnects", 0) >= 1 and "offline" in states
