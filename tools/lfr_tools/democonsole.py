"""The officers' console in the demo (`appliance demo --console --hold SECONDS`, `make demo`).

The real console (lfr_tools.consolerig) beside the demo's van broker, with one demo officer;
the unit pins its key, so a decision taken on the page during the hold is audited by the unit.
At the end the deployment record is computed from the unit's audit log and published, signed
and retained, and the console shows it.
"""
from __future__ import annotations

import time
from pathlib import Path

from appliance.errors import PublishError

from .consolerig import ConsoleThread, console_config

DEMO_OFFICER, DEMO_PIN = "DEMO-1", "246810"
UNIT = "van-dev-01"


def start_console(workdir: Path, broker, unit_key) -> ConsoleThread:
    """The console on a free port of 127.0.0.1, its state under workdir/console; prints how to sign in."""
    cfg = console_config(broker.certs, broker.lan_port, workdir / "console", {UNIT: unit_key})
    desk = ConsoleThread(cfg, {DEMO_OFFICER: DEMO_PIN}).start()
    print(f"demo: console {desk.url}/  sign in as officer {DEMO_OFFICER}, PIN {DEMO_PIN} "
          f"(the browser must trust {broker.certs / 'ca.crt'}, or accept its warning)", flush=True)
    return desk


def hold(desk: ConsoleThread | None, seconds: float) -> None:
    """Keep the unit and console up for ``seconds`` so a person or a script can look and decide."""
    if desk is None or seconds <= 0:
        return
    print(f"demo: holding the console up for {seconds:g} s at {desk.url}/", flush=True)
    time.sleep(seconds)


def publish_record(cfg, deployment: str) -> dict:
    """Compute the ended deployment's record from the audit log and publish it (signed, retained)."""
    from appliance.audit.record import record_from_db  # noqa: PLC0415
    from appliance.audit.sink import audit_db_path  # noqa: PLC0415
    from appliance.keystore import unit_keystore  # noqa: PLC0415
    from appliance.mqtt.publisher import AlertPublisher  # noqa: PLC0415

    record = record_from_db(audit_db_path(cfg), deployment, cfg.match.threshold)
    publisher = AlertPublisher.open(cfg, unit_keystore(cfg), Path(cfg.unit.data_dir) / "record-outbox.db")
    try:
        deadline = time.monotonic() + 10
        while not publisher.stats()["connected"] and time.monotonic() < deadline:
            time.sleep(0.05)
        return publisher.publish_record(record)
    finally:
        publisher.close()


def console_note(desk: ConsoleThread, deployment: str, timeout: float = 10.0) -> str:
    """What the console holds at the end: the demo's alerts and the deployment record."""
    deadline = time.monotonic() + timeout
    while desk.console.store.record(UNIT, deployment) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    record = desk.console.store.record(UNIT, deployment)
    cards = desk.console.store.cards(decided=False) + desk.console.store.cards(decided=True)
    alerts = sum(len(c["alert_ids"]) for c in cards if c["deployment_id"] == deployment)
    repeats = sum(c["repeat_sightings"] for c in cards if c["deployment_id"] == deployment)
    if record is None:
        raise PublishError("the console did not receive the deployment record", fix="see the console log above")
    return (f"console showed {alerts} sightings ({repeats} repeat) on {len(cards)} card(s); deployment record "
            f"received (alerts {record['alerts']}, repeat sightings {record.get('repeat_sightings')}, "
            f"confirmed {record['confirmed_true']}, rejected {record['confirmed_false']})")
