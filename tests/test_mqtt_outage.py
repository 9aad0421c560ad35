"""None lost: broker killed and restarted while alerts flow; unit crashes with a pending outbox."""
from __future__ import annotations

import signal
import threading
import time
import uuid

import pytest

from appliance.mqtt import AlertPublisher, verify

try:
    from tests import mqtt_helpers as mh
    from tests.mqtt_helpers import van_broker, van_certs  # noqa: F401  (fixtures)
except ImportError:  # tests/ is not a package: pytest put it on sys.path
    import mqtt_helpers as mh
    from mqtt_helpers import van_broker, van_certs  # noqa: F401

UNIT = "van-dev-01"


def received_ids(sub) -> list[str]:
    return [p["alert_id"] for p in sub.payloads("alert")]


def produce(unit: AlertPublisher, stop: threading.Event, sent: list, period_s: float) -> None:
    """The pipeline's side: one alert every period_s until stopped."""
    track = 0
    while not stop.is_set():
        sent.append(unit.submit(mh.make_alert(track_id=track)))
        track += 1
        stop.wait(period_s)


def _outage(van_broker, van_certs, tmp_path, restarts: int, sig: int) -> None:
    """Alerts every 10 ms while the broker is killed with ``sig`` and restarted; none may be lost."""
    keys = mh.new_keystore(tmp_path / "keys")
    tablet = mh.Subscriber(van_certs, van_broker.lan_port, [f"lfr/v1/{UNIT}/alert"],
                           client_id=f"tablet-{uuid.uuid4().hex[:8]}")
    tablet.wait_connected()
    van_broker.restart()  # a clean stop writes the tablet's persistent session to disk
    cfg = mh.unit_config(van_certs, van_broker.unit_port, UNIT)
    unit = AlertPublisher.open(cfg, keys, tmp_path / "appliance.db")
    sent: list[str] = []
    stop = threading.Event()
    producer = threading.Thread(target=produce, args=(unit, stop, sent, 0.01))
    producer.start()
    try:
        for cycle in range(restarts):
            time.sleep(0.25)  # alerts flow while the broker is up ...
            van_broker.restart(sig=sig, down_s=0.1 + 0.02 * (cycle % 5))  # ... and while it is down
        time.sleep(0.25)
    finally:
        stop.set()
        producer.join()
    assert unit.flush(30), f"outbox not drained: {unit.stats()}"
    assert tablet.wait_for(lambda s: set(received_ids(s)) >= set(sent), 30), (
        f"lost {len(set(sent) - set(received_ids(tablet)))} of {len(sent)}: {unit.stats()}")
    stats = unit.stats()
    unit.close()
    tablet.close()
    got = received_ids(tablet)
    assert len(sent) > 10 * restarts and stats["disconnects"] >= restarts * 3 // 4  # outages were felt
    assert set(got) == set(sent)  # every alert id at least once, nothing foreign
    for payload in tablet.payloads("alert")[:: max(1, len(got) // 50)]:
        verify("alert", payload, keys.verify_key())
    print(f"\n{signal.Signals(sig).name}: {len(sent)} alerts, {len(got) - len(set(got))} duplicates, "
          f"{stats['connects']} connects")


def test_broker_killed_and_restarted_20_times_while_alerts_flow(van_broker, van_certs, tmp_path):
    _outage(van_broker, van_certs, tmp_path, 20, signal.SIGTERM)


def test_broker_crashing_10_times_loses_nothing(van_broker, van_certs, tmp_path):
    """SIGKILL: the broker loses what it acknowledged since its last autosave; the unit re-sends it."""
    _outage(van_broker, van_certs, tmp_path, 10, signal.SIGKILL)


def test_unit_crash_with_pending_outbox_delivers_after_restart(van_broker, van_certs, tmp_path):
    keys = mh.new_keystore(tmp_path / "keys")
    db = tmp_path / "appliance.db"
    cfg = mh.unit_config(van_certs, van_broker.unit_port, UNIT)
    van_broker.stop()  # the broker is down: nothing can be acknowledged
    out = mh.run_unit_then_crash(cfg, keys.root, db, [mh.make_alert(track_id=i) for i in range(12)],
                                 wait_connected=False)
    assert out["stats"]["outbox_pending"] == 12 and not out["stats"]["connected"]
    van_broker.start()
    tablet = mh.Subscriber(van_certs, van_broker.lan_port, [f"lfr/v1/{UNIT}/alert"], client_id="tablet-r")
    tablet.wait_connected()
    with AlertPublisher.open(cfg, keys, db) as unit:  # the unit comes back
        assert unit.flush(10)
        assert tablet.wait_for(lambda s: set(received_ids(s)) >= set(out["ids"]), 10)
        assert unit.outbox.counts()["delivered"] == 12
    tablet.close()
    assert set(received_ids(tablet)) == set(out["ids"])
    assert all(verify("alert", p, keys.verify_key()) for p in tablet.payloads("alert"))


def test_unit_crash_right_after_submit_with_broker_up(van_broker, van_certs, tmp_path):
    """Killed before PUBACKs can be recorded: whatever was not acknowledged is re-sent, same ids."""
    keys = mh.new_keystore(tmp_path / "keys")
    db = tmp_path / "appliance.db"
    cfg = mh.unit_config(van_certs, van_broker.unit_port, UNIT)
    tablet = mh.Subscriber(van_certs, van_broker.lan_port, [f"lfr/v1/{UNIT}/alert"], client_id="tablet-c")
    tablet.wait_connected()
    out = mh.run_unit_then_crash(cfg, keys.root, db, [mh.make_alert(track_id=i) for i in range(30)],
                                 wait_connected=True)
    with AlertPublisher.open(cfg, keys, db) as unit:
        assert unit.flush(10)
    assert tablet.wait_for(lambda s: set(received_ids(s)) >= set(out["ids"]), 10)
    tablet.close()


def test_expired_alert_is_audited_not_dropped(van_certs, tmp_path):
    """Broker never reachable: past the maximum age the alert is expired through the audit callback."""
    keys = mh.new_keystore(tmp_path / "keys")
    audited = []
    cfg = mh.unit_config(van_certs, mh.free_port(), UNIT, outbox_max_age_s=10.0)
    unit = AlertPublisher.open(cfg, keys, tmp_path / "appliance.db", on_expired=audited.append)
    try:
        aid = unit.submit(mh.make_alert())
        with unit.outbox._lock:  # age the row instead of waiting 10 s
            unit.outbox._db.execute("UPDATE mqtt_outbox SET created = created - 11")
        unit._next_expire = 0.0
        unit._wake.set()
        deadline = time.monotonic() + 5
        while not audited and time.monotonic() < deadline:
            time.sleep(0.02)
        assert [r.alert_id for r in audited] == [aid]
        assert unit.outbox.state(aid) == "expired" and unit.outbox.pending_count() == 0
        assert unit.stats()["expired"] == 1
    finally:
        unit.close(timeout=0.5)


def test_missing_tls_files_name_the_fix(tmp_path):
    from appliance.errors import PublishError

    cfg = mh.unit_config(tmp_path, 1, UNIT)
    with pytest.raises(PublishError, match="TLS file missing") as err:
        AlertPublisher.open(cfg, mh.new_keystore(tmp_path / "keys"), tmp_path / "db")
    assert "make-van-certs" in err.value.fix
