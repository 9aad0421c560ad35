"""An alert is audited and queued for the van in one transaction: no crash can split them.

A unit process commits alerts through the unit's durable commit (``appliance.sinks.DurableCommit``:
the audit entry and the outbox row in one SQLite transaction) and is killed (os._exit, like a
power cut: no clean-up, no final head) at a chosen SQL statement: between the audit INSERT and
the outbox INSERT, at COMMIT, right after it... 50 kills at every position in turn. Then a
publisher on the same database delivers through a real broker, and the tablet must receive
every alert that has an audit entry, and nothing that has none.
"""
from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest

from appliance.audit.log import connect, iter_entries
from mqtt_helpers import REPO, TabletClient, make_alert, new_keystore, unit_config, van_broker, van_certs  # noqa: F401

UNIT = "van-dev-01"
KILLS = 50
pytestmark = pytest.mark.slow

CHILD = r"""
import base64, json, os, sys
from appliance.audit.log import AuditLog
from appliance.pipeline.alert import Alert
from appliance.config import Config
from appliance.keystore.file import FileKeyStore
from appliance.mqtt import AlertPublisher
from appliance.sinks import DurableCommit

spec = json.loads(sys.stdin.read())
keys = FileKeyStore(spec["keys"])
log = AuditLog.open(spec["db"], keys.signing_key(), spec["unit"], head_every_n=7, head_every_s=3600)
publisher = AlertPublisher.open(Config.model_validate(spec["config"]), keys, spec["db"])
commit = DurableCommit(log, publisher)
count = {"n": 0}

def crash_at(statement):
    count["n"] += 1
    if count["n"] == spec["kill_at"]:
        os._exit(9)  # a power cut: no rollback, no close, no final head

log._conn.set_trace_callback(crash_at)  # every statement of the unit, on either connection
publisher.outbox._db.set_trace_callback(crash_at)
for fields in spec["alerts"]:
    images = {k: base64.b64decode(fields.pop(k)) for k in ("face_jpeg", "reference_jpeg")}
    commit(Alert(unit=spec["unit"], frame_seq=0, capture_t_mono=0.0, **images, **fields))
os._exit(0)
"""


def _alerts(n: int) -> list[dict]:
    import base64

    return [{k: (base64.b64encode(v).decode() if isinstance(v, bytes) else v)
             for k, v in make_alert(track_id=i, alert_id=str(uuid.uuid4())).items()} for i in range(n)]


def _audited(db) -> set[str]:
    conn = connect(db, readonly=True)
    return {e["payload"]["alert_id"] for e in (json.loads(b) for _, b, _ in iter_entries(conn)) if e["type"] == "alert"}


def _queued(db) -> set[str]:
    import sqlite3

    with sqlite3.connect(db) as conn:
        return {row[0] for row in conn.execute("SELECT alert_id FROM mqtt_alert_log")}


def test_fifty_kills_around_the_commit_lose_no_audited_alert(tmp_path, van_broker, van_certs):
    keys_dir, db = tmp_path / "keys", tmp_path / "audit.db"
    keys = new_keystore(keys_dir)
    cfg = unit_config(van_certs, 1, UNIT)  # port 1: no broker while crashing, alerts stay queued
    killed = 0
    for run in range(KILLS):
        spec = {"keys": str(keys_dir), "db": str(db), "unit": UNIT, "alerts": _alerts(3),
                "kill_at": 3 + run % 12, "config": cfg.model_dump(exclude={"source_path"})}
        proc = subprocess.run([sys.executable, "-c", CHILD], input=json.dumps(spec), capture_output=True,
                              text=True, timeout=60, cwd=REPO)
        assert proc.returncode in (0, 9), proc.stderr[-2000:]
        killed += proc.returncode == 9
        audited, queued = _audited(db), _queued(db)
        assert audited == queued, f"run {run}: audited but not queued {audited - queued}, queued only {queued - audited}"
    assert killed >= KILLS * 0.9, "the kills must land inside the commits"
    audited = _audited(db)
    assert len(audited) >= KILLS // 2, "enough alerts were committed before the kills to prove something"

    tablet = TabletClient(van_certs, van_broker.lan_port, [f"lfr/v1/{UNIT}/alert"], client_id="tablet-crash")
    tablet.wait_connected()
    from appliance.mqtt import AlertPublisher

    with AlertPublisher.open(unit_config(van_certs, van_broker.unit_port, UNIT), keys, db) as publisher:
        assert publisher.flush(30)
    assert tablet.wait_for(lambda t: {p["alert_id"] for p in t.payloads("alert")} >= audited, 20)
    delivered = {p["alert_id"] for p in tablet.payloads("alert")}
    tablet.close()
    assert delivered == audited, "every audited alert reached the van, and nothing else"
