"""The append-only log: commits, signed heads, schemas that refuse biometrics, migrations, threads."""
from __future__ import annotations

import json
import math
import sqlite3
import threading

import pytest

from appliance.audit import schema
from appliance.audit.export import export_log, sign_export_head
from appliance.audit.log import AuditLog, AuditSchemaError, connect, iter_entries, load_heads
from appliance.audit.verify import verify_export
from appliance.errors import AuditError
from tests.audit_helpers import EXAMPLES, new_key


class FakeClock:
    """Monotonic seconds the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _heads(db):
    store = connect(db, readonly=True)
    try:
        return [h.fields for h in load_heads(store)]
    finally:
        store.conn.close()


def _entries(db):
    store = connect(db, readonly=True)
    try:
        return [json.loads(body) for _s, body, _l in iter_entries(store)]
    finally:
        store.conn.close()


def test_every_event_type_appends_in_order_with_heads_every_n(tmp_path):
    db, key = tmp_path / "a.db", new_key()
    log = AuditLog.open(db, key, "van-01", head_every_n=4, head_every_s=3600)
    seqs = [log.append(kind, payload) for kind, payload in sorted(EXAMPLES.items())]
    assert seqs == list(range(1, len(EXAMPLES) + 1))  # seq 0 is the log_created entry
    status = log.status()
    assert status["state"] == "ok" and status["entries"] == len(EXAMPLES) + 1
    log.close()
    heads = _heads(db)
    every_4 = list(range(1, len(EXAMPLES) + 2, 4))
    assert [h["tree_size"] for h in heads] == every_4 + [len(EXAMPLES) + 1]  # every 4, then shutdown
    assert [h["reason"] for h in heads] == ["created"] + ["entries"] * (len(every_4) - 1) + ["shutdown"]
    assert all(b["prev"] for b in heads[1:]) and heads[0]["prev"] == ""
    entries = _entries(db)
    assert entries[0]["type"] == "log_created" and entries[0]["payload"]["public_key"]
    assert [e["type"] for e in entries[1:]] == sorted(EXAMPLES)


def test_interval_heads_and_clean_reopen(tmp_path):
    db, key, clock = tmp_path / "a.db", new_key(), FakeClock()
    log = AuditLog.open(db, key, "van-01", head_every_n=1000, head_every_s=60, clock=clock)
    log.append("fault", EXAMPLES["fault"])
    assert log.tick() is None and log.status()["uncovered"] == 1
    clock.now += 61
    head = log.tick()
    assert head is not None and head.fields["reason"] == "interval" and head.fields["tree_size"] == 2
    clock.now += 61
    assert log.tick() is None, "no head without new entries"
    log.close()
    log = AuditLog.open(db, key, "van-01")
    assert log.append("fault", EXAMPLES["fault"]) == 2
    log.close()
    assert [h["reason"] for h in _heads(db)] == ["created", "interval", "shutdown", "shutdown"]


@pytest.mark.parametrize("kind,payload,why", [
    ("alert", dict(EXAMPLES["alert"], embedding=[0.1] * 192), "embedding"),
    ("alert", dict(EXAMPLES["alert"], crop_jpeg_b64="/9j/4AAQ" * 10), "crop_jpeg_b64"),
    ("alert", dict(EXAMPLES["alert"], subject_ref="x" * 300), "subject_ref"),
    ("alert", dict(EXAMPLES["alert"], score=math.nan), "finite"),
    ("alert", {k: v for k, v in EXAMPLES["alert"].items() if k != "threshold"}, "threshold"),
    ("counters", dict(EXAMPLES["counters"], quality_rejects={"blur": [0.1, 0.2]}), "non-negative"),
    ("counters", dict(EXAMPLES["counters"], faces=[{"box": [1, 2, 3, 4]}]), "faces"),
    ("fault", {"kind": "other", "detail": "y" * 5000}, "longer than"),
    ("fault", {"kind": "other", "detail": b"bytes"}, "string"),
    ("adjudication", dict(EXAMPLES["adjudication"], decision="maybe"), "must be one of"),
    ("face_seen", {"embedding": [0.0]}, "unknown event type"),
])
def test_schemas_refuse_biometrics_and_bad_fields(tmp_path, kind, payload, why):
    db = tmp_path / "a.db"
    log = AuditLog.open(db, new_key(), "van-01")
    with pytest.raises(AuditSchemaError) as err:
        log.append(kind, payload)
    assert why in err.value.message
    assert log.status()["entries"] == 1 and log.status()["state"] == "ok"
    log.close()
    assert len(_entries(db)) == 1


def test_migrations_from_an_old_schema_keep_data_and_enforce_append_only(tmp_path):
    db_path = tmp_path / "a.db"
    db = connect(db_path)
    assert schema.migrate(db, upto=1) == 1
    db.conn.close()
    key = new_key()
    log = AuditLog.open(db_path, key, "van-01")   # migrates 1 -> latest, then creates the log
    log.append("fault", EXAMPLES["fault"])
    log.close()
    db = connect(db_path)
    assert schema.version(db) == len(schema.MIGRATIONS) == 3
    indexes = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert "idx_entries_time" in indexes
    for sql in ("UPDATE entries SET body = x'00' WHERE seq = 1", "DELETE FROM entries WHERE seq = 1",
                "DELETE FROM heads", "UPDATE meta SET value = 'x'"):
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            db.execute(sql)
    db.conn.close()


def test_open_refuses_another_key_and_a_rewritten_database(tmp_path):
    db_path, key = tmp_path / "a.db", new_key()
    log = AuditLog.open(db_path, key, "van-01")
    log.append("fault", EXAMPLES["fault"])
    log.close()
    with pytest.raises(AuditError, match="another unit key"):
        AuditLog.open(db_path, new_key(), "van-01")
    with pytest.raises(AuditError, match="log of unit van-01, not van-02"):
        AuditLog.open(db_path, key, "van-02")
    db = connect(db_path)
    db.execute("DROP TRIGGER entries_no_update")
    body = db.execute("SELECT body FROM entries WHERE seq = 1").fetchone()[0]
    db.execute("UPDATE entries SET body = ? WHERE seq = 1", [bytes(body).replace(b"connection", b"CONNECTION")])
    db.conn.close()
    with pytest.raises(AuditError, match="entry seq 1 was altered"):
        AuditLog.open(db_path, key, "van-01")
    with pytest.raises(AuditError, match="do not match signed head"):
        export_log(db_path, tmp_path / "e.jsonl")


def test_threads_and_a_second_writer_keep_one_consistent_log(tmp_path):
    db, key = tmp_path / "a.db", new_key()
    log = AuditLog.open(db, key, "van-01", head_every_n=5)
    got: list[int] = []

    def worker(n: int) -> None:
        for i in range(25):
            got.append(log.append("fault", {"kind": "other", "detail": f"thread {n} #{i}"}))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    sign_export_head(db, key, "van-01")  # another connection signs a head meanwhile
    for t in threads:
        t.join()
    log.append("fault", EXAMPLES["fault"])
    log.close()
    assert sorted(got) == list(range(1, 101))
    export_log(db, tmp_path / "e.jsonl")
    verdict = verify_export(tmp_path / "e.jsonl", key.public_key())
    assert verdict.ok, verdict.render()
    assert verdict.facts["tree_size"] == 102
